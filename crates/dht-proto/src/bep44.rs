//! BEP 44 items: immutable values keyed by their SHA-1, and mutable values signed with ed25519,
//! keyed by SHA-1 of public key and salt.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::id::Id;
use crate::message::{SALT_LEN_MAX, VALUE_LEN_MAX};

/// Why an item is refused, with the KRPC error code to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The bencoded value is larger than [`VALUE_LEN_MAX`] (205).
    #[error("value larger than 1000 bytes")]
    ValueTooBig,
    /// The salt is longer than [`SALT_LEN_MAX`] (207).
    #[error("salt longer than 64 bytes")]
    SaltTooBig,
    /// The signature does not verify, or the key is not a valid ed25519 key (206).
    #[error("invalid signature")]
    InvalidSignature,
    /// A negative sequence number (203).
    #[error("negative sequence number")]
    NegativeSeq,
}

impl ItemError {
    /// The KRPC error code for this refusal.
    pub fn code(&self) -> i64 {
        use crate::message::error_code::*;
        match self {
            ItemError::ValueTooBig => MESSAGE_TOO_BIG,
            ItemError::SaltTooBig => SALT_TOO_BIG,
            ItemError::InvalidSignature => INVALID_SIGNATURE,
            ItemError::NegativeSeq => PROTOCOL,
        }
    }
}

/// A signed mutable item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableItem {
    /// ed25519 public key.
    pub public_key: [u8; 32],
    /// Salt (empty for none).
    pub salt: Vec<u8>,
    /// Sequence number.
    pub seq: i64,
    /// The bencoded value.
    pub value: Vec<u8>,
    /// ed25519 signature over [`signing_buffer`].
    pub signature: [u8; 64],
}

/// The target of a mutable item: SHA-1(public key || salt).
pub fn mutable_target(public_key: &[u8; 32], salt: &[u8]) -> Id {
    Id::sha1_parts(&[public_key, salt])
}

/// The target of an immutable item: SHA-1 of its bencoded value.
pub fn immutable_target(value: &[u8]) -> Id {
    Id::sha1(value)
}

/// The bytes BEP 44 signs: `4:salt<len>:<salt>` (only for a non-empty salt), then
/// `3:seqi<seq>e1:v` and the bencoded value.
pub fn signing_buffer(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(salt.len() + value.len() + 40);
    if !salt.is_empty() {
        buf.extend_from_slice(b"4:salt");
        buf.extend_from_slice(salt.len().to_string().as_bytes());
        buf.push(b':');
        buf.extend_from_slice(salt);
    }
    buf.extend_from_slice(b"3:seqi");
    buf.extend_from_slice(seq.to_string().as_bytes());
    buf.extend_from_slice(b"e1:v");
    buf.extend_from_slice(value);
    buf
}

/// Checks the size limits of a value and salt.
pub fn check_sizes(value: &[u8], salt: &[u8]) -> Result<(), ItemError> {
    if value.len() > VALUE_LEN_MAX {
        return Err(ItemError::ValueTooBig);
    }
    if salt.len() > SALT_LEN_MAX {
        return Err(ItemError::SaltTooBig);
    }
    Ok(())
}

impl MutableItem {
    /// Signs `value` (bencoded) with `key` under `salt` and `seq`.
    pub fn sign(
        key: &SigningKey,
        salt: &[u8],
        seq: i64,
        value: Vec<u8>,
    ) -> Result<Self, ItemError> {
        check_sizes(&value, salt)?;
        if seq < 0 {
            return Err(ItemError::NegativeSeq);
        }
        let signature = key.sign(&signing_buffer(salt, seq, &value)).to_bytes();
        Ok(MutableItem {
            public_key: key.verifying_key().to_bytes(),
            salt: salt.to_vec(),
            seq,
            value,
            signature,
        })
    }

    /// The item's target.
    pub fn target(&self) -> Id {
        mutable_target(&self.public_key, &self.salt)
    }

    /// Checks sizes, sequence number and signature.
    pub fn verify(&self) -> Result<(), ItemError> {
        check_sizes(&self.value, &self.salt)?;
        if self.seq < 0 {
            return Err(ItemError::NegativeSeq);
        }
        let key =
            VerifyingKey::from_bytes(&self.public_key).map_err(|_| ItemError::InvalidSignature)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify(&signing_buffer(&self.salt, self.seq, &self.value), &sig)
            .map_err(|_| ItemError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // The test vectors at the end of BEP 44. The private key there is libtorrent's 64-byte
    // expanded ed25519 secret (clamped scalar and nonce prefix), not a 32-byte seed.
    const EXPANDED: &str = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d\
                            b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d";
    const PUBLIC: &str = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";

    /// Signs as libtorrent does, with the expanded secret of the vectors.
    fn sign_vector(salt: &[u8], seq: i64, value: &[u8]) -> MutableItem {
        use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
        let bytes: [u8; 64] = unhex(&EXPANDED.replace(' ', "")).try_into().unwrap();
        let esk = ExpandedSecretKey::from_bytes(&bytes);
        let public: [u8; 32] = unhex(PUBLIC).try_into().unwrap();
        let vk = VerifyingKey::from_bytes(&public).unwrap();
        let sig = raw_sign::<sha2::Sha512>(&esk, &signing_buffer(salt, seq, value), &vk);
        MutableItem {
            public_key: public,
            salt: salt.to_vec(),
            seq,
            value: value.to_vec(),
            signature: sig.to_bytes(),
        }
    }

    #[test]
    fn bep44_vector_mutable_without_salt() {
        let value = b"12:Hello World!".to_vec();
        assert_eq!(
            signing_buffer(b"", 1, &value),
            b"3:seqi1e1:v12:Hello World!".to_vec()
        );
        let item = sign_vector(b"", 1, &value);
        assert_eq!(
            hex::encode(item.signature),
            "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
             1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
        );
        assert_eq!(
            item.target().to_string(),
            "4a533d47ec9c7d95b1ad75f576cffc641853b750"
        );
        item.verify().unwrap();
    }

    #[test]
    fn bep44_vector_mutable_with_salt() {
        let item = sign_vector(b"foobar", 1, b"12:Hello World!");
        assert_eq!(
            signing_buffer(b"foobar", 1, b"12:Hello World!"),
            b"4:salt6:foobar3:seqi1e1:v12:Hello World!".to_vec()
        );
        assert_eq!(
            hex::encode(item.signature),
            "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
             df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
        );
        assert_eq!(
            item.target().to_string(),
            "411eba73b6f087ca51a3795d9c8c938d365e32c1"
        );
        item.verify().unwrap();
    }

    #[test]
    fn bep44_vector_immutable() {
        assert_eq!(
            immutable_target(b"12:Hello World!").to_string(),
            "e5f96f6f38320f0f33959cb4d3d656452117aadb"
        );
    }

    #[test]
    fn tampered_items_fail_verification_with_the_right_code() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut item = MutableItem::sign(&key, b"s", 5, b"1:x".to_vec()).unwrap();
        item.seq = 6;
        assert_eq!(item.verify(), Err(ItemError::InvalidSignature));
        assert_eq!(ItemError::InvalidSignature.code(), 206);
        let big = vec![b'x'; 1001];
        assert_eq!(
            MutableItem::sign(&key, b"", 1, big).unwrap_err().code(),
            205
        );
        assert_eq!(
            MutableItem::sign(&key, &[0; 65], 1, b"1:x".to_vec())
                .unwrap_err()
                .code(),
            207
        );
    }
}
