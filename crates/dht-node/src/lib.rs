//! Runtime around dht-proto.
