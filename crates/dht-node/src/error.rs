//! Errors of the runtime, one enum per operation, each variant saying what the caller can do.

use std::net::SocketAddr;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The UDP socket could not be bound: pick another address or port, or stop whatever
    /// holds it.
    #[error("cannot bind UDP socket on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory could not be opened: see the inner error for what to do.
    #[error(transparent)]
    DataDir(#[from] crate::disk::OpenError),
    /// The data directory opened but its contents could not be read.
    #[error("cannot read the data directory: {0}")]
    Load(#[from] crate::disk::DiskError),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The node has stopped (it was shut down, or its task ended after an error).
    #[error("the node has stopped")]
    Stopped,
    /// The node runs as many commands as it may; retry later.
    #[error("the node is overloaded; try again later")]
    Overloaded,
    /// The item was refused before anything was sent (too big, bad salt, bad signature).
    #[error("item refused: {0}")]
    Item(#[from] dht_proto::bep44::ItemError),
}
