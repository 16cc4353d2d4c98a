//! Wire sizes of the simulated overlays' messages: each overlay's `wire_size` estimate of a
//! compact binary encoding is built from these.

/// Bytes of a message header on the wire: type (1), transaction tag (4), length (2), and a
/// checksum-free UDP-style framing; used by every `wire_size` estimate.
pub const HEADER_BYTES: usize = 8;
/// Bytes of a node identifier on the wire.
pub const ID_BYTES: usize = 20;
/// Bytes of a network address on the wire (IPv4 and port).
pub const ADDR_BYTES: usize = 6;
/// Bytes of a contact on the wire: identifier and address.
pub const CONTACT_BYTES: usize = ID_BYTES + ADDR_BYTES;
