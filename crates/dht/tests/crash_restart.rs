//! A real `dht node` killed with SIGKILL in the middle of a stream of puts keeps every put it
//! acknowledged.
//!
//! One node on 127.0.0.1 is the whole network, so it is the only holder of every item: a
//! `dht put` prints its key only after this node answered the put, which the node does only
//! after committing it to its data directory. Several writers stream `dht put` commands
//! through it at once; once some keys have been printed the node is killed by PID while puts
//! are still in flight, restarted on the same address and data directory, and every printed
//! key must be found with its value by `dht get`.
//!
//! `DHT_CRASH_KILLS` (default [`KILLS_DEFAULT`]) sets how many kill-and-restart rounds run, each
//! on top of the data of the rounds before it.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{immutable_key, is_hex, Client, Cluster, ID_HEX_LEN};

/// Kill-and-restart rounds when `DHT_CRASH_KILLS` is unset.
const KILLS_DEFAULT: usize = 3;
/// Writers streaming puts at once (so that the kill finds some of them mid-put).
const WRITERS: usize = 3;
/// Keys printed in a round before the node is killed.
const KEYS_BEFORE_KILL: usize = 6;
/// Puts one writer attempts in a round at most.
const PUTS_PER_WRITER_MAX: usize = 15;
/// Puts a writer still attempts after the kill (they find the node gone).
const PUTS_AFTER_KILL: usize = 1;
/// How long a round may take to print [`KEYS_BEFORE_KILL`] keys (debug build, busy machine).
const KEYS_TIMEOUT: Duration = Duration::from_secs(180);
/// The kill comes this much after the keys were printed at most, spread over the rounds, so
/// that it lands in different phases of the puts in flight (joining, looking up, storing).
const KILL_DELAY_MAX: Duration = Duration::from_millis(400);
/// How often the main thread looks at the count of printed keys.
const POLL: Duration = Duration::from_millis(10);
/// A client's own limit on its put, in seconds (`--timeout`), well below the harness's.
const PUT_TIMEOUT_S: &str = "10";

/// What the writers share with the main thread.
#[derive(Default)]
struct Stream {
    /// (key, value) of every put that printed a key.
    printed: Mutex<Vec<(String, String)>>,
    /// Writers inside a `dht put` right now.
    in_flight: AtomicUsize,
    /// The node has been killed.
    killed: AtomicBool,
}

/// Streams puts of distinct values through the node at `addr` until the stream says the node
/// was killed (and [`PUTS_AFTER_KILL`] more were tried) or [`PUTS_PER_WRITER_MAX`] were made.
fn writer(home: PathBuf, addr: std::net::SocketAddr, round: usize, w: usize, s: Arc<Stream>) {
    let client = Client::new(&home).bootstrap(addr);
    let mut after_kill = 0;
    for i in 0..PUTS_PER_WRITER_MAX {
        if s.killed.load(Ordering::SeqCst) {
            if after_kill == PUTS_AFTER_KILL {
                break;
            }
            after_kill += 1;
        }
        let value = format!("crash-restart round {round} writer {w} put {i}");
        s.in_flight.fetch_add(1, Ordering::SeqCst);
        let out = client.run(&["put", "--timeout", PUT_TIMEOUT_S, &value]);
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        if out.code != Some(0) {
            // Refused or timed out: not acknowledged, nothing to check.
            continue;
        }
        let key = out.stdout_text().trim().to_ascii_lowercase();
        assert!(is_hex(&key, ID_HEX_LEN), "put printed no key: {out}");
        assert_eq!(key, immutable_key(value.as_bytes()), "{out}");
        s.printed.lock().unwrap().push((key, value));
    }
}

fn kills() -> usize {
    std::env::var("DHT_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KILLS_DEFAULT)
}

#[test]
fn every_put_that_printed_a_key_survives_sigkill_and_restart() {
    let mut c = Cluster::start(1);
    let addr = c.addr(0);
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..kills() {
        let stream = Arc::new(Stream::default());
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (home, s) = (c.home().to_path_buf(), stream.clone());
                thread::spawn(move || writer(home, addr, round, w, s))
            })
            .collect();

        let deadline = Instant::now() + KEYS_TIMEOUT;
        while stream.printed.lock().unwrap().len() < KEYS_BEFORE_KILL
            && Instant::now() < deadline
            && !writers.iter().all(|h| h.is_finished())
        {
            thread::sleep(POLL);
        }
        let printed_before = stream.printed.lock().unwrap().len();
        assert!(
            printed_before >= KEYS_BEFORE_KILL,
            "round {round}: only {printed_before} puts printed a key\n{}",
            c.logs()
        );
        // Spread over the rounds, and varied between runs by the clock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
        let spread = (round as u64 * 157 + nanos / 1000) % KILL_DELAY_MAX.as_millis() as u64;
        thread::sleep(Duration::from_millis(spread));
        let node = c.take(0);
        let pid = node.pid();
        let in_flight = stream.in_flight.load(Ordering::SeqCst);
        // NodeProc::kill sends SIGKILL to this PID and reaps it.
        node.kill();
        stream.killed.store(true, Ordering::SeqCst);
        eprintln!(
            "round {round}: killed node pid {pid} {spread} ms after {printed_before} keys, with \
             {in_flight} puts in flight"
        );
        for h in writers {
            h.join().expect("a writer failed");
        }
        let printed = std::mem::take(&mut *stream.printed.lock().unwrap());
        eprintln!(
            "round {round}: {} puts printed a key ({} of them after the first \
             {KEYS_BEFORE_KILL}, before the kill)",
            printed.len(),
            printed.len() - printed_before
        );
        acknowledged.extend(printed);

        c.restart(0, &addr.to_string(), &[]);
        for (key, value) in &acknowledged {
            let get = c.client(0).run(&["get", key]);
            assert_eq!(
                get.code,
                Some(0),
                "round {round}: an acknowledged put is lost after SIGKILL: {key} ({value:?}): \
                 {get}\n{}",
                c.logs()
            );
            assert_eq!(get.stdout, value.as_bytes(), "round {round}: {key}");
        }
    }
}
