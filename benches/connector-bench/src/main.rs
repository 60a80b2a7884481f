//! Prints figures for the generated example connectors, run as release binaries against the
//! test suite's mock providers on loopback:
//!
//!     cargo run --release -p connector-bench
//!
//! 1. Translation overhead: the latency of the generated cursorpay connector's
//!    `GET /accounts?pageSize=100` minus the latency of the provider call it makes, measured by
//!    calling the mock directly with the same query just before (p50/p99 of these paired
//!    differences). Every connector request uses an earlier `createdAtFrom` than the one
//!    before, which makes the connector rebuild its window: exactly one provider call of 100
//!    records, their conversion and sort (checked with the mock's call counter). The same is
//!    measured for the hand-written server, as a reference: what the extra hop, parsing and
//!    encoding cost anyway.
//! 2. Throughput: requests per second of the generated cursorpay connector and of a
//!    hand-written axum server doing the same work per request (`src/bin/handwritten.rs`, no
//!    window, no request log), under the same load: concurrent keep-alive clients, each
//!    request from an earlier second, for a fixed time after a warm-up, in alternating rounds;
//!    then the same with one client. Concurrent requests may reach the connector out of order
//!    and then be served from its window: the provider calls per request are printed.
//! 3. Memory: the connector process's resident set (`VmRSS` sampled every 100 ms, `VmHWM` at
//!    the end) while Formance's poller syncs every transaction at page size 100: the pageworks
//!    connector (oldest-first provider) with 10,000 and 100,000 records, and the cursorpay
//!    connector (newest-first provider, which must hold what is after the filter, spilling
//!    past `CONNECTOR_WINDOW_MEMORY` to disk) with 1,000,000, against a peak of 64 MB, with its
//!    provider calls against the fewest the provider's page size allows.
//!
//! Figures are printed, never asserted: the machine may be busy. Wrong answers (a status that
//! is not 200, a body different from the expected one, a provider call count other than one,
//! records missing after a sync) do stop the benchmark. Every process it starts is killed when
//! it ends, also on a panic or when the benchmark itself is killed.
//!
//! With the argument `speed`, it prints figures 1 and 2 only, and with `memory` figure 3 only:
//!
//!     cargo run --release -p connector-bench -- speed
//!
//! With the argument `verify`, it prints only the figures of `connector-gen verify` against the
//! generated cursorpay connector serving 2,500 transactions (`src/verify.rs`):
//!
//!     cargo run --release -p connector-bench -- verify
//!
//! With the argument `soak`, it runs only the outage soak (`src/soak.rs`): a full sync while the
//! provider is down for 20 s in the middle and the connector is killed and restarted once,
//! printing the records lost and duplicated (targets: 0) and the provider calls per record:
//!
//!     cargo run --release -p connector-bench -- soak
//!
//! With the argument `payouts`, it runs only the payout soak instead (`src/payouts.rs`):
//!
//!     cargo run --release -p connector-bench -- payouts [CLIENTS]
//!
//! `CLIENTS` concurrent keep-alive clients (default 8) initiate payouts (`POST /payouts`,
//! a new idempotency key each, retried with the same key and body on the statuses Formance
//! retries) through the generated cursorpay connector, whose provider mock fails 10% of the
//! initiation calls, for 10 s after a 2 s warm-up: with a SQLite store and one replica, then
//! with a fresh PostgreSQL store shared by two replicas. It prints requests/s (retries
//! included), payouts/s, the latency percentiles of single requests, the retried requests by
//! status, where the CPU time went, and the provider's ground truth, compared with the
//! targets (>= 2,000 requests/s, p99 < 20 ms, no duplicate payout). A duplicate payout, an id
//! other than the provider's, or a final answer other than 201 stops it once everything is
//! printed.

mod children;
mod http;
mod payouts;
mod soak;
mod support;
mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat};
use serde_json::Value;

use children::{Server, proc_cpu, proc_status_bytes};
use http::Connection;
use support::formance::{Kind, Poller};
use support::mock_cursor::Cursorpay;
use support::mock_pages::Pageworks;

const API_KEY: &str = "bench-connector-key";
const CURSORPAY_TOKEN: &str = "bench-cursorpay-token";
const PAGEWORKS_CLIENT_ID: &str = "bench-client";
const PAGEWORKS_CLIENT_SECRET: &str = "bench-secret";
const SEED: u64 = 20_260_301;

/// Records in the provider list of figures 1 and 2: one protocol page.
const PAGE_RECORDS: usize = 100;
const OVERHEAD_WARMUP: usize = 200;
const OVERHEAD_SAMPLES: usize = 2_000;
const OVERHEAD_TARGET_MS: f64 = 1.0;
/// The generated connector's p99 overhead at most this many times the hand-written one's.
const OVERHEAD_TARGET_RATIO: f64 = 1.1;

const LOAD_CLIENTS: usize = 8;
const LOAD_ROUNDS: usize = 3;
const LOAD_WARMUP: Duration = Duration::from_secs(2);
const LOAD_DURATION: Duration = Duration::from_secs(8);
/// The same comparison with one client, shorter: per-request cost without concurrency.
const SERIAL_WARMUP: Duration = Duration::from_secs(1);
const SERIAL_DURATION: Duration = Duration::from_secs(5);
/// The generated connector's requests per second against the hand-written server's, with 8
/// clients and with 1.
const THROUGHPUT_TARGET: f64 = 1.0;

const SYNC_PAGE_SIZE: usize = 100;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Peak RSS with 100,000 records at most this many times the peak with 10,000 reads as
/// "about the same".
const BOUNDED_RATIO: f64 = 1.5;
/// Transactions of the newest-first sync, and the peak its connector must stay under.
const NEWEST_FIRST_RECORDS: usize = 1_000_000;
const NEWEST_FIRST_TARGET_MB: f64 = 64.0;
/// Records per provider page (`page_size` in generated-examples/cursorpay/connector.yaml).
const PROVIDER_PAGE_SIZE: usize = 100;

/// What the command line asks for.
enum Mode {
    /// No argument: figures 1 to 3.
    Figures,
    /// `speed`: figures 1 and 2 only.
    Speed,
    /// `memory`: figure 3 only.
    Memory,
    /// `payouts [CLIENTS]`: the payout soak only.
    Payouts { clients: usize },
    /// `verify`: figures of `connector-gen verify` only.
    Verify,
    /// `soak`: a full sync through a provider outage and a connector restart.
    Soak,
}

fn mode() -> Mode {
    let usage = "usage: connector-bench [speed | memory | payouts [CLIENTS] | verify | soak]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => Mode::Figures,
        ["speed"] => Mode::Speed,
        ["memory"] => Mode::Memory,
        ["verify"] => Mode::Verify,
        ["soak"] => Mode::Soak,
        ["payouts"] => Mode::Payouts {
            clients: payouts::DEFAULT_CLIENTS,
        },
        ["payouts", clients] => match clients.parse() {
            Ok(clients) if clients > 0 => Mode::Payouts { clients },
            _ => {
                eprintln!("{usage}\nCLIENTS must be a positive number, got {clients:?}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mode = mode();
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bins = build(&root);
    match mode {
        Mode::Verify => verify::run(&bins, CURSORPAY_TOKEN, API_KEY, &cursorpay_env("")),
        Mode::Soak => soak::run(&bins),
        Mode::Payouts { clients } => payouts::run(&bins, clients),
        Mode::Memory => memory(&bins),
        Mode::Speed => speed(&bins),
        Mode::Figures => {
            speed(&bins);
            memory(&bins);
        }
    }
    println!(
        "connector-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Figures 1 and 2: the generated cursorpay connector against the hand-written server.
fn speed(bins: &Path) {
    println!(
        "connector-bench: {} CPU(s); release binaries in {}; connectors run with CONNECTOR_LOG=info \
         (their per-request log lines are read and discarded)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        bins.display()
    );

    let cursorpay = Cursorpay::start(SEED, CURSORPAY_TOKEN);
    cursorpay.seed_accounts(PAGE_RECORDS);
    let oldest = cursorpay
        .accounts()
        .iter()
        .map(|a| a.created)
        .min()
        .expect("seeded accounts");
    // Every request asks from an earlier second than any before it, all before the oldest
    // record: the whole list every time, and never a reusable window.
    let since = Since(AtomicI64::new(oldest - 1));
    let mut generated = Server::start(
        "cursorpay",
        &bins.join("cursorpay"),
        &cursorpay_env(&cursorpay.url()),
    );
    let mut handwritten = Server::start(
        "handwritten",
        &bins.join("handwritten"),
        &cursorpay_env(&cursorpay.url()),
    );

    translation_overhead(&cursorpay, &generated, &handwritten, &since);
    throughput(&cursorpay, &mut generated, &mut handwritten, &since);
}

/// Builds the example connectors and the hand-written server; returns their directory.
fn build(root: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let clock = Instant::now();
    // Not quiet: a wait for the target directory's lock (another build) shows on stderr.
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--bins"])
        .args([
            "-p",
            "cursorpay",
            "-p",
            "pageworks",
            "-p",
            "connector-bench",
        ])
        // The payout soak runs cursorpay replicas on PostgreSQL too.
        .args(["--features", "cursorpay/postgres"])
        .current_dir(root);
    // `cargo run` gives this program its package's variables (CARGO_PKG_NAME, OUT_DIR, ...).
    // Build scripts such as ring's rerun when those change, so passing them on would rebuild
    // ring, rustls and reqwest here, and again at the next `cargo run`.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let from_cargo_run = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CFG_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || matches!(
                name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            );
        if from_cargo_run {
            command.env_remove(name);
        }
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cargo.to_string_lossy()));
    assert!(status.success(), "cargo build --release failed: {status}");
    eprintln!(
        "connector-bench: build checked in {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let dir = exe.parent().expect("a directory").to_path_buf();
    for name in ["cursorpay", "pageworks", "handwritten"] {
        assert!(
            dir.join(name).is_file(),
            "{} was not built next to the benchmark ({}); run it with `cargo run --release -p connector-bench`",
            name,
            dir.display()
        );
    }
    dir
}

fn cursorpay_env(provider_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CURSORPAY_BASE_URL", provider_url.to_owned()),
        ("CURSORPAY_API_KEY", CURSORPAY_TOKEN.to_owned()),
        ("CONNECTOR_API_KEY", API_KEY.to_owned()),
        ("CONNECTOR_LISTEN", "127.0.0.1:0".to_owned()),
        ("CONNECTOR_LOG", "info".to_owned()),
    ]
}

fn pageworks_env(pageworks: &Pageworks) -> Vec<(&'static str, String)> {
    vec![
        ("PAGEWORKS_BASE_URL", pageworks.url()),
        ("PAGEWORKS_TOKEN_URL", pageworks.token_url()),
        ("PAGEWORKS_CLIENT_ID", PAGEWORKS_CLIENT_ID.to_owned()),
        (
            "PAGEWORKS_CLIENT_SECRET",
            PAGEWORKS_CLIENT_SECRET.to_owned(),
        ),
        ("CONNECTOR_API_KEY", API_KEY.to_owned()),
        ("CONNECTOR_LISTEN", "127.0.0.1:0".to_owned()),
        ("CONNECTOR_LOG", "info".to_owned()),
    ]
}

/// Strictly decreasing `createdAtFrom` values (unix seconds), shared by every client.
struct Since(AtomicI64);

impl Since {
    fn next(&self) -> i64 {
        self.0.fetch_sub(1, Ordering::Relaxed)
    }
}

/// Formance's request for the first page of accounts from `since` (parameters sorted by name,
/// as Go's `url.Values.Encode` writes them).
fn accounts_target(since: i64) -> String {
    let time = DateTime::from_timestamp(since, 0)
        .expect("a time in range")
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    format!(
        "/accounts?createdAtFrom={}&page=1&pageSize={PAGE_RECORDS}&sort=createdAt%3Aasc",
        time.replace(':', "%3A")
    )
}

/// The provider request the connector makes for `since`.
fn provider_target(since: i64) -> String {
    format!("/v1/accounts?limit={PAGE_RECORDS}&created%5Bgte%5D={since}")
}

fn array_len(body: &[u8], key: Option<&str>) -> usize {
    let value: Value = serde_json::from_slice(body).expect("a JSON body");
    let list = match key {
        Some(key) => &value[key],
        None => &value,
    };
    list.as_array().map_or(0, Vec::len)
}

// ---------------------------------------------------------------------------------------------
// 1. Translation overhead
// ---------------------------------------------------------------------------------------------

/// Latencies in microseconds: the connector's, the provider's alone, and their paired
/// differences (each connector request minus the direct provider call made just before it).
struct Overhead {
    connector: Vec<f64>,
    provider: Vec<f64>,
    paired: Vec<f64>,
}

fn measure_overhead(cursorpay: &Cursorpay, server: &Server, since: &Since) -> Overhead {
    let mut provider = Connection::open(cursorpay.server().addr()).expect("connect to the mock");
    let mut served = Connection::open(server.addr).expect("connect to the server");
    let mut overhead = Overhead {
        connector: Vec::with_capacity(OVERHEAD_SAMPLES),
        provider: Vec::with_capacity(OVERHEAD_SAMPLES),
        paired: Vec::with_capacity(OVERHEAD_SAMPLES),
    };
    for i in 0..OVERHEAD_WARMUP + OVERHEAD_SAMPLES {
        let from = since.next();

        let clock = Instant::now();
        let direct = provider
            .get(&provider_target(from), CURSORPAY_TOKEN)
            .expect("the mock answers");
        let direct_us = clock.elapsed().as_secs_f64() * 1e6;
        assert_eq!(direct.status, 200, "the mock answered {}", direct.status);

        cursorpay.reset_calls();
        let clock = Instant::now();
        let reply = served
            .get(&accounts_target(from), API_KEY)
            .unwrap_or_else(|e| panic!("{} does not answer: {e}", server.name()));
        let reply_us = clock.elapsed().as_secs_f64() * 1e6;
        assert_eq!(
            reply.status,
            200,
            "{} answered {}: {}",
            server.name(),
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        let calls = cursorpay.calls("/v1/accounts");
        assert_eq!(
            calls,
            1,
            "request {i}: {} made {calls} provider calls instead of one",
            server.name()
        );
        if i % 100 == 0 {
            assert_eq!(array_len(&direct.body, Some("data")), PAGE_RECORDS);
            assert_eq!(array_len(&reply.body, None), PAGE_RECORDS);
        }
        if i >= OVERHEAD_WARMUP {
            overhead.connector.push(reply_us);
            overhead.provider.push(direct_us);
            overhead.paired.push(reply_us - direct_us);
        }
    }
    overhead
}

fn translation_overhead(
    cursorpay: &Cursorpay,
    generated: &Server,
    handwritten: &Server,
    since: &Since,
) {
    let ms = |samples: &[f64], p: f64| percentile(samples, p) / 1000.0;
    let measured = measure_overhead(cursorpay, generated, since);
    let reference = measure_overhead(cursorpay, handwritten, since);
    let d99 = ms(&measured.paired, 99.0);
    let ratio = d99 / ms(&reference.paired, 99.0);
    println!(
        "[1] translation overhead (generated cursorpay, GET /accounts, {PAGE_RECORDS} records, 1 provider call each, n={OVERHEAD_SAMPLES}): \
         p50 {:.3} ms, p99 {:.3} ms; target p99 <= {OVERHEAD_TARGET_MS} ms: {}; \
         p99 x{ratio:.2} the hand-written one's, target <= x{OVERHEAD_TARGET_RATIO}: {}",
        ms(&measured.paired, 50.0),
        d99,
        verdict(d99 <= OVERHEAD_TARGET_MS),
        verdict(ratio <= OVERHEAD_TARGET_RATIO)
    );
    for (name, o) in [("generated", &measured), ("hand-written", &reference)] {
        println!(
            "    {name}: overhead p50 {:.3} / p99 {:.3} ms (difference of the percentiles {:.3} / {:.3} ms); \
             latency p50 {:.3} / p99 {:.3} ms; provider alone p50 {:.3} / p99 {:.3} ms",
            ms(&o.paired, 50.0),
            ms(&o.paired, 99.0),
            ms(&o.connector, 50.0) - ms(&o.provider, 50.0),
            ms(&o.connector, 99.0) - ms(&o.provider, 99.0),
            ms(&o.connector, 50.0),
            ms(&o.connector, 99.0),
            ms(&o.provider, 50.0),
            ms(&o.provider, 99.0),
        );
    }
}

/// Nearest-rank percentile.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput
// ---------------------------------------------------------------------------------------------

struct Load {
    completed: usize,
    failed: usize,
    elapsed: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// `clients` keep-alive clients asking for the first page from an ever earlier second, for
/// `duration`; a request counts when its body is exactly `expected`.
fn load(
    server: &Server,
    since: &Since,
    expected: &[u8],
    clients: usize,
    duration: Duration,
) -> Load {
    let start = Instant::now();
    let deadline = start + duration;
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let (mut completed, mut failed) = (0usize, 0usize);
                    let mut connection = Connection::open(server.addr).ok();
                    while Instant::now() < deadline && failed < 1_000 {
                        let Some(open) = connection.as_mut() else {
                            failed += 1;
                            connection = Connection::open(server.addr).ok();
                            continue;
                        };
                        match open.get(&accounts_target(since.next()), API_KEY) {
                            Ok(reply) if reply.status == 200 && reply.body == expected => {
                                completed += 1
                            }
                            Ok(_) => failed += 1,
                            Err(_) => {
                                failed += 1;
                                connection = Connection::open(server.addr).ok();
                            }
                        }
                    }
                    (completed, failed)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a load client"))
            .collect()
    });
    Load {
        completed: results.iter().map(|r| r.0).sum(),
        failed: results.iter().map(|r| r.1).sum(),
        elapsed: start.elapsed(),
    }
}

fn throughput(
    cursorpay: &Cursorpay,
    generated: &mut Server,
    handwritten: &mut Server,
    since: &Since,
) {
    // Both must answer the same bytes, or the comparison means nothing.
    let from = since.next();
    let fetch = |server: &Server| {
        let reply = Connection::open(server.addr)
            .and_then(|mut c| c.get(&accounts_target(from), API_KEY))
            .unwrap_or_else(|e| panic!("{}: {e}", server.name()));
        assert_eq!(
            reply.status,
            200,
            "{} answered {}",
            server.name(),
            reply.status
        );
        reply.body
    };
    let expected = fetch(generated);
    let baseline = fetch(handwritten);
    assert!(
        expected == baseline,
        "the hand-written server answers differently from the generated connector:\n\
         generated:   {}\nhand-written: {}",
        String::from_utf8_lossy(&expected[..expected.len().min(600)]),
        String::from_utf8_lossy(&baseline[..baseline.len().min(600)])
    );
    assert_eq!(array_len(&expected, None), PAGE_RECORDS);

    let mut servers = [generated, handwritten];
    let loaded = compare(
        cursorpay,
        &mut servers,
        since,
        &expected,
        LOAD_CLIENTS,
        LOAD_WARMUP,
        LOAD_DURATION,
    );
    let ratio = loaded.ratio();
    println!(
        "[2] throughput (GET /accounts?pageSize={PAGE_RECORDS}, {LOAD_CLIENTS} keep-alive clients, median of {LOAD_ROUNDS} x {} s): \
         generated {:.0} req/s, hand-written {:.0} req/s: {:.1}%; target >= {:.0}%: {}",
        LOAD_DURATION.as_secs(),
        median(&loaded.rates[0]),
        median(&loaded.rates[1]),
        ratio * 100.0,
        THROUGHPUT_TARGET * 100.0,
        verdict(ratio >= THROUGHPUT_TARGET)
    );
    println!("    {}", loaded.details());
    let serial = compare(
        cursorpay,
        &mut servers,
        since,
        &expected,
        1,
        SERIAL_WARMUP,
        SERIAL_DURATION,
    );
    println!(
        "    with 1 client (median of {LOAD_ROUNDS} x {} s): generated {:.0} req/s, hand-written {:.0} req/s: {:.1}%; target >= {:.0}%: {}; {}",
        SERIAL_DURATION.as_secs(),
        median(&serial.rates[0]),
        median(&serial.rates[1]),
        serial.ratio() * 100.0,
        THROUGHPUT_TARGET * 100.0,
        verdict(serial.ratio() >= THROUGHPUT_TARGET),
        serial.details()
    );
}

/// Per server (generated, hand-written): requests per second, provider calls per request
/// and the server process's CPU time per request (user + system, in microseconds) of each
/// round, and failed requests.
struct Comparison {
    rates: [Vec<f64>; 2],
    calls_per_request: [Vec<f64>; 2],
    cpu_per_request: [Vec<f64>; 2],
    failures: [usize; 2],
}

impl Comparison {
    fn ratio(&self) -> f64 {
        median(&self.rates[0]) / median(&self.rates[1])
    }

    fn details(&self) -> String {
        format!(
            "rounds: generated {}, hand-written {} req/s; provider calls per request: generated {}, \
             hand-written {}; server CPU per request: generated {}, hand-written {} us; \
             failed requests: {} / {}",
            show(&self.rates[0], 0),
            show(&self.rates[1], 0),
            show(&self.calls_per_request[0], 3),
            show(&self.calls_per_request[1], 3),
            show(&self.cpu_per_request[0], 0),
            show(&self.cpu_per_request[1], 0),
            self.failures[0],
            self.failures[1]
        )
    }
}

fn compare(
    cursorpay: &Cursorpay,
    servers: &mut [&mut Server; 2],
    since: &Since,
    expected: &[u8],
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> Comparison {
    let mut result = Comparison {
        rates: [Vec::new(), Vec::new()],
        calls_per_request: [Vec::new(), Vec::new()],
        cpu_per_request: [Vec::new(), Vec::new()],
        failures: [0, 0],
    };
    for round in 0..LOAD_ROUNDS {
        // ABBA order, so that a drift of the machine's load favours neither.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let server = &*servers[which];
            load(server, since, expected, clients, warmup);
            cursorpay.reset_calls();
            let cpu = || proc_cpu(server.pid()).map_or(0.0, |(seconds, _)| seconds);
            let cpu_before = cpu();
            let measured = load(server, since, expected, clients, duration);
            let cpu_used = cpu() - cpu_before;
            let calls = cursorpay.calls("/v1/accounts");
            result.cpu_per_request[which].push(cpu_used * 1e6 / measured.completed.max(1) as f64);
            result.rates[which].push(measured.per_second());
            result.calls_per_request[which].push(calls as f64 / measured.completed.max(1) as f64);
            result.failures[which] += measured.failed;
        }
    }
    for server in servers.iter_mut() {
        server.assert_running();
    }
    result
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

fn show(values: &[f64], decimals: usize) -> String {
    let shown: Vec<String> = values.iter().map(|v| format!("{v:.decimals$}")).collect();
    format!("[{}]", shown.join(", "))
}

// ---------------------------------------------------------------------------------------------
// 3. Memory during a sync
// ---------------------------------------------------------------------------------------------

struct Memory {
    idle: u64,
    peak_sampled: u64,
    hwm: u64,
    samples: usize,
    elapsed: Duration,
    cycles: usize,
    provider_calls: usize,
}

/// Syncs every transaction through `connector` with Formance's poller while sampling the
/// connector's resident set; checks that all `expected` records arrived.
fn sync_memory(
    connector: &mut Server,
    expected: usize,
    provider_calls: impl Fn() -> usize,
) -> Memory {
    let pid = connector.pid();
    let rss = move || proc_status_bytes(pid, "VmRSS").unwrap_or(0);
    let idle = rss();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (cycles, received, peak_sampled, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut peak, mut samples) = (0u64, 0usize);
            // Bounded: at most 30 minutes of samples.
            for _ in 0..18_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                peak = peak.max(rss());
                samples += 1;
                std::thread::sleep(SAMPLE_EVERY);
            }
            (peak.max(rss()), samples)
        });
        let mut poller = Poller::new(
            &format!("http://{}", connector.addr),
            API_KEY,
            SYNC_PAGE_SIZE,
        )
        .with_timeout(Duration::from_secs(240));
        let outcome = poller.sync(Kind::Transactions);
        stop.store(true, Ordering::Relaxed);
        let (peak, samples) = sampler.join().expect("the sampler");
        let cycles = outcome.unwrap_or_else(|e| panic!("the sync failed: {e}"));
        (
            cycles,
            poller.records(Kind::Transactions).len(),
            peak,
            samples,
        )
    });
    let elapsed = started.elapsed();
    let hwm = proc_status_bytes(pid, "VmHWM").unwrap_or(0);
    connector.assert_running();
    assert_eq!(
        received, expected,
        "the sync received {received} of {expected} transactions"
    );
    Memory {
        idle,
        peak_sampled,
        hwm,
        samples,
        elapsed,
        cycles,
        provider_calls: provider_calls(),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn describe(memory: &Memory) -> String {
    format!(
        "peak RSS {:.1} MB (VmHWM {:.1} MB, idle {:.1} MB; {} samples over {:.1} s, {} poll cycles, {} provider calls)",
        mb(memory.peak_sampled),
        mb(memory.hwm),
        mb(memory.idle),
        memory.samples,
        memory.elapsed.as_secs_f64(),
        memory.cycles,
        memory.provider_calls
    )
}

fn pageworks_sync(bins: &Path, records: usize) -> Memory {
    let pageworks = Pageworks::start(SEED, PAGEWORKS_CLIENT_ID, PAGEWORKS_CLIENT_SECRET);
    pageworks.seed_accounts(50);
    pageworks.seed_transactions(records, 5);
    let mut connector = Server::start(
        "pageworks",
        &bins.join("pageworks"),
        &pageworks_env(&pageworks),
    );
    pageworks.reset_calls();
    sync_memory(&mut connector, records, || {
        pageworks.calls("/api/v2/statements")
    })
}

fn memory(bins: &Path) {
    let small = pageworks_sync(bins, 10_000);
    let large = pageworks_sync(bins, 100_000);
    let ratio = large.hwm as f64 / small.hwm.max(1) as f64;
    println!(
        "[3] memory, pageworks connector (oldest first), full transactions sync at page size {SYNC_PAGE_SIZE}: \
         peak RSS {:.1} MB with 10,000 records, {:.1} MB with 100,000 (VmHWM {:.1} / {:.1} MB, x{:.2}); bounded: {}",
        mb(small.peak_sampled),
        mb(large.peak_sampled),
        mb(small.hwm),
        mb(large.hwm),
        ratio,
        if ratio <= BOUNDED_RATIO { "yes" } else { "NO" }
    );
    println!("    10,000:  {}", describe(&small));
    println!("    100,000: {}", describe(&large));

    let cursorpay = Cursorpay::start(SEED, CURSORPAY_TOKEN);
    cursorpay.seed_accounts(20);
    cursorpay.seed_transactions(NEWEST_FIRST_RECORDS, 5);
    let mut connector = Server::start(
        "cursorpay",
        &bins.join("cursorpay"),
        &cursorpay_env(&cursorpay.url()),
    );
    cursorpay.reset_calls();
    let newest_first = sync_memory(&mut connector, NEWEST_FIRST_RECORDS, || {
        cursorpay.calls("/v1/transactions")
    });
    let fewest_calls = NEWEST_FIRST_RECORDS.div_ceil(PROVIDER_PAGE_SIZE);
    let calls_ratio = newest_first.provider_calls as f64 / fewest_calls as f64;
    println!(
        "[3] memory, cursorpay connector (newest first, holds the window after the filter), {} transactions: \
         peak RSS {:.1} MB (VmHWM {:.1} MB); target <= {NEWEST_FIRST_TARGET_MB} MB: {}; \
         {} provider calls, x{calls_ratio:.3} the {fewest_calls} of one walk at {PROVIDER_PAGE_SIZE} a page; 0 lost",
        thousands(NEWEST_FIRST_RECORDS),
        mb(newest_first.peak_sampled),
        mb(newest_first.hwm),
        verdict(mb(newest_first.hwm.max(newest_first.peak_sampled)) <= NEWEST_FIRST_TARGET_MB),
        newest_first.provider_calls,
    );
    println!(
        "    {}: {}",
        thousands(NEWEST_FIRST_RECORDS),
        describe(&newest_first)
    );
}

/// `1000000` as `1,000,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
