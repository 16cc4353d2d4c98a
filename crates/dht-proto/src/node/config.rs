//! Settings of a node, each with its default and what it bounds.

use core::time::Duration;

use crate::ratelimit::RateLimit;
use crate::routing::RoutingConfig;
use crate::store::StoreLimits;

/// Settings of a [`super::Node`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Nodes a lookup returns and a put stores at (Mainline's k = 8).
    pub k: usize,
    /// Requests a lookup keeps in flight (Kademlia's α; default 3), per path.
    pub alpha: usize,
    /// Disjoint paths of a command's lookup (S/Kademlia's d; 1 = the plain lookup, at most
    /// [`crate::lookup::PATHS_MAX`]): see [`crate::lookup::Lookup::with_paths`]. Joining and
    /// bucket refreshes always run one path.
    pub disjoint_paths: usize,
    /// A request unanswered this long has failed.
    pub request_timeout: Duration,
    /// A request unanswered for half this long is sent once more; unanswered this long, it
    /// stops holding one of its lookup's α slots and the lookup stops waiting for it (a late
    /// answer to either copy still counts until `request_timeout`).
    pub request_stall: Duration,
    /// BEP 43 read-only: answer no query and ask others not to add us to their tables.
    pub read_only: bool,
    /// Refuse contacts whose ID does not match their IP address under BEP 42 (local addresses
    /// are always accepted).
    pub enforce_bep42: bool,
    /// Routing-table settings.
    pub routing: RoutingConfig,
    /// Storage limits.
    pub limits: StoreLimits,
    /// Record store changes for a runtime that persists them (see [`crate::store`]).
    pub journal: bool,
    /// Our client version, sent as `v` (two letters and two version bytes).
    pub version: Option<[u8; 4]>,
    /// How often housekeeping runs: token rotation, expiry, bucket refresh, pings, republish.
    pub maintenance_interval: Duration,
    /// How often items this node put itself are put again (BEP 44 items live 2 hours).
    pub republish_interval: Duration,
    /// Requests in flight at once, all commands together.
    pub transactions_max: usize,
    /// Commands running at once; more are refused with [`super::Outcome::Overloaded`].
    pub commands_max: usize,
    /// Items this node put itself and republishes.
    pub own_items_max: usize,
    /// The limit on queries from one source IP (see [`crate::ratelimit`]).
    pub rate_limit: RateLimit,
    /// Apply the per-source limit and the upload budget to loopback and private addresses too
    /// (they are exempt otherwise, so that local networks and tests run unhindered).
    pub limit_local: bool,
    /// Bytes per second that answers and queries of the node's own initiative may take
    /// together, to addresses the limits apply to; 0 = no cap. Commands a user started are
    /// not counted. The default is libtorrent's `dht_upload_rate_limit`.
    pub upload_bytes_per_second: u64,
}

/// Default of [`Config::upload_bytes_per_second`]: libtorrent's 8,000 bytes a second, about 30
/// answers a second, which a home connection does not notice.
pub const UPLOAD_BYTES_PER_SECOND: u64 = 8_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            k: crate::routing::K,
            alpha: 3,
            disjoint_paths: 1,
            request_timeout: Duration::from_secs(2),
            request_stall: Duration::from_millis(500),
            read_only: false,
            enforce_bep42: false,
            routing: RoutingConfig::default(),
            limits: StoreLimits::default(),
            journal: false,
            version: Some(*b"RD\x00\x01"),
            maintenance_interval: Duration::from_secs(60),
            republish_interval: Duration::from_secs(60 * 60),
            transactions_max: 4096,
            commands_max: 512,
            own_items_max: 10_000,
            rate_limit: RateLimit::default(),
            limit_local: false,
            upload_bytes_per_second: UPLOAD_BYTES_PER_SECOND,
        }
    }
}
