//! The `disk_record` target: dht-node's on-disk record codec, through the seam
//! `dht_node::disk::fuzzing` that exists for this harness.
//!
//! # Input format
//!
//! The first byte picks the record (`b % 8`: 0 item, 1 peer, 2 peer key alone, 3 contact,
//! 4 identity, 5 format, 6 and 7 item again, the record with the most layout), and its bit 3
//! asks the harness to put a correct checksum on the value: every record ends with a CRC-32C
//! over key and value, which random bytes almost never match, so without this the fuzzer would
//! test little more than the checksum. For items, peers and contacts the next byte is the key's
//! length (modulo 48) and that many bytes are the key; identity and format records use their
//! fixed keys. The rest is the value.

use dht_node::disk::fuzzing::{
    contact_key, decode_contact, decode_format, decode_identity, decode_item, decode_peer,
    decode_peer_key, encode_contact, encode_format, encode_identity, encode_item, encode_peer,
    item_key, peer_key, FORMAT_KEY, IDENTITY_KEY,
};

/// Longest key the harness builds, in bytes: past every real key (20 + 18 for a peer).
const KEY_LEN_MAX: u8 = 48;

/// Length of the trailing checksum.
const CRC_LEN: usize = 4;

/// Decodes one record and checks that a record that decodes encodes back to exactly the bytes
/// it came from (every record has one encoding), and that a damaged record is refused rather
/// than panicking (the decoders return errors; a panic fails the target).
pub fn disk_record(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = selector % 8;
    let reseal = selector & 0x08 != 0;
    let (key, value): (Vec<u8>, &[u8]) = match kind {
        4 => (IDENTITY_KEY.to_vec(), rest),
        5 => (FORMAT_KEY.to_vec(), rest),
        _ => {
            let Some((&len, rest)) = rest.split_first() else {
                return;
            };
            let len = usize::from(len % KEY_LEN_MAX).min(rest.len());
            let (key, value) = rest.split_at(len);
            (key.to_vec(), value)
        }
    };
    let value = if reseal {
        seal(&key, value)
    } else {
        value.to_vec()
    };
    match kind {
        1 => {
            if let Ok((info_hash, peer, expires)) = decode_peer(&key, &value) {
                assert_eq!(peer_key(&info_hash, &peer), key);
                assert_eq!(encode_peer(&key, expires), value);
            }
        }
        2 => {
            if let Ok((info_hash, peer)) = decode_peer_key(&key) {
                assert_eq!(peer_key(&info_hash, &peer), key);
            }
            let _ = decode_peer_key(&value);
        }
        3 => {
            if let Ok(contact) = decode_contact(&key, &value) {
                assert_eq!(encode_contact(&key, &contact), value);
                let index = u32::from_be_bytes(key.as_slice().try_into().expect("4-byte key"));
                assert_eq!(contact_key(index).as_slice(), key);
            }
        }
        4 => {
            if let Ok((id, seed)) = decode_identity(&key, &value) {
                assert_eq!(encode_identity(&id, &seed), value);
            }
        }
        5 => {
            if let Ok(version) = decode_format(&key, &value) {
                assert_eq!(encode_format(version), value);
            }
        }
        _ => {
            if let Ok(record) = decode_item(&key, &value) {
                assert_eq!(item_key(&record.target).as_slice(), key);
                let encoded = encode_item(&record).expect("a decoded item is within the limits");
                assert_eq!(encoded, value, "an item re-encodes differently");
            }
        }
    }
}

/// `value` with its last [`CRC_LEN`] bytes replaced by the checksum the codec expects under
/// `key` (appended when `value` is shorter than that).
fn seal(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = &value[..value.len().saturating_sub(CRC_LEN)];
    let crc = crc32c::crc32c_append(crc32c::crc32c(key), body);
    let mut out = body.to_vec();
    out.extend_from_slice(&crc.to_be_bytes());
    out
}
