//! The byte layout of every record the on-disk store keeps, with an explicit encoder and a
//! decoder that never panics.
//!
//! Each value starts with a record version byte ([`RECORD_VERSION`]) and ends with a CRC-32C
//! over the record's key and the value's preceding bytes. redb keeps its own page checksums, but
//! it checks them only when it repairs a file; our checksum catches a flipped byte the moment the
//! record is read, and it also covers the key, so a record that drifted to another key is caught
//! too. Integers are big-endian. Addresses are written as a family byte (4 or 6), the IP
//! address's bytes, and for socket addresses a 2-byte port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dht_proto::bep44::MutableItem;
use dht_proto::message::{NodeInfo, SALT_LEN_MAX, VALUE_LEN_MAX};
use dht_proto::store::{ItemValue, StoredItem};
use dht_proto::Id;

/// The version byte every value starts with; a record with another version is refused.
pub const RECORD_VERSION: u8 = 1;

/// Kind byte of an immutable item.
const KIND_IMMUTABLE: u8 = 0;
/// Kind byte of a mutable item.
const KIND_MUTABLE: u8 = 1;

/// Family byte of an IPv4 address.
const FAMILY_V4: u8 = 4;
/// Family byte of an IPv6 address.
const FAMILY_V6: u8 = 6;

/// Length of the trailing checksum, in bytes.
const CRC_LEN: usize = 4;

/// An item as it sits on disk: the decoded item, with its expiry still in Unix milliseconds (the
/// caller converts it with the clock of the run that loads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    /// The item's target (from the key).
    pub target: Id,
    /// The value.
    pub value: ItemValue,
    /// When it expires, in Unix milliseconds.
    pub expires_unix_ms: u64,
    /// The IP address that stored it.
    pub source: IpAddr,
}

impl ItemRecord {
    /// The record of `item`, whose expiry the caller converted to Unix milliseconds.
    pub fn new(item: &StoredItem, expires_unix_ms: u64) -> Self {
        ItemRecord {
            target: item.target,
            value: item.value.clone(),
            expires_unix_ms,
            source: item.source,
        }
    }
}

/// Appends the CRC-32C of `key` followed by `value` to `value`.
fn seal(key: &[u8], mut value: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c_append(crc32c::crc32c(key), &value);
    value.extend_from_slice(&crc.to_be_bytes());
    value
}

/// Checks the version byte and the trailing checksum of `value` under `key`, and returns the
/// bytes between them.
fn unseal<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a [u8], String> {
    if value.len() < 1 + CRC_LEN {
        return Err(format!("record of {} bytes is too short", value.len()));
    }
    let (body, crc_bytes) = value.split_at(value.len() - CRC_LEN);
    let mut stored = [0u8; CRC_LEN];
    stored.copy_from_slice(crc_bytes);
    let computed = crc32c::crc32c_append(crc32c::crc32c(key), body);
    if u32::from_be_bytes(stored) != computed {
        return Err("checksum mismatch".to_owned());
    }
    // The version byte is checked after the checksum, so that a damaged byte reads as damage
    // and not as a record from a future version.
    match body[0] {
        RECORD_VERSION => Ok(&body[1..]),
        v => Err(format!("unknown record version {v}")),
    }
}

/// A cursor over a record's bytes whose every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!(
                "record ends early: wanted {n} more bytes, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn ip(&mut self) -> Result<IpAddr, String> {
        match self.u8()? {
            FAMILY_V4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            FAMILY_V6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            f => Err(format!("unknown address family {f}")),
        }
    }

    fn socket(&mut self) -> Result<SocketAddr, String> {
        let ip = self.ip()?;
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    /// Fails unless every byte was read: trailing bytes mean the layout is not what we wrote.
    fn finish(self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.rest.len()))
        }
    }
}

fn put_ip(out: &mut Vec<u8>, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

fn put_socket(out: &mut Vec<u8>, addr: &SocketAddr) {
    put_ip(out, &addr.ip());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn id_from_key(key: &[u8]) -> Result<Id, String> {
    Id::from_slice(key).ok_or_else(|| format!("key of {} bytes is not a 20-byte ID", key.len()))
}

/// The key of an item: its 20-byte target.
pub fn item_key(target: &Id) -> [u8; 20] {
    target.0
}

/// Encodes an item: version, kind, expiry (Unix ms), source IP, value (2-byte length), and for a
/// mutable item the public key, salt (1-byte length), seq and signature; then the checksum.
///
/// Returns `None` for an item whose value or salt exceeds the BEP 44 limits: the store never
/// holds one, and writing it would leave a record that the decoder refuses at the next start.
pub fn encode_item(record: &ItemRecord) -> Option<Vec<u8>> {
    let value = record.value.value();
    if value.len() > VALUE_LEN_MAX {
        return None;
    }
    let mut out = Vec::with_capacity(value.len() + 200);
    out.push(RECORD_VERSION);
    out.push(match record.value {
        ItemValue::Immutable(_) => KIND_IMMUTABLE,
        ItemValue::Mutable(_) => KIND_MUTABLE,
    });
    out.extend_from_slice(&record.expires_unix_ms.to_be_bytes());
    put_ip(&mut out, &record.source);
    // VALUE_LEN_MAX (1000) fits in two bytes.
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    if let ItemValue::Mutable(m) = &record.value {
        if m.salt.len() > SALT_LEN_MAX {
            return None;
        }
        out.extend_from_slice(&m.public_key);
        // SALT_LEN_MAX (64) fits in one byte.
        out.push(m.salt.len() as u8);
        out.extend_from_slice(&m.salt);
        out.extend_from_slice(&m.seq.to_be_bytes());
        out.extend_from_slice(&m.signature);
    }
    Some(seal(&item_key(&record.target), out))
}

/// Decodes an item record stored under `key`.
pub fn decode_item(key: &[u8], value: &[u8]) -> Result<ItemRecord, String> {
    let target = id_from_key(key)?;
    let mut r = Reader {
        rest: unseal(key, value)?,
    };
    let kind = r.u8()?;
    let expires_unix_ms = r.u64()?;
    let source = r.ip()?;
    let value_len = usize::from(r.u16()?);
    if value_len > VALUE_LEN_MAX {
        return Err(format!(
            "value of {value_len} bytes exceeds {VALUE_LEN_MAX}"
        ));
    }
    let bytes = r.take(value_len)?.to_vec();
    let value = match kind {
        KIND_IMMUTABLE => ItemValue::Immutable(bytes),
        KIND_MUTABLE => {
            let public_key = r.array::<32>()?;
            let salt_len = usize::from(r.u8()?);
            if salt_len > SALT_LEN_MAX {
                return Err(format!("salt of {salt_len} bytes exceeds {SALT_LEN_MAX}"));
            }
            let salt = r.take(salt_len)?.to_vec();
            let seq = i64::from_be_bytes(r.array()?);
            let signature = r.array::<64>()?;
            ItemValue::Mutable(MutableItem {
                public_key,
                salt,
                seq,
                value: bytes,
                signature,
            })
        }
        k => return Err(format!("unknown item kind {k}")),
    };
    r.finish()?;
    Ok(ItemRecord {
        target,
        value,
        expires_unix_ms,
        source,
    })
}

/// The key of a peer: the info-hash, then the peer's compact address (4 + 2 or 16 + 2 bytes;
/// the length tells the family, as in BEP 5 and BEP 32).
pub fn peer_key(info_hash: &Id, peer: &SocketAddr) -> Vec<u8> {
    let mut key = Vec::with_capacity(20 + 18);
    key.extend_from_slice(&info_hash.0);
    match peer.ip() {
        IpAddr::V4(v4) => key.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => key.extend_from_slice(&v6.octets()),
    }
    key.extend_from_slice(&peer.port().to_be_bytes());
    key
}

/// Decodes a peer key into the info-hash and the peer's address.
pub fn decode_peer_key(key: &[u8]) -> Result<(Id, SocketAddr), String> {
    if key.len() < 20 {
        return Err(format!("peer key of {} bytes is too short", key.len()));
    }
    let (ih, addr) = key.split_at(20);
    let info_hash = id_from_key(ih)?;
    let mut r = Reader { rest: addr };
    let ip = match addr.len() {
        6 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        18 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        n => return Err(format!("peer address of {n} bytes is neither 6 nor 18")),
    };
    let port = r.u16()?;
    r.finish()?;
    Ok((info_hash, SocketAddr::new(ip, port)))
}

/// Encodes a peer's value: version, expiry (Unix ms), checksum.
pub fn encode_peer(key: &[u8], expires_unix_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 8 + CRC_LEN);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&expires_unix_ms.to_be_bytes());
    seal(key, out)
}

/// Decodes a peer record: the info-hash, the peer, and its expiry in Unix milliseconds.
pub fn decode_peer(key: &[u8], value: &[u8]) -> Result<(Id, SocketAddr, u64), String> {
    let (info_hash, peer) = decode_peer_key(key)?;
    let mut r = Reader {
        rest: unseal(key, value)?,
    };
    let expires = r.u64()?;
    r.finish()?;
    Ok((info_hash, peer, expires))
}

/// The key of the `index`-th contact of the snapshot (big-endian, so that keys sort in the
/// order the contacts were given).
pub fn contact_key(index: u32) -> [u8; 4] {
    index.to_be_bytes()
}

/// Encodes a contact: version, the 20-byte ID, its address (family byte, IP, port), checksum.
pub fn encode_contact(key: &[u8], contact: &NodeInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 20 + 19 + CRC_LEN);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&contact.id.0);
    put_socket(&mut out, &contact.addr);
    seal(key, out)
}

/// Decodes a contact record.
pub fn decode_contact(key: &[u8], value: &[u8]) -> Result<NodeInfo, String> {
    if key.len() != 4 {
        return Err(format!("contact key of {} bytes is not 4", key.len()));
    }
    let mut r = Reader {
        rest: unseal(key, value)?,
    };
    let id = Id(r.array()?);
    let addr = r.socket()?;
    r.finish()?;
    Ok(NodeInfo { id, addr })
}

/// The key of the single identity row.
pub const IDENTITY_KEY: &[u8] = b"identity";

/// Encodes the node identity: version, the 20-byte ID, the 32-byte ed25519 seed, checksum.
pub fn encode_identity(id: &Id, signing_seed: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 20 + 32 + CRC_LEN);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&id.0);
    out.extend_from_slice(signing_seed);
    seal(IDENTITY_KEY, out)
}

/// Decodes the node identity.
pub fn decode_identity(key: &[u8], value: &[u8]) -> Result<(Id, [u8; 32]), String> {
    let mut r = Reader {
        rest: unseal(key, value)?,
    };
    let id = Id(r.array()?);
    let seed = r.array()?;
    r.finish()?;
    Ok((id, seed))
}

/// The key of the format-version row of the meta table.
pub const FORMAT_KEY: &[u8] = b"format";

/// Encodes the database's format version.
pub fn encode_format(version: u32) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    out.extend_from_slice(&version.to_be_bytes());
    seal(FORMAT_KEY, out)
}

/// Decodes the database's format version.
pub fn decode_format(key: &[u8], value: &[u8]) -> Result<u32, String> {
    let mut r = Reader {
        rest: unseal(key, value)?,
    };
    let v = u32::from_be_bytes(r.array()?);
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutable_record() -> ItemRecord {
        ItemRecord {
            target: Id([7; 20]),
            value: ItemValue::Mutable(MutableItem {
                public_key: [1; 32],
                salt: b"salt".to_vec(),
                seq: 42,
                value: b"5:hello".to_vec(),
                signature: [2; 64],
            }),
            expires_unix_ms: 1_700_000_000_123,
            source: "2001:db8::1".parse().unwrap(),
        }
    }

    #[test]
    fn items_round_trip_through_the_encoding() {
        let m = mutable_record();
        let key = item_key(&m.target);
        assert_eq!(decode_item(&key, &encode_item(&m).unwrap()).unwrap(), m);
        let i = ItemRecord {
            target: Id([9; 20]),
            value: ItemValue::Immutable(b"3:abc".to_vec()),
            expires_unix_ms: 5,
            source: "10.0.0.1".parse().unwrap(),
        };
        let key = item_key(&i.target);
        assert_eq!(decode_item(&key, &encode_item(&i).unwrap()).unwrap(), i);
    }

    #[test]
    fn every_single_bit_flip_of_an_item_is_refused() {
        let m = mutable_record();
        let key = item_key(&m.target);
        let bytes = encode_item(&m).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(decode_item(&key, &damaged).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn a_record_under_another_key_is_refused() {
        let m = mutable_record();
        let bytes = encode_item(&m).unwrap();
        assert!(decode_item(&[8; 20], &bytes).is_err());
    }

    #[test]
    fn every_truncation_of_a_record_is_refused_without_panic() {
        let m = mutable_record();
        let key = item_key(&m.target);
        let bytes = encode_item(&m).unwrap();
        for n in 0..bytes.len() {
            assert!(decode_item(&key, &bytes[..n]).is_err());
        }
        let pk = peer_key(&Id([3; 20]), &"[::1]:6881".parse().unwrap());
        let pv = encode_peer(&pk, 9);
        for n in 0..pv.len() {
            assert!(decode_peer(&pk, &pv[..n]).is_err());
        }
        for n in 0..pk.len() {
            assert!(decode_peer(&pk[..n], &pv).is_err());
        }
    }

    #[test]
    fn peers_contacts_identity_and_format_round_trip() {
        for addr in ["1.2.3.4:6881", "[2001:db8::7]:1"] {
            let peer: SocketAddr = addr.parse().unwrap();
            let key = peer_key(&Id([4; 20]), &peer);
            assert_eq!(
                decode_peer(&key, &encode_peer(&key, 77)).unwrap(),
                (Id([4; 20]), peer, 77)
            );
            let c = NodeInfo {
                id: Id([5; 20]),
                addr: peer,
            };
            let key = contact_key(3);
            assert_eq!(decode_contact(&key, &encode_contact(&key, &c)).unwrap(), c);
        }
        let v = encode_identity(&Id([6; 20]), &[9; 32]);
        assert_eq!(
            decode_identity(IDENTITY_KEY, &v).unwrap(),
            (Id([6; 20]), [9; 32])
        );
        assert_eq!(decode_format(FORMAT_KEY, &encode_format(1)).unwrap(), 1);
    }

    #[test]
    fn a_value_longer_than_the_bep44_limit_is_not_encoded() {
        let i = ItemRecord {
            target: Id([9; 20]),
            value: ItemValue::Immutable(vec![b'x'; VALUE_LEN_MAX + 1]),
            expires_unix_ms: 5,
            source: "10.0.0.1".parse().unwrap(),
        };
        assert_eq!(encode_item(&i), None);
    }
}
