//! [`Builder`]: how a node is configured and started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dht_proto::node::{Config, Node};
use dht_proto::Id;
use rand::RngCore;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::disk::{DataDir, Identity};
use crate::driver::Driver;
use crate::error::StartError;
use crate::handle::Dht;

/// The public Mainline routers a node bootstraps from by default.
pub const DEFAULT_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
    "router.utorrent.com:6881",
];

/// How long resolving one bootstrap host name may take before it is skipped.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Requests queued from handles to the driver before senders wait.
const REQUEST_QUEUE_MAX: usize = 1024;

/// Socket receive and send buffer size asked of the OS, in bytes, so bursts are not dropped.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Configures and starts a node. Defaults: bind `0.0.0.0:6881`, no data directory (memory
/// only), the public Mainline routers, a full (not read-only) node.
#[derive(Debug, Clone)]
pub struct Builder {
    bind: SocketAddr,
    data_dir: Option<PathBuf>,
    bootstrap: Vec<String>,
    config: Config,
    id: Option<Id>,
    seed: Option<u64>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            bind: SocketAddr::from(([0, 0, 0, 0], 6881)),
            data_dir: None,
            bootstrap: DEFAULT_ROUTERS.iter().map(|s| s.to_string()).collect(),
            config: Config::default(),
            id: None,
            seed: None,
        }
    }
}

impl Builder {
    /// The UDP address to bind (port 0: any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Keep the node's identity, items, peers and routing table in this directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Bootstrap from these `host:port` addresses instead of the public routers (an empty list:
    /// start alone, or from the saved routing table only).
    pub fn bootstrap<S: AsRef<str>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
        self.bootstrap = addrs.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// Run as a read-only node (BEP 43): answer no query, stay out of others' tables.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.config.read_only = yes;
        self
    }

    /// Run each command's lookup on `d` disjoint paths (S/Kademlia; 1 = the plain lookup): see
    /// [`Config::disjoint_paths`].
    pub fn disjoint_paths(mut self, d: usize) -> Self {
        self.config.disjoint_paths = d;
        self
    }

    /// Protocol settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Use this node ID (otherwise the saved one, or a random one).
    pub fn id(mut self, id: Id) -> Self {
        self.id = Some(id);
        self
    }

    /// Seed the node's random generator (otherwise from the OS).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Opens the data directory, binds the socket, starts the node and its bootstrap, and
    /// returns its handle. Must be called within a tokio runtime.
    pub async fn spawn(self) -> Result<Dht, StartError> {
        let clock = Clock::start();
        let mut os_rng = rand::rngs::OsRng;
        let disk = match &self.data_dir {
            Some(dir) => Some(DataDir::open(dir)?),
            None => None,
        };
        let identity = match disk
            .as_ref()
            .map(|d| d.load_identity())
            .transpose()?
            .flatten()
        {
            Some(saved) => Identity {
                id: self.id.unwrap_or(saved.id),
                signing_seed: saved.signing_seed,
            },
            None => {
                let mut signing_seed = [0u8; 32];
                os_rng.fill_bytes(&mut signing_seed);
                let identity = Identity {
                    id: self.id.unwrap_or_else(|| Id::random(&mut os_rng)),
                    signing_seed,
                };
                if let Some(d) = &disk {
                    d.save_identity(&identity)?;
                }
                identity
            }
        };
        let socket = bind_udp(self.bind)?;
        let local_addr = socket.local_addr().map_err(|source| StartError::Bind {
            addr: self.bind,
            source,
        })?;
        let mut config = self.config;
        config.journal = disk.is_some();
        let seed = self.seed.unwrap_or_else(|| os_rng.next_u64());
        let now = clock.now();
        let mut node = Node::new(config, identity.id, seed, now);
        let mut contacts = Vec::new();
        if let Some(d) = &disk {
            for item in d.load_items(&clock)? {
                node.restore_item(item);
            }
            for (info_hash, peer, expires) in d.load_peers(&clock)? {
                node.restore_peer(info_hash, peer, expires);
            }
            contacts = d.load_contacts()?;
        }
        let routers = resolve_all(&self.bootstrap, local_addr).await;
        tracing::info!(
            id = %identity.id,
            %local_addr,
            saved_contacts = contacts.len(),
            routers = routers.len(),
            "node starting"
        );
        let bootstrap_query = node.bootstrap(clock.now(), &contacts, &routers);
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE_MAX);
        let (boot_tx, boot_rx) = watch::channel(None);
        let driver = Driver::new(node, socket, clock, disk, rx, bootstrap_query, boot_tx);
        tokio::spawn(driver.run());
        Ok(Dht::new(tx, identity.id, local_addr, boot_rx))
    }
}

fn bind_udp(addr: SocketAddr) -> Result<tokio::net::UdpSocket, StartError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| StartError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // Larger buffers absorb bursts; the OS may grant less, which is fine.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    tokio::net::UdpSocket::from_std(socket.into()).map_err(err)
}

/// Resolves `host:port` strings; a name that does not resolve in time is skipped with a
/// warning (a node with saved contacts needs no router). Addresses of the other IP family than
/// the socket are skipped too.
pub(crate) async fn resolve_all(hosts: &[String], local: SocketAddr) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for h in hosts {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(h.as_str())).await {
            Ok(Ok(addrs)) => {
                for a in addrs {
                    if a.is_ipv4() == local.is_ipv4() && !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(host = %h, error = %e, "cannot resolve bootstrap host"),
            Err(_) => tracing::warn!(host = %h, "resolving bootstrap host timed out"),
        }
    }
    out
}
