//! The payout soak, `cargo run --release -p connector-bench -- payouts [CLIENTS]`: Formance
//! initiating payouts through the generated cursorpay connector as fast as `CLIENTS`
//! concurrent keep-alive clients (default [`DEFAULT_CLIENTS`]) can, while the Cursorpay mock
//! fails [`FAULTS_BEFORE_ACCEPT`] + [`FAULTS_AFTER_ACCEPT`] per mille of the initiation calls
//! it receives with a 500 (before creating the payout, or after: then the payout exists and
//! only a lookup or the forwarded idempotency key keeps a retry from paying twice). Two
//! set-ups, each with a fresh mock:
//!
//! 1. SQLite store, one connector replica;
//! 2. a fresh PostgreSQL store shared by two replicas, half the clients talking to each.
//!
//! Each client loops: a new idempotency key, `POST /payouts`; on a status Formance retries
//! (408, 421, 423, 425, 429, 5xx) the same body with the same key again after
//! [`RETRY_PAUSE`], until a final answer. After [`WARMUP`], for [`MEASURE`]: HTTP requests
//! answered per second (retries included), payouts completed per second (keys whose final
//! answer arrived), the latency of single requests, retried requests by status, and the CPU
//! time each party used. Then every client finishes its key, and the mock's records are the
//! ground truth: exactly one payout per completed key, with the id its client got, none for
//! any other reference, no duplicate reference.
//!
//! The connectors run with `CONNECTOR_LOG=`[`CONNECTOR_LOG`]: their per-request `info` line
//! would cost them (and the benchmark, which reads their stderr) CPU that this measurement is
//! not about; failed requests and recoveries still log. That level hides the
//! `connector listening` line, so they listen on ports chosen here.
//!
//! Figures are compared with the targets and never asserted. Wrong answers (a duplicate, a
//! mismatched id or body, a final status other than 201, a key that never gets one) stop the
//! benchmark once every figure is printed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::children::{Server, machine_cpu, proc_cpu, proc_threads};
use crate::http::Connection;
use crate::support::formance::is_retryable;
use crate::support::mock_cursor::Cursorpay;
use crate::support::postgres::Postgres;
use crate::{API_KEY, CURSORPAY_TOKEN, SEED, cursorpay_env, percentile, verdict};

/// Concurrent clients unless the command line says otherwise. On 2 CPUs throughput stops
/// growing at about 8 (SQLite: flat from 4 to 32; PostgreSQL: highest at 8 to 12), while
/// latency grows with every client beyond that: 16 clients double p99 for no more requests/s.
pub const DEFAULT_CLIENTS: usize = 8;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
/// Injected 500s per thousand initiation calls: 10% in all.
const FAULTS_BEFORE_ACCEPT: u32 = 50;
const FAULTS_AFTER_ACCEPT: u32 = 50;
/// The connectors' log level (see the module doc).
const CONNECTOR_LOG: &str = "warn";
/// Between a retryable answer and the retry.
const RETRY_PAUSE: Duration = Duration::from_millis(1);
/// Attempts per key before it counts as never answered.
const MAX_ATTEMPTS: u32 = 100;
/// Connection failures per client before it gives up.
const MAX_TRANSPORT_ERRORS: usize = 100;
const POSTGRES_REPLICAS: usize = 2;

const TARGET_REQUESTS_PER_SECOND: f64 = 2_000.0;
const TARGET_P99_MS: f64 = 20.0;

/// Runs both set-ups; panics at the end if any answer was wrong (or PostgreSQL did not start).
pub fn run(bins: &Path, clients: usize) {
    println!(
        "connector-bench payouts: {} CPU(s); release binaries in {}; {clients} keep-alive clients; \
         connectors run with CONNECTOR_LOG={CONNECTOR_LOG} (their log lines are read and discarded); \
         injected provider 500s: {FAULTS_BEFORE_ACCEPT} + {FAULTS_AFTER_ACCEPT} per mille \
         (before + after accepting); retry pause {} ms; {} s warm-up, then {} s measured",
        thread::available_parallelism().map_or(1, |n| n.get()),
        bins.display(),
        RETRY_PAUSE.as_millis(),
        WARMUP.as_secs(),
        MEASURE.as_secs()
    );
    let binary = bins.join("cursorpay");
    let mut problems = Vec::new();

    {
        let cursorpay = start_provider();
        let scratch = Scratch::new("payouts");
        let store = scratch.0.join("store.sqlite3");
        let env = connector_env(
            &cursorpay.url(),
            ("CONNECTOR_STORE", store.display().to_string()),
        );
        let mut servers = vec![Server::start_unannounced("cursorpay", &binary, &env)];
        problems.extend(soak(
            1,
            "SQLite store, 1 replica",
            &cursorpay,
            &mut servers,
            None,
            clients,
        ));
    }

    match Postgres::start("payout-soak") {
        Ok(postgres) => {
            let cursorpay = start_provider();
            let env = connector_env(&cursorpay.url(), ("DATABASE_URL", postgres.url()));
            let mut servers: Vec<Server> = (1..=POSTGRES_REPLICAS)
                .map(|n| {
                    Server::start_unannounced(&format!("cursorpay replica {n}"), &binary, &env)
                })
                .collect();
            problems.extend(soak(
                2,
                &format!("PostgreSQL store, {POSTGRES_REPLICAS} replicas"),
                &cursorpay,
                &mut servers,
                Some(&postgres),
                clients,
            ));
        }
        Err(error) => {
            println!("[payouts 2] PostgreSQL store: not run: {error}");
            problems.push(format!("set-up 2 could not start PostgreSQL: {error}"));
        }
    }

    assert!(
        problems.is_empty(),
        "the payout soak failed ({} problem(s)):\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
}

fn start_provider() -> Cursorpay {
    let cursorpay = Cursorpay::start(SEED, CURSORPAY_TOKEN);
    cursorpay.set_initiation_faults(FAULTS_BEFORE_ACCEPT, FAULTS_AFTER_ACCEPT);
    cursorpay
}

fn connector_env(provider_url: &str, store: (&'static str, String)) -> Vec<(&'static str, String)> {
    let mut env = cursorpay_env(provider_url);
    for (name, value) in &mut env {
        if *name == "CONNECTOR_LOG" {
            *value = CONNECTOR_LOG.to_owned();
        }
    }
    env.push(store);
    env
}

/// A directory of the system's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("connector-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------------------------

/// When the measurement runs; what is answered before is warm-up, after it the drain.
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    /// Latencies of the requests answered in the window, in microseconds.
    latencies: Vec<f64>,
    /// Requests answered in the window, retries included.
    requests: usize,
    /// Keys whose final answer arrived in the window.
    payouts: usize,
    /// Retryable answers in the window, by status.
    retried: BTreeMap<u16, usize>,
    /// Every key completed (warm-up and drain included), with the payout id its client got.
    completed: Vec<(String, String)>,
    /// Connections that failed (refused, reset, timed out); the key is retried on a new one.
    transport_errors: usize,
    wrong: Vec<String>,
}

/// One client: new keys until the window ends, each one retried until its final answer.
fn client(addr: SocketAddr, prefix: &str, window: &Window) -> Tally {
    let mut tally = Tally::default();
    let mut connection = None;
    let mut sequence = 0u64;
    while Instant::now() < window.end && tally.wrong.is_empty() {
        sequence += 1;
        let key = format!("{prefix}-{sequence}");
        let amount = (1 + sequence % 99_999).to_string();
        let body = json!({
            "idempotencyKey": key,
            "amount": amount,
            "currency": "EUR/2",
            "sourceAccountId": "acct_1",
            "destinationAccountId": format!("rcp_{}", 1 + sequence % 50),
            "description": format!("soak payout {sequence}"),
            "metadata": {"soak": prefix},
        })
        .to_string();
        match initiate(
            &mut connection,
            addr,
            &key,
            &amount,
            &body,
            window,
            &mut tally,
        ) {
            Ok(id) => tally.completed.push((key, id)),
            Err(wrong) => tally.wrong.push(wrong),
        }
    }
    tally
}

/// `POST /payouts` with `body` until a final answer; the payout id of a 201.
fn initiate(
    connection: &mut Option<Connection>,
    addr: SocketAddr,
    key: &str,
    amount: &str,
    body: &str,
    window: &Window,
    tally: &mut Tally,
) -> Result<String, String> {
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            thread::sleep(RETRY_PAUSE);
        }
        if tally.transport_errors > MAX_TRANSPORT_ERRORS {
            return Err(format!(
                "key {key}: {} connection failures to {addr}",
                tally.transport_errors
            ));
        }
        let open = match connection {
            Some(open) => open,
            None => match Connection::open(addr) {
                Ok(open) => connection.insert(open),
                Err(_) => {
                    tally.transport_errors += 1;
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let Ok(reply) = open.post_json("/payouts", API_KEY, body.as_bytes()) else {
            tally.transport_errors += 1;
            *connection = None;
            continue;
        };
        let answered = Instant::now();
        let counted = window.contains(answered);
        if counted {
            tally.requests += 1;
            tally.latencies.push((answered - sent).as_secs_f64() * 1e6);
        }
        if reply.status == 201 {
            let id = created_id(key, amount, &reply.body)?;
            if counted {
                tally.payouts += 1;
            }
            return Ok(id);
        }
        if !is_retryable(reply.status) {
            return Err(format!(
                "key {key}: final answer {}: {}",
                reply.status,
                excerpt(&reply.body)
            ));
        }
        if counted {
            *tally.retried.entry(reply.status).or_default() += 1;
        }
    }
    Err(format!(
        "key {key}: no final answer after {MAX_ATTEMPTS} attempts"
    ))
}

/// The id of a created payout, after checking that it is the payout asked for.
fn created_id(key: &str, amount: &str, body: &[u8]) -> Result<String, String> {
    let wrong = || format!("key {key}: 201 with {}", excerpt(body));
    let payout: Value = serde_json::from_slice(body).map_err(|_| wrong())?;
    let matches = payout["idempotencyKey"] == key && payout["amount"] == amount;
    match payout["id"].as_str() {
        Some(id) if matches && !id.is_empty() => Ok(id.to_owned()),
        _ => Err(wrong()),
    }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

// ---------------------------------------------------------------------------------------------
// One set-up
// ---------------------------------------------------------------------------------------------

/// CPU seconds used so far by the parties.
struct Cpu {
    connectors: f64,
    /// Per thread of the connectors: name and seconds.
    threads: HashMap<(u32, u32), (String, f64)>,
    bench: f64,
    /// Per process of the PostgreSQL server (the postmaster and its children).
    postgres: HashMap<u32, f64>,
    /// Busy and total seconds of the whole machine.
    machine: Option<(f64, f64)>,
}

impl Cpu {
    fn now(servers: &[Server], postmaster: Option<u32>) -> Cpu {
        let used = |pid: u32| proc_cpu(pid).map_or(0.0, |(seconds, _)| seconds);
        Cpu {
            connectors: servers.iter().map(|s| used(s.pid())).sum(),
            threads: servers
                .iter()
                .flat_map(|s| {
                    let pid = s.pid();
                    proc_threads(pid)
                        .into_iter()
                        .map(move |(id, name, seconds)| ((pid, id), (name, seconds)))
                })
                .collect(),
            bench: used(std::process::id()),
            postgres: postmaster.map(postgres_processes).unwrap_or_default(),
            machine: machine_cpu(),
        }
    }

    /// The connectors' threads that used the most CPU between `self` and `later`, by name.
    fn busiest_threads(&self, later: &Cpu) -> String {
        let mut by_name: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (thread, (name, seconds)) in &later.threads {
            let before = self.threads.get(thread).map_or(0.0, |(_, s)| *s);
            let entry = by_name.entry(name.as_str()).or_default();
            entry.0 += seconds - before;
            entry.1 += 1;
        }
        let mut busiest: Vec<(&str, (f64, usize))> = by_name.into_iter().collect();
        busiest.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        busiest
            .iter()
            .take(4)
            .map(|(name, (seconds, count))| format!("{name} x{count} {seconds:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "connector 8.1 s, ..." for the time between `self` and `later`.
    fn describe(&self, later: &Cpu, servers: usize) -> String {
        let connectors = later.connectors - self.connectors;
        let bench = later.bench - self.bench;
        let postgres: f64 = later
            .postgres
            .iter()
            .map(|(pid, seconds)| seconds - self.postgres.get(pid).copied().unwrap_or(0.0))
            .sum();
        let mut parts = vec![
            format!(
                "{} {connectors:.1} s",
                if servers == 1 {
                    "connector"
                } else {
                    "connectors"
                }
            ),
            format!("benchmark process (mock + clients) {bench:.1} s"),
        ];
        if !later.postgres.is_empty() {
            parts.push(format!("PostgreSQL {postgres:.1} s"));
        }
        if let (Some((busy0, total0)), Some((busy1, total1))) = (self.machine, later.machine) {
            let busy = busy1 - busy0;
            let total = total1 - total0;
            let other = (busy - connectors - bench - postgres).max(0.0);
            parts.push(format!("other processes {other:.1} s"));
            parts.push(format!("idle {:.1} s, of {total:.1} s", total - busy));
        }
        parts.join(", ")
    }
}

/// CPU seconds of the PostgreSQL server's processes: the postmaster and its children.
fn postgres_processes(postmaster: u32) -> HashMap<u32, f64> {
    let mut used = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return used;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((seconds, parent)) = proc_cpu(pid)
            && (pid == postmaster || parent == postmaster)
        {
            used.insert(pid, seconds);
        }
    }
    used
}

/// The postmaster's pid, from the first line of `postmaster.pid` in the data directory.
fn postmaster_pid(postgres: &Postgres) -> Option<u32> {
    let text = std::fs::read_to_string(postgres.dir().join("data/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Drives `servers` (the clients spread over them) and prints the figures and the ground
/// truth; returns the wrong answers.
fn soak(
    number: usize,
    title: &str,
    cursorpay: &Cursorpay,
    servers: &mut [Server],
    postgres: Option<&Postgres>,
    clients: usize,
) -> Vec<String> {
    let postmaster = postgres.and_then(postmaster_pid);
    let start = Instant::now() + WARMUP;
    let window = Window {
        start,
        end: start + MEASURE,
    };
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let (tallies, cpu, threads) = thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|i| {
                let addr = addrs[i % addrs.len()];
                let prefix = format!("soak{number}-c{i}");
                let window = &window;
                scope.spawn(move || client(addr, &prefix, window))
            })
            .collect();
        thread::sleep(window.start.saturating_duration_since(Instant::now()));
        let before = Cpu::now(servers, postmaster);
        thread::sleep(window.end.saturating_duration_since(Instant::now()));
        let after = Cpu::now(servers, postmaster);
        let tallies: Vec<Tally> = workers
            .into_iter()
            .map(|w| w.join().expect("a payout client"))
            .collect();
        let cpu = before.describe(&after, servers.len());
        (tallies, cpu, before.busiest_threads(&after))
    });
    for server in servers.iter_mut() {
        server.assert_running();
    }

    let seconds = MEASURE.as_secs_f64();
    let requests: usize = tallies.iter().map(|t| t.requests).sum();
    let payouts: usize = tallies.iter().map(|t| t.payouts).sum();
    let latencies: Vec<f64> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    let mut retried: BTreeMap<u16, usize> = BTreeMap::new();
    for tally in &tallies {
        for (status, count) in &tally.retried {
            *retried.entry(*status).or_default() += count;
        }
    }
    let transport_errors: usize = tallies.iter().map(|t| t.transport_errors).sum();
    let rate = requests as f64 / seconds;
    let ms = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            percentile(&latencies, p) / 1000.0
        }
    };
    let p99 = ms(99.0);
    println!(
        "[payouts {number}] {title}, {clients} clients, {} s measured after {} s warm-up: \
         {rate:.0} requests/s, {:.0} payouts/s; latency per request p50 {:.2} / p95 {:.2} / \
         p99 {p99:.2} / max {:.2} ms",
        MEASURE.as_secs(),
        WARMUP.as_secs(),
        payouts as f64 / seconds,
        ms(50.0),
        ms(95.0),
        ms(100.0),
    );
    let retried_text = if retried.is_empty() {
        "none".to_owned()
    } else {
        retried
            .iter()
            .map(|(status, count)| format!("{status} x {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let retried_total: usize = retried.values().sum();
    let mut split = String::new();
    if servers.len() > 1 {
        let per_server: Vec<String> = (0..servers.len())
            .map(|s| {
                let n: usize = tallies
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % servers.len() == s)
                    .map(|(_, t)| t.requests)
                    .sum();
                n.to_string()
            })
            .collect();
        split = format!("; requests per replica: {}", per_server.join(" / "));
    }
    println!(
        "    in the window: {requests} requests, {payouts} payouts; retried requests by status: \
         {retried_text} ({:.1}% of requests); connection failures: {transport_errors}{split}",
        100.0 * retried_total as f64 / requests.max(1) as f64
    );
    println!("    CPU in the window: {cpu}; busiest connector threads: {threads}");

    let mut wrong: Vec<String> = tallies.iter().flat_map(|t| t.wrong.clone()).collect();
    let duplicates = ground_truth(cursorpay, &tallies, &mut wrong);
    let met_rate = rate >= TARGET_REQUESTS_PER_SECOND;
    let met_p99 = p99 < TARGET_P99_MS;
    let met_duplicates = duplicates == 0;
    println!(
        "    targets: >= {TARGET_REQUESTS_PER_SECOND:.0} requests/s: {} ({rate:.0}); p99 < {TARGET_P99_MS} ms: {} \
         ({p99:.2} ms); zero duplicates: {} ({duplicates}); all: {}",
        verdict(met_rate),
        verdict(met_p99),
        verdict(met_duplicates),
        verdict(met_rate && met_p99 && met_duplicates)
    );
    if !wrong.is_empty() {
        println!("    WRONG ANSWERS: {}", wrong.len());
        for line in wrong.iter().take(10) {
            println!("      {line}");
        }
    }
    wrong
        .into_iter()
        .map(|w| format!("set-up {number}: {w}"))
        .collect()
}

/// Checks the mock's payouts against what the clients were answered; prints it and returns
/// the number of duplicated references. Mismatches go to `wrong`.
fn ground_truth(cursorpay: &Cursorpay, tallies: &[Tally], wrong: &mut Vec<String>) -> usize {
    let at_provider = cursorpay.payouts();
    let mut by_reference: HashMap<&str, Vec<&str>> = HashMap::new();
    for payout in &at_provider {
        by_reference
            .entry(payout["reference"].as_str().unwrap_or(""))
            .or_default()
            .push(payout["id"].as_str().unwrap_or(""));
    }
    let completed: Vec<&(String, String)> = tallies.iter().flat_map(|t| &t.completed).collect();
    let keys: HashSet<&str> = completed.iter().map(|(key, _)| key.as_str()).collect();
    let mut mismatched = 0usize;
    for (key, id) in &completed {
        let payments = cursorpay.payments_for_reference(key);
        let ids = by_reference
            .get(key.as_str())
            .map_or(&[][..], Vec::as_slice);
        if payments != 1 || ids != [id.as_str()] {
            mismatched += 1;
            wrong.push(format!(
                "key {key}: the client got payout {id}; the provider has {payments} payment(s) \
                 with that reference: {ids:?}"
            ));
        }
    }
    let orphans: Vec<&str> = by_reference
        .keys()
        .copied()
        .filter(|reference| !keys.contains(reference))
        .collect();
    for reference in orphans.iter().take(10) {
        wrong.push(format!(
            "the provider has a payout with reference {reference}, which no client completed"
        ));
    }
    let duplicates = cursorpay.duplicate_references();
    for reference in &duplicates {
        wrong.push(format!("duplicate payment for reference {reference}"));
    }
    let posts = cursorpay.initiation_posts();
    println!(
        "    ground truth: {} payouts at the provider, {} distinct keys completed (warm-up and \
         drain included), {posts} initiation POSTs received by the provider ({:.3} per payout); \
         keys with exactly 1 payment whose id matches their client's: {} of {}; payouts for no \
         completed key: {}",
        at_provider.len(),
        keys.len(),
        posts as f64 / keys.len().max(1) as f64,
        completed.len() - mismatched,
        completed.len(),
        orphans.len()
    );
    if duplicates.is_empty() {
        println!("    duplicates: 0");
    } else {
        println!(
            "    duplicates: {} {:?}",
            duplicates.len(),
            &duplicates[..duplicates.len().min(20)]
        );
    }
    duplicates.len()
}
