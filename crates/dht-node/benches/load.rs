//! The load benchmark of dht-node: one node under `find_node` load on loopback, beside a bare
//! batched UDP echo measured the same way in the same run (docs/benchmarks.md, "Single node
//! under load").
//!
//! ```text
//! cargo bench -p dht-node --bench load -- [--seconds S] [--rounds R] [--window W] [--seed N] [--json]
//! ```
//!
//! Run by `cargo test` (without cargo bench's `--bench` flag), it only runs its self-checks
//! (the histogram and the query template), so the test suite keeps them without the load.
//!
//! Shape of a run, every phase bounded in time and count:
//! 1. The node (full, memory only, no bootstrap) runs on a current-thread tokio runtime in its
//!    own OS thread, so it has at most one core.
//! 2. Its routing table is filled by pings from [`PREFILL_CONTACTS`] node IDs, 8 in each of
//!    the first 8 buckets (a node of a network of a few thousand), each from its own address
//!    127.0.0.x, so that every `find_node` answer carries 8 contacts. One probe checks that.
//! 3. A generator thread (its own current-thread runtime, the same batched socket I/O) keeps
//!    `--window` `find_node` queries in flight (real KRPC bytes from the encoder, random
//!    targets, 2-byte transaction IDs) for a warm-up and then `--seconds`, counting answers
//!    and timing each round trip.
//! 4. The same generator then runs against a bare echo server built like the node's driver
//!    (same runtime shape, same batched receive and send, same turn size), which only echoes.
//!    Steps 3 and 4 alternate `--rounds` times, each measuring its share of `--seconds`, so
//!    that the machine's drift in speed (wide on a shared VM) falls on both sides alike.
//! 5. Last, with nothing else running, a `dht_proto` node is timed directly: the handling time
//!    of one `find_node` datagram (decode, table update, closest, encode).
//!
//! The round-trip figures are round trips *under load* (queueing in socket buffers and batches
//! included), not the node's service time; the handling-time figures are the service time.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use dht_node::udp::{self, RecvBatch, RECV_SLOTS, TURN_DATAGRAMS_MAX};
use dht_node::Dht;
use dht_proto::message::{Body, Message, Method, Query};
use dht_proto::node::{Config, Node, NodeStats};
use dht_proto::Id;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Contacts put into the node's table before the load: 8 per bucket in buckets 0..8.
pub const PREFILL_CONTACTS: usize = 64;

/// Longest a measured phase may be, in seconds (`--seconds` is checked against it).
pub const SECONDS_MAX: u64 = 600;

/// Most alternations of the node and echo phases (`--rounds` is checked against it); each
/// measures at least 10 ms.
pub const ROUNDS_MAX: u32 = 100;

/// Most queries the generator keeps in flight (`--window` is checked against it). Below the
/// 65,536 two-byte transaction IDs, so an ID is never reused while its query is in flight.
pub const WINDOW_MAX: u32 = 16_384;

/// Time before the measured interval: sockets, caches and the window settle.
const WARMUP: Duration = Duration::from_millis(500);

/// After the measured interval, how long the generator waits for the last answers.
const DRAIN: Duration = Duration::from_millis(200);

/// A query unanswered this long is counted lost and frees its window place.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// Queries the generator hands to one `send_batch` call.
const SEND_BURST_MAX: usize = udp::SEND_CHUNK_MAX;

/// How long the generator sleeps waiting for answers when its window is full.
const WAIT_SLICE: Duration = Duration::from_millis(5);

/// Every this many answers from the node, one is fully decoded to count its contacts.
const CONTACT_CHECK_EVERY: u64 = 1024;

/// `find_node` datagrams timed one by one for the handling-time figures.
const HANDLING_SAMPLES: usize = 200_000;

/// Socket buffer size asked of the OS for the generator and the echo server, in bytes (the
/// node's own is set by its builder).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// How long starting a server thread or answering a prefill ping may take.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the load bench is asked to do.
#[derive(clap::Parser, Debug, Clone, Copy)]
#[command(
    name = "load",
    about = "One dht-node under find_node load beside a bare UDP echo"
)]
pub struct LoadParams {
    /// Measured seconds against the node, and again against the echo.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=SECONDS_MAX))]
    pub seconds: u64,
    /// Node and echo phases alternate this many times, each measuring seconds / rounds, so
    /// that a change in the machine's speed during the run falls on both alike.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=ROUNDS_MAX as i64))]
    pub rounds: u32,
    /// find_node queries the generator keeps in flight.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=WINDOW_MAX as i64))]
    pub window: u32,
    /// Seed for IDs and targets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The CPU the server thread (the node, then the echo) is pinned to.
    #[arg(long, default_value_t = 0)]
    pub server_core: usize,
    /// The CPU the load generator is pinned to: another core than the server's, so that the
    /// two do not share one.
    #[arg(long, default_value_t = 1)]
    pub generator_core: usize,
    /// Pin neither thread (the OS places them; on one core they take turns).
    #[arg(long)]
    pub no_pin: bool,
}

/// The ratio of the node's answers per second to the echo's that issue 15 asks for.
pub const TARGET_RATIO: f64 = 0.8;

/// Above this share of its core the generator, not the server, may be what limits the rate;
/// the report says so.
const GENERATOR_SATURATED: f64 = 0.9;

impl LoadParams {
    /// The cores to pin the server and the generator to, if pinning is on and the machine has
    /// both.
    fn cores(&self) -> anyhow::Result<(Option<usize>, Option<usize>)> {
        if self.no_pin {
            return Ok((None, None));
        }
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.server_core >= n || self.generator_core >= n {
            bail!(
                "--server-core {} and --generator-core {} must be below the {n} CPUs this process may use (or pass --no-pin)",
                self.server_core,
                self.generator_core
            );
        }
        if self.server_core == self.generator_core {
            bail!("--server-core and --generator-core are the same CPU (pass --no-pin to let the OS place them)");
        }
        Ok((Some(self.server_core), Some(self.generator_core)))
    }
}

/// Pins the calling thread to `core` (nothing when None, or off Linux).
fn pin_to(core: Option<usize>) -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(core) = core {
        // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it for core < CPU_SETSIZE
        // (checked), and sched_setaffinity reads size_of::<cpu_set_t>() bytes of it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if core >= libc::CPU_SETSIZE as usize {
                bail!("CPU {core} is out of range");
            }
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                bail!(
                    "pinning a thread to CPU {core}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = core;
    Ok(())
}

/// `cargo bench` passes `--bench`: then the load runs. Otherwise (`cargo test`) only the
/// self-checks run, whatever the test runner's arguments.
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        self_checks();
        println!(
            "load bench: self-checks passed (measure with: cargo bench -p dht-node --bench load)"
        );
        return std::process::ExitCode::SUCCESS;
    }
    let args = args.into_iter().filter(|a| a != "--bench");
    let params = match <LoadParams as clap::Parser>::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(params) {
        Ok(report) if params.json => match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                println!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("load bench: {e}");
                std::process::ExitCode::from(1)
            }
        },
        Ok(report) => {
            print(&report);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load bench: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Runs the load bench (blocking: call it off the async runtime).
pub fn run(p: LoadParams) -> anyhow::Result<serde_json::Value> {
    if p.seconds == 0 || p.seconds > SECONDS_MAX {
        bail!("--seconds must be 1..={SECONDS_MAX}");
    }
    if p.window == 0 || p.window > WINDOW_MAX {
        bail!("--window must be 1..={WINDOW_MAX}");
    }
    if p.rounds == 0 || p.rounds > ROUNDS_MAX {
        bail!("--rounds must be 1..={ROUNDS_MAX}");
    }
    let phase = Duration::from_secs(p.seconds) / p.rounds;
    let (server_core, generator_core) = p.cores()?;
    let mut rng = StdRng::seed_from_u64(p.seed ^ 0x10ad);
    let node_id = Id::random(&mut rng);
    let generator_id = node_id.random_in_bucket(8, &mut rng);

    // The node.
    let node = start_node(node_id, p.seed, server_core)?;
    let prefill = prefill(node.addr, node_id, &mut rng)?;
    let contacts = probe_contacts(node.addr, generator_id)?;
    if contacts < dht_proto::routing::K {
        bail!("the node answers find_node with {contacts} contacts after the prefill, not 8");
    }
    let query = QueryTemplate::new(generator_id)?;
    let echo = start_echo(server_core)?;
    // Both servers wait on the same core; the generator loads one at a time, in turns.
    let mut node_run: Option<RunReport> = None;
    let mut echo_run: Option<RunReport> = None;
    let mut round_ratios = Vec::with_capacity(p.rounds as usize);
    for _ in 0..p.rounds {
        let n = generate(
            &query,
            node.addr,
            p,
            phase,
            node.tid,
            true,
            rng.next_u64(),
            generator_core,
        )?;
        let e = generate(
            &query,
            echo.addr,
            p,
            phase,
            echo.tid,
            false,
            rng.next_u64(),
            generator_core,
        )?;
        round_ratios.push(n.rate() / e.rate());
        merge_into(&mut node_run, n);
        merge_into(&mut echo_run, e);
    }
    let node_stats = node.stop()?;
    echo.stop()?;
    let (Some(node_run), Some(echo_run)) = (node_run, echo_run) else {
        bail!("no round ran");
    };

    // The handling time is measured on this thread, on the server's core.
    pin_to(server_core)?;
    let handling = handling_time(node_id, p.seed)?;

    let ratio = node_run.rate() / echo_run.rate();
    let saturated = [&node_run, &echo_run]
        .iter()
        .any(|r| r.generator_share() > GENERATOR_SATURATED);
    Ok(serde_json::json!({
        "seconds": p.seconds,
        "rounds": p.rounds,
        "window": p.window,
        "seed": p.seed,
        "prefill_contacts": prefill,
        "contacts_per_reply": contacts,
        "node": node_run.json(),
        "node_stats": {
            "datagrams_in": node_stats.datagrams_in,
            "datagrams_out": node_stats.datagrams_out,
            "queries_answered": node_stats.queries_answered,
            "malformed": node_stats.malformed,
        },
        "echo": echo_run.json(),
        "server_core": server_core,
        "generator_core": generator_core,
        "ratio_node_to_echo": ratio,
        "ratio_per_round": round_ratios,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "generator_saturated": saturated,
        "handling": handling,
    }))
}

/// Prints the report made by [`run`].
pub fn print(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let side = |name: &str, s: &serde_json::Value| {
        println!(
            "  {name:<5} {:>9.0} replies/s  rtt p50 {:.3} ms p99 {:.3} ms  server thread CPU {:.0}%  generator CPU {:.0}%  lost {}",
            f(&s["replies_per_s"]),
            f(&s["rtt_ms"]["p50"]),
            f(&s["rtt_ms"]["p99"]),
            100.0 * f(&s["server_cpu_share"]),
            100.0 * f(&s["generator_cpu_share"]),
            s["lost"],
        );
    };
    println!(
        "load bench: one node on loopback, {} s measured per side in {} alternating rounds, window {}, seed {}",
        r["seconds"], r["rounds"], r["window"], r["seed"]
    );
    println!(
        "  table prefilled with {} contacts; find_node answers carry {}",
        r["prefill_contacts"], r["contacts_per_reply"]
    );
    side("node", &r["node"]);
    side("echo", &r["echo"]);
    let rounds: Vec<String> = r["ratio_per_round"]
        .as_array()
        .map(|a| a.iter().map(|x| format!("{:.3}", f(x))).collect())
        .unwrap_or_default();
    println!(
        "  node / echo = {:.3} (rounds: {}; target >= {TARGET_RATIO}: {})",
        f(&r["ratio_node_to_echo"]),
        rounds.join(" "),
        if r["target_met"].as_bool() == Some(true) {
            "met"
        } else {
            "not met"
        }
    );
    let core = |c: &serde_json::Value| c.as_u64().map_or("any".to_string(), |c| c.to_string());
    println!(
        "  server thread on CPU {}, generator on CPU {}{}",
        core(&r["server_core"]),
        core(&r["generator_core"]),
        if r["generator_saturated"].as_bool() == Some(true) {
            " (the generator used over 90% of its core: it may be what limits the rates)"
        } else {
            ""
        }
    );
    println!(
        "  node per CPU-second of its thread: {:.0} queries; echo: {:.0} replies",
        f(&r["node"]["replies_per_cpu_s"]),
        f(&r["echo"]["replies_per_cpu_s"])
    );
    let h = &r["handling"];
    println!(
        "  handling time of one find_node (dht-proto node timed directly, {} samples): mean {:.2} us, p50 {:.2} us, p99 {:.2} us",
        h["samples"],
        f(&h["mean_us"]),
        f(&h["p50_us"]),
        f(&h["p99_us"])
    );
}

// ---- servers ----

/// A server thread: the node or the echo.
struct Server<T> {
    addr: SocketAddr,
    /// The thread's kernel ID, for its CPU time (None off Linux).
    tid: Option<u32>,
    stop: tokio::sync::oneshot::Sender<()>,
    join: std::thread::JoinHandle<anyhow::Result<T>>,
}

impl<T> Server<T> {
    fn stop(self) -> anyhow::Result<T> {
        let _ = self.stop.send(());
        self.join
            .join()
            .map_err(|_| anyhow!("the server thread panicked"))?
    }
}

/// Starts a thread with a current-thread runtime running `body`, which reports its address
/// through the callback and returns when the stop channel fires.
fn start_server<T, F, Fut>(name: &str, core: Option<usize>, body: F) -> anyhow::Result<Server<T>>
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<SocketAddr>, tokio::sync::oneshot::Receiver<()>) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let join = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tid_tx.send(thread_id());
            pin_to(core)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(body(ready_tx, stop_rx))
        })?;
    let tid = tid_rx.recv_timeout(START_TIMEOUT)?;
    match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => Ok(Server {
            addr,
            tid,
            stop: stop_tx,
            join,
        }),
        Err(_) => {
            drop(stop_tx);
            match join.join() {
                Ok(Err(e)) => Err(e.context(format!("{name} did not start"))),
                _ => bail!("{name} did not start"),
            }
        }
    }
}

fn start_node(id: Id, seed: u64, core: Option<usize>) -> anyhow::Result<Server<NodeStats>> {
    start_server("load-node", core, move |ready, stop| async move {
        let dht = Dht::builder()
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .bootstrap(Vec::<String>::new())
            .id(id)
            .seed(seed)
            .spawn()
            .await?;
        let _ = ready.send(dht.local_addr());
        let _ = stop.await;
        let stats = dht.status().await?.stats;
        dht.shutdown().await;
        Ok(stats)
    })
}

/// A bare echo server shaped like the node's driver: one awaited readiness, then up to
/// [`TURN_DATAGRAMS_MAX`] datagrams in [`RECV_SLOTS`]-sized batches, each copied out (as the
/// node builds a reply per query), then one batched send; a timer branch as the driver has.
fn start_echo(core: Option<usize>) -> anyhow::Result<Server<()>> {
    start_server("load-echo", core, move |ready, mut stop| async move {
        let socket = udp::bind(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            SOCKET_BUFFER_BYTES,
        )?;
        let _ = ready.send(socket.local_addr()?);
        let mut batch = RecvBatch::new();
        let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(TURN_DATAGRAMS_MAX);
        // Ends when the bench says stop; each turn handles at most TURN_DATAGRAMS_MAX.
        loop {
            let wake = tokio::time::Instant::now() + Duration::from_secs(60);
            tokio::select! {
                _ = &mut stop => break,
                r = socket.readable() => r?,
                _ = tokio::time::sleep_until(wake) => continue,
            }
            out.clear();
            for _ in 0..TURN_DATAGRAMS_MAX.div_ceil(RECV_SLOTS) {
                match udp::try_recv_batch(&socket, &mut batch) {
                    Ok(n) => {
                        out.extend(batch.iter().map(|(a, d)| (a, d.to_vec())));
                        if n < RECV_SLOTS {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            udp::send_batch(&socket, &out).await;
        }
        Ok(())
    })
}

// ---- prefill ----

fn encode_query(tid: &[u8], sender_id: Id, method: Method) -> Vec<u8> {
    Message {
        transaction_id: tid.to_vec(),
        version: None,
        requester_ip: None,
        read_only: false,
        body: Body::Query(Query { sender_id, method }),
    }
    .encode()
}

/// Pings the node from [`PREFILL_CONTACTS`] IDs, 8 per bucket, each from its own 127.0.0.x
/// address (loopback addresses are exempt from the one-per-IP rule anyway), and waits for
/// each answer. Returns how many answered.
fn prefill(node: SocketAddr, node_id: Id, rng: &mut StdRng) -> anyhow::Result<usize> {
    let k = dht_proto::routing::K;
    let mut answered = 0;
    for i in 0..PREFILL_CONTACTS {
        let id = node_id.random_in_bucket(i / k, rng);
        let ip = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
        let socket = StdUdpSocket::bind((ip, 0))
            .or_else(|_| StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
            .context("binding a prefill socket")?;
        socket.set_read_timeout(Some(START_TIMEOUT))?;
        socket.send_to(&encode_query(&[i as u8, 0], id, Method::Ping), node)?;
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if matches!(Message::decode(&buf[..n]), Ok(m) if matches!(m.body, Body::Response(_))) {
                answered += 1;
            }
        }
    }
    Ok(answered)
}

/// Contacts in the node's answer to one `find_node` for a random target.
fn probe_contacts(node: SocketAddr, sender: Id) -> anyhow::Result<usize> {
    let socket = StdUdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_read_timeout(Some(START_TIMEOUT))?;
    let target = Id::random(&mut StdRng::seed_from_u64(7));
    let method = Method::FindNode { target, want: None };
    socket.send_to(&encode_query(b"pr", sender, method), node)?;
    let mut buf = [0u8; 1500];
    let (n, _) = socket
        .recv_from(&mut buf)
        .context("no answer to the probe")?;
    match Message::decode(&buf[..n]) {
        Ok(Message {
            body: Body::Response(r),
            ..
        }) => Ok(r.nodes.len()),
        _ => bail!("the probe's answer is not a response"),
    }
}

// ---- the generator ----

/// A `find_node` query encoded once; each use overwrites its transaction ID and target.
struct QueryTemplate {
    bytes: Vec<u8>,
    tid_at: usize,
    target_at: usize,
}

impl QueryTemplate {
    fn new(sender: Id) -> anyhow::Result<Self> {
        let method = Method::FindNode {
            target: Id::ZERO,
            want: None,
        };
        let bytes = encode_query(&[0, 0], sender, method);
        let target_at = find(&bytes, b"6:target20:").map(|i| i + 11);
        // `t` is the last key but `y` (no version is sent), so its last match is the real one.
        let tid_at = bytes.windows(5).rposition(|w| w == b"1:t2:").map(|i| i + 5);
        let (Some(tid_at), Some(target_at)) = (tid_at, target_at) else {
            bail!("unexpected find_node encoding");
        };
        let mut t = QueryTemplate {
            bytes,
            tid_at,
            target_at,
        };
        // Check the offsets once against the decoder.
        let mut copy = t.bytes.clone();
        let target = Id([0x5a; 20]);
        t.write(&mut copy, 0xbeef, target.as_bytes());
        match Message::decode(&copy) {
            Ok(m)
                if m.transaction_id == [0xbe, 0xef]
                    && matches!(m.body, Body::Query(Query { method: Method::FindNode { target: got, .. }, .. }) if got == target) =>
                {}
            _ => bail!("patched find_node does not decode as written"),
        }
        t.bytes.shrink_to_fit();
        Ok(t)
    }

    fn write(&self, out: &mut [u8], tid: u16, target: &[u8; 20]) {
        out[self.tid_at..self.tid_at + 2].copy_from_slice(&tid.to_be_bytes());
        out[self.target_at..self.target_at + 20].copy_from_slice(target);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The transaction ID of a KRPC message, if it is 2 bytes (the generator's own).
fn transaction_id(bytes: &[u8]) -> Option<u16> {
    let v = dht_proto::bencode::decode_raw(bytes).ok()?;
    let t = v.as_dict()?.get(b"t")?.as_bytes()?;
    Some(u16::from_be_bytes(t.try_into().ok()?))
}

/// What one generator run measured.
#[derive(Debug, Clone)]
struct RunReport {
    measured: Duration,
    sent: u64,
    replies: u64,
    replies_measured: u64,
    lost: u64,
    unexpected: u64,
    rtt: Histogram,
    server_cpu: Option<Duration>,
    generator_cpu: Option<Duration>,
    contacts_min: Option<usize>,
    send_calls: u64,
    recv_calls: u64,
}

/// Adds `run` to the total of the rounds so far.
fn merge_into(total: &mut Option<RunReport>, run: RunReport) {
    let Some(t) = total else {
        *total = Some(run);
        return;
    };
    let add = |a: Option<Duration>, b: Option<Duration>| a.zip(b).map(|(a, b)| a + b);
    t.measured += run.measured;
    t.sent += run.sent;
    t.replies += run.replies;
    t.replies_measured += run.replies_measured;
    t.lost += run.lost;
    t.unexpected += run.unexpected;
    t.rtt.merge(&run.rtt);
    t.server_cpu = add(t.server_cpu, run.server_cpu);
    t.generator_cpu = add(t.generator_cpu, run.generator_cpu);
    t.contacts_min = match (t.contacts_min, run.contacts_min) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    t.send_calls += run.send_calls;
    t.recv_calls += run.recv_calls;
}

impl RunReport {
    fn rate(&self) -> f64 {
        self.replies_measured as f64 / self.measured.as_secs_f64()
    }

    /// The generator's CPU time over the measured interval (0 when unknown).
    fn generator_share(&self) -> f64 {
        self.generator_cpu
            .map_or(0.0, |c| c.as_secs_f64() / self.measured.as_secs_f64())
    }

    fn json(&self) -> serde_json::Value {
        let share = |c: Option<Duration>| {
            c.map_or(f64::NAN, |c| c.as_secs_f64() / self.measured.as_secs_f64())
        };
        let per_cpu = self
            .server_cpu
            .map_or(f64::NAN, |c| self.replies_measured as f64 / c.as_secs_f64());
        serde_json::json!({
            "replies_per_s": self.rate(),
            "replies_per_cpu_s": per_cpu,
            "measured_s": self.measured.as_secs_f64(),
            "sent": self.sent,
            "replies": self.replies,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "rtt_ms": {
                "samples": self.rtt.total,
                "p50": self.rtt.quantile(0.5) as f64 / 1e6,
                "p99": self.rtt.quantile(0.99) as f64 / 1e6,
            },
            "server_cpu_share": share(self.server_cpu),
            "generator_cpu_share": share(self.generator_cpu),
            "contacts_per_reply_min": self.contacts_min,
            "generator_send_calls": self.send_calls,
            "generator_recv_calls": self.recv_calls,
        })
    }
}

/// Runs the generator on its own thread and runtime against `to`.
#[allow(clippy::too_many_arguments)]
fn generate(
    template: &QueryTemplate,
    to: SocketAddr,
    p: LoadParams,
    measure: Duration,
    server_tid: Option<u32>,
    check_contacts: bool,
    seed: u64,
    core: Option<usize>,
) -> anyhow::Result<RunReport> {
    let t = QueryTemplate {
        bytes: template.bytes.clone(),
        ..*template
    };
    std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || {
            pin_to(core)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(generator(
                t,
                to,
                p,
                measure,
                server_tid,
                check_contacts,
                seed,
            ))
        })?
        .join()
        .map_err(|_| anyhow!("the generator thread panicked"))?
}

/// Keeps `p.window` queries in flight for the warm-up, the measured `measure` and the drain.
async fn generator(
    t: QueryTemplate,
    to: SocketAddr,
    p: LoadParams,
    measure: Duration,
    server_tid: Option<u32>,
    check_contacts: bool,
    seed: u64,
) -> anyhow::Result<RunReport> {
    let socket = udp::bind(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SOCKET_BUFFER_BYTES,
    )?;
    let own_tid = thread_id();
    let mut rng = StdRng::seed_from_u64(seed);
    let window = p.window as usize;
    // Send time of each transaction ID in flight, in ns since `epoch` plus one; 0 = free.
    let mut in_flight = vec![0u64; 1 << 16];
    // Transaction IDs in send order; the front is the oldest that may still be in flight.
    let mut order: VecDeque<u16> = VecDeque::with_capacity(1 << 16);
    let mut outstanding = 0usize;
    let mut next_tid: u16 = 0;
    let mut burst: Vec<(SocketAddr, Vec<u8>)> =
        (0..SEND_BURST_MAX).map(|_| (to, t.bytes.clone())).collect();
    let mut batch = RecvBatch::new();
    let mut r = RunReport {
        measured: Duration::ZERO,
        sent: 0,
        replies: 0,
        replies_measured: 0,
        lost: 0,
        unexpected: 0,
        rtt: Histogram::new(),
        server_cpu: None,
        generator_cpu: None,
        contacts_min: None,
        send_calls: 0,
        recv_calls: 0,
    };
    let epoch = Instant::now();
    let measure_from = epoch + WARMUP;
    let measure_to = measure_from + measure;
    let end = measure_to + DRAIN;
    let mut measuring = false;
    let mut cpu_at_start = (None, None);
    // Bounded by time: every round either sends, receives or sleeps at most WAIT_SLICE.
    loop {
        let now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            cpu_at_start = (
                server_tid.and_then(thread_cpu),
                own_tid.and_then(thread_cpu),
            );
        }
        if measuring && now >= measure_to && r.measured.is_zero() {
            r.measured = now - measure_from;
            let (s0, g0) = cpu_at_start;
            r.server_cpu = server_tid
                .and_then(thread_cpu)
                .zip(s0)
                .map(|(a, b)| a.saturating_sub(b));
            r.generator_cpu = own_tid
                .and_then(thread_cpu)
                .zip(g0)
                .map(|(a, b)| a.saturating_sub(b));
        }
        if now >= end || (now >= measure_to && outstanding == 0) {
            break;
        }
        // Send what the window allows.
        if now < measure_to && outstanding < window {
            let n = (window - outstanding).min(SEND_BURST_MAX);
            let stamp = (now - epoch).as_nanos() as u64 + 1;
            for slot in burst.iter_mut().take(n) {
                // The oldest entry leaves when the ID space would wrap onto it.
                if order.len() == 1 << 16 {
                    if let Some(old) = order.pop_front() {
                        if in_flight[old as usize] != 0 {
                            in_flight[old as usize] = 0;
                            outstanding -= 1;
                            r.lost += 1;
                        }
                    }
                }
                let mut target = [0u8; 20];
                rng.fill_bytes(&mut target);
                t.write(&mut slot.1, next_tid, &target);
                in_flight[next_tid as usize] = stamp;
                order.push_back(next_tid);
                next_tid = next_tid.wrapping_add(1);
                outstanding += 1;
            }
            let report = udp::send_batch(&socket, &burst[..n]).await;
            r.send_calls += report.calls as u64;
            r.sent += report.sent as u64;
            // A refused query never gets an answer; it times out below like a lost one.
        }
        // Receive what has come; wait a little only when there is nothing else to do.
        let got = match udp::try_recv_batch(&socket, &mut batch) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if outstanding >= window || now >= measure_to {
                    let _ = tokio::time::timeout(WAIT_SLICE, socket.readable()).await;
                }
                0
            }
            Err(e) => return Err(e.into()),
        };
        if got > 0 {
            r.recv_calls += 1;
            let now = Instant::now();
            let stamp = (now - epoch).as_nanos() as u64 + 1;
            let counted = measuring && now < measure_to;
            for (_, bytes) in batch.iter() {
                let Some(tid) = transaction_id(bytes) else {
                    r.unexpected += 1;
                    continue;
                };
                let sent_at = in_flight[tid as usize];
                if sent_at == 0 {
                    r.unexpected += 1;
                    continue;
                }
                in_flight[tid as usize] = 0;
                outstanding -= 1;
                r.replies += 1;
                if counted {
                    r.replies_measured += 1;
                    r.rtt.record(stamp - sent_at);
                }
                if check_contacts && r.replies % CONTACT_CHECK_EVERY == 1 {
                    let n = match Message::decode(bytes) {
                        Ok(Message {
                            body: Body::Response(resp),
                            ..
                        }) => resp.nodes.len(),
                        _ => 0,
                    };
                    r.contacts_min = Some(r.contacts_min.map_or(n, |m| m.min(n)));
                }
            }
        }
        // Retire answered entries and time out old ones.
        let cutoff = (Instant::now() - epoch)
            .saturating_sub(QUERY_TIMEOUT)
            .as_nanos() as u64;
        while let Some(&front) = order.front() {
            let sent_at = in_flight[front as usize];
            if sent_at == 0 {
                order.pop_front();
            } else if sent_at <= cutoff {
                in_flight[front as usize] = 0;
                outstanding -= 1;
                r.lost += 1;
                order.pop_front();
            } else {
                break;
            }
        }
    }
    if r.measured.is_zero() {
        bail!("the measured interval never ended");
    }
    Ok(r)
}

// ---- handling time ----

/// Times `dht_proto`'s node directly on `find_node` datagrams: [`HANDLING_SAMPLES`] calls of
/// `handle_datagram` + `poll_transmit` (the reply is encoded inside), each timed alone, and
/// the same again timed as a whole for the mean without the timer's own cost.
fn handling_time(own: Id, seed: u64) -> anyhow::Result<serde_json::Value> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4a4d);
    let mut now = dht_proto::Instant::from_micros(1_000_000);
    let mut node = Node::new(Config::default(), own, seed, now);
    let k = dht_proto::routing::K;
    for i in 0..PREFILL_CONTACTS {
        let id = own.random_in_bucket(i / k, &mut rng);
        let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2 + i as u8), 6881));
        node.handle_datagram(now, from, &encode_query(&[i as u8, 0], id, Method::Ping));
    }
    while node.poll_transmit().is_some() {}
    let sender = own.random_in_bucket(8, &mut rng);
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000));
    let t = QueryTemplate::new(sender)?;
    let mut query = t.bytes.clone();
    let mut hist = Histogram::new();
    let mut contacts_min = usize::MAX;
    for i in 0..HANDLING_SAMPLES {
        let mut target = [0u8; 20];
        rng.fill_bytes(&mut target);
        t.write(&mut query, i as u16, &target);
        now = dht_proto::Instant::from_micros(now.as_micros() + 3);
        let start = Instant::now();
        node.handle_datagram(now, from, &query);
        let reply = node.poll_transmit();
        let took = start.elapsed();
        hist.record(took.as_nanos() as u64);
        let Some(reply) = reply else {
            bail!("the node did not answer a find_node");
        };
        if i % CONTACT_CHECK_EVERY as usize == 0 {
            if let Ok(Message {
                body: Body::Response(r),
                ..
            }) = Message::decode(&reply.data)
            {
                contacts_min = contacts_min.min(r.nodes.len());
            }
        }
    }
    let start = Instant::now();
    for i in 0..HANDLING_SAMPLES {
        let mut target = [0u8; 20];
        rng.fill_bytes(&mut target);
        t.write(&mut query, i as u16, &target);
        now = dht_proto::Instant::from_micros(now.as_micros() + 3);
        node.handle_datagram(now, from, &query);
        std::hint::black_box(node.poll_transmit());
    }
    let bulk_mean = start.elapsed().as_secs_f64() / HANDLING_SAMPLES as f64;
    Ok(serde_json::json!({
        "samples": HANDLING_SAMPLES,
        "contacts_per_reply_min": contacts_min,
        "mean_us": bulk_mean * 1e6,
        "p50_us": hist.quantile(0.5) as f64 / 1e3,
        "p99_us": hist.quantile(0.99) as f64 / 1e3,
        "p999_us": hist.quantile(0.999) as f64 / 1e3,
        "per_core_per_s": 1.0 / bulk_mean,
    }))
}

// ---- measuring tools ----

/// Log-linear histogram of nanosecond values: 64 sub-buckets per power of two (error under
/// 1.6%), a fixed 3,840 counters whatever is recorded.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

/// Sub-buckets per power of two, as bits.
const HIST_SUB_BITS: u32 = 6;
/// Counters of a [`Histogram`]: enough for every u64.
const HIST_BUCKETS: usize = (64 - HIST_SUB_BITS as usize + 1) << HIST_SUB_BITS;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; HIST_BUCKETS],
            total: 0,
        }
    }

    fn index(v: u64) -> usize {
        let sub = 1u64 << HIST_SUB_BITS;
        if v < sub {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - HIST_SUB_BITS;
        let mantissa = (v >> shift) - sub;
        (((shift + 1) as usize) << HIST_SUB_BITS) + mantissa as usize
    }

    /// The middle of the values that land in bucket `i`.
    fn value(i: usize) -> u64 {
        let sub = 1usize << HIST_SUB_BITS;
        if i < sub {
            return i as u64;
        }
        let shift = (i >> HIST_SUB_BITS) - 1;
        let mantissa = ((i & (sub - 1)) + sub) as u64;
        (mantissa << shift) + ((1u64 << shift) >> 1)
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(HIST_BUCKETS - 1)
    }
}

/// The calling thread's kernel ID (Linux), read without unsafe code from /proc.
fn thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time a thread of this process has used (Linux: /proc schedstat, nanoseconds).
fn thread_cpu(tid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Checks of the bench's own parts; a failure panics.
fn self_checks() {
    histogram_quantiles_are_within_two_percent();
    histogram_index_stays_in_bounds_for_every_magnitude();
    patched_query_carries_the_written_transaction_id_and_target();
}

fn histogram_quantiles_are_within_two_percent() {
    let mut h = Histogram::new();
    for v in 1..=100_000u64 {
        h.record(v * 1000);
    }
    for (q, want) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0)] {
        let got = h.quantile(q) as f64;
        assert!((got - want).abs() / want < 0.02, "q {q}: {got} vs {want}");
    }
    assert_eq!(Histogram::new().quantile(0.5), 0);
}

fn histogram_index_stays_in_bounds_for_every_magnitude() {
    for shift in 0..64 {
        let v = 1u64 << shift;
        assert!(Histogram::index(v) < HIST_BUCKETS);
        assert!(Histogram::index(v | (v - 1)) < HIST_BUCKETS);
    }
    assert!(Histogram::index(u64::MAX) < HIST_BUCKETS);
}

fn patched_query_carries_the_written_transaction_id_and_target() {
    let t = QueryTemplate::new(Id([3; 20])).unwrap();
    let mut q = t.bytes.clone();
    t.write(&mut q, 0x0102, &[9; 20]);
    assert_eq!(transaction_id(&q), Some(0x0102));
    let m = Message::decode(&q).unwrap();
    match m.body {
        Body::Query(Query {
            sender_id,
            method: Method::FindNode { target, .. },
        }) => {
            assert_eq!(sender_id, Id([3; 20]));
            assert_eq!(target, Id([9; 20]));
        }
        other => panic!("not a find_node: {other:?}"),
    }
}
