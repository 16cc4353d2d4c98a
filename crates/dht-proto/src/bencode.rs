//! Strict bencode: a zero-copy decoder that accepts only the canonical encoding, and an encoder
//! that can only write it.
//!
//! Strictness is what makes BEP 44 safe: a value is hashed and signed as its bencoded bytes, so
//! two encodings of one value must not both be accepted. Because [`decode`] accepts only
//! canonical input (integers without leading zeros or `-0`, dictionary keys strictly ascending,
//! nothing after the top value), re-encoding a decoded [`Value`] gives back exactly the bytes it
//! came from, and every container also hands out its raw span ([`Dict::get_raw`],
//! [`List::raw`], [`Dict::raw`]) so callers can keep the original bytes without re-encoding.
//!
//! Two ways in: [`decode`] builds a [`Value`] tree, and [`decode_raw`] runs the same strict
//! check without allocating and returns a [`RawValue`] that reads fields lazily. The KRPC
//! decoder uses the latter, which is what keeps a query's decode to a few hundred nanoseconds.
//!
//! Every bound is checked before the work it bounds: the input length first, then the nesting
//! depth before descending, the element count before adding an element, and a string's length
//! against the bytes that remain before slicing (nothing is allocated for a string: it is a
//! borrow of the input).

use std::cmp::Ordering;

use arrayvec::ArrayVec;

use thiserror::Error;

/// Longest input [`decode`] accepts, in bytes: a UDP datagram carries at most 65,507 bytes, so
/// this admits any datagram and nothing larger.
pub const INPUT_LEN_MAX: usize = 64 * 1024;

/// Deepest nesting of lists and dictionaries, counting the top value as depth 1. A KRPC message
/// needs 2 (envelope and arguments) plus the depth of a BEP 44 `v`; libtorrent decodes DHT
/// packets with a limit of 10, so 32 is generous while keeping the decoder's recursion small.
pub const DEPTH_MAX: usize = 32;

/// Most values (integers, strings, lists and dictionaries, dictionary keys included) in one
/// input. libtorrent decodes DHT packets with a limit of 500 tokens, counting a container's end
/// as a token too, so every message it can read fits in 512 here; a `get_peers` reply with 100
/// `values` needs about 125.
pub const ELEMENTS_MAX: usize = 512;

/// Most decimal digits in a string length prefix: enough for [`INPUT_LEN_MAX`]; a longer prefix
/// cannot describe a string that fits in the input.
const LEN_DIGITS_MAX: usize = 5;

/// Most decimal digits in an integer, sign excluded: `i64::MIN` has 19.
const INT_DIGITS_MAX: usize = 19;

/// Why an input is not strict bencode. A KRPC query that fails here is answered with 203 if its
/// transaction ID can still be read ([`lenient_top_level_get`]); anything else is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BencodeError {
    /// The input is longer than [`INPUT_LEN_MAX`].
    #[error("input longer than {INPUT_LEN_MAX} bytes")]
    InputTooLong,
    /// Lists and dictionaries nest deeper than [`DEPTH_MAX`].
    #[error("nesting deeper than {DEPTH_MAX}")]
    TooDeep,
    /// The input holds more than [`ELEMENTS_MAX`] values.
    #[error("more than {ELEMENTS_MAX} elements")]
    TooManyElements,
    /// The input ends inside a value (or is empty).
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// Bytes follow the top value.
    #[error("trailing bytes after the top value")]
    TrailingBytes,
    /// A byte that cannot start a value (or end the enclosing container) where one must be.
    #[error("invalid byte {0:#04x} where a value should start")]
    InvalidByte(u8),
    /// An integer with no digits, a leading zero, `-0`, or a byte other than a digit.
    #[error("non-canonical integer")]
    NonCanonicalInt,
    /// An integer outside the range of `i64`.
    #[error("integer out of range")]
    IntOutOfRange,
    /// A string length with a leading zero, no digits, or too many digits.
    #[error("non-canonical string length")]
    NonCanonicalLength,
    /// A string length larger than what remains of the input.
    #[error("string longer than the remaining input")]
    LengthExceedsInput,
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a byte string")]
    NonStringKey,
    /// Dictionary keys not in strictly ascending byte order (unsorted, or a key repeated).
    #[error("dictionary keys not strictly ascending")]
    UnsortedKeys,
}

/// A decoded bencode value borrowing its strings from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer (`i…e`).
    Int(i64),
    /// A byte string (`<len>:…`).
    Bytes(&'a [u8]),
    /// A list (`l…e`).
    List(List<'a>),
    /// A dictionary (`d…e`).
    Dict(Dict<'a>),
}

/// A decoded list: its items in order and its raw encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<'a> {
    items: Vec<Value<'a>>,
    raw: &'a [u8],
}

/// A decoded dictionary: its entries in (strictly ascending) key order and its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dict<'a> {
    entries: Vec<DictEntry<'a>>,
    raw: &'a [u8],
}

/// One dictionary entry: the key, the decoded value, and the value's raw encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictEntry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The decoded value.
    pub value: Value<'a>,
    /// The value exactly as it was encoded in the input (BEP 44 signs and hashes these bytes).
    pub raw: &'a [u8],
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&List<'a>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl<'a> List<'a> {
    /// The items in order.
    pub fn items(&self) -> &[Value<'a>] {
        &self.items
    }

    /// The list exactly as it was encoded, from `l` to `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

impl<'a> Dict<'a> {
    /// The entries in ascending key order.
    pub fn entries(&self) -> &[DictEntry<'a>] {
        &self.entries
    }

    /// The dictionary exactly as it was encoded, from `d` to `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The entry under `key`, if any.
    pub fn entry(&self, key: &[u8]) -> Option<&DictEntry<'a>> {
        // Keys are strictly ascending (the decoder checked), so a binary search is exact. KRPC
        // dictionaries hold a handful of keys, where a linear scan would do as well.
        self.entries
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entry(key).map(|e| &e.value)
    }

    /// The raw encoded bytes of the value under `key`, if any.
    pub fn get_raw(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.entry(key).map(|e| e.raw)
    }
}

/// Decodes one strict bencode value that must span all of `input`, into a tree.
///
/// Rejects anything that is not the canonical encoding (see the module doc) and anything past
/// [`INPUT_LEN_MAX`], [`DEPTH_MAX`] or [`ELEMENTS_MAX`]. Never panics, never allocates more than
/// [`ELEMENTS_MAX`] values' worth, never recurses deeper than [`DEPTH_MAX`]. For the hot path,
/// [`decode_raw`] checks the same rules and allocates nothing.
pub fn decode(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    decode_raw(input).map(tree)
}

/// Checks that `input` is one strict bencode value within the bounds, and returns a view that
/// reads it lazily without allocating.
pub fn decode_raw(input: &[u8]) -> Result<RawValue<'_>, BencodeError> {
    check(input, None)
}

/// The strict check of `input` as one value, recording into `index` if given.
fn check<'a>(
    input: &'a [u8],
    index: Option<&mut Indexed<'a>>,
) -> Result<RawValue<'a>, BencodeError> {
    if input.len() > INPUT_LEN_MAX {
        return Err(BencodeError::InputTooLong);
    }
    let mut validator = Validator {
        input,
        pos: 0,
        elements: 0,
        index,
    };
    validator.value(1)?;
    if validator.pos != input.len() {
        return Err(BencodeError::TrailingBytes);
    }
    Ok(RawValue { raw: input })
}

/// Like [`decode_raw`] (the same checks, the same errors), and records on the way, in
/// `index`, where the entries of the dictionaries at depths 1 and 2 are, so that
/// [`Indexed::fields`] reads them without walking the bytes again. A KRPC message is such a
/// dictionary and its arguments or reply, so its decoder reads every byte once instead of three
/// times (the check, the walk of the envelope, the walk of the arguments). The record is
/// filled in place (it is a few hundred bytes: moving it costs as much as a lookup saves).
///
/// ```
/// use dht_proto::bencode::{decode_indexed, Indexed};
/// let input = b"d1:ad2:id1:xe1:y1:qe";
/// let mut index = Indexed::new(input);
/// let top = decode_indexed(&mut index).unwrap().as_dict().unwrap();
/// let [a, y] = index.fields(top, [b"a", b"y"]);
/// assert_eq!(y.and_then(|y| y.as_bytes()), Some(&b"q"[..]));
/// let [id] = index.fields(a.unwrap().as_dict().unwrap(), [b"id"]);
/// assert_eq!(id.and_then(|id| id.as_bytes()), Some(&b"x"[..]));
/// ```
pub fn decode_indexed<'a>(index: &mut Indexed<'a>) -> Result<RawValue<'a>, BencodeError> {
    let input = index.input;
    index.dicts.clear();
    index.entries.clear();
    // Lookups use the record only once the whole input passed: a refused input's partial
    // record is never read.
    index.complete = false;
    index.overflowed = false;
    let value = check(input, Some(index))?;
    index.complete = !index.overflowed;
    Ok(value)
}

/// Deepest dictionaries whose entries [`decode_indexed`] records (the top value is at depth 1).
const INDEX_DEPTH: usize = 2;

/// Most dictionaries an [`Indexed`] records; one with more falls back to walking the bytes.
const INDEX_DICTS_MAX: usize = 4;

/// Most dictionary entries an [`Indexed`] records: a KRPC message has at most about 20 at
/// depths 1 and 2 (a BEP 44 `put` has the most); one with more falls back to walking the bytes.
const INDEX_ENTRIES_MAX: usize = 32;

/// A validated value with the places of the entries of its dictionaries at depths 1 and 2,
/// recorded by [`decode_indexed`] during its check. [`Indexed::fields`] answers from them what
/// [`RawDict::fields`] would find by walking the bytes.
#[derive(Debug, Clone)]
pub struct Indexed<'a> {
    input: &'a [u8],
    /// Offset and length of each dictionary whose entries are all in `entries`.
    dicts: ArrayVec<(u32, u32), INDEX_DICTS_MAX>,
    /// Every entry of those dictionaries, each dictionary's in ascending key order.
    entries: ArrayVec<IndexEntry, INDEX_ENTRIES_MAX>,
    /// True once [`decode_indexed`] accepted the whole input without reaching a limit above:
    /// only then do lookups read the record; otherwise they walk the bytes.
    complete: bool,
    /// Set while recording when a limit above is reached.
    overflowed: bool,
}

/// One recorded dictionary entry, as offsets into the input (small, so the record is cheap to
/// hand back).
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    /// The offset of its dictionary's `d`.
    dict_at: u32,
    /// Where its key's bytes start (after the length prefix) and how many there are.
    key_at: u32,
    key_len: u32,
    /// Where its value starts and how long it is, as encoded.
    value_at: u32,
    value_len: u32,
}

impl<'a> Indexed<'a> {
    /// An empty record for `input`, to fill with [`decode_indexed`]. Until then every lookup
    /// walks the bytes.
    pub fn new(input: &'a [u8]) -> Self {
        Indexed {
            input,
            dicts: ArrayVec::new(),
            entries: ArrayVec::new(),
            complete: false,
            overflowed: false,
        }
    }

    /// The same as `dict.fields(keys)`: the values under each of `keys` (strictly ascending).
    /// Read from the record when `dict` is one of the recorded dictionaries of this input,
    /// otherwise (a deeper one, another input's, or a record that hit its limits) by walking
    /// the bytes.
    pub fn fields<const N: usize>(
        &self,
        dict: RawDict<'a>,
        keys: [&[u8]; N],
    ) -> [Option<RawValue<'a>>; N] {
        let Some(at) = self.recorded(&dict) else {
            return dict.fields(keys);
        };
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys must be sorted");
        let mut out = [None; N];
        let mut next = 0;
        // The same merge walk as `RawDict::fields`, over the recorded entries.
        'entries: for e in self.entries.iter().filter(|e| e.dict_at == at) {
            let key = self.slice(e.key_at, e.key_len);
            // One comparison a step: a key below the entry's is absent, an equal one found.
            while let Some(want) = keys.get(next) {
                match key_cmp(want, key) {
                    Ordering::Less => next += 1,
                    Ordering::Equal => {
                        out[next] = Some(RawValue {
                            raw: self.slice(e.value_at, e.value_len),
                        });
                        next += 1;
                        continue 'entries;
                    }
                    Ordering::Greater => continue 'entries,
                }
            }
            break;
        }
        out
    }

    /// The recorded span of the input (always within it; empty if not, which cannot happen).
    fn slice(&self, at: u32, len: u32) -> &'a [u8] {
        let (at, len) = (at as usize, len as usize);
        self.input.get(at..at + len).unwrap_or_default()
    }

    /// The offset of `dict` if it is a recorded dictionary of this input.
    fn recorded(&self, dict: &RawDict<'a>) -> Option<u32> {
        if !self.complete {
            return None;
        }
        // Where `dict` starts relative to the input; a slice of another buffer lands outside
        // (or, by chance, inside with a length that does not match a recorded dictionary).
        let at = (dict.raw.as_ptr() as usize).wrapping_sub(self.input.as_ptr() as usize);
        let at = u32::try_from(at).ok()?;
        let len = u32::try_from(dict.raw.len()).ok()?;
        self.dicts
            .iter()
            .any(|&(a, l)| a == at && l == len)
            .then_some(at)
    }

    /// Notes that the dictionary at `at` (its `d`) is being recorded.
    fn open_dict(&mut self, at: usize) {
        // Offsets fit: the input is at most INPUT_LEN_MAX bytes.
        if self.dicts.try_push((at as u32, 0)).is_err() {
            self.overflowed = true;
        }
    }

    /// Records one entry of the dictionary at `at`.
    fn entry(&mut self, at: usize, key: (usize, usize), value: (usize, usize)) {
        let entry = IndexEntry {
            dict_at: at as u32,
            key_at: key.0 as u32,
            key_len: key.1 as u32,
            value_at: value.0 as u32,
            value_len: value.1 as u32,
        };
        if self.entries.try_push(entry).is_err() {
            self.overflowed = true;
        }
    }

    /// Notes the length of the dictionary at `at`, now that its `e` is read.
    fn close_dict(&mut self, at: usize, end: usize) {
        if let Some(d) = self.dicts.iter_mut().find(|d| d.0 == at as u32) {
            d.1 = (end - at) as u32;
        }
    }
}

/// Checks that `input` is one strict bencode value, within the same bounds as [`decode`].
pub fn validate(input: &[u8]) -> Result<(), BencodeError> {
    decode_raw(input).map(|_| ())
}

/// Builds the tree of a validated value. Recursion is bounded by [`DEPTH_MAX`], which the
/// validation enforced.
fn tree(v: RawValue<'_>) -> Value<'_> {
    if let Some(i) = v.as_int() {
        Value::Int(i)
    } else if let Some(l) = v.as_list() {
        Value::List(List {
            items: l.items().map(tree).collect(),
            raw: v.raw,
        })
    } else if let Some(d) = v.as_dict() {
        Value::Dict(Dict {
            entries: d
                .entries()
                .map(|(key, value)| DictEntry {
                    key,
                    value: tree(value),
                    raw: value.raw,
                })
                .collect(),
            raw: v.raw,
        })
    } else {
        // Validation leaves only a byte string here.
        Value::Bytes(v.as_bytes().unwrap_or_default())
    }
}

/// One validated bencode value, read lazily: nothing is parsed or allocated until asked for.
///
/// Only [`decode_raw`] and the views it hands out make these, so the bytes are always one
/// strict, bounded value. The readers still fail soft (`None`, or an iterator that ends) rather
/// than trust that, so no byte sequence can make them panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'a> {
    raw: &'a [u8],
}

/// A validated dictionary, read lazily (see [`RawValue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDict<'a> {
    raw: &'a [u8],
}

/// A validated list, read lazily (see [`RawValue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawList<'a> {
    raw: &'a [u8],
}

impl<'a> RawValue<'a> {
    /// The value exactly as it was encoded.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.raw.first() {
            Some(b'i') => parse_int(self.raw, 0).ok().map(|(i, _)| i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.raw.first() {
            Some(b'0'..=b'9') => parse_bytes(self.raw, 0).ok().map(|(b, _)| b),
            _ => None,
        }
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<RawList<'a>> {
        (self.raw.first() == Some(&b'l')).then_some(RawList { raw: self.raw })
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<RawDict<'a>> {
        (self.raw.first() == Some(&b'd')).then_some(RawDict { raw: self.raw })
    }
}

impl<'a> RawList<'a> {
    /// The list exactly as it was encoded, from `l` to `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The items in order.
    pub fn items(&self) -> RawItems<'a> {
        RawItems {
            input: self.raw,
            pos: 1,
        }
    }
}

impl<'a> RawDict<'a> {
    /// The dictionary exactly as it was encoded, from `d` to `e`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The entries in ascending key order.
    pub fn entries(&self) -> RawEntries<'a> {
        RawEntries {
            input: self.raw,
            pos: 1,
        }
    }

    /// The value under `key`, if any (a scan that stops once past where `key` would sort).
    pub fn get(&self, key: &[u8]) -> Option<RawValue<'a>> {
        self.entries()
            .take_while(|(k, _)| *k <= key)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The values under each of `keys`, which must be in strictly ascending order, in one pass
    /// over the entries: slot `i` of the result holds the value under `keys[i]`.
    pub fn fields<const N: usize>(&self, keys: [&[u8]; N]) -> [Option<RawValue<'a>>; N] {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys must be sorted");
        let mut out = [None; N];
        let mut next = 0;
        // Both sides are sorted, so one merge walk visits each entry and each key once.
        for (k, v) in self.entries() {
            while next < N && key_cmp(keys[next], k) == Ordering::Less {
                next += 1;
            }
            if next == N {
                break;
            }
            if key_cmp(keys[next], k) == Ordering::Equal {
                out[next] = Some(v);
                next += 1;
            }
        }
        out
    }
}

/// Iterator over the items of a [`RawList`].
#[derive(Debug, Clone)]
pub struct RawItems<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RawItems<'a> {
    type Item = RawValue<'a>;

    fn next(&mut self) -> Option<RawValue<'a>> {
        if *self.input.get(self.pos)? == b'e' {
            return None;
        }
        let end = skip(self.input, self.pos)?;
        let item = RawValue {
            raw: &self.input[self.pos..end],
        };
        self.pos = end;
        Some(item)
    }
}

/// Iterator over the entries (key, value) of a [`RawDict`].
#[derive(Debug, Clone)]
pub struct RawEntries<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RawEntries<'a> {
    type Item = (&'a [u8], RawValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if *self.input.get(self.pos)? == b'e' {
            return None;
        }
        let (key, value_start) = parse_bytes(self.input, self.pos).ok()?;
        let end = skip(self.input, value_start)?;
        self.pos = end;
        Some((
            key,
            RawValue {
                raw: &self.input[value_start..end],
            },
        ))
    }
}

/// Byte-order comparison of dictionary keys. KRPC keys are a few bytes long, where this
/// inlined loop is several times faster than the `memcmp` call of `<[u8]>::cmp` (which showed
/// as an eighth of a query's decode time in a profile).
#[inline]
fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// The position just past the value starting at `pos`, walking containers iteratively (an
/// open-container count instead of recursion). `None` if the bytes are not a value.
fn skip(input: &[u8], mut pos: usize) -> Option<usize> {
    let mut open: usize = 0;
    // Bounded: every iteration advances `pos` by at least one byte of `input`.
    loop {
        match *input.get(pos)? {
            b'i' => pos = parse_int(input, pos).ok()?.1,
            b'0'..=b'9' => pos = parse_bytes(input, pos).ok()?.1,
            b'l' | b'd' => {
                open += 1;
                pos += 1;
            }
            b'e' => {
                open = open.checked_sub(1)?;
                pos += 1;
            }
            _ => return None,
        }
        if open == 0 {
            return Some(pos);
        }
    }
}

/// The value under `key` in the top-level dictionary of `input`, read leniently: keys in any
/// order and integers with leading zeros are passed over (nothing else is). For answering a
/// datagram that failed the strict decode: KRPC must reply error 203 to a query that carries
/// non-canonical bencode (BEP 44 rejects such a `v`), and that reply needs the query's `t`.
/// Returns the raw bytes of the first entry with that key; `None` if there is none, or if the
/// input is not one dictionary from its first byte to its last (see
/// [`lenient_top_level_fields`]).
pub fn lenient_top_level_get<'a>(input: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    lenient_top_level_fields(input, [key])?[0]
}

/// The values under `keys` in the top-level dictionary of `input`, in one lenient walk (as
/// [`lenient_top_level_get`] reads one): the raw bytes of the first entry with each key, `None`
/// for a key not there. Every other value is skipped without a look inside (a byte string by
/// its length), so this is cheaper than a decode; a runtime uses it to sort datagrams by kind
/// and method for its metrics. `None` if the input is not one dictionary from its first byte
/// to its last (truncated, trailing bytes, a byte that starts no value). Bounded by the input:
/// every step advances through it.
pub fn lenient_top_level_fields<'a, const N: usize>(
    input: &'a [u8],
    keys: [&[u8]; N],
) -> Option<[Option<&'a [u8]>; N]> {
    if input.len() > INPUT_LEN_MAX || input.first() != Some(&b'd') {
        return None;
    }
    let mut pos = 1;
    let mut found = [None; N];
    while input.get(pos)? != &b'e' {
        let (k, value_start) = parse_bytes(input, pos).ok()?;
        let end = skip_lenient(input, value_start)?;
        if let Some(i) = keys.iter().position(|key| *key == k) {
            found[i].get_or_insert(&input[value_start..end]);
        }
        pos = end;
    }
    if pos + 1 != input.len() {
        return None;
    }
    Some(found)
}

/// Like [`skip`], but an integer may have leading zeros. A copy rather than a flag on [`skip`]:
/// `skip` with a const-generic flag made the 100k simulated hour 7-11% slower (two pairs, cores
/// swapped), though it is on the strict path only.
fn skip_lenient(input: &[u8], mut pos: usize) -> Option<usize> {
    let mut open: usize = 0;
    // Bounded: every iteration advances `pos` by at least one byte of `input`.
    loop {
        match *input.get(pos)? {
            b'i' => {
                let digits = input.get(pos + 1..)?;
                let sign = usize::from(digits.first() == Some(&b'-'));
                let len = digits[sign..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if len == 0 || digits.get(sign + len) != Some(&b'e') {
                    return None;
                }
                pos += 1 + sign + len + 1;
            }
            b'0'..=b'9' => pos = parse_bytes(input, pos).ok()?.1,
            b'l' | b'd' => {
                open += 1;
                pos += 1;
            }
            b'e' => {
                open = open.checked_sub(1)?;
                pos += 1;
            }
            _ => return None,
        }
        if open == 0 {
            return Some(pos);
        }
    }
}

/// Reads the integer whose `i` is at `pos`; returns it and the position after its `e`.
fn parse_int(input: &[u8], mut pos: usize) -> Result<(i64, usize), BencodeError> {
    pos += 1; // 'i'
    let negative = input.get(pos) == Some(&b'-');
    if negative {
        pos += 1;
    }
    let digits_start = pos;
    // Accumulate as a negative number so that i64::MIN parses without overflow.
    let mut acc: i64 = 0;
    loop {
        let b = *input.get(pos).ok_or(BencodeError::UnexpectedEnd)?;
        match b {
            b'0'..=b'9' => {
                if pos - digits_start == INT_DIGITS_MAX {
                    return Err(BencodeError::IntOutOfRange);
                }
                acc = acc
                    .checked_mul(10)
                    .and_then(|a| a.checked_sub(i64::from(b - b'0')))
                    .ok_or(BencodeError::IntOutOfRange)?;
                pos += 1;
            }
            b'e' => break,
            _ => return Err(BencodeError::NonCanonicalInt),
        }
    }
    let digits = &input[digits_start..pos];
    let value = match digits {
        [] => return Err(BencodeError::NonCanonicalInt),
        [b'0'] if negative => return Err(BencodeError::NonCanonicalInt),
        [b'0', _, ..] => return Err(BencodeError::NonCanonicalInt),
        _ if negative => acc,
        _ => acc.checked_neg().ok_or(BencodeError::IntOutOfRange)?,
    };
    Ok((value, pos + 1))
}

/// Reads the byte string whose length prefix starts at `pos`; returns it and the position
/// after it. The length is checked against the input before slicing.
fn parse_bytes(input: &[u8], mut pos: usize) -> Result<(&[u8], usize), BencodeError> {
    // Most strings are shorter than 10 bytes (every KRPC key, `t`, `y`, `q`): one digit, then
    // `:`, needs none of the checks below.
    if let Some(&[d @ b'0'..=b'9', b':']) = input.get(pos..pos + 2) {
        let start = pos + 2;
        let end = start + usize::from(d - b'0');
        return match input.get(start..end) {
            Some(s) => Ok((s, end)),
            None => Err(BencodeError::LengthExceedsInput),
        };
    }
    let digits_start = pos;
    let mut len: usize = 0;
    loop {
        let b = *input.get(pos).ok_or(BencodeError::UnexpectedEnd)?;
        match b {
            b'0'..=b'9' => {
                if pos - digits_start == LEN_DIGITS_MAX {
                    return Err(BencodeError::NonCanonicalLength);
                }
                len = len * 10 + usize::from(b - b'0');
                pos += 1;
            }
            b':' => break,
            _ => return Err(BencodeError::NonCanonicalLength),
        }
    }
    let digits = &input[digits_start..pos];
    if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return Err(BencodeError::NonCanonicalLength);
    }
    pos += 1; // ':'
    if len > input.len() - pos {
        return Err(BencodeError::LengthExceedsInput);
    }
    Ok((&input[pos..pos + len], pos + len))
}

/// The strict check: walks the input once, allocating nothing, with the running element count.
struct Validator<'a, 'i> {
    input: &'a [u8],
    pos: usize,
    elements: usize,
    /// Where [`decode_indexed`] records the dictionaries' entries; `None` for a plain check.
    index: Option<&'i mut Indexed<'a>>,
}

impl Validator<'_, '_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(BencodeError::UnexpectedEnd)
    }

    fn count_element(&mut self) -> Result<(), BencodeError> {
        if self.elements == ELEMENTS_MAX {
            return Err(BencodeError::TooManyElements);
        }
        self.elements += 1;
        Ok(())
    }

    /// Checks the value at the cursor; `depth` is the depth it would have as a container (the
    /// top value is at depth 1). Recursion stops at [`DEPTH_MAX`].
    fn value(&mut self, depth: usize) -> Result<(), BencodeError> {
        self.count_element()?;
        match self.peek()? {
            b'i' => self.pos = parse_int(self.input, self.pos)?.1,
            b'0'..=b'9' => self.pos = parse_bytes(self.input, self.pos)?.1,
            b'l' => {
                if depth > DEPTH_MAX {
                    return Err(BencodeError::TooDeep);
                }
                self.pos += 1;
                // Bounded: every item consumes at least one byte and counts one element.
                while self.peek()? != b'e' {
                    self.value(depth + 1)?;
                }
                self.pos += 1;
            }
            b'd' => {
                if depth > DEPTH_MAX {
                    return Err(BencodeError::TooDeep);
                }
                let dict_at = self.pos;
                let record = depth <= INDEX_DEPTH && self.index.is_some();
                if record {
                    if let Some(index) = self.index.as_deref_mut() {
                        index.open_dict(dict_at);
                    }
                }
                self.pos += 1;
                let mut last_key: Option<&[u8]> = None;
                // Bounded: every entry consumes at least one byte and counts two elements.
                loop {
                    let b = self.peek()?;
                    if b == b'e' {
                        break;
                    }
                    if !b.is_ascii_digit() {
                        return Err(BencodeError::NonStringKey);
                    }
                    self.count_element()?;
                    let (key, next) = parse_bytes(self.input, self.pos)?;
                    if last_key.is_some_and(|last| key_cmp(last, key) != Ordering::Less) {
                        return Err(BencodeError::UnsortedKeys);
                    }
                    last_key = Some(key);
                    self.pos = next;
                    self.value(depth + 1)?;
                    if record {
                        if let Some(index) = self.index.as_deref_mut() {
                            let key = (next - key.len(), key.len());
                            index.entry(dict_at, key, (next, self.pos - next));
                        }
                    }
                }
                self.pos += 1;
                if record {
                    if let Some(index) = self.index.as_deref_mut() {
                        index.close_dict(dict_at, self.pos);
                    }
                }
            }
            other => return Err(BencodeError::InvalidByte(other)),
        }
        Ok(())
    }
}

/// Writes canonical bencode into a `Vec<u8>`.
///
/// Containers are written through closures so that every `l`/`d` gets its `e`; dictionary keys
/// must be given in strictly ascending order, which a debug assertion checks (a KRPC encoder
/// writes its keys from a fixed, sorted list, so an out-of-order key is a programmer error).
///
/// ```
/// use dht_proto::bencode::Encoder;
/// let mut out = Vec::new();
/// Encoder::new(&mut out).dict(|d| {
///     d.bytes(b"a", b"x");
///     d.int(b"b", -3);
/// });
/// assert_eq!(out, b"d1:a1:x1:bi-3ee");
/// ```
pub struct Encoder<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Encoder<'o> {
    /// An encoder appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Encoder { out }
    }

    /// Writes an integer.
    pub fn int(&mut self, value: i64) {
        write_int(self.out, value);
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, value: &[u8]) {
        write_bytes(self.out, value);
    }

    /// Splices in one already-encoded value as it is (for a BEP 44 `v`, which must travel
    /// exactly as it was signed). The caller vouches that `encoded` is one strict bencode value;
    /// debug builds check it.
    pub fn raw(&mut self, encoded: &[u8]) {
        debug_assert!(
            validate(encoded).is_ok(),
            "Encoder::raw given invalid bencode"
        );
        self.out.extend_from_slice(encoded);
    }

    /// Writes a list whose items `items` writes, one value per call on the encoder it gets.
    pub fn list(&mut self, items: impl FnOnce(&mut Encoder<'_>)) {
        self.out.push(b'l');
        items(&mut Encoder { out: self.out });
        self.out.push(b'e');
    }

    /// Writes a dictionary whose entries `entries` writes, keys in strictly ascending order.
    pub fn dict(&mut self, entries: impl FnOnce(&mut DictEncoder<'_>)) {
        self.out.push(b'd');
        let mut d = DictEncoder {
            out: self.out,
            last_key: None,
        };
        entries(&mut d);
        self.out.push(b'e');
    }

    /// Writes a decoded value back; for a value from [`decode`] this gives its input bytes.
    pub fn value(&mut self, value: &Value<'_>) {
        match value {
            Value::Int(i) => self.int(*i),
            Value::Bytes(b) => self.bytes(b),
            Value::List(l) => self.list(|e| {
                for item in l.items() {
                    e.value(item);
                }
            }),
            Value::Dict(d) => self.dict(|e| {
                for entry in d.entries() {
                    e.value(entry.key, &entry.value);
                }
            }),
        }
    }
}

/// Writes the entries of a dictionary opened by [`Encoder::dict`]; one method call is one entry.
pub struct DictEncoder<'o> {
    out: &'o mut Vec<u8>,
    /// Where the previous key's bytes sit in `out` (start, end), to check the order.
    last_key: Option<(usize, usize)>,
}

impl DictEncoder<'_> {
    fn key(&mut self, key: &[u8]) {
        if let Some((start, end)) = self.last_key {
            debug_assert!(
                self.out[start..end] < *key,
                "dictionary keys must be written in strictly ascending order"
            );
        }
        write_len(self.out, key.len());
        self.out.push(b':');
        let start = self.out.len();
        self.out.extend_from_slice(key);
        self.last_key = Some((start, self.out.len()));
    }

    /// Writes `key` with an integer value.
    pub fn int(&mut self, key: &[u8], value: i64) {
        self.key(key);
        write_int(self.out, value);
    }

    /// Writes `key` with a byte-string value.
    pub fn bytes(&mut self, key: &[u8], value: &[u8]) {
        self.key(key);
        write_bytes(self.out, value);
    }

    /// Writes `key` with a byte string of `len` bytes that `write` appends straight to the
    /// output, so a string built from parts (compact node infos) needs no buffer of its own.
    /// `write` must append exactly `len` bytes (checked in debug builds).
    pub fn bytes_with(&mut self, key: &[u8], len: usize, write: impl FnOnce(&mut Vec<u8>)) {
        self.key(key);
        write_len(self.out, len);
        self.out.push(b':');
        let start = self.out.len();
        write(self.out);
        debug_assert_eq!(
            self.out.len() - start,
            len,
            "bytes_with wrote a wrong length"
        );
    }

    /// Writes `key` with an already-encoded value spliced in as it is (see [`Encoder::raw`]).
    pub fn raw(&mut self, key: &[u8], encoded: &[u8]) {
        self.key(key);
        Encoder { out: self.out }.raw(encoded);
    }

    /// Writes `key` with a list value.
    pub fn list(&mut self, key: &[u8], items: impl FnOnce(&mut Encoder<'_>)) {
        self.key(key);
        Encoder { out: self.out }.list(items);
    }

    /// Writes `key` with a dictionary value.
    pub fn dict(&mut self, key: &[u8], entries: impl FnOnce(&mut DictEncoder<'_>)) {
        self.key(key);
        Encoder { out: self.out }.dict(entries);
    }

    /// Writes `key` with a decoded value.
    pub fn value(&mut self, key: &[u8], value: &Value<'_>) {
        self.key(key);
        Encoder { out: self.out }.value(value);
    }
}

/// Encodes one value into a new vector.
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new(&mut out).value(value);
    out
}

fn write_bytes(out: &mut Vec<u8>, value: &[u8]) {
    write_len(out, value.len());
    out.push(b':');
    out.extend_from_slice(value);
}

fn write_int(out: &mut Vec<u8>, value: i64) {
    out.push(b'i');
    if value < 0 {
        out.push(b'-');
    }
    write_u64(out, value.unsigned_abs());
    out.push(b'e');
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    // usize is at most 64 bits on every target Rust supports.
    write_u64(out, len as u64);
}

/// Writes `n` in decimal without a leading zero; no allocation, no formatting machinery
/// (`itoa` writes two digits a step from a table: the lengths and integers of every message
/// pass through here).
fn write_u64(out: &mut Vec<u8>, n: u64) {
    // Most are one digit (every KRPC key's length, `t`'s, `ip`'s, small integers): one push
    // instead of a formatting buffer and a copy.
    if n < 10 {
        out.push(b'0' + n as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dictionaries of `input` at depths 1 and 2 that lookups answer from the record.
    fn recorded(input: &[u8]) -> Vec<Vec<u8>> {
        let mut index = Indexed::new(input);
        let top = decode_indexed(&mut index).unwrap();
        let mut dicts = vec![top];
        if let Some(d) = top.as_dict() {
            dicts.extend(d.entries().map(|(_, v)| v));
        }
        dicts
            .into_iter()
            .filter_map(|v| v.as_dict())
            .filter(|d| index.recorded(d).is_some())
            .map(|d| d.raw().to_vec())
            .collect()
    }

    #[test]
    fn a_krpc_query_and_its_arguments_are_read_from_the_record() {
        let query = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(
            recorded(query),
            vec![query.to_vec(), b"d2:id20:abcdefghij0123456789e".to_vec()]
        );
    }

    #[test]
    fn the_record_of_a_refused_input_is_not_used() {
        // A whole dictionary, then a trailing byte: the dictionary is recorded, then refused.
        let input = b"d1:ai1eex";
        let mut index = Indexed::new(input);
        assert_eq!(decode_indexed(&mut index), Err(BencodeError::TrailingBytes));
        let dict = decode_raw(&input[..8]).unwrap().as_dict().unwrap();
        assert_eq!(index.recorded(&dict), None);
    }

    #[test]
    fn past_its_limits_the_record_is_not_used() {
        // Four dictionaries at depths 1 and 2 fit; five are one more than the record holds.
        assert_eq!(recorded(b"d1:ade1:bde1:cdee").len(), INDEX_DICTS_MAX);
        assert!(recorded(b"d1:ade1:bde1:cde1:ddee").is_empty());
        // More entries than the record holds.
        let mut many = b"d".to_vec();
        for i in 0..INDEX_ENTRIES_MAX + 1 {
            many.extend(format!("2:{i:02}i0e").bytes());
        }
        many.push(b'e');
        assert!(recorded(&many).is_empty());
        // A dictionary of another buffer, or a deeper one, is walked.
        let input = b"d1:ad1:bd1:ci1eeee";
        let mut index = Indexed::new(input);
        decode_indexed(&mut index).unwrap();
        let copy = input.to_vec();
        let other = decode_raw(&copy).unwrap().as_dict().unwrap();
        assert_eq!(index.recorded(&other), None);
        let [a] = index.fields(other, [b"a"]);
        let deep = a.unwrap().as_dict().unwrap().get(b"b").unwrap();
        assert_eq!(index.recorded(&deep.as_dict().unwrap()), None);
        assert_eq!(index.fields(other, [b"a"]), other.fields([b"a"]));
    }
}
