//! The short-lived client commands: join as a read-only node (BEP 43) through `--bootstrap`,
//! act, print the result, and leave.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use dht_node::{Dht, DEFAULT_ROUTERS};
use dht_proto::bep44::MutableItem;
use dht_proto::lookup::TraceEvent;
use dht_proto::Id;
use ed25519_dalek::SigningKey;

/// How long joining the network may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How the client joins the network.
#[derive(Args, Debug, Clone)]
pub struct JoinArgs {
    /// Bootstrap node(s), HOST:PORT, repeatable or comma-separated [default: $DHT_BOOTSTRAP, else
    /// the public Mainline routers].
    #[arg(long, short = 'b', env = "DHT_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Give up on the operation after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

impl JoinArgs {
    /// Starts a read-only node and waits until it has joined.
    pub async fn join(&self) -> anyhow::Result<Dht> {
        let routers: Vec<String> = if self.bootstrap.is_empty() {
            DEFAULT_ROUTERS.iter().map(|s| s.to_string()).collect()
        } else {
            self.bootstrap.clone()
        };
        let dht = Dht::builder()
            .bind(([0, 0, 0, 0], 0).into())
            .read_only(true)
            .bootstrap(&routers)
            .spawn()
            .await?;
        let contacts = tokio::time::timeout(JOIN_TIMEOUT, dht.bootstrapped())
            .await
            .map_err(|_| anyhow!("joining the network timed out"))??;
        if contacts == 0 {
            bail!("could not join the network through {}", routers.join(","));
        }
        Ok(dht)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

async fn within<T>(
    join: &JoinArgs,
    f: impl std::future::Future<Output = Result<T, dht_node::CommandError>>,
) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(join.deadline(), f)
        .await
        .map_err(|_| anyhow!("timed out after {} s", join.timeout))??)
}

/// `dht put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The value; `-` reads standard input.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub value: Option<String>,
    /// Read the value from this file.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Store a signed mutable item (needs --key).
    #[arg(long, requires = "key")]
    pub mutable: bool,
    /// The key file from `dht keygen` (mutable items).
    #[arg(long, short = 'k')]
    pub key: Option<PathBuf>,
    /// Salt for a mutable item (at most 64 bytes).
    #[arg(long, requires = "mutable")]
    pub salt: Option<String>,
    /// Sequence number [default: one more than the newest found].
    #[arg(long, requires = "mutable")]
    pub seq: Option<i64>,
    /// Only replace the item if its current seq is this (compare-and-swap).
    #[arg(long, requires = "mutable")]
    pub cas: Option<i64>,
    #[command(flatten)]
    pub join: JoinArgs,
}

/// BEP 44 values are bencoded; the command stores the bytes as one bencoded byte string.
fn bencode_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", b.len()).into_bytes();
    out.extend_from_slice(b);
    out
}

/// The content of a bencoded byte string, or the bencoding itself for any other value.
fn unbencode(v: &[u8]) -> Vec<u8> {
    match dht_proto::bencode::decode(v) {
        Ok(dht_proto::bencode::Value::Bytes(b)) => b.to_vec(),
        _ => v.to_vec(),
    }
}

fn read_value(args: &PutArgs) -> anyhow::Result<Vec<u8>> {
    let raw = match (&args.value, &args.file) {
        (_, Some(f)) => std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
        (Some(v), None) if v == "-" => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
        (Some(v), None) => v.as_bytes().to_vec(),
        (None, None) => bail!("no value given"),
    };
    let encoded = bencode_bytes(&raw);
    if encoded.len() > dht_proto::message::VALUE_LEN_MAX {
        bail!(
            "value too large: {} bytes bencoded, BEP 44 allows at most {}",
            encoded.len(),
            dht_proto::message::VALUE_LEN_MAX
        );
    }
    Ok(encoded)
}

fn read_key(path: &PathBuf) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| anyhow!("{} is not a key file from `dht keygen`", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Parses a 40-hex ID argument (clap reports a bad one as a usage error, exit 2).
pub fn id_arg(s: &str) -> Result<Id, String> {
    Id::from_hex(s).ok_or_else(|| format!("expected 40 hexadecimal digits, got {s:?}"))
}

/// Parses a 64-hex ed25519 public key argument.
fn public_key_arg(s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("expected 64 hexadecimal digits, got {s:?}"))
}

/// `dht put`: prints the key (immutable) or `target seq` (mutable).
pub async fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let value = read_value(&args)?;
    let key = args.key.as_ref().map(read_key).transpose()?;
    let salt = args.salt.clone().unwrap_or_default().into_bytes();
    if salt.len() > dht_proto::message::SALT_LEN_MAX {
        bail!("salt too long: {} bytes, at most 64", salt.len());
    }
    let dht = args.join.join().await?;
    if !args.mutable {
        let r = within(&args.join, dht.put_immutable(value)).await?;
        if r.stored_at == 0 {
            bail!("no node stored the value ({} errors)", r.errors.len());
        }
        println!("{}", r.target);
        dht.shutdown().await;
        return Ok(ExitCode::SUCCESS);
    }
    let key = key.ok_or_else(|| anyhow!("--mutable needs --key"))?;
    let seq = match args.seq {
        Some(s) => s,
        None => {
            let pk = key.verifying_key().to_bytes();
            let found = within(&args.join, dht.get_mutable(pk, salt.clone())).await?;
            found.value.map_or(1, |i| i.seq + 1)
        }
    };
    let item = MutableItem::sign(&key, &salt, seq, value)?;
    let r = within(&args.join, dht.put_mutable(item, args.cas)).await?;
    dht.shutdown().await;
    if r.stored_at == 0 {
        if let Some((code, msg)) = r.errors.iter().find(|(c, _)| *c != 0) {
            bail!("put refused: {msg} (error {code})");
        }
        bail!("no node stored the item");
    }
    println!("{} {}", r.target, seq);
    Ok(ExitCode::SUCCESS)
}

/// `dht get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The key: 40 hex digits (immutable), or the 64-hex public key with --mutable.
    pub key: String,
    /// Fetch a mutable item by public key (and --salt).
    #[arg(long)]
    pub mutable: bool,
    /// Salt of the mutable item.
    #[arg(long, requires = "mutable")]
    pub salt: Option<String>,
    #[command(flatten)]
    pub join: JoinArgs,
}

/// A malformed argument found after parsing: reported like clap's usage errors (exit 2).
fn usage_error(msg: String) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg))
}

/// An argument error that clap could not see; `main` exits 2 for it.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `dht get`: writes the value's bytes to stdout, or exits 1.
pub async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let value = if args.mutable {
        let pk = public_key_arg(&args.key).map_err(usage_error)?;
        let salt = args.salt.clone().unwrap_or_default().into_bytes();
        let dht = args.join.join().await?;
        let r = within(&args.join, dht.get_mutable(pk, salt)).await?;
        dht.shutdown().await;
        r.value.map(|i| i.value)
    } else {
        let target = id_arg(&args.key).map_err(usage_error)?;
        let dht = args.join.join().await?;
        let r = within(&args.join, dht.get_immutable(target)).await?;
        dht.shutdown().await;
        r.value
    };
    match value {
        Some(v) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&unbencode(&v))?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("dht: not found: {}", args.key);
            Ok(ExitCode::from(1))
        }
    }
}

/// `dht keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key (64 hex digits of the ed25519 seed); refuses to overwrite.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
}

/// `dht keygen`: writes the key file and prints the public key.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    writeln!(f, "{}", hex::encode(seed))?;
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    Ok(ExitCode::SUCCESS)
}

/// `dht announce`.
#[derive(Args, Debug)]
pub struct AnnounceArgs {
    /// The torrent's info-hash, 40 hex digits.
    #[arg(value_parser = id_arg)]
    pub info_hash: Id,
    /// The port the peer listens on [default: the port this command's datagrams come from].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    #[command(flatten)]
    pub join: JoinArgs,
}

/// `dht announce`.
pub async fn announce(args: AnnounceArgs) -> anyhow::Result<ExitCode> {
    let ih = args.info_hash;
    let dht = args.join.join().await?;
    let r = within(&args.join, dht.announce(ih, args.port)).await?;
    dht.shutdown().await;
    if r.stored_at == 0 {
        bail!("no node accepted the announce");
    }
    println!("{ih} announced at {} nodes", r.stored_at);
    Ok(ExitCode::SUCCESS)
}

/// `dht peers`.
#[derive(Args, Debug)]
pub struct PeersArgs {
    /// The torrent's info-hash, 40 hex digits.
    #[arg(value_parser = id_arg)]
    pub info_hash: Id,
    #[command(flatten)]
    pub join: JoinArgs,
}

/// `dht peers`: one ip:port a line; exits 1 when none is found.
pub async fn peers(args: PeersArgs) -> anyhow::Result<ExitCode> {
    let ih = args.info_hash;
    let dht = args.join.join().await?;
    let r = within(&args.join, dht.get_peers(ih)).await?;
    dht.shutdown().await;
    let peers = r.value.unwrap_or_default();
    if peers.is_empty() {
        eprintln!("dht: no peers found for {ih}");
        return Ok(ExitCode::from(1));
    }
    for p in peers {
        println!("{p}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `dht lookup`.
#[derive(Args, Debug)]
pub struct LookupArgs {
    /// The target ID, 40 hex digits.
    #[arg(value_parser = id_arg)]
    pub target: Id,
    #[command(flatten)]
    pub join: JoinArgs,
}

/// `dht lookup`: the lookup's path, round by round, and the k closest nodes.
pub async fn lookup(args: LookupArgs) -> anyhow::Result<ExitCode> {
    let target = args.target;
    let dht = args.join.join().await?;
    let e = within(&args.join, dht.lookup_traced(target)).await?;
    dht.shutdown().await;
    let dist = |id: &Id| id.distance(&target).leading_zeros();
    println!("lookup {target}");
    println!(
        "distance is shown as the number of leading bits shared with the target (160 = equal)"
    );
    let trace = e.trace.unwrap_or_default();
    let max_round = trace
        .iter()
        .map(|t| match t {
            TraceEvent::Asked { round, .. }
            | TraceEvent::Answered { round, .. }
            | TraceEvent::TimedOut { round, .. } => *round,
        })
        .max()
        .unwrap_or(0);
    for r in 1..=max_round {
        println!("round {r}:");
        for t in &trace {
            match t {
                TraceEvent::Asked { round, node } if *round == r => {
                    println!(
                        "  asked     {} {:<21} shared bits {}",
                        node.id,
                        node.addr.to_string(),
                        dist(&node.id)
                    );
                }
                TraceEvent::Answered {
                    round,
                    node,
                    returned,
                    new,
                } if *round == r => {
                    println!(
                        "  answered  {} {:<21} shared bits {} returned {returned} contacts, {new} new",
                        node.id,
                        node.addr.to_string(),
                        dist(&node.id)
                    );
                }
                TraceEvent::TimedOut { round, node } if *round == r => {
                    println!(
                        "  timed out {} {:<21} shared bits {}",
                        node.id,
                        node.addr.to_string(),
                        dist(&node.id)
                    );
                }
                _ => {}
            }
        }
    }
    let closest = match e.outcome {
        dht_proto::node::Outcome::FindNode { closest } => closest,
        _ => Vec::new(),
    };
    println!(
        "closest {} nodes ({} rounds, {} requests, {} answers, {} timed out, {} ms):",
        closest.len(),
        e.stats.hops,
        e.stats.messages,
        e.stats.responses,
        e.stats.timed_out.len(),
        e.stats.duration.as_millis()
    );
    for n in &closest {
        println!(
            "  {} {:<21} shared bits {}",
            n.id,
            n.addr.to_string(),
            dist(&n.id)
        );
    }
    Ok(if closest.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
