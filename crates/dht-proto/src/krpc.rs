//! Encoding and decoding of KRPC messages (see [`crate::message`] for the types).
