//! The `krpc` target: KRPC message decoding against the message encoder.

use dht_proto::krpc::encode_parts;
use dht_proto::message::{Message, TRANSACTION_ID_LEN_MAX};

/// Decodes `data` with [`Message::decode`] and [`Message::decode_parts`] and checks that:
///
/// - the two agree (on the message, or on the error);
/// - an error carries only a transaction ID that the node may echo (at most
///   [`TRANSACTION_ID_LEN_MAX`] bytes);
/// - a message that decodes re-encodes to bytes that decode to the same message, and encoding
///   that message again gives the same bytes (the encoder writes one form per message), through
///   both [`Message::encode`] and [`encode_parts`].
pub fn krpc(data: &[u8]) {
    let whole = Message::decode(data);
    let parts = Message::decode_parts(data);
    let message = match (whole, parts) {
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "decode and decode_parts disagree on the error");
            if let Some(t) = &a.transaction_id {
                assert!(t.len() <= TRANSACTION_ID_LEN_MAX);
            }
            return;
        }
        (Ok(m), Ok((envelope, body))) => {
            assert_eq!(m.envelope(), envelope, "decode and decode_parts disagree");
            assert_eq!(m.body, body, "decode and decode_parts disagree");
            m
        }
        (a, b) => panic!("decode and decode_parts disagree: {a:?} against {b:?}"),
    };
    let encoded = message.encode();
    let mut by_parts = Vec::new();
    encode_parts(&mut by_parts, &message.envelope(), &message.body);
    assert_eq!(encoded, by_parts, "encode and encode_parts disagree");
    let again = match Message::decode(&encoded) {
        Ok(m) => m,
        Err(e) => {
            panic!("a decoded message re-encodes to bytes that do not decode: {e}\n{message:?}")
        }
    };
    assert_eq!(again, message, "decode(encode(m)) != m");
    assert_eq!(again.encode(), encoded, "encode is not stable");
}
