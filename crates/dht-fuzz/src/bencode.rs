//! The `bencode` target: the strict decoder against its own encoder.

use std::collections::BTreeMap;

use dht_proto::bencode::{
    self, BencodeError, DictEncoder, Encoder, RawValue, Value, DEPTH_MAX, ELEMENTS_MAX,
    INPUT_LEN_MAX,
};

/// Decodes `data` with [`bencode::decode`], [`bencode::decode_raw`] and [`bencode::validate`],
/// and checks that:
///
/// - the three, and [`bencode::decode_indexed`], agree on whether `data` is strict bencode, and
///   on why not; the index's lookups find what a walk of the bytes finds;
/// - a value that decodes encodes back to exactly `data` (the decoder accepts only the
///   canonical form), and the lazy view reads the same tree as the eager one, raw spans
///   included;
/// - a value built from `data` (see `Model` below) and written with [`Encoder`] decodes back to
///   itself: `decode(encode(x)) == x` for every `x` within the decoder's bounds, and an `x`
///   past them is refused with the bound's error rather than misread.
pub fn bencode(data: &[u8]) {
    check_decode(data);
    check_model_round_trip(data);
}

fn check_decode(data: &[u8]) {
    let tree = bencode::decode(data);
    let raw = bencode::decode_raw(data);
    let valid = bencode::validate(data);
    assert_eq!(
        tree.as_ref().err(),
        raw.as_ref().err(),
        "decode and decode_raw disagree"
    );
    assert_eq!(
        tree.as_ref().err(),
        valid.as_ref().err(),
        "decode and validate disagree"
    );
    let mut index = bencode::Indexed::new(data);
    let indexed = bencode::decode_indexed(&mut index);
    assert_eq!(indexed, raw, "decode_indexed and decode_raw disagree");
    let (Ok(tree), Ok(raw)) = (tree, raw) else {
        return;
    };
    assert_eq!(
        bencode::encode(&tree),
        data,
        "a decoded value re-encodes differently"
    );
    assert_eq!(raw.raw(), data);
    same_tree(&tree, raw);
    same_lookups(&index, raw);
}

/// Checks that the index finds, in the top dictionary and in each dictionary directly inside
/// it (the ones it records), the value under each key a walk finds, and no value under a key
/// that is not there.
fn same_lookups<'a>(index: &bencode::Indexed<'a>, top: RawValue<'a>) {
    let Some(top) = top.as_dict() else {
        return;
    };
    let dicts = std::iter::once(top).chain(top.entries().filter_map(|(_, v)| v.as_dict()));
    for d in dicts.take(LOOKUPS_CHECKED) {
        for (i, (key, _)) in d.entries().enumerate().take(LOOKUPS_CHECKED) {
            assert_eq!(index.fields(d, [key]), d.fields([key]), "entry {i}");
        }
        assert_eq!(index.fields(d, [b"\xff\xff"]), d.fields([b"\xff\xff"]));
    }
}

/// Checks that the lazy view `raw` reads the same value as the eager `tree`, raw spans included.
/// Recursion is bounded by [`DEPTH_MAX`], which decoding enforced.
fn same_tree(tree: &Value<'_>, raw: RawValue<'_>) {
    match tree {
        Value::Int(i) => assert_eq!(raw.as_int(), Some(*i)),
        Value::Bytes(b) => assert_eq!(raw.as_bytes(), Some(*b)),
        Value::List(l) => {
            let rl = raw.as_list().expect("a list reads as a list");
            assert_eq!(rl.raw(), l.raw());
            assert_eq!(rl.items().count(), l.items().len());
            for (item, raw_item) in l.items().iter().zip(rl.items()) {
                same_tree(item, raw_item);
            }
        }
        Value::Dict(d) => {
            let rd = raw.as_dict().expect("a dict reads as a dict");
            assert_eq!(rd.raw(), d.raw());
            assert_eq!(rd.entries().count(), d.entries().len());
            let last = d.entries().len().saturating_sub(1);
            for (i, (entry, (key, raw_value))) in d.entries().iter().zip(rd.entries()).enumerate() {
                assert_eq!(entry.key, key);
                assert_eq!(entry.raw, raw_value.raw());
                // A lookup by key scans the dictionary: checking every key would make a large
                // dictionary cost its size squared, so only the first few and the last are.
                if i < LOOKUPS_CHECKED || i == last {
                    assert_eq!(d.get_raw(key), Some(entry.raw));
                    assert_eq!(rd.get(key), Some(raw_value));
                }
                same_tree(&entry.value, raw_value);
            }
        }
    }
}

/// Entries of each dictionary whose lookup by key is checked (the first ones; the last too).
const LOOKUPS_CHECKED: usize = 4;

/// Input bytes a [`Model`] is built from: enough for a model past every bound of the decoder
/// (33 nested containers, or 513 values), while a long input does not build a huge one.
const MODEL_INPUT_MAX: usize = 1024;

/// An owned bencode value, built from fuzz bytes, to encode and decode again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Model {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Model>),
    Dict(BTreeMap<Vec<u8>, Model>),
}

/// Deepest model built: past [`DEPTH_MAX`], so that the depth bound is tested too.
const MODEL_DEPTH_MAX: usize = DEPTH_MAX + 2;

/// Most items in one model list or dictionary.
const MODEL_ITEMS_MAX: u8 = 16;

/// Reads a model from the front of `bytes`: a tag byte, then the value's own bytes. Missing
/// bytes read as zero, so every input builds a model; recursion stops at [`MODEL_DEPTH_MAX`] and
/// every step consumes input, so the build is bounded by the input's length.
fn build(bytes: &mut &[u8], depth: usize) -> Model {
    let Some((&tag, rest)) = bytes.split_first() else {
        return Model::Int(0);
    };
    *bytes = rest;
    let container = depth < MODEL_DEPTH_MAX;
    match tag % 4 {
        0 => {
            // The tag's high bits say how many bytes of integer follow (sign-extended).
            let n = usize::from(tag >> 2) % 9;
            let (int, rest) = bytes.split_at(n.min(bytes.len()));
            *bytes = rest;
            let mut buf = [if int.first().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            }; 8];
            buf[8 - int.len()..].copy_from_slice(int);
            Model::Int(i64::from_be_bytes(buf))
        }
        1 => Model::Bytes(take_string(bytes)),
        2 if container => {
            let n = take_byte(bytes) % MODEL_ITEMS_MAX;
            Model::List((0..n).map(|_| build(bytes, depth + 1)).collect())
        }
        3 if container => {
            let n = take_byte(bytes) % MODEL_ITEMS_MAX;
            let mut d = BTreeMap::new();
            for _ in 0..n {
                let key = take_string(bytes);
                let value = build(bytes, depth + 1);
                d.insert(key, value);
            }
            Model::Dict(d)
        }
        _ => Model::Bytes(Vec::new()),
    }
}

fn take_byte(bytes: &mut &[u8]) -> u8 {
    let Some((&b, rest)) = bytes.split_first() else {
        return 0;
    };
    *bytes = rest;
    b
}

/// A string: a length byte, then up to that many bytes.
fn take_string(bytes: &mut &[u8]) -> Vec<u8> {
    let n = usize::from(take_byte(bytes)).min(bytes.len());
    let (s, rest) = bytes.split_at(n);
    *bytes = rest;
    s.to_vec()
}

fn encode_model(e: &mut Encoder<'_>, m: &Model) {
    match m {
        Model::Int(i) => e.int(*i),
        Model::Bytes(b) => e.bytes(b),
        Model::List(items) => e.list(|l| items.iter().for_each(|i| encode_model(l, i))),
        // BTreeMap order is ascending byte order: the order the encoder demands.
        Model::Dict(entries) => e.dict(|d| entries.iter().for_each(|(k, v)| encode_entry(d, k, v))),
    }
}

fn encode_entry(d: &mut DictEncoder<'_>, key: &[u8], m: &Model) {
    match m {
        Model::Int(i) => d.int(key, *i),
        Model::Bytes(b) => d.bytes(key, b),
        Model::List(items) => d.list(key, |l| items.iter().for_each(|i| encode_model(l, i))),
        Model::Dict(entries) => d.dict(key, |dd| {
            entries.iter().for_each(|(k, v)| encode_entry(dd, k, v))
        }),
    }
}

/// Nesting depth, counting the top value as 1 and a scalar inside a container as one deeper
/// (so at least the decoder's count, which charges only containers).
fn depth(m: &Model) -> usize {
    match m {
        Model::Int(_) | Model::Bytes(_) => 1,
        Model::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Model::Dict(entries) => 1 + entries.values().map(depth).max().unwrap_or(0),
    }
}

/// Values in the model, dictionary keys included (the decoder's count of elements).
fn elements(m: &Model) -> usize {
    match m {
        Model::Int(_) | Model::Bytes(_) => 1,
        Model::List(items) => 1 + items.iter().map(elements).sum::<usize>(),
        Model::Dict(entries) => 1 + entries.values().map(|v| 1 + elements(v)).sum::<usize>(),
    }
}

fn same_as_model(v: &Value<'_>, m: &Model) -> bool {
    match (v, m) {
        (Value::Int(a), Model::Int(b)) => a == b,
        (Value::Bytes(a), Model::Bytes(b)) => a == b,
        (Value::List(a), Model::List(b)) => {
            a.items().len() == b.len() && a.items().iter().zip(b).all(|(x, y)| same_as_model(x, y))
        }
        (Value::Dict(a), Model::Dict(b)) => {
            a.entries().len() == b.len()
                && a.entries()
                    .iter()
                    .zip(b)
                    .all(|(e, (k, y))| e.key == k.as_slice() && same_as_model(&e.value, y))
        }
        _ => false,
    }
}

fn check_model_round_trip(data: &[u8]) {
    let mut rest = &data[..data.len().min(MODEL_INPUT_MAX)];
    let model = build(&mut rest, 1);
    let mut encoded = Vec::new();
    encode_model(&mut Encoder::new(&mut encoded), &model);
    match bencode::decode(&encoded) {
        Ok(v) => {
            assert!(
                same_as_model(&v, &model),
                "decode(encode(x)) != x for {model:?}"
            );
            assert_eq!(bencode::encode(&v), encoded);
        }
        Err(e) => {
            let within = depth(&model) <= DEPTH_MAX
                && elements(&model) <= ELEMENTS_MAX
                && encoded.len() <= INPUT_LEN_MAX;
            assert!(!within, "encoder output refused ({e}) for {model:?}");
            assert!(
                matches!(
                    e,
                    BencodeError::TooDeep
                        | BencodeError::TooManyElements
                        | BencodeError::InputTooLong
                ),
                "encoder output refused for a reason other than a bound: {e}"
            );
        }
    }
}
