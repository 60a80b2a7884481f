//! Self-test of the throwaway PostgreSQL server in `support/postgres.rs`.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use support::postgres::Postgres;

fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

fn start(name: &str) -> Postgres {
    Postgres::start(name).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn two_servers_run_side_by_side_and_vanish_when_dropped() {
    let (a, b) = thread::scope(|scope| {
        let a = scope.spawn(|| start("harness-a"));
        let b = scope.spawn(|| start("harness-b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    for pg in [&a, &b] {
        assert_ne!(pg.port(), 5432);
        assert_eq!(
            pg.url(),
            format!("postgres://postgres@127.0.0.1:{}/connector", pg.port())
        );
    }

    a.psql("CREATE TABLE payments (id int PRIMARY KEY, amount bigint, note text)")
        .unwrap();
    a.psql("INSERT INTO payments VALUES (1, 100, 'a'), (2, 250, 'ünïcode')")
        .unwrap();
    assert_eq!(
        a.psql("SELECT id, amount, note FROM payments ORDER BY id")
            .unwrap(),
        "1|100|a\n2|250|ünïcode"
    );
    // The servers share nothing.
    let missing = b.psql("SELECT count(*) FROM payments").unwrap_err();
    assert!(missing.contains("does not exist"), "{missing}");
    assert_eq!(b.psql("SELECT current_database()").unwrap(), "connector");
    assert_eq!(
        b.create_database("ledger").unwrap(),
        format!("postgres://postgres@127.0.0.1:{}/ledger", b.port())
    );
    assert!(b.create_database("no; drop").is_err());

    let (port_a, dir_a) = (a.port(), a.dir().to_path_buf());
    drop(a);
    assert!(!accepts_connections(port_a), "port {port_a} still open");
    assert!(!dir_a.exists(), "{} left behind", dir_a.display());
    // The other server is unaffected.
    assert_eq!(b.psql("SELECT 1 + 1").unwrap(), "2");

    let (port_b, dir_b) = (b.port(), b.dir().to_path_buf());
    drop(b);
    assert!(!accepts_connections(port_b), "port {port_b} still open");
    assert!(!dir_b.exists(), "{} left behind", dir_b.display());
}

#[test]
fn a_panicking_test_still_stops_its_server() {
    let seen: Mutex<Option<(u16, PathBuf)>> = Mutex::new(None);
    let outcome = thread::scope(|scope| {
        scope
            .spawn(|| {
                let pg = start("harness-panic");
                *seen.lock().unwrap() = Some((pg.port(), pg.dir().to_path_buf()));
                panic!("a failing test while the server runs");
            })
            .join()
    });
    assert!(outcome.is_err());
    let (port, dir) = seen.into_inner().unwrap().expect("the server started");
    assert!(!accepts_connections(port), "port {port} still open");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
