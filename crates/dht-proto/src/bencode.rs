//! Strict bencode.
