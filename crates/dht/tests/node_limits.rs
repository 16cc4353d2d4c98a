//! `dht node`'s flood limits as a user meets them: a burst of pings from one address is
//! answered up to the per-source limit and no further (`--rate-limit`, `--limit-local`,
//! `--upload-limit`), from loopback and, in a network namespace of our own, from a
//! public-looking address with the default settings.
//!
//! The namespace test needs root and `ip` (iproute2). Without them it is skipped with a notice
//! on stderr; with `DHT_REQUIRE_NETNS=1` (set by `.ci/run`) a missing namespace fails it.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{temp_dir, NodeProc};

/// Pings sent in one burst.
const BURST_SENT: usize = 200;
/// How long to wait for the answers to a burst.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// A KRPC ping with a four-byte transaction ID.
fn ping(tid: u32) -> Vec<u8> {
    let mut m = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t4:".to_vec();
    m.extend_from_slice(&tid.to_be_bytes());
    m.extend_from_slice(b"1:y1:qe");
    m
}

/// Sends `BURST_SENT` pings from `socket` to `node` at once and counts the answers.
fn burst(socket: &UdpSocket, node: SocketAddr) -> usize {
    for tid in 0..BURST_SENT as u32 {
        socket.send_to(&ping(tid), node).expect("send");
    }
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut answers = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline && answers < BURST_SENT {
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            if from == node && buf[..len].windows(6).any(|w| w == b"1:y1:r") {
                answers += 1;
            }
        }
    }
    answers
}

/// Starts a node on loopback with `extra` flags (bootstrapping from nowhere, so the only
/// traffic is ours) and returns the number of answers to one burst.
fn loopback_answers(extra: &[&str]) -> usize {
    let home = temp_dir("limits");
    let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let node = NodeProc::start_with(
        home.path(),
        &home.path().join("data"),
        "127.0.0.1:0",
        &[dead],
        extra,
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = burst(&socket, node.addr);
    node.kill();
    n
}

#[test]
fn loopback_is_exempt_by_default_and_limited_with_limit_local() {
    assert_eq!(loopback_answers(&[]), BURST_SENT, "loopback is exempt");
    // Five a second, ten seconds' worth at once.
    assert_eq!(loopback_answers(&["--limit-local"]), 50);
    assert_eq!(
        loopback_answers(&["--limit-local", "--rate-limit", "2"]),
        20
    );
    // 0 turns the per-source limit off; the upload limit then bounds the answers, unless it
    // is off too.
    let capped = loopback_answers(&[
        "--limit-local",
        "--rate-limit",
        "0",
        "--upload-limit",
        "3000",
    ]);
    assert!(
        capped < BURST_SENT && capped > 10,
        "{capped} answers under 3,000 B/s"
    );
    assert_eq!(
        loopback_answers(&["--limit-local", "--rate-limit", "0", "--upload-limit", "0"]),
        BURST_SENT
    );
}

/// A network namespace with one veth pair, removed when dropped.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    /// The host side gets `198.51.100.1/24` (a documentation range: public-looking, and
    /// routed nowhere), the namespace side `198.51.100.2/24`.
    fn create() -> Result<Netns, String> {
        let tag = std::process::id() % 100_000;
        let ns = Netns {
            name: format!("dhtlim{tag}"),
            host_if: format!("dlh{tag}"),
        };
        let peer_if = format!("dln{tag}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.name.clone()],
            vec![
                "link".into(),
                "add".into(),
                ns.host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer_if.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                peer_if.clone(),
                "netns".into(),
                ns.name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                "198.51.100.1/24".into(),
                "dev".into(),
                ns.host_if.clone(),
            ],
            vec!["link".into(), "set".into(), ns.host_if.clone(), "up".into()],
            ns.exec_args(&["ip", "addr", "add", "198.51.100.2/24", "dev", &peer_if]),
            ns.exec_args(&["ip", "link", "set", &peer_if, "up"]),
            ns.exec_args(&["ip", "link", "set", "lo", "up"]),
        ];
        for args in steps {
            let out = Command::new("ip")
                .args(&args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(ns)
    }

    fn exec_args(&self, cmd: &[&str]) -> Vec<String> {
        let mut v = vec!["netns".to_string(), "exec".into(), self.name.clone()];
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Python that sends the burst from inside the namespace and prints how many were answered.
const SENDER: &str = r#"
import socket, sys, time
node = (sys.argv[1], int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.2", 0))
for tid in range(200):
    s.sendto(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t4:" + tid.to_bytes(4, "big") + b"1:y1:qe", node)
s.settimeout(0.2)
answers, deadline = 0, time.time() + 3
while time.time() < deadline and answers < 200:
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        continue
    if src == node and b"1:y1:r" in data:
        answers += 1
print(answers)
"#;

#[test]
fn a_node_with_default_settings_answers_a_public_address_burst_within_its_limit() {
    let required = std::env::var("DHT_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) if !required => {
            eprintln!(
                "SKIPPED a_node_with_default_settings_answers_a_public_address_burst_within_its_limit: \
                 no network namespace ({e}); set DHT_REQUIRE_NETNS=1 to make this a failure"
            );
            return;
        }
        Err(e) => panic!("DHT_REQUIRE_NETNS=1 but no network namespace: {e}"),
    };
    let home = temp_dir("limits-ns");
    let dead: SocketAddr = "198.51.100.1:9".parse().unwrap();
    let node = NodeProc::start_with(
        home.path(),
        &home.path().join("data"),
        "198.51.100.1:0",
        &[dead],
        &[],
    );
    let out = Command::new("ip")
        .args(ns.exec_args(&[
            &common::python(),
            "-c",
            SENDER,
            &node.addr.ip().to_string(),
            &node.addr.port().to_string(),
        ]))
        .output()
        .expect("run the sender in the namespace");
    node.kill();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sender failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: usize = text.trim().parse().expect("a count");
    assert_eq!(answers, 50, "the default burst of 50, then nothing");
}
