//! The HTTP side of the harness: a blocking HTTP/1.1 client for the API on loopback, and a
//! `dht devnet --http` process guard.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::{child_env, dht_bin, line_channel, send_signal, wait_bounded, NODE_SHUTDOWN_TIMEOUT};

/// How long one request may take: a lookup or put in a debug build on a busy machine.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a devnet may take to settle and print its URL.
pub const DEVNET_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The Content-Type header, lowercased ("" if none).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The `error` message of a JSON error answer; panics if there is none.
    pub fn error(&self) -> String {
        let j = self.json();
        j.get("error")
            .and_then(|e| e.as_str())
            .unwrap_or_else(|| panic!("no \"error\" in {j}"))
            .to_string()
    }
}

/// The address of a base URL `http://ip:port/`.
pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("not http://ip:port/: {url:?} ({e})"))
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn request(base: &str, method: &str, path: &str, body: Option<&[u8]>) -> Response {
    let addr = addr_of(base);
    assert!(addr.ip().is_loopback(), "tests talk to loopback only");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    let body = body.unwrap_or(b"");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading all of a large body and close: that is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        // A reset after a complete early answer still leaves the answer in `raw`.
        assert!(
            !raw.is_empty(),
            "{method} {path}: reading the answer failed: {e}"
        );
    }
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {path}: bad answer {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// `GET path`.
pub fn get(base: &str, path: &str) -> Response {
    request(base, "GET", path, None)
}

fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut content_type = String::new();
    let mut chunked = false;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_ascii_lowercase(),
            "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        content_type,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    // Each chunk is at least its size line, so the loop ends within b.len() rounds.
    for _ in 0..=b.len() {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
    None
}

/// A running `dht devnet --http 127.0.0.1:0`; killed (by PID) when dropped.
pub struct DevnetProc {
    child: Child,
    stdout: Receiver<String>,
    /// The API's base URL, `http://127.0.0.1:PORT/`.
    pub url: String,
    /// What it printed up to "serving until Ctrl-C".
    pub lines: Vec<String>,
}

impl DevnetProc {
    /// Starts a devnet of `nodes` nodes whose demonstration makes `puts` puts, and waits until
    /// it serves.
    pub fn start(home: &Path, nodes: usize, puts: usize) -> DevnetProc {
        let mut cmd = Command::new(dht_bin());
        cmd.args(["devnet", "--http", "127.0.0.1:0", "--nodes"])
            .arg(nodes.to_string())
            .arg("--puts")
            .arg(puts.to_string());
        child_env(&mut cmd, home);
        cmd.env("RUST_LOG", "warn");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dht devnet");
        let stdout = line_channel(child.stdout.take().expect("stdout piped"));
        let deadline = Instant::now() + DEVNET_STARTUP_TIMEOUT;
        let mut lines = Vec::new();
        let mut url = None;
        while Instant::now() < deadline {
            let Ok(line) = stdout.recv_timeout(deadline - Instant::now()) else {
                break;
            };
            if let Some(rest) = line.strip_prefix("http api on ") {
                url = rest.split_whitespace().next().map(str::to_string);
            }
            let done = line == "serving until Ctrl-C";
            lines.push(line);
            if done {
                break;
            }
        }
        let serving = lines.last().map(String::as_str) == Some("serving until Ctrl-C");
        let Some(url) = url.filter(|_| serving) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dht devnet --http did not start serving: {lines:?}");
        };
        DevnetProc {
            child,
            stdout,
            url,
            lines,
        }
    }

    /// SIGINT, then waits (bounded) for the exit.
    pub fn interrupt(mut self) -> ExitStatus {
        send_signal(self.child.id(), "INT");
        let status = wait_bounded(&mut self.child, NODE_SHUTDOWN_TIMEOUT);
        while self.stdout.try_recv().is_ok() {}
        status.unwrap_or_else(|| panic!("dht devnet still running after SIGINT"))
    }
}

impl Drop for DevnetProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
