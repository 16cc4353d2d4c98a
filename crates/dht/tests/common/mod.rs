//! Shared harness of the end-to-end tests: `dht node` processes on loopback, one-shot
//! `dht` client commands with a bounded run time, and a libtorrent peer driven through
//! `tests/interop/lt_node.py`.
//!
//! Every child process is owned by a guard that kills it by PID when dropped, so a failed
//! assertion never leaves a node running; every wait has a deadline.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod http;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use dht_node::proto::Id;

/// How long a `dht node` may take to print its startup line (debug build, busy machine).
pub const NODE_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM.
pub const NODE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on one client command (`dht put`, `dht get`, ...): join, act, leave.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);
/// How often a bounded wait re-checks a child process.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Lines of a node's log shown when a test fails.
const LOG_TAIL_LINES: usize = 30;
/// Length of a node ID or key in hex digits.
pub const ID_HEX_LEN: usize = 40;
/// Length of an ed25519 public key or seed in hex digits.
pub const KEY_HEX_LEN: usize = 64;

/// Path of the `dht` binary under test: `DHT_BIN` if set (to run these tests against an
/// installed or release build), else the one Cargo built for these tests.
pub fn dht_bin() -> PathBuf {
    match std::env::var_os("DHT_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_dht")),
    }
}

/// Applies the environment every child gets: no public bootstrap routers (each test
/// passes loopback `--bootstrap` addresses), and a private HOME so nothing lands in the
/// real user's directories.
fn child_env(cmd: &mut Command, home: &Path) {
    cmd.env_remove("DHT_BOOTSTRAP")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"));
}

/// The SHA-1 of `data` in lowercase hex.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Id::sha1(data).0)
}

/// The BEP 44 key of an immutable item whose value is the byte string `value`:
/// SHA-1 of the bencoded string `<len>:<bytes>`.
pub fn immutable_key(value: &[u8]) -> String {
    let mut bencoded = format!("{}:", value.len()).into_bytes();
    bencoded.extend_from_slice(value);
    sha1_hex(&bencoded)
}

/// The BEP 44 target of a mutable item: SHA-1 of the public key followed by the salt.
pub fn mutable_target(public_key_hex: &str, salt: &[u8]) -> String {
    let pk = hex::decode(public_key_hex).expect("public key is hex");
    hex::encode(Id::sha1_parts(&[&pk, salt]).0)
}

/// True when `s` is exactly `len` lowercase or uppercase hex digits.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh temporary directory; removed when the returned guard drops.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir")
}

/// Returns a UDP port on 127.0.0.1 that was free a moment ago (another process may take
/// it before the caller binds; only used where the CLI needs a port number up front).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local addr").port()
}

/// Sends `signal` (a name such as "TERM") to `pid` with kill(1): the test crate has no
/// libc binding, and std can only send SIGKILL.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Waits for `child` to exit, at most `timeout`; `None` if it is still running.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Forwards each line read from `r` into a channel, so the reader can wait with a
/// timeout. The thread ends at end of input or when the receiver is gone.
fn line_channel(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The last `LOG_TAIL_LINES` lines of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        lines[from..].join("\n")
    )
}

/// A running `dht node` process; killed (SIGKILL, by PID) when dropped.
pub struct NodeProc {
    child: Child,
    stdout: Receiver<String>,
    /// The node ID from the startup line, 40 hex digits.
    pub id: String,
    /// The address from the startup line.
    pub addr: SocketAddr,
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// The file that receives the node's stderr (its logs).
    pub log: PathBuf,
}

impl NodeProc {
    /// Starts `dht node --bind <bind> --data-dir <data_dir> --bootstrap <b>...` and waits
    /// for its startup line `node <40-hex-id> listening on <ip:port>`. Panics (after
    /// killing the child) if the line is missing or malformed.
    pub fn start(home: &Path, data_dir: &Path, bind: &str, bootstrap: &[SocketAddr]) -> NodeProc {
        Self::start_with(home, data_dir, bind, bootstrap, &[])
    }

    /// [`NodeProc::start`] with more arguments for `dht node` (flags such as `--rate-limit`).
    pub fn start_with(
        home: &Path,
        data_dir: &Path,
        bind: &str,
        bootstrap: &[SocketAddr],
        extra: &[&str],
    ) -> NodeProc {
        fs::create_dir_all(data_dir).expect("create data dir");
        let log = data_dir.with_extension("log");
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open node log");
        let mut cmd = Command::new(dht_bin());
        cmd.arg("node")
            .arg("--bind")
            .arg(bind)
            .arg("--data-dir")
            .arg(data_dir);
        for b in bootstrap {
            cmd.arg("--bootstrap").arg(b.to_string());
        }
        cmd.args(extra);
        child_env(&mut cmd, home);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "debug");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn dht node");
        let stdout = line_channel(child.stdout.take().expect("stdout piped"));
        let line = match stdout.recv_timeout(NODE_STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dht node printed no startup line within {NODE_STARTUP_TIMEOUT:?} ({e}); \
                     exit: {:?}\n{}",
                    child.try_wait().ok().flatten(),
                    log_tail(&log)
                );
            }
        };
        let Some((id, addr)) = parse_startup_line(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "startup line is not `node <40-hex-id> listening on <ip:port>`: {line:?}\n{}",
                log_tail(&log)
            );
        };
        NodeProc {
            child,
            stdout,
            id,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// The next line the node prints on stdout after its startup line, waiting at most
    /// `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the node vanishes without notice.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit. Returns the exit status and whatever
    /// the node printed on stdout after its startup line.
    pub fn terminate(self) -> (ExitStatus, Vec<String>) {
        self.stop("TERM")
    }

    /// Sends `signal` ("TERM", "INT"), then waits (bounded) for the exit, like
    /// [`NodeProc::terminate`].
    pub fn stop(mut self, signal: &str) -> (ExitStatus, Vec<String>) {
        send_signal(self.child.id(), signal);
        let Some(status) = wait_bounded(&mut self.child, NODE_SHUTDOWN_TIMEOUT) else {
            panic!(
                "dht node (pid {}) still running {NODE_SHUTDOWN_TIMEOUT:?} after SIGTERM\n{}",
                self.child.id(),
                log_tail(&self.log)
            );
        };
        // The reader thread sees end of input once the process is gone.
        let mut extra = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(500)) {
            extra.push(line);
        }
        (status, extra)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses `node <40-hex-id> listening on <ip:port>`; `None` if the line is anything else.
pub fn parse_startup_line(line: &str) -> Option<(String, SocketAddr)> {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["node", id, "listening", "on", addr] if is_hex(id, ID_HEX_LEN) => {
            Some((id.to_string(), addr.parse().ok()?))
        }
        _ => None,
    }
}

/// Several `dht node` processes on 127.0.0.1, each with its own data directory under one
/// temporary directory. Dropping the cluster kills every node still running.
pub struct Cluster {
    /// Running nodes by index; `None` once a test killed or stopped that node.
    pub nodes: Vec<Option<NodeProc>>,
    /// Root of the data directories and logs; also the children's HOME.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes on 127.0.0.1 (ports chosen by the OS): the first alone, every
    /// other one bootstrapping from the first.
    pub fn start(n: usize) -> Cluster {
        let dir = temp_dir("dht-cluster-");
        let mut c = Cluster {
            nodes: Vec::with_capacity(n),
            dir,
        };
        for i in 0..n {
            let bootstrap: Vec<SocketAddr> = if i == 0 { vec![] } else { vec![c.addr(0)] };
            let node = NodeProc::start(c.home(), &c.data_dir(i), "127.0.0.1:0", &bootstrap);
            c.nodes.push(Some(node));
        }
        let ids: Vec<&str> = c.nodes.iter().flatten().map(|n| n.id.as_str()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "nodes share an ID: {ids:?}");
        c
    }

    /// The children's HOME directory.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Data directory of node `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// The running node `i`; panics if it was stopped.
    pub fn node(&self, i: usize) -> &NodeProc {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Address of the running node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.node(i).addr
    }

    /// Removes node `i` from the cluster so the caller can kill or stop it.
    pub fn take(&mut self, i: usize) -> NodeProc {
        self.nodes[i].take().expect("node is running")
    }

    /// Starts node `i` again on its own data directory and the given bind address.
    pub fn restart(&mut self, i: usize, bind: &str, bootstrap: &[SocketAddr]) {
        assert!(self.nodes[i].is_none(), "node {i} is still running");
        let node = NodeProc::start(self.home(), &self.data_dir(i), bind, bootstrap);
        self.nodes[i] = Some(node);
    }

    /// A client command bootstrapping from node `i` only.
    pub fn client(&self, i: usize) -> Client {
        Client::new(self.home()).bootstrap(self.addr(i))
    }

    /// The last log lines of every node, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .flatten()
            .map(|n| log_tail(&n.log))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What a finished client command left: its exit code, stdout and stderr.
#[derive(Debug)]
pub struct Output {
    /// The exit code; `None` if a signal ended the process.
    pub code: Option<i32>,
    /// Raw stdout.
    pub stdout: Vec<u8>,
    /// Stderr as text (lossy).
    pub stderr: String,
    /// The command line, for messages.
    pub cmdline: String,
    /// How long the command ran.
    pub elapsed: Duration,
}

impl Output {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Panics with the whole output unless the command exited 0.
    pub fn assert_success(&self) -> &Output {
        assert_eq!(self.code, Some(0), "command failed: {self}");
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?} after {:?}\nstdout: {:?}\nstderr:\n{}",
            self.cmdline,
            self.code,
            self.elapsed,
            self.stdout_text(),
            self.stderr
        )
    }
}

/// A one-shot `dht` command (put, get, keygen, ...) with loopback bootstrap addresses.
pub struct Client {
    bootstrap: Vec<SocketAddr>,
    home: PathBuf,
    log_filter: Option<String>,
    env: Vec<(String, String)>,
}

impl Client {
    /// A client with no bootstrap address yet; `home` becomes the child's HOME.
    pub fn new(home: &Path) -> Client {
        Client {
            bootstrap: Vec::new(),
            home: home.to_path_buf(),
            log_filter: None,
            env: Vec::new(),
        }
    }

    /// Adds a `--bootstrap` address.
    pub fn bootstrap(mut self, addr: SocketAddr) -> Client {
        self.bootstrap.push(addr);
        self
    }

    /// Sets RUST_LOG for the child ("off" where a test counts the lines of stderr).
    pub fn log_filter(mut self, filter: &str) -> Client {
        self.log_filter = Some(filter.to_string());
        self
    }

    /// Sets an environment variable for the child (e.g. `DHT_BOOTSTRAP`, which the
    /// harness otherwise removes).
    pub fn env(mut self, key: &str, value: &str) -> Client {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs `dht <args> --bootstrap ...` with no stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs `dht <args> --bootstrap ...`, feeding `stdin` if given, and waits at most
    /// `CLIENT_TIMEOUT`; a command still running then is killed and the test fails.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for b in &self.bootstrap {
            all.push("--bootstrap".into());
            all.push(b.to_string());
        }
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_dht_env(&self.home, &all, stdin, self.log_filter.as_deref(), &env)
    }
}

/// Runs the `dht` binary with `args` exactly as given, bounded by `CLIENT_TIMEOUT`.
pub fn run_dht(home: &Path, args: &[String], stdin: Option<&[u8]>, log: Option<&str>) -> Output {
    run_dht_env(home, args, stdin, log, &[])
}

/// [`run_dht`] with extra environment variables for the child.
pub fn run_dht_env(
    home: &Path,
    args: &[String],
    stdin: Option<&[u8]>,
    log: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let cmdline = format!("dht {}", args.join(" "));
    let mut cmd = Command::new(dht_bin());
    cmd.args(args);
    child_env(&mut cmd, home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    match (log, std::env::var_os("RUST_LOG")) {
        (Some(filter), _) => {
            cmd.env("RUST_LOG", filter);
        }
        (None, None) => {
            cmd.env("RUST_LOG", "warn");
        }
        (None, Some(_)) => {}
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dht");
    let stdin_writer = stdin.map(|data| {
        let mut pipe: ChildStdin = child.stdin.take().expect("stdin piped");
        let data = data.to_vec();
        // Written from a thread so a child that does not read stdin cannot block us.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out_reader = read_all_in_thread(child.stdout.take().expect("stdout piped"));
    let err_reader = read_all_in_thread(child.stderr.take().expect("stderr piped"));
    let status = wait_bounded(&mut child, CLIENT_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if let Some(w) = stdin_writer {
        let _ = w.join();
    }
    let elapsed = start.elapsed();
    let Some(status) = status else {
        panic!(
            "`{cmdline}` still running after {CLIENT_TIMEOUT:?}; killed it\nstdout: {:?}\n\
             stderr:\n{stderr}",
            String::from_utf8_lossy(&stdout)
        );
    };
    eprintln!("ran `{cmdline}` in {elapsed:?}: exit {:?}", status.code());
    Output {
        code: status.code(),
        stdout,
        stderr,
        cmdline,
        elapsed,
    }
}

fn read_all_in_thread(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

// --- libtorrent -----------------------------------------------------------------------

/// Upper bound on one libtorrent command's own wait, in seconds, passed to lt_node.py.
pub const LT_COMMAND_TIMEOUT_S: u64 = 20;
/// How long the harness waits for lt_node.py's reply beyond the command's own timeout.
const LT_REPLY_MARGIN: Duration = Duration::from_secs(10);
/// How long lt_node.py may live in total; it exits by itself afterwards.
const LT_MAX_SECONDS: u64 = 240;
/// Exit status of lt_node.py when `import libtorrent` fails.
const LT_EXIT_NO_LIBTORRENT: i32 = 3;

/// The Python interpreter that sees Debian's python3-libtorrent: `DHT_PYTHON` if set,
/// else /usr/bin/python3 (a `python3` on PATH may be a pyenv build without it).
pub fn python() -> String {
    if let Some(p) = std::env::var_os("DHT_PYTHON") {
        return p.to_string_lossy().into_owned();
    }
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".into()
    } else {
        "python3".into()
    }
}

/// Path of the libtorrent driver script.
pub fn lt_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_node.py")
}

/// True when the test must fail rather than skip without libtorrent (CI sets
/// `DHT_REQUIRE_LIBTORRENT=1`).
fn libtorrent_required() -> bool {
    matches!(std::env::var("DHT_REQUIRE_LIBTORRENT"), Ok(v) if !v.is_empty() && v != "0")
}

/// Checks that Python can import libtorrent. Returns false, after printing a loud SKIPPED
/// line, when it cannot and `DHT_REQUIRE_LIBTORRENT` is unset; panics when it is set.
pub fn libtorrent_available() -> bool {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import libtorrent; print(libtorrent.__version__)"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => {
            eprintln!(
                "libtorrent {} via {py}",
                String::from_utf8_lossy(&o.stdout).trim()
            );
            return true;
        }
        // The last line of a Python traceback names the error.
        Ok(o) => format!(
            "{py} cannot import libtorrent: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no error message")
        ),
        Err(e) => format!("cannot run {py}: {e}"),
    };
    if libtorrent_required() {
        panic!("DHT_REQUIRE_LIBTORRENT is set but libtorrent is not available: {why}");
    }
    eprintln!(
        "SKIPPED: libtorrent not available (set DHT_REQUIRE_LIBTORRENT=1 to fail instead): {why}"
    );
    false
}

/// A libtorrent session in a `lt_node.py` process, driven by JSON lines; killed by PID
/// when dropped.
pub struct LtNode {
    child: Child,
    stdin: ChildStdin,
    stdout: Receiver<String>,
    /// The session's UDP (DHT) and TCP listen port on 127.0.0.1.
    pub port: u16,
    /// The session's DHT node ID in hex, if libtorrent reported it.
    pub node_id: Option<String>,
    /// The file that receives the script's stderr.
    pub log: PathBuf,
}

impl LtNode {
    /// Starts a libtorrent session on 127.0.0.1 that bootstraps from `bootstrap`.
    pub fn start(log_dir: &Path, name: &str, bootstrap: &[SocketAddr]) -> LtNode {
        let log = log_dir.join(format!("{name}.log"));
        let log_file = fs::File::create(&log).expect("create lt log");
        let mut cmd = Command::new(python());
        cmd.arg(lt_script())
            .arg("--max-seconds")
            .arg(LT_MAX_SECONDS.to_string());
        if std::env::var_os("DHT_LT_VERBOSE").is_some() {
            cmd.arg("--verbose");
        }
        for b in bootstrap {
            cmd.arg("--bootstrap").arg(b.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn lt_node.py");
        let stdin = child.stdin.take().expect("stdin piped");
        let stdout = line_channel(child.stdout.take().expect("stdout piped"));
        let ready = match stdout.recv_timeout(NODE_STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                if status.and_then(|s| s.code()) == Some(LT_EXIT_NO_LIBTORRENT) {
                    panic!("lt_node.py cannot import libtorrent\n{}", log_tail(&log));
                }
                panic!(
                    "lt_node.py did not start ({e}), exit {status:?}\n{}",
                    log_tail(&log)
                );
            }
        };
        let v: serde_json::Value = serde_json::from_str(&ready).expect("ready line is JSON");
        let port = v["port"].as_u64().expect("ready line has a port") as u16;
        assert_ne!(port, 0, "libtorrent did not open its socket: {ready}");
        LtNode {
            child,
            stdin,
            stdout,
            port,
            node_id: v["node_id"].as_str().map(str::to_string),
            log,
        }
    }

    /// The session's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends one command and returns the reply; panics if the script reports an error
    /// or does not answer in time.
    pub fn cmd(&mut self, mut command: serde_json::Value) -> serde_json::Value {
        command["timeout"] = LT_COMMAND_TIMEOUT_S.into();
        let line = command.to_string();
        let start = Instant::now();
        writeln!(self.stdin, "{line}").expect("write to lt_node.py");
        self.stdin.flush().expect("flush lt_node.py stdin");
        let wait = Duration::from_secs(LT_COMMAND_TIMEOUT_S) + LT_REPLY_MARGIN;
        let reply = match self.stdout.recv_timeout(wait) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "lt_node.py gave no reply to {line} in {wait:?}\n{}",
                    log_tail(&self.log)
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("lt_node.py exited during {line}\n{}", log_tail(&self.log))
            }
        };
        eprintln!("libtorrent {line} -> {reply} in {:?}", start.elapsed());
        let v: serde_json::Value = serde_json::from_str(&reply).expect("reply is JSON");
        assert_eq!(v["ok"], true, "libtorrent command {line} failed: {reply}");
        v
    }
}

impl Drop for LtNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
