//! Strict bencode: canonical values round-trip, every non-canonical form and every bound is
//! rejected with its own error, and the raw views agree with the tree.

use dht_proto::bencode::*;

fn roundtrip(input: &[u8]) {
    let v = decode(input).expect("valid");
    assert_eq!(encode(&v), input);
}

#[test]
fn canonical_values_round_trip() {
    for input in [
        &b"i0e"[..],
        b"i-1e",
        b"i42e",
        b"i9223372036854775807e",
        b"i-9223372036854775808e",
        b"0:",
        b"4:spam",
        b"le",
        b"de",
        b"l4:spami3ee",
        b"d3:cow3:moo4:spam4:eggse",
        b"d1:ad1:bli1eeee",
    ] {
        roundtrip(input);
    }
}

#[test]
fn non_canonical_integers_are_rejected() {
    for input in [
        &b"i-0e"[..],
        b"i01e",
        b"i-01e",
        b"ie",
        b"i-e",
        b"i+1e",
        b"i1.0e",
        b"i 1e",
    ] {
        assert_eq!(
            decode(input),
            Err(BencodeError::NonCanonicalInt),
            "{input:?}"
        );
    }
}

#[test]
fn integers_outside_i64_are_rejected() {
    for input in [
        &b"i9223372036854775808e"[..],
        b"i-9223372036854775809e",
        b"i99999999999999999999e",
    ] {
        assert_eq!(decode(input), Err(BencodeError::IntOutOfRange), "{input:?}");
    }
}

#[test]
fn non_canonical_lengths_are_rejected() {
    assert_eq!(decode(b"01:a"), Err(BencodeError::NonCanonicalLength));
    assert_eq!(decode(b"00:"), Err(BencodeError::NonCanonicalLength));
    assert_eq!(decode(b"1a"), Err(BencodeError::NonCanonicalLength));
    assert_eq!(decode(b"123456:"), Err(BencodeError::NonCanonicalLength));
}

#[test]
fn length_past_the_input_is_rejected() {
    assert_eq!(decode(b"5:abc"), Err(BencodeError::LengthExceedsInput));
    assert_eq!(decode(b"99999:"), Err(BencodeError::LengthExceedsInput));
}

#[test]
fn unsorted_or_repeated_keys_are_rejected() {
    assert_eq!(decode(b"d1:bi1e1:ai2ee"), Err(BencodeError::UnsortedKeys));
    assert_eq!(decode(b"d1:ai1e1:ai2ee"), Err(BencodeError::UnsortedKeys));
    // A prefix sorts before the longer key.
    assert!(decode(b"d1:ai1e2:aai2ee").is_ok());
    assert_eq!(decode(b"d2:aai1e1:ai2ee"), Err(BencodeError::UnsortedKeys));
}

#[test]
fn non_string_keys_are_rejected() {
    assert_eq!(decode(b"di1ei2ee"), Err(BencodeError::NonStringKey));
    assert_eq!(decode(b"dle1:ae"), Err(BencodeError::NonStringKey));
}

#[test]
fn truncated_and_trailing_input_are_rejected() {
    assert_eq!(decode(b""), Err(BencodeError::UnexpectedEnd));
    assert_eq!(decode(b"l"), Err(BencodeError::UnexpectedEnd));
    assert_eq!(decode(b"i12"), Err(BencodeError::UnexpectedEnd));
    assert_eq!(decode(b"d1:a"), Err(BencodeError::UnexpectedEnd));
    assert_eq!(decode(b"i1ei2e"), Err(BencodeError::TrailingBytes));
    assert_eq!(decode(b"lee"), Err(BencodeError::TrailingBytes));
    assert_eq!(decode(b"x"), Err(BencodeError::InvalidByte(b'x')));
}

#[test]
fn depth_limit_is_exact() {
    let ok = [vec![b'l'; DEPTH_MAX], vec![b'e'; DEPTH_MAX]].concat();
    assert!(decode(&ok).is_ok());
    let deep = [vec![b'l'; DEPTH_MAX + 1], vec![b'e'; DEPTH_MAX + 1]].concat();
    assert_eq!(decode(&deep), Err(BencodeError::TooDeep));
}

#[test]
fn element_limit_is_exact() {
    // One list plus ELEMENTS_MAX - 1 empty strings is exactly the limit.
    let mut ok = b"l".to_vec();
    ok.extend(b"0:".repeat(ELEMENTS_MAX - 1));
    ok.push(b'e');
    assert!(decode(&ok).is_ok());
    let mut over = b"l".to_vec();
    over.extend(b"0:".repeat(ELEMENTS_MAX));
    over.push(b'e');
    assert_eq!(decode(&over), Err(BencodeError::TooManyElements));
}

#[test]
fn input_longer_than_the_limit_is_rejected() {
    let mut big = format!("{}:", INPUT_LEN_MAX - 6).into_bytes();
    big.resize(INPUT_LEN_MAX + 1, b'x');
    assert_eq!(decode(&big), Err(BencodeError::InputTooLong));
}

#[test]
fn dict_gives_raw_value_bytes() {
    let input = b"d1:ad1:xi1ee1:bl1:ye1:ci7ee";
    let v = decode(input).unwrap();
    let d = v.as_dict().unwrap();
    assert_eq!(d.get_raw(b"a"), Some(&b"d1:xi1ee"[..]));
    assert_eq!(d.get_raw(b"b"), Some(&b"l1:ye"[..]));
    assert_eq!(d.get_raw(b"c"), Some(&b"i7e"[..]));
    assert_eq!(d.get(b"c").and_then(Value::as_int), Some(7));
    assert_eq!(d.get(b"z"), None);
    assert_eq!(d.raw(), &input[..]);
}

#[test]
fn raw_view_reads_fields_without_a_tree() {
    let input = b"d1:ad1:xi1ee1:bl1:yi-2ee1:ci7e1:d0:e";
    let d = decode_raw(input).unwrap().as_dict().unwrap();
    let [a, b, z, d_] = d.fields([b"a", b"b", b"bb", b"d"]);
    assert_eq!(a.map(|v| v.raw()), Some(&b"d1:xi1ee"[..]));
    assert_eq!(z, None);
    assert_eq!(d_.and_then(|v| v.as_bytes()), Some(&b""[..]));
    let items: Vec<_> = b.unwrap().as_list().unwrap().items().collect();
    assert_eq!(items[0].as_bytes(), Some(&b"y"[..]));
    assert_eq!(items[1].as_int(), Some(-2));
    assert_eq!(items.len(), 2);
    assert_eq!(d.get(b"c").and_then(|v| v.as_int()), Some(7));
    assert_eq!(d.get(b"a").and_then(|v| v.as_int()), None);
    assert_eq!(d.get(b"cc"), None);
    assert_eq!(d.entries().count(), 4);
}

#[test]
fn raw_view_and_tree_agree_on_raw_spans() {
    let input = b"ld1:ki1eeli2ei3ee4:spame";
    let tree = decode(input).unwrap();
    let raw = decode_raw(input).unwrap();
    let tree_items = tree.as_list().unwrap().items();
    let raw_items: Vec<_> = raw.as_list().unwrap().items().collect();
    assert_eq!(raw_items.len(), tree_items.len());
    assert_eq!(raw_items[0].raw(), tree_items[0].as_dict().unwrap().raw());
    assert_eq!(raw_items[1].raw(), tree_items[1].as_list().unwrap().raw());
    assert_eq!(raw_items[2].as_bytes(), tree_items[2].as_bytes());
}

#[test]
fn encoder_writes_raw_splices_verbatim() {
    let mut out = Vec::new();
    Encoder::new(&mut out).dict(|d| {
        d.raw(b"v", b"l1:ae");
        d.list(b"w", |l| {
            l.int(1);
            l.bytes(b"");
        });
    });
    assert_eq!(out, b"d1:vl1:ae1:wli1e0:ee");
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "strictly ascending")]
fn encoder_catches_unsorted_keys_in_debug_builds() {
    let mut out = Vec::new();
    Encoder::new(&mut out).dict(|d| {
        d.int(b"b", 1);
        d.int(b"a", 2);
    });
}

#[test]
fn lenient_top_level_fields_reads_several_keys_in_one_walk_and_refuses_what_is_not_one_dict() {
    // Keys out of order and an integer with a leading zero: the strict decoder refuses both.
    let d = b"d1:y1:q1:ai05e1:q4:ping1:y1:re";
    let [y, q, t] = lenient_top_level_fields(d, [&b"y"[..], &b"q"[..], &b"t"[..]]).unwrap();
    assert_eq!(y, Some(&b"1:q"[..]), "the first entry of a key wins");
    assert_eq!(q, Some(&b"4:ping"[..]));
    assert_eq!(t, None);
    assert_eq!(lenient_top_level_get(d, b"a"), Some(&b"i05e"[..]));
    for bad in [&b"d1:y1:q"[..], b"d1:y1:qee", b"l1:ye", b"d1:y9:qe", b""] {
        assert_eq!(lenient_top_level_fields(bad, [&b"y"[..]]), None, "{bad:?}");
    }
}
