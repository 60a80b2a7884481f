//! Shared by the end-to-end tests: generate a connector crate under `target/e2e/<test>/`,
//! build it into one target dir shared by every e2e crate (so dependencies compile once),
//! run its server and speak HTTP/1.1 to it.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod fake_connector;
pub mod formance;
pub mod initiate;
pub mod mock_bank;
pub mod mock_cursor;
pub mod mock_http;
pub mod mock_pages;
pub mod mock_wallets;
pub mod postgres;
pub mod sync_check;

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const API_KEY: &str = "e2e-secret-key";
/// What the upstream base URL variable is set to; nothing listens there.
pub const UPSTREAM_URL: &str = "http://127.0.0.1:9";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The published spec versions, oldest first.
pub fn spec_history() -> Vec<PathBuf> {
    let dir = workspace().join("tests/fixtures/spec-history");
    let mut specs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    specs.sort();
    specs
}

pub fn spec_fixture(prefix: &str) -> PathBuf {
    spec_history()
        .into_iter()
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .unwrap_or_else(|| panic!("no spec fixture starting with {prefix}"))
}

/// The outcome of a finished command, printable in assertion messages.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(command: &mut Command) -> Run {
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn connector_gen<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    Run::of(Command::new(env!("CARGO_BIN_EXE_connector-gen")).args(args))
}

/// A connector crate at `target/e2e/<test>/crate`, inside a one-member wrapper workspace
/// (otherwise cargo would take /work/main's workspace as its root and refuse the crate).
pub struct TestCrate {
    pub name: String,
    pub dir: PathBuf,
    wrapper: PathBuf,
}

impl TestCrate {
    /// A fresh wrapper with no crate directory yet (for `connector-gen new`).
    pub fn empty(test: &str, name: &str) -> TestCrate {
        let wrapper = workspace().join("target/e2e").join(test);
        if wrapper.exists() {
            fs::remove_dir_all(&wrapper).unwrap();
        }
        fs::create_dir_all(&wrapper).unwrap();
        fs::write(
            wrapper.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crate\"]\nresolver = \"3\"\n",
        )
        .unwrap();
        // Same versions as the main workspace: all already downloaded, builds stay offline.
        fs::copy(workspace().join("Cargo.lock"), wrapper.join("Cargo.lock")).unwrap();
        TestCrate {
            name: name.to_owned(),
            dir: wrapper.join("crate"),
            wrapper,
        }
    }

    /// A fresh wrapper whose crate directory holds only a minimal-style connector.yaml.
    pub fn new(test: &str, name: &str) -> TestCrate {
        let krate = TestCrate::empty(test, name);
        let mapping = format!(
            "version: 1\nname: {name}\nupstream:\n  base_url: ${{env:{}}}\n",
            krate.base_url_env()
        );
        krate.write("connector.yaml", &mapping);
        krate
    }

    /// `generated-examples/<example>`'s connector.yaml (passed through `edit`) and user files
    /// in a fresh wrapper, as crate `name`, generated anew (not built).
    pub fn from_example(
        test: &str,
        example: &str,
        name: &str,
        edit: impl Fn(String) -> String,
    ) -> TestCrate {
        let source = workspace().join("generated-examples").join(example);
        let krate = TestCrate::empty(test, name);
        for file in [
            "connector.yaml",
            "src/handlers.rs",
            "src/main.rs",
            "src/lib.rs",
        ] {
            let path = source.join(file);
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let text = match file {
                "connector.yaml" => edit(text),
                _ => text.replace(&format!("{example}::"), &format!("{name}::")),
            };
            krate.write(file, &text);
        }
        krate.generate(None, &[]).assert_code(0);
        krate
    }

    /// The upstream variable connector-gen derives from the name (`acme-bank` -> `ACME_BANK_BASE_URL`).
    pub fn base_url_env(&self) -> String {
        format!("{}_BASE_URL", self.name.to_uppercase().replace('-', "_"))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    pub fn read(&self, relative: &str) -> String {
        let path = self.path(relative);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// `connector-gen generate --mapping <crate>/connector.yaml [--spec SPEC] FLAGS...`
    pub fn generate(&self, spec: Option<&Path>, flags: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_connector-gen"));
        command
            .arg("generate")
            .arg("--mapping")
            .arg(self.path("connector.yaml"));
        if let Some(spec) = spec {
            command.arg("--spec").arg(spec);
        }
        Run::of(command.args(flags))
    }

    /// Builds the crate into the shared e2e target dir and returns its binary.
    pub fn build(&self) -> PathBuf {
        self.build_with_features(&[])
    }

    /// Builds the crate with these cargo features besides its defaults.
    pub fn build_with_features(&self, features: &[&str]) -> PathBuf {
        let target = workspace().join("target/e2e-target");
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--offline", "--quiet"])
            .current_dir(&self.wrapper)
            .env("CARGO_TARGET_DIR", &target)
            // Throwaway crates: no incremental caches or debug info to fill CI's disk.
            .env("CARGO_INCREMENTAL", "0")
            .env("CARGO_PROFILE_DEV_DEBUG", "0");
        if !features.is_empty() {
            command.arg("--features").arg(features.join(","));
        }
        let run = Run::of(&mut command);
        assert_eq!(
            run.code,
            Some(0),
            "cargo build of {} failed\n{run}",
            self.name
        );
        target.join("debug").join(&self.name)
    }

    /// The server's environment: everything it requires, set to test values.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![(self.base_url_env(), UPSTREAM_URL.to_owned())]
    }
}

/// Everything a child process wrote to stderr, and whether the stream has closed.
#[derive(Default)]
struct Logs {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

/// A child process whose stderr is drained by a thread, so the pipe never fills up.
pub struct Process {
    child: Child,
    logs: Arc<Logs>,
}

impl Process {
    pub fn spawn(command: &mut Command) -> Process {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Logs::default());
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                sink.state.lock().unwrap().0 += &String::from_utf8_lossy(&line);
                sink.changed.notify_all();
                line.clear();
            }
            sink.state.lock().unwrap().1 = true;
            sink.changed.notify_all();
        });
        Process { child, logs }
    }

    pub fn logs(&self) -> String {
        self.logs.state.lock().unwrap().0.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `find(logs, stderr_closed)` gives an answer; None after `timeout`, or
    /// once stderr has closed (the process exited) without one.
    fn wait_for<T>(&self, timeout: Duration, find: impl Fn(&str, bool) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.logs.state.lock().unwrap();
        loop {
            if let Some(found) = find(&state.0, state.1) {
                return Some(found);
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                return None;
            }
            state = self
                .logs
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits for the process to exit on its own (its stderr closes when it does).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let closed = self.wait_for(EXIT_TIMEOUT, |_, closed| closed.then_some(()));
        assert!(
            closed.is_some(),
            "process {} did not exit within {EXIT_TIMEOUT:?}; logs:\n{}",
            self.pid(),
            self.logs()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SQLite initiation store of its own for a server (under `target/e2e/stores/`), so that
/// servers never share one by accident; tests that want to share pass `CONNECTOR_STORE`.
pub fn fresh_store_path() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = workspace().join("target/e2e/stores");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}.sqlite3", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path.display().to_string()
}

/// A running connector server on a loopback port chosen by the OS.
pub struct Server {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `binary` with the API key, an ephemeral port, and `env` on top.
    pub fn start(binary: &Path, env: &[(String, String)]) -> Server {
        let mut command = Command::new(binary);
        command
            .env("CONNECTOR_STORE", fresh_store_path())
            .env_remove("DATABASE_URL")
            .env("CONNECTOR_API_KEY", API_KEY)
            .env("CONNECTOR_LISTEN", "127.0.0.1:0")
            .env("CONNECTOR_LOG", "info")
            .env_remove("CONNECTOR_LOG_FORMAT")
            .env_remove("CONNECTOR_BODY_LIMIT")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn(&mut command);
        let addr = process
            .wait_for(START_TIMEOUT, |logs, _| listening_address(logs))
            .unwrap_or_else(|| {
                panic!(
                    "{} did not log `connector listening address=...` (exited or timed out); logs:\n{}",
                    binary.display(),
                    process.logs()
                )
            });
        Server { process, addr }
    }

    pub fn request(&self, method: &str, path: &str) -> Request {
        Request {
            addr: self.addr,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An authenticated GET.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path).auth().send()
    }

    /// An authenticated POST of a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path).auth().json(body).send()
    }
}

fn listening_address(logs: &str) -> Option<SocketAddr> {
    let line = logs
        .lines()
        .find(|line| line.contains("connector listening"))?;
    let (_, rest) = line.split_once("address=")?;
    rest.split_whitespace().next()?.parse().ok()
}

pub struct Request {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn auth(self) -> Request {
        self.header("Authorization", &format!("Bearer {API_KEY}"))
    }

    pub fn json(self, body: &Value) -> Request {
        self.header("Content-Type", "application/json")
            .body(body.to_string())
    }

    /// Sent as given; with a `Transfer-Encoding` header the caller encodes the chunks.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn send(self) -> Response {
        let mut raw = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.addr
        );
        for (name, value) in &self.headers {
            raw += &format!("{name}: {value}\r\n");
        }
        let chunked = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("transfer-encoding"));
        if !chunked && (!self.body.is_empty() || self.method == "POST") {
            raw += &format!("Content-Length: {}\r\n", self.body.len());
        }
        raw += "\r\n";
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(&self.body);

        let mut stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.addr));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        // The server may answer (413) and close before reading everything; its answer is
        // what matters, so a failed write is not an error by itself.
        let _ = stream.write_all(&bytes);
        let mut received = Vec::new();
        if let Err(error) = stream.read_to_end(&mut received) {
            let reset = matches!(
                error.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            );
            assert!(
                reset && !received.is_empty(),
                "reading the answer to {} {}: {error}",
                self.method,
                self.path
            );
        }
        Response::parse(&received).unwrap_or_else(|why| {
            panic!(
                "{} {}: bad response ({why}): {received:?}",
                self.method, self.path
            )
        })
    }
}

pub fn chunked(body: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut encoded = Vec::new();
    for chunk in body.chunks(chunk_size) {
        encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    encoded
}

pub struct Response {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn parse(raw: &[u8]) -> Result<Response, String> {
        let end = find(raw, b"\r\n\r\n").ok_or("no end of head")?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or(format!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or(format!("bad header {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let rest = &raw[end + 4..];
        response.body = if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            dechunk(rest)?
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().map_err(|_| "bad content-length")?;
            rest.get(..length)
                .ok_or("body shorter than content-length")?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(response)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, which must also be declared as such.
    #[track_caller]
    pub fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "not declared as JSON: {self:?}"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (name, value) in &self.headers {
            write!(f, "\n{name}: {value}")?;
        }
        write!(f, "\n\n{}", self.text())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("unterminated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// Checks an error answer: the status, a JSON `{"Title", "Detail"}` body with the status's
/// reason as the title; returns the detail.
#[track_caller]
pub fn error_detail(response: &Response, status: u16) -> String {
    assert_eq!(response.status, status, "{response:?}");
    let body = response.json();
    let mut keys: Vec<&str> = body
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["Detail", "Title"], "{response:?}");
    let title = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => panic!("no title known for {status}"),
    };
    assert_eq!(body["Title"], title, "{response:?}");
    body["Detail"].as_str().unwrap().to_owned()
}

/// Sends SIGTERM.
pub fn terminate(process: &Process) {
    let run = Run::of(Command::new("kill").args(["-TERM", &process.pid().to_string()]));
    run.assert_code(0);
}
