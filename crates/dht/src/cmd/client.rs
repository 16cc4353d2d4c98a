//! The short-lived client commands: join as a read-only node (BEP 43) through `--bootstrap`,
//! act, print the result, and leave; or, with `--node URL`, act through a running node's HTTP
//! API (`crate::http::client`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use dht_node::proto::MutableItem;
use dht_node::proto::{Id, PATHS_MAX};
use dht_node::{Dht, DEFAULT_ROUTERS};
use ed25519_dalek::SigningKey;
use hyper::Method;

use crate::http::api::LookupTrace;
use crate::http::client::{is_not_found, ApiClient};

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
    /// Act through a running node's HTTP API (`dht node --http ADDR`), e.g.
    /// http://127.0.0.1:8080, instead of joining the network for this one command
    /// (--bootstrap is then not used).
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
}

/// `--paths`: disjoint lookup paths (S/Kademlia).
#[derive(Args, Debug, Clone)]
pub struct PathsArg {
    /// Run the lookup on D disjoint paths that never share a node (S/Kademlia), so that a
    /// path that meets colluding liars does not lead the others astray; 1 is the plain
    /// lookup. Costs about D times the datagrams. Not with --node (the running node's own
    /// `dht node --paths` applies).
    #[arg(long, value_name = "D", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=PATHS_MAX as i64))]
    pub paths: u8,
}

impl PathsArg {
    /// Refuses --paths with --node: a running node's lookups use its own setting.
    fn check(&self, join: &JoinArgs) -> anyhow::Result<()> {
        if self.paths != 1 && join.node.is_some() {
            return Err(usage_error(
                "--paths cannot be used with --node: the running node's lookups use its own \
                 `dht node --paths`"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl JoinArgs {
    /// Starts a read-only node and waits until it has joined.
    pub async fn join(&self) -> anyhow::Result<Dht> {
        self.join_with_paths(1).await
    }

    /// [`JoinArgs::join`], running each lookup on `paths` disjoint paths.
    pub async fn join_with_paths(&self, paths: u8) -> anyhow::Result<Dht> {
        let routers: Vec<String> = if self.bootstrap.is_empty() {
            DEFAULT_ROUTERS.iter().map(|s| s.to_string()).collect()
        } else {
            self.bootstrap.clone()
        };
        let dht = Dht::builder()
            .bind(([0, 0, 0, 0], 0).into())
            .read_only(true)
            .disjoint_paths(paths as usize)
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

    /// The client of `--node URL`, if given.
    fn api(&self) -> anyhow::Result<Option<ApiClient>> {
        self.node.as_deref().map(ApiClient::new).transpose()
    }

    /// Calls the node's API within the deadline.
    async fn call(
        &self,
        api: &ApiClient,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> anyhow::Result<serde_json::Value> {
        tokio::time::timeout(self.deadline(), api.call(method, path, body))
            .await
            .map_err(|_| anyhow!("timed out after {} s", self.timeout))?
    }
}

/// A string field of an API answer.
fn field<'a>(v: &'a serde_json::Value, name: &str) -> anyhow::Result<&'a str> {
    v.get(name)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("the node's answer has no {name:?}: {v}"))
}

/// An integer field of an API answer.
fn int_field(v: &serde_json::Value, name: &str) -> anyhow::Result<i64> {
    v.get(name)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| anyhow!("the node's answer has no integer {name:?}: {v}"))
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
    match dht_node::proto::bencode::decode(v) {
        Ok(dht_node::proto::bencode::Value::Bytes(b)) => b.to_vec(),
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
    if encoded.len() > dht_node::proto::VALUE_LEN_MAX {
        bail!(
            "value too large: {} bytes bencoded, BEP 44 allows at most {}",
            encoded.len(),
            dht_node::proto::VALUE_LEN_MAX
        );
    }
    Ok(encoded)
}

/// Reads a key file written by `dht keygen`.
pub fn read_key(path: &PathBuf) -> anyhow::Result<SigningKey> {
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
    if salt.len() > dht_node::proto::SALT_LEN_MAX {
        bail!("salt too long: {} bytes, at most 64", salt.len());
    }
    if let Some(api) = args.join.api()? {
        return put_through(&args, &api, value, key, salt).await;
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

/// `dht put --node URL`: the same through a node's API; a mutable item is signed here, so the
/// key never leaves this machine's command.
async fn put_through(
    args: &PutArgs,
    api: &ApiClient,
    value: Vec<u8>,
    key: Option<SigningKey>,
    salt: Vec<u8>,
) -> anyhow::Result<ExitCode> {
    let join = &args.join;
    if !args.mutable {
        let r = join
            .call(
                api,
                Method::PUT,
                "/api/v1/items",
                Some((value, "application/x-bittorrent-bencode")),
            )
            .await?;
        if int_field(&r, "stored_at")? == 0 {
            bail!("no node stored the value");
        }
        println!("{}", field(&r, "key")?);
        return Ok(ExitCode::SUCCESS);
    }
    let key = key.ok_or_else(|| anyhow!("--mutable needs --key"))?;
    let pk = hex::encode(key.verifying_key().to_bytes());
    let salt_hex = hex::encode(&salt);
    let seq = match args.seq {
        Some(s) => s,
        None => {
            let path = format!("/api/v1/mutable/{pk}?salt_hex={salt_hex}");
            match join.call(api, Method::GET, &path, None).await {
                Ok(found) => int_field(&found, "seq")? + 1,
                Err(e) if is_not_found(&e) => 1,
                Err(e) => return Err(e),
            }
        }
    };
    let item = MutableItem::sign(&key, &salt, seq, value)?;
    let body = serde_json::json!({
        "value_hex": hex::encode(&item.value),
        "salt_hex": salt_hex,
        "seq": seq,
        "cas": args.cas,
        "public_key": pk,
        "signature": hex::encode(item.signature),
    });
    let r = join
        .call(
            api,
            Method::PUT,
            "/api/v1/mutable",
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await?;
    if int_field(&r, "stored_at")? == 0 {
        let refusal = r.get("errors").and_then(|e| e.as_array()).and_then(|e| {
            e.iter()
                .find(|x| x.get("code").and_then(|c| c.as_i64()) != Some(0))
        });
        if let Some(e) = refusal {
            bail!("put refused: {e}");
        }
        bail!("no node stored the item");
    }
    println!("{} {}", field(&r, "key")?, seq);
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
    pub paths: PathsArg,
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
    args.paths.check(&args.join)?;
    let value = if let Some(api) = args.join.api()? {
        let path = if args.mutable {
            let pk = public_key_arg(&args.key).map_err(usage_error)?;
            let salt = args.salt.clone().unwrap_or_default().into_bytes();
            format!(
                "/api/v1/mutable/{}?salt_hex={}",
                hex::encode(pk),
                hex::encode(salt)
            )
        } else {
            let target = id_arg(&args.key).map_err(usage_error)?;
            format!("/api/v1/items/{target}")
        };
        match args.join.call(&api, Method::GET, &path, None).await {
            Ok(r) => Some(
                hex::decode(field(&r, "value_hex")?).context("the node's value_hex is not hex")?,
            ),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e),
        }
    } else if args.mutable {
        let pk = public_key_arg(&args.key).map_err(usage_error)?;
        let salt = args.salt.clone().unwrap_or_default().into_bytes();
        let dht = args.join.join_with_paths(args.paths.paths).await?;
        let r = within(&args.join, dht.get_mutable(pk, salt)).await?;
        dht.shutdown().await;
        r.value.map(|i| i.value)
    } else {
        let target = id_arg(&args.key).map_err(usage_error)?;
        let dht = args.join.join_with_paths(args.paths.paths).await?;
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
    let stored_at = if let Some(api) = args.join.api()? {
        let port = args.port.map(|p| format!("?port={p}")).unwrap_or_default();
        let path = format!("/api/v1/announce/{ih}{port}");
        let r = args.join.call(&api, Method::POST, &path, None).await?;
        int_field(&r, "stored_at")?
    } else {
        let dht = args.join.join().await?;
        let r = within(&args.join, dht.announce(ih, args.port)).await?;
        dht.shutdown().await;
        i64::from(r.stored_at)
    };
    if stored_at == 0 {
        bail!("no node accepted the announce");
    }
    println!("{ih} announced at {stored_at} nodes");
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
    let peers: Vec<String> = if let Some(api) = args.join.api()? {
        let path = format!("/api/v1/peers/{ih}");
        let r = args.join.call(&api, Method::GET, &path, None).await?;
        r.get("peers")
            .and_then(|p| p.as_array())
            .ok_or_else(|| anyhow!("the node's answer has no peers: {r}"))?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    } else {
        let dht = args.join.join().await?;
        let r = within(&args.join, dht.get_peers(ih)).await?;
        dht.shutdown().await;
        r.value
            .unwrap_or_default()
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
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
    pub paths: PathsArg,
    #[command(flatten)]
    pub join: JoinArgs,
}

/// `dht lookup`: the lookup's path, round by round, and the k closest nodes.
pub async fn lookup(args: LookupArgs) -> anyhow::Result<ExitCode> {
    let target = args.target;
    args.paths.check(&args.join)?;
    let trace = if let Some(api) = args.join.api()? {
        let path = format!("/api/v1/lookup/{target}");
        let r = args.join.call(&api, Method::GET, &path, None).await?;
        serde_json::from_value::<LookupTrace>(r).context("the node's lookup answer")?
    } else {
        let dht = args.join.join_with_paths(args.paths.paths).await?;
        let t = within(&args.join, crate::http::api::traced_lookup(&dht, target)).await?;
        dht.shutdown().await;
        t
    };
    print_lookup(&trace);
    Ok(if trace.closest.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints a lookup's trace round by round, then the closest nodes.
fn print_lookup(t: &LookupTrace) {
    println!("lookup {}", t.target);
    println!(
        "distance is shown as the number of leading bits shared with the target (160 = equal)"
    );
    let max_round = t.steps.iter().map(|s| s.round).max().unwrap_or(0);
    for r in 1..=max_round {
        println!("round {r}:");
        for s in t.steps.iter().filter(|s| s.round == r) {
            let label = match s.kind.as_str() {
                "asked" => "asked    ",
                "answered" => "answered ",
                _ => "timed out",
            };
            print!(
                "  {label} {} {:<21} shared bits {}",
                s.id, s.addr, s.shared_bits
            );
            if let (Some(returned), Some(new)) = (s.returned, s.new) {
                print!(" returned {returned} contacts, {new} new");
            }
            println!();
        }
    }
    println!(
        "closest {} nodes ({} rounds, {} requests, {} answers, {} timed out, {} ms, {} path{}):",
        t.closest.len(),
        t.rounds,
        t.messages,
        t.responses,
        t.timeouts,
        t.duration_ms,
        t.paths,
        if t.paths == 1 { "" } else { "s" }
    );
    for n in &t.closest {
        println!("  {} {:<21} shared bits {}", n.id, n.addr, n.shared_bits);
    }
}
