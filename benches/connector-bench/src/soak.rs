//! The outage soak, `cargo run --release -p connector-bench -- soak`: Formance's poller syncs
//! accounts, beneficiaries and transactions from the generated cursorpay connector while new
//! transactions keep arriving at the provider, the provider is down (every call a 503) for
//! [`OUTAGE`] in the middle, and the connector is killed (SIGKILL) and started again on the
//! same address once, during the outage. The poller keeps its state across all of it, as
//! Formance does, and retries what fails on the statuses Formance retries.
//!
//! At the end, against the mock's ground truth: records lost (never received), records
//! duplicated (received again unchanged), and the provider calls per record, with the
//! lower bound of one walk (a provider page of 100 per 100 records). Figures are printed with
//! their targets (0 lost, 0 duplicated, calls bounded); a loss or a duplicate stops the
//! benchmark once everything is printed.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::children::Server;
use crate::support::formance::{Kind, Poller};
use crate::support::mock_cursor::{CpNewTransaction, Cursorpay};
use crate::{API_KEY, CURSORPAY_TOKEN, SEED, verdict};

const ACCOUNTS: usize = 300;
const RECIPIENTS: usize = 200;
const TRANSACTIONS: usize = 20_000;
/// Transactions sharing one second, at the provider.
const BURST: usize = 50;
/// When the provider goes down, for how long, and when the connector restarts.
const OUTAGE_AT: Duration = Duration::from_secs(5);
const OUTAGE: Duration = Duration::from_secs(20);
const RESTART_AT: Duration = Duration::from_secs(15);
/// New transactions arrive until then, [`ARRIVALS_PER_TICK`] every [`TICK`].
const ARRIVALS_UNTIL: Duration = Duration::from_secs(35);
const ARRIVALS_PER_TICK: usize = 5;
const TICK: Duration = Duration::from_millis(100);
/// Provider list calls per record, at most (one walk is 0.01 at 100 a page).
const CALLS_PER_RECORD_TARGET: f64 = 0.1;

pub fn run(bins: &Path) {
    let cp = Arc::new(Cursorpay::start(SEED, CURSORPAY_TOKEN));
    cp.seed_accounts(ACCOUNTS);
    cp.seed_recipients(RECIPIENTS);
    cp.seed_transactions(TRANSACTIONS, BURST);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let store = std::env::temp_dir().join(format!("connector-soak-{}.sqlite3", std::process::id()));
    let env = vec![
        ("CURSORPAY_BASE_URL", cp.url()),
        ("CURSORPAY_API_KEY", CURSORPAY_TOKEN.to_owned()),
        ("CONNECTOR_API_KEY", API_KEY.to_owned()),
        ("CONNECTOR_LISTEN", format!("127.0.0.1:{port}")),
        ("CONNECTOR_LOG", "info".to_owned()),
        ("CONNECTOR_STORE", store.display().to_string()),
    ];
    let program = bins.join("cursorpay");
    let started = Instant::now();
    let mut connector = Some(Server::start("cursorpay", &program, &env));
    println!(
        "soak: {ACCOUNTS} accounts, {RECIPIENTS} recipients, {TRANSACTIONS} transactions ({BURST} a second) at the provider; \
         {ARRIVALS_PER_TICK} more every {} ms until {} s; provider down from {} s for {} s; connector killed and restarted at {} s",
        TICK.as_millis(),
        ARRIVALS_UNTIL.as_secs(),
        OUTAGE_AT.as_secs(),
        OUTAGE.as_secs(),
        RESTART_AT.as_secs()
    );

    // New transactions keep arriving, stamped by the provider's clock, which is the real one
    // (as a live provider's is): arrivals land in the second Formance may be polling.
    let wall_clock = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    cp.set_now(wall_clock());
    let arrivals = {
        let cp = Arc::clone(&cp);
        thread::spawn(move || {
            let mut added = 0;
            while started.elapsed() < ARRIVALS_UNTIL {
                cp.set_now(wall_clock());
                for _ in 0..ARRIVALS_PER_TICK {
                    cp.add_transaction(CpNewTransaction::default());
                    added += 1;
                }
                thread::sleep(TICK);
            }
            added
        })
    };

    // Formance: syncs over and over, keeping its state; a failed cycle is tried again.
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut poller = Poller::new(&format!("http://127.0.0.1:{port}"), API_KEY, 100)
                .with_retries(8, Duration::from_millis(50));
            let (mut failed_syncs, mut syncs) = (0usize, 0usize);
            let mut clean_after_quiet = 0;
            loop {
                let quiet = done.load(Ordering::SeqCst);
                // Each kind on its own, as Formance schedules them: one failing does not
                // keep the others from being polled.
                let mut clean = true;
                for kind in Kind::ALL {
                    match poller.sync(kind) {
                        Ok(_) => syncs += 1,
                        Err(_) => {
                            failed_syncs += 1;
                            clean = false;
                        }
                    }
                }
                if !clean {
                    clean_after_quiet = 0;
                    thread::sleep(Duration::from_millis(250));
                } else if quiet {
                    clean_after_quiet += 1;
                    // Two clean rounds after the provider settled: nothing left.
                    if clean_after_quiet == 2 {
                        return (poller, syncs, failed_syncs);
                    }
                }
                thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let wait_until = |at: Duration| {
        if let Some(left) = at.checked_sub(started.elapsed()) {
            thread::sleep(left);
        }
    };
    wait_until(OUTAGE_AT);
    cp.fail_every(1, 503, None);
    println!(
        "soak: {:>5.1} s provider down",
        started.elapsed().as_secs_f64()
    );
    wait_until(RESTART_AT);
    drop(connector.take());
    println!(
        "soak: {:>5.1} s connector killed",
        started.elapsed().as_secs_f64()
    );
    connector = Some(Server::start("cursorpay", &program, &env));
    println!(
        "soak: {:>5.1} s connector started again",
        started.elapsed().as_secs_f64()
    );
    wait_until(OUTAGE_AT + OUTAGE);
    cp.clear_faults();
    println!(
        "soak: {:>5.1} s provider back",
        started.elapsed().as_secs_f64()
    );
    let arrived = arrivals.join().expect("the arrivals thread");
    println!(
        "soak: {:>5.1} s arrivals stopped ({arrived} arrived)",
        started.elapsed().as_secs_f64()
    );
    // The connector serves a second once it has been over for 2 s: the last arrivals are
    // served from then on, and only syncs after that can be the last.
    thread::sleep(Duration::from_secs(4));
    done.store(true, Ordering::SeqCst);
    let (poller, syncs, failed_syncs) = poller.join().expect("the poller thread");
    let elapsed = started.elapsed();
    drop(connector);

    let truth = [
        (
            Kind::Accounts,
            cp.accounts().into_iter().map(|a| a.id).collect::<Vec<_>>(),
            "/v1/accounts",
        ),
        (
            Kind::Beneficiaries,
            cp.recipients().into_iter().map(|r| r.id).collect(),
            "/v1/recipients",
        ),
        (
            Kind::Transactions,
            cp.transactions().into_iter().map(|t| t.id).collect(),
            "/v1/transactions",
        ),
    ];
    let calls = cp.call_log();
    let (mut lost_total, mut duplicated_total, mut records_total, mut ok_calls_total) =
        (0, 0, 0, 0);
    println!(
        "soak: done in {:.1} s: {syncs} clean syncs of one kind, {failed_syncs} failed (tried again), {} poller requests ({} of them retries)",
        elapsed.as_secs_f64(),
        poller.requests(),
        poller.retries()
    );
    for (kind, ids, path) in &truth {
        let lost = ids
            .iter()
            .filter(|id| poller.record(*kind, id).is_none())
            .count();
        let duplicated = poller.repeats(*kind);
        let answered: Vec<_> = calls.iter().filter(|c| c.path == *path).collect();
        let ok = answered.iter().filter(|c| c.status == 200).count();
        let failed = answered.len() - ok;
        let walk = ids.len().div_ceil(100);
        println!(
            "soak: {kind:?}: {} records, {lost} lost, {duplicated} duplicated; provider list calls {} ({ok} answered 200, {failed} failed): \
             {:.4} per record, {:.1} walks of the list",
            ids.len(),
            answered.len(),
            ok as f64 / ids.len() as f64,
            ok as f64 / walk as f64,
        );
        let first_lost: Vec<&String> = ids
            .iter()
            .filter(|id| poller.record(*kind, id).is_none())
            .take(5)
            .collect();
        if !first_lost.is_empty() {
            println!("soak: {kind:?}: lost, the first: {first_lost:?}");
        }
        lost_total += lost;
        duplicated_total += duplicated;
        records_total += ids.len();
        ok_calls_total += ok;
    }
    let per_record = ok_calls_total as f64 / records_total as f64;
    println!(
        "soak: targets: lost {lost_total} (0: {}), duplicated {duplicated_total} (0: {}), provider calls per record {per_record:.4} (<= {CALLS_PER_RECORD_TARGET}: {})",
        verdict(lost_total == 0),
        verdict(duplicated_total == 0),
        verdict(per_record <= CALLS_PER_RECORD_TARGET),
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    assert!(
        lost_total == 0 && duplicated_total == 0,
        "records were lost or duplicated"
    );
}
