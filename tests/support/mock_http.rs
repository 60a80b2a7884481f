//! A tiny threaded HTTP/1.1 server on std, for mock upstream APIs in tests, plus the plumbing
//! the mocks share (a seeded PRNG, call counting, fault injection, URL and base64 codecs).
//!
//! One thread accepts connections on `127.0.0.1:0`; each connection gets its own thread,
//! serving requests one after the other (keep-alive, pipelining, `Connection: close`,
//! `Content-Length` and chunked request bodies, `Expect: 100-continue`). Malformed requests are
//! answered `400` and the connection is closed; a panicking handler is answered `500`. The
//! server stops when dropped: every thread is joined, each within a bounded time.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Limits that keep every loop bounded.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
/// How often a blocked read wakes up to look at the stop flag.
const POLL: Duration = Duration::from_millis(25);
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request must arrive completely within this long once it has started.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Locks a mutex, ignoring poisoning (a panicking test thread must not cascade).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Request and response
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct Request {
    /// As sent (`GET`, `POST`, ...).
    pub method: String,
    /// The percent-decoded path, without the query (`+` is kept as is in paths).
    pub path: String,
    /// The query string's pairs in order, percent-decoded, `+` decoded as a space.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The raw request-target (`/v1/accounts?limit=3`), for tests that check the encoding.
    pub target: String,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter of that name (exact, after decoding).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path split on `/`, each segment percent-decoded (so `%2F` stays inside a segment).
    /// `/v1/accounts/acct_1/balance` gives `["v1", "accounts", "acct_1", "balance"]`.
    pub fn segments(&self) -> Vec<String> {
        let raw = self.target.split('?').next().unwrap_or("");
        let raw = strip_authority(raw);
        raw.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false).unwrap_or_else(|| s.to_owned()))
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as `application/x-www-form-urlencoded` pairs (None if malformed).
    pub fn form(&self) -> Option<Vec<(String, String)>> {
        parse_query(std::str::from_utf8(&self.body).ok()?)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// `(user, password)` of `Authorization: Basic <base64>`.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Extra headers; `Content-Length` and `Connection` are written by the server.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, body: &Value) -> Response {
        Response::new(status)
            .with_header("Content-Type", "application/json")
            .with_body(body.to_string())
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

struct Shared {
    handler: Handler,
    stop: AtomicBool,
    requests: AtomicUsize,
    connections: AtomicUsize,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl MockServer {
    pub fn start(handler: Handler) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            handler,
            stop: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            workers: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("mock-http-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn the accept thread");
        MockServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// A server answering every request with `handler`, from a plain closure.
    pub fn from_fn(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> MockServer {
        MockServer::start(Arc::new(handler))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far (every request, including 400s for malformed ones).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (shows whether clients reuse connections).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Unblock accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                // EMFILE and friends: back off a little instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let worker_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("mock-http-conn".to_owned())
            .spawn(move || serve_connection(stream, &worker_shared));
        let mut workers = lock(&shared.workers);
        workers.retain(|w| !w.is_finished());
        if let Ok(handle) = spawned {
            workers.push(handle);
        }
    }
}

enum Incoming {
    Request(Box<Request>, bool),
    /// Answer this status (400, 413, 431) and close.
    Bad(u16, String),
    Closed,
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match read_request(&mut stream, &mut buf, shared) {
            Incoming::Request(request, keep_alive) => {
                shared.requests.fetch_add(1, Ordering::SeqCst);
                let response = match catch_unwind(AssertUnwindSafe(|| (shared.handler)(&request))) {
                    Ok(response) => response,
                    Err(panic) => {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "handler panicked".to_owned());
                        Response::text(500, &format!("mock handler panicked: {message}"))
                    }
                };
                let wants_close = response
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let close = !keep_alive || wants_close || shared.stop.load(Ordering::SeqCst);
                if write_response(&mut stream, &request.method, &response, close).is_err() || close
                {
                    break;
                }
            }
            Incoming::Bad(status, message) => {
                shared.requests.fetch_add(1, Ordering::SeqCst);
                let response = Response::text(status, &message);
                if write_response(&mut stream, "GET", &response, true).is_ok() {
                    linger(&mut stream);
                }
                break;
            }
            Incoming::Closed => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// After an error response: stop writing, then discard what the client still sends for a
/// short while, so that closing does not reset the connection before it read the response.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let until = Instant::now() + Duration::from_millis(250);
    let mut sink = [0u8; 8192];
    let mut drained = 0usize;
    while Instant::now() < until && drained < 4 * 1024 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reads more bytes into `buf`. `Ok(false)`: the peer closed, or the server is stopping, or a
/// time limit passed.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared, since: Instant) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let limit = if buf.is_empty() {
                    IDLE_TIMEOUT
                } else {
                    REQUEST_TIMEOUT
                };
                if since.elapsed() > limit {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The index just past the blank line that ends the head, if present.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> Incoming {
    let since = Instant::now();
    // Tolerate empty lines before the request line (RFC 9112 section 2.2).
    let end = loop {
        while buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
            buf.remove(0);
        }
        if let Some(end) = head_end(buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Incoming::Bad(431, "request head too large".to_owned());
        }
        if !fill(stream, buf, shared, since) {
            return Incoming::Closed;
        }
    };
    let head: Vec<u8> = buf.drain(..end).collect();
    let (mut request, version_1_0) = match parse_head(&head) {
        Ok(parsed) => parsed,
        Err(message) => return Incoming::Bad(400, message),
    };

    let connection = request
        .header("connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    let keep_alive = if version_1_0 {
        connection.contains("keep-alive")
    } else {
        !connection.split(',').any(|t| t.trim() == "close")
    };

    let chunked = match request.header("transfer-encoding") {
        None => false,
        Some(te) if te.trim().eq_ignore_ascii_case("chunked") => true,
        Some(te) => return Incoming::Bad(400, format!("unsupported transfer-encoding {te:?}")),
    };
    let lengths: Vec<&str> = request
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [first, rest @ ..] if rest.iter().all(|v| v == first) => {
            if chunked {
                return Incoming::Bad(400, "both content-length and chunked".to_owned());
            }
            if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) || first.len() > 12 {
                return Incoming::Bad(400, format!("bad content-length {first:?}"));
            }
            match first.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => n,
                _ => return Incoming::Bad(413, "body too large".to_owned()),
            }
        }
        _ => return Incoming::Bad(400, "conflicting content-length headers".to_owned()),
    };

    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && (length > 0 || chunked) && buf.is_empty() {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    if chunked {
        match read_chunked(stream, buf, shared, since) {
            Ok(Some(body)) => request.body = body,
            Ok(None) => return Incoming::Closed,
            Err(message) => return Incoming::Bad(400, message),
        }
    } else {
        while buf.len() < length {
            if !fill(stream, buf, shared, since) {
                return Incoming::Closed;
            }
        }
        request.body = buf.drain(..length).collect();
    }
    Incoming::Request(Box::new(request), keep_alive)
}

/// Reads one line (without its CRLF) from `buf`, filling as needed.
fn take_line(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
    since: Instant,
) -> Result<Option<Vec<u8>>, String> {
    loop {
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
        if buf.len() > MAX_HEAD {
            return Err("chunk line too long".to_owned());
        }
        if !fill(stream, buf, shared, since) {
            return Ok(None);
        }
    }
}

fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
    since: Instant,
) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line) = take_line(stream, buf, shared, since)? else {
            return Ok(None);
        };
        let line = String::from_utf8(line).map_err(|_| "bad chunk size line".to_owned())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        if size_text.is_empty() || size_text.len() > 8 {
            return Err(format!("bad chunk size {size_text:?}"));
        }
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            for _ in 0..100 {
                match take_line(stream, buf, shared, since)? {
                    None => return Ok(None),
                    Some(l) if l.is_empty() => return Ok(Some(body)),
                    Some(_) => {}
                }
            }
            return Err("too many trailers".to_owned());
        }
        if body.len() + size > MAX_BODY {
            return Err("body too large".to_owned());
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf, shared, since) {
                return Ok(None);
            }
        }
        body.extend(buf.drain(..size));
        let crlf: Vec<u8> = buf.drain(..2).collect();
        if crlf != b"\r\n" {
            return Err("chunk not followed by CRLF".to_owned());
        }
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Strips `http://host` from an absolute-form target.
fn strip_authority(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    target
}

/// Parses the request line and headers. Returns the request and whether it is HTTP/1.0.
fn parse_head(head: &[u8]) -> Result<(Request, bool), String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_owned())?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    if method.is_empty() || !method.chars().all(is_token_char) {
        return Err(format!("malformed method {method:?}"));
    }
    let version_1_0 = match *version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(format!("unsupported version {version:?}")),
    };
    let origin = strip_authority(target);
    if !(origin.starts_with('/') || (origin == "*" && *method == "OPTIONS")) {
        return Err(format!("malformed request target {target:?}"));
    }
    let (raw_path, raw_query) = origin.split_once('?').unwrap_or((origin, ""));
    let raw_query = raw_query.split('#').next().unwrap_or("");
    let path = percent_decode(raw_path, false).ok_or("malformed percent-encoding in path")?;
    let query = parse_query(raw_query).ok_or("malformed percent-encoding in query")?;

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            return Err("obsolete header line folding".to_owned());
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(format!("malformed header name {name:?}"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    if !version_1_0 && !headers.iter().any(|(k, _)| k == "host") {
        return Err("HTTP/1.1 request without Host".to_owned());
    }
    Ok((
        Request {
            method: (*method).to_owned(),
            path,
            query,
            headers,
            body: Vec::new(),
            target: (*target).to_owned(),
        },
        version_1_0,
    ))
}

fn write_response(
    stream: &mut TcpStream,
    method: &str,
    response: &Response,
    close: bool,
) -> std::io::Result<()> {
    let status = response.status;
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in &response.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            continue;
        }
        // Never let a handler's value break the framing.
        let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
    if !bodiless {
        out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !bodiless && method != "HEAD" {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

// ---------------------------------------------------------------------------------------------
// URL and base64 codecs
// ---------------------------------------------------------------------------------------------

/// Percent-decodes `text`; with `plus_as_space`, `+` decodes to a space (query strings and
/// forms). None on a malformed escape (`%zz`, `%4`) or a result that is not UTF-8.
pub fn percent_decode(text: &str, plus_as_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes everything but unreserved characters (`A-Z a-z 0-9 - . _ ~`), as `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses `a=1&b=x+y&c` into pairs (`c` gets an empty value; empty segments are skipped).
pub fn parse_query(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(key, true)?, percent_decode(value, true)?));
    }
    Some(pairs)
}

/// Builds `a=1&b=x%20y` from pairs.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with optional padding. None when malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Shared mock plumbing
// ---------------------------------------------------------------------------------------------

/// xorshift64*: small, deterministic, good enough for seeding test data.
#[derive(Clone, Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        // splitmix64 of the seed, so that seeds 0, 1, 2 give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Prng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Prng::below(0)");
        self.next_u64() % n
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi, "Prng::range({lo}, {hi})");
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn hex(&mut self, digits: usize) -> String {
        (0..digits)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap())
            .collect()
    }

    /// A random version-4-shaped UUID (lower-case hex).
    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.pick(&['8', '9', 'a', 'b']),
            self.hex(3),
            self.hex(12)
        )
    }
}

/// FNV-1a, for deterministic per-record derivations.
pub fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// One request a mock received, with the status it answered.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub status: u16,
    /// The W3C `traceparent` header, when the request carried one.
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug)]
struct Fault {
    prefix: String,
    every: usize,
    /// None: forever; Some(k): the next k matching requests all fail (`every` ignored).
    remaining: Option<usize>,
    status: u16,
    retry_after: Option<u64>,
    seen: usize,
}

#[derive(Default)]
struct ControlState {
    calls: Vec<Call>,
    fault: Option<Fault>,
    delay: Duration,
    /// A provider's documented rate: at most `.0` requests in any `.1`; above it, 429.
    rate_limit: Option<(usize, Duration)>,
    /// When the requests let through under the rate limit arrived.
    arrivals: std::collections::VecDeque<Instant>,
}

/// Call log, fault injection and latency shared by the mocks.
#[derive(Default)]
pub struct Control {
    state: Mutex<ControlState>,
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// Wraps a router: every request is logged (with the status answered), delayed by the
    /// configured latency, and answered by `fault(status, retry_after)` instead of the router
    /// when a fault is due.
    pub fn wrap(
        self: &Arc<Self>,
        fault: impl Fn(u16, Option<u64>) -> Response + Send + Sync + 'static,
        route: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Handler {
        let control = Arc::clone(self);
        Arc::new(move |request: &Request| {
            let (due, delay) = control.begin(request);
            if !delay.is_zero() {
                thread::sleep(delay);
            }
            let response = match due {
                Some((status, retry_after)) => {
                    let mut response = fault(status, retry_after);
                    if let Some(secs) = retry_after
                        && response.header("retry-after").is_none()
                    {
                        response = response.with_header("Retry-After", &secs.to_string());
                    }
                    response
                }
                None => route(request),
            };
            control.finish(request, response.status);
            response
        })
    }

    fn begin(&self, request: &Request) -> (Option<(u16, Option<u64>)>, Duration) {
        let mut state = lock(&self.state);
        let delay = state.delay;
        if let Some((max, window)) = state.rate_limit {
            let now = Instant::now();
            while state
                .arrivals
                .front()
                .is_some_and(|at| now.duration_since(*at) >= window)
            {
                state.arrivals.pop_front();
            }
            if state.arrivals.len() >= max {
                return (Some((429, Some(1))), delay);
            }
            state.arrivals.push_back(now);
        }
        let Some(fault) = state.fault.as_mut() else {
            return (None, delay);
        };
        if !request.path.starts_with(&fault.prefix) {
            return (None, delay);
        }
        fault.seen += 1;
        let due = match fault.remaining.as_mut() {
            Some(0) => false,
            Some(k) => {
                *k -= 1;
                true
            }
            None => fault.every > 0 && fault.seen % fault.every == 0,
        };
        let result = due.then_some((fault.status, fault.retry_after));
        (result, delay)
    }

    fn finish(&self, request: &Request, status: u16) {
        lock(&self.state).calls.push(Call {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            status,
            traceparent: request.header("traceparent").map(str::to_owned),
        });
    }

    /// Requests received whose path starts with `prefix` (all of them, failures included).
    pub fn calls(&self, prefix: &str) -> usize {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .count()
    }

    pub fn call_log(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    pub fn reset_calls(&self) {
        lock(&self.state).calls.clear();
    }

    /// Every `every`-th request whose path starts with `prefix` (counted from now) is answered
    /// `status`, with `Retry-After: secs` when given. `every == 0` disables.
    pub fn fail_every(&self, prefix: &str, every: usize, status: u16, retry_after: Option<u64>) {
        lock(&self.state).fault = Some(Fault {
            prefix: prefix.to_owned(),
            every,
            remaining: None,
            status,
            retry_after,
            seen: 0,
        });
    }

    /// The next `count` requests whose path starts with `prefix` are answered `status`.
    pub fn fail_next(&self, prefix: &str, count: usize, status: u16, retry_after: Option<u64>) {
        lock(&self.state).fault = Some(Fault {
            prefix: prefix.to_owned(),
            every: 1,
            remaining: Some(count),
            status,
            retry_after,
            seen: 0,
        });
    }

    pub fn clear_faults(&self) {
        lock(&self.state).fault = None;
    }

    /// Every request waits this long before being answered.
    pub fn set_latency(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// At most `max` requests in any `window` (a sliding window, by arrival); the others are
    /// answered 429 with `Retry-After: 1`, as a provider enforcing its documented rate does.
    pub fn set_rate_limit(&self, max: usize, window: Duration) {
        let mut state = lock(&self.state);
        state.rate_limit = Some((max, window));
        state.arrivals.clear();
    }

    /// Calls answered 429 so far.
    pub fn rate_limited(&self) -> usize {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.status == 429)
            .count()
    }
}
