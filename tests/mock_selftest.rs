//! Self-tests of the end-to-end test support: the std HTTP server, the two mock providers
//! (Cursorpay, Pageworks) and the Formance poller, each on its own.

#[path = "support/formance.rs"]
mod formance;
#[path = "support/mock_cursor.rs"]
mod mock_cursor;
#[path = "support/mock_http.rs"]
mod mock_http;
#[path = "support/mock_pages.rs"]
mod mock_pages;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use formance::{
    HttpReply, Kind, PollError, Poller, check_amount, check_currency, format_rfc3339_nanos,
    format_rfc3339_utc_seconds, http_request, parse_rfc3339,
};
use mock_cursor::{
    CURSORPAY_EPOCH, CpNewTransaction, Cursorpay, currency_exponent, format_decimal, parse_decimal,
};
use mock_http::{
    MockServer, Prng, Request, Response, base64_decode, base64_encode, encode_query, lock,
    percent_decode, percent_encode,
};
use mock_pages::{PAGEWORKS_EPOCH, Pageworks, PwNewTransaction, PwTime, days_from_civil};

const TIMEOUT: Duration = Duration::from_secs(10);
const TOKEN: &str = "sk_test_cursorpay";

fn get(url: &str, bearer: Option<&str>) -> HttpReply {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    http_request("GET", url, &headers, None, TIMEOUT).expect("request")
}

fn json_of(reply: &HttpReply) -> Value {
    reply
        .json()
        .unwrap_or_else(|| panic!("not JSON ({}): {}", reply.status, reply.text()))
}

/// Writes raw bytes on a fresh connection and reads until the server closes it.
fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    // The server may close before reading everything (then writing fails): read anyway.
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

// =============================================================================================
// mock_http
// =============================================================================================

fn echo_server() -> MockServer {
    MockServer::from_fn(|request: &Request| {
        if request.path == "/panic" {
            panic!("boom");
        }
        Response::json(
            200,
            &json!({
                "method": request.method,
                "path": request.path,
                "segments": request.segments(),
                "query": request.query,
                "x_test": request.header("X-TEST"),
                "body": request.body_text(),
            }),
        )
        .with_header("X-Served", "yes")
    })
}

#[test]
fn http_parses_requests_and_keeps_connections_alive() {
    let server = echo_server();
    assert!(server.url().starts_with("http://127.0.0.1:"));

    let reply = get(
        &format!(
            "{}/v1/a%20b/acct%2F1?a=1&b=x+y&c=%5B1%5D&created%5Bgte%5D=5&flag",
            server.url()
        ),
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-served"), Some("yes"));
    let body = json_of(&reply);
    assert_eq!(body["path"], "/v1/a b/acct/1");
    assert_eq!(body["segments"], json!(["v1", "a b", "acct/1"]));
    assert_eq!(
        body["query"],
        json!([
            ["a", "1"],
            ["b", "x y"],
            ["c", "[1]"],
            ["created[gte]", "5"],
            ["flag", ""]
        ])
    );

    // Keep-alive: two requests (the second pipelined with a body), then `Connection: close`.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(
            b"GET /one HTTP/1.1\r\nHost: x\r\nx-TeSt: first\r\n\r\n\
              POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let all = String::from_utf8(all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
    assert!(all.contains(r#""x_test":"first""#), "{all}");
    assert!(all.contains(r#""body":"hello""#), "{all}");
    assert!(all.contains(r#""path":"/three""#), "{all}");
    assert!(all.ends_with('}'), "closed after the last response: {all}");
    assert_eq!(server.connections(), 2);

    // Chunked request body and Expect: 100-continue.
    let reply = raw_exchange(
        server.addr(),
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    );
    assert!(reply.contains(r#""body":"abcde""#), "{reply}");

    // HTTP/1.0 closes by default.
    let reply = raw_exchange(server.addr(), b"GET /old HTTP/1.0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}

#[test]
fn http_answers_400_to_malformed_input_and_500_to_panics() {
    let server = echo_server();
    let bad: [&[u8]; 9] = [
        b"garbage\r\n\r\n",
        b"GET /x\r\n\r\n",
        b"GET /x HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /x?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
        b"\xff\xfe /x HTTP/1.1\r\n\r\n",
    ];
    for request in bad {
        let reply = raw_exchange(server.addr(), request);
        assert!(
            reply.starts_with("HTTP/1.1 400 "),
            "{:?} -> {reply}",
            String::from_utf8_lossy(request)
        );
    }
    let reply = raw_exchange(server.addr(), &[b'a'; 70 * 1024]);
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    let reply = raw_exchange(
        server.addr(),
        b"GET /x HTTP/1.1\r\nHost: x\r\n\r\nnot http\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(
        reply.contains("HTTP/1.1 400 "),
        "pipelined garbage: {reply}"
    );

    let reply = get(&format!("{}/panic", server.url()), None);
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("boom"));
    // Still serving.
    assert_eq!(get(&format!("{}/ok", server.url()), None).status, 200);
}

#[test]
fn http_server_stops_promptly_on_drop_even_with_idle_connections() {
    let server = echo_server();
    let addr = server.addr();
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).unwrap();
    assert!(n > 0);
    let _half_sent = {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /partial HTT").unwrap();
        s
    };
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn codecs() {
    for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "id:sécret"] {
        assert_eq!(
            base64_decode(&base64_encode(text.as_bytes())).unwrap(),
            text.as_bytes()
        );
    }
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_decode("Zm9vYg"), Some(b"foob".to_vec()));
    assert_eq!(base64_decode("Z"), None);
    assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
    assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
    assert_eq!(percent_decode("%zz", true), None);
    assert_eq!(percent_decode("%4", true), None);
    assert_eq!(percent_encode("created[gte]"), "created%5Bgte%5D");
    assert_eq!(
        encode_query(&[("a b", "x/y"), ("k", "2026-03-01T12:00:00+02:00")]),
        "a%20b=x%2Fy&k=2026-03-01T12%3A00%3A00%2B02%3A00"
    );

    assert_eq!(format_decimal(123_456, 2), "1234.56");
    assert_eq!(format_decimal(-5, 2), "-0.05");
    assert_eq!(format_decimal(1250, 3), "1.250");
    assert_eq!(format_decimal(1500, 0), "1500");
    assert_eq!(parse_decimal("1234.56", 2), Some(123_456));
    assert_eq!(parse_decimal("-0.05", 2), Some(-5));
    assert_eq!(parse_decimal("10.5", 2), Some(1050));
    assert_eq!(parse_decimal("1.2345", 2), None);
    assert_eq!(parse_decimal("1.", 2), None);
    assert_eq!(parse_decimal("", 2), None);

    let mut a = Prng::new(7);
    let mut b = Prng::new(7);
    let xs: Vec<u64> = (0..10).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..10).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(Prng::new(8).next_u64(), xs[0]);
}

// =============================================================================================
// Cursorpay
// =============================================================================================

/// Walks a Cursorpay list with `starting_after` until `has_more` is false.
fn cp_walk(cp: &Cursorpay, path: &str, limit: usize, filter: Option<(&str, i64)>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(after) = &after {
            query.push(("starting_after", after.clone()));
        }
        if let Some((key, value)) = filter {
            query.push((key, value.to_string()));
        }
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = get(
            &format!("{}{path}?{}", cp.url(), encode_query(&pairs)),
            Some(TOKEN),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = json_of(&reply);
        assert_eq!(body["object"], "list");
        let data = body["data"].as_array().unwrap().clone();
        assert!(data.len() <= limit);
        out.extend(data.iter().cloned());
        if !body["has_more"].as_bool().unwrap() {
            return out;
        }
        after = Some(data.last().unwrap()["id"].as_str().unwrap().to_owned());
    }
    panic!("no end");
}

fn ids(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

fn newest_first(mut keyed: Vec<(i64, String)>) -> Vec<String> {
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    keyed.into_iter().map(|(_, id)| id).collect()
}

#[test]
fn cursorpay_pages_walk_every_record_once_newest_first() {
    let cp = Cursorpay::start(42, TOKEN);
    cp.seed_accounts(60);
    cp.seed_recipients(35);
    cp.seed_transactions(250, 7);

    let accounts = cp.accounts();
    let walked = cp_walk(&cp, "/v1/accounts", 7, None);
    let expected = newest_first(accounts.iter().map(|a| (a.created, a.id.clone())).collect());
    assert_eq!(ids(&walked, "id"), expected);
    assert_eq!(cp.calls("/v1/accounts"), 60usize.div_ceil(7));
    let by_id: BTreeMap<String, Value> = walked
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone()))
        .collect();
    for account in &accounts {
        assert_eq!(by_id[&account.id], account.to_json());
    }
    // Ties exist among accounts.
    let times: BTreeSet<i64> = accounts.iter().map(|a| a.created).collect();
    assert!(times.len() < accounts.len());

    let walked = cp_walk(&cp, "/v1/recipients", 5, None);
    let expected = newest_first(
        cp.recipients()
            .iter()
            .map(|r| (r.created, r.id.clone()))
            .collect(),
    );
    assert_eq!(ids(&walked, "id"), expected);
    assert_eq!(cp.calls("/v1/recipients"), 7);

    // Transactions: pages of 6 end inside bursts of 7.
    cp.reset_calls();
    let transactions = cp.transactions();
    let walked = cp_walk(&cp, "/v1/transactions", 6, None);
    let expected = newest_first(
        transactions
            .iter()
            .map(|t| (t.updated, t.id.clone()))
            .collect(),
    );
    assert_eq!(ids(&walked, "id"), expected);
    assert_eq!(cp.calls("/v1/transactions"), 250usize.div_ceil(6));
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &transactions {
        *per_second.entry(t.updated).or_default() += 1;
    }
    assert!(per_second.values().all(|n| *n == 7 || *n == 250 % 7));
    // Ties are ordered by id descending, byte-wise.
    assert!(
        walked
            .windows(2)
            .all(|w| (w[0]["updated"].as_i64(), w[0]["id"].as_str())
                > (w[1]["updated"].as_i64(), w[1]["id"].as_str()))
    );

    // The limit: 100 is fine, 101 is not; default 10.
    let reply = get(
        &format!("{}/v1/transactions?limit=100", cp.url()),
        Some(TOKEN),
    );
    assert_eq!(json_of(&reply)["data"].as_array().unwrap().len(), 100);
    let reply = get(&format!("{}/v1/transactions", cp.url()), Some(TOKEN));
    assert_eq!(json_of(&reply)["data"].as_array().unwrap().len(), 10);
    assert_eq!(json_of(&reply)["has_more"], true);
}

#[test]
fn cursorpay_values_are_decimal_lower_case_and_deterministic() {
    let cp = Cursorpay::start(3, TOKEN);
    cp.seed_accounts(20);
    cp.seed_transactions(300, 4);
    let mut currencies = BTreeSet::new();
    for t in cp.transactions() {
        currencies.insert(t.currency.clone());
        assert_eq!(t.currency, t.currency.to_ascii_lowercase());
        let exponent = currency_exponent(&t.currency);
        let minor = t.minor().expect("a decimal amount");
        assert_eq!(
            format_decimal(minor, exponent),
            t.amount,
            "canonical decimals"
        );
        assert!(mock_cursor::CP_TYPES.contains(&t.kind.as_str()));
        assert!(mock_cursor::CP_STATUSES.contains(&t.status.as_str()));
        assert!(t.created <= t.updated);
        match t.kind.as_str() {
            "payment" => assert!(minor > 0 && t.source.is_none() && t.destination.is_some()),
            "payout" | "refund" => assert!(minor < 0 && t.source.is_some()),
            "transfer" => assert!(minor < 0 && t.source.is_some() && t.destination.is_some()),
            _ => {}
        }
    }
    assert_eq!(
        currencies,
        ["eur", "jpy", "kwd", "usd"].map(String::from).into()
    );
    assert!(
        cp.transactions()
            .iter()
            .any(|t| t.amount.contains('.') && currency_exponent(&t.currency) == 3)
    );

    // Balance endpoint.
    let account = &cp.accounts()[0];
    let reply = get(
        &format!("{}/v1/accounts/{}/balance", cp.url(), account.id),
        Some(TOKEN),
    );
    assert_eq!(reply.status, 200);
    let body = json_of(&reply);
    assert_eq!(body["object"], "balance");
    assert_eq!(body["account"], account.id.as_str());
    assert_eq!(body["available"], account.balance_json()["available"]);
    assert_eq!(cp.balance(&account.id).unwrap(), account.balances);
    assert!(cp.set_balance(&account.id, &[("1234.56", "eur"), ("1500", "jpy")]));
    let body = json_of(&get(
        &format!("{}/v1/accounts/{}/balance", cp.url(), account.id),
        Some(TOKEN),
    ));
    assert_eq!(
        body["available"],
        json!([{"amount": "1234.56", "currency": "eur"}, {"amount": "1500", "currency": "jpy"}])
    );

    // Same seed, same data.
    let again = Cursorpay::start(3, TOKEN);
    again.seed_accounts(20);
    again.seed_transactions(300, 4);
    assert_eq!(again.transactions(), cp.transactions());
    let other = Cursorpay::start(4, TOKEN);
    other.seed_accounts(20);
    assert_ne!(other.accounts(), again.accounts());
}

#[test]
fn cursorpay_filters_auth_and_errors() {
    let cp = Cursorpay::start(1, TOKEN);
    let t = CURSORPAY_EPOCH - 100;
    let early = cp.add_account("Early", Some(t - 1));
    let a = cp.add_account("Tie A", Some(t));
    let b = cp.add_account("Tie B", Some(t));
    let late = cp.add_account("Late", Some(t + 1));
    let walked = cp_walk(&cp, "/v1/accounts", 2, Some(("created[gte]", t)));
    assert_eq!(ids(&walked, "id"), [late.clone(), b.clone(), a.clone()]);
    let walked = cp_walk(&cp, "/v1/accounts", 10, None);
    assert_eq!(ids(&walked, "id"), [late, b, a, early.clone()]);

    // `starting_after` a record that the filter hides still positions the page.
    let reply = get(
        &format!(
            "{}/v1/accounts?starting_after=acct_4&created%5Bgte%5D={t}",
            cp.url()
        ),
        Some(TOKEN),
    );
    assert_eq!(
        ids(json_of(&reply)["data"].as_array().unwrap(), "id"),
        ["acct_3", "acct_2"]
    );

    cp.add_transaction(CpNewTransaction {
        created: Some(t - 50),
        updated: Some(t),
        ..Default::default()
    });
    cp.add_transaction(CpNewTransaction {
        created: Some(t - 50),
        updated: Some(t - 1),
        ..Default::default()
    });
    let walked = cp_walk(&cp, "/v1/transactions", 10, Some(("updated[gte]", t)));
    assert_eq!(ids(&walked, "id"), ["txn_1"]);

    // Auth.
    let unauthorized =
        json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key"}});
    for token in [None, Some("wrong")] {
        let reply = get(&format!("{}/v1/accounts", cp.url()), token);
        assert_eq!(reply.status, 401);
        assert_eq!(json_of(&reply), unauthorized);
    }
    let reply = http_request(
        "GET",
        &format!("{}/v1/accounts", cp.url()),
        &[("authorization", &format!("bearer {TOKEN}"))],
        None,
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(reply.status, 200, "scheme is case-insensitive");

    // Errors.
    for (query, param) in [
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("starting_after=acct_999", "starting_after"),
        ("created%5Bgt%5D=5", "created[gt]"),
        ("created%5Bgte%5D=2026-01-01", "created[gte]"),
        ("limit=1&limit=2", "limit"),
    ] {
        let reply = get(&format!("{}/v1/accounts?{query}", cp.url()), Some(TOKEN));
        assert_eq!(reply.status, 400, "{query}: {}", reply.text());
        let body = json_of(&reply);
        assert_eq!(body["error"]["type"], "invalid_request_error", "{query}");
        assert_eq!(body["error"]["param"], param, "{query}");
    }
    let reply = get(
        &format!("{}/v1/accounts/acct_999/balance", cp.url()),
        Some(TOKEN),
    );
    assert_eq!(reply.status, 404);
    assert_eq!(json_of(&reply)["error"]["type"], "invalid_request_error");
    let reply = get(&format!("{}/v1/nothing", cp.url()), Some(TOKEN));
    assert_eq!(reply.status, 404);
    let reply = http_request(
        "POST",
        &format!("{}/v1/accounts", cp.url()),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        Some(b"{}"),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(reply.status, 405);
}

#[test]
fn cursorpay_changes_clock_faults_and_call_counts() {
    let cp = Cursorpay::start(9, TOKEN);
    cp.seed_accounts(3);
    cp.seed_transactions(20, 5);
    let now = cp.now();
    assert!(cp.transactions().iter().all(|t| t.updated <= now));
    cp.set_now(now + 100);
    let id = cp.add_transaction(CpNewTransaction {
        amount: "-1.250".to_owned(),
        currency: "kwd".to_owned(),
        kind: "payout".to_owned(),
        status: "pending".to_owned(),
        source: Some("acct_1".to_owned()),
        ..Default::default()
    });
    let added = cp.transaction(&id).unwrap();
    assert_eq!((added.created, added.updated), (now + 100, now + 100));
    assert_eq!(added.minor(), Some(-1250));

    cp.advance(5);
    assert!(cp.update_transaction("txn_1", Some("succeeded"), None));
    assert!(!cp.update_transaction("txn_999", None, None));
    let first = json_of(&get(
        &format!("{}/v1/transactions?limit=2", cp.url()),
        Some(TOKEN),
    ));
    assert_eq!(first["data"][0]["id"], "txn_1");
    assert_eq!(first["data"][0]["updated"], now + 105);
    assert_eq!(first["data"][0]["status"], "succeeded");
    assert_eq!(first["data"][1]["id"], id.as_str());
    assert!(cp.update_transaction("txn_2", None, Some(now + 105)));
    let first = json_of(&get(
        &format!("{}/v1/transactions?limit=2", cp.url()),
        Some(TOKEN),
    ));
    assert_eq!(
        ids(first["data"].as_array().unwrap(), "id"),
        ["txn_2", "txn_1"]
    );

    // Every third request fails with 429 and Retry-After.
    cp.reset_calls();
    cp.fail_every(3, 429, Some(2));
    let statuses: Vec<u16> = (0..7)
        .map(|_| {
            let reply = get(&format!("{}/v1/accounts", cp.url()), Some(TOKEN));
            if reply.status == 429 {
                assert_eq!(reply.header("retry-after"), Some("2"));
                assert_eq!(json_of(&reply)["error"]["type"], "rate_limit_error");
            }
            reply.status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429, 200]);
    assert_eq!(cp.calls("/v1/accounts"), 7);
    assert_eq!(cp.call_log().iter().filter(|c| c.status == 429).count(), 2);
    cp.fail_next(2, 503, None);
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            let reply = get(&format!("{}/v1/recipients", cp.url()), Some(TOKEN));
            assert!(reply.status == 200 || reply.header("retry-after").is_none());
            reply.status
        })
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    cp.clear_faults();
    assert_eq!(
        get(&format!("{}/v1/accounts", cp.url()), Some(TOKEN)).status,
        200
    );
    assert_eq!(cp.calls("/v1/"), 11);
    assert_eq!(cp.calls("/v1/recipients"), 3);
    assert_eq!(cp.server().requests(), cp.call_log().len() + 2);
}

// ---- payment initiation ----

fn cp_post(cp: &Cursorpay, path: &str, body: &[u8], key: Option<&str>) -> HttpReply {
    cp_post_to(&cp.url(), path, body, key)
}

fn cp_post_to(url: &str, path: &str, body: &[u8], key: Option<&str>) -> HttpReply {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    http_request(
        "POST",
        &format!("{url}{path}"),
        &headers,
        Some(body),
        TIMEOUT,
    )
    .expect("request")
}

fn cp_post_json(cp: &Cursorpay, path: &str, body: &Value, key: Option<&str>) -> HttpReply {
    cp_post(cp, path, body.to_string().as_bytes(), key)
}

fn order(reference: &str) -> Value {
    json!({
        "amount": "12.34",
        "currency": "eur",
        "source": "acct_1",
        "destination": "rcp_3",
        "reference": reference,
    })
}

#[test]
fn cursorpay_creates_payouts_and_transfers_with_their_transactions() {
    let cp = Cursorpay::start(21, TOKEN);
    cp.seed_accounts(3);
    cp.seed_transactions(5, 2);
    let now = cp.now() + 60;
    cp.set_now(now);

    let mut body = order("inv-1");
    body["description"] = json!("March payroll");
    body["metadata"] = json!({"batch": "7", "nested": {"a": 1}});
    let reply = cp_post_json(&cp, "/v1/payouts", &body, None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("idempotent-replayed"), None);
    let payout = json_of(&reply);
    assert_eq!(
        payout,
        json!({
            "id": "po_1",
            "object": "payout",
            "amount": "12.34",
            "currency": "eur",
            "source": "acct_1",
            "destination": "rcp_3",
            "reference": "inv-1",
            "description": "March payroll",
            "metadata": {"batch": "7", "nested": {"a": 1}},
            "status": "pending",
            "created": now,
        })
    );

    let mut body = order("inv-2");
    body["destination"] = json!("acct_2");
    let reply = cp_post_json(&cp, "/v1/transfers", &body, None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let transfer = json_of(&reply);
    assert_eq!(transfer["id"], "tr_1");
    assert_eq!(transfer["object"], "transfer");
    assert_eq!(transfer["destination"], "acct_2");
    assert_eq!(transfer["description"], Value::Null);
    assert_eq!(transfer["metadata"], json!({}));

    let body = json!({"amount": "1500", "currency": "jpy", "source": "acct_2",
        "destination": "rcp_1", "reference": "inv-1", "description": null, "metadata": null});
    let reply = cp_post_json(&cp, "/v1/payouts", &body, None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(json_of(&reply)["id"], "po_2");
    let reply = cp_post_json(&cp, "/v1/transfers", &order("inv-3"), None);
    assert_eq!(json_of(&reply)["id"], "tr_2");

    // Ground truth and counters.
    assert_eq!(cp.accepted(), 4);
    assert_eq!(cp.initiation_posts(), 4);
    let payouts = cp.payouts();
    assert_eq!(ids(&payouts, "id"), ["po_1", "po_2"]);
    assert_eq!(payouts[0], payout);
    assert_eq!(ids(&cp.transfers(), "id"), ["tr_1", "tr_2"]);
    assert_eq!(cp.transfers()[0], transfer);
    assert_eq!(cp.payments_for_reference("inv-1"), 2);
    assert_eq!(cp.payments_for_reference("inv-2"), 1);
    assert_eq!(cp.payments_for_reference("nothing"), 0);
    assert_eq!(cp.duplicate_references(), ["inv-1"]);

    // Each one added a transaction, money out, with its origin; the others have a null origin.
    let walked = cp_walk(&cp, "/v1/transactions", 100, None);
    assert_eq!(walked.len(), 9);
    let by_origin: BTreeMap<String, &Value> = walked
        .iter()
        .filter(|t| !t["origin"].is_null())
        .map(|t| (t["origin"].as_str().unwrap().to_owned(), t))
        .collect();
    assert_eq!(
        by_origin.keys().collect::<Vec<_>>(),
        ["po_1", "po_2", "tr_1", "tr_2"]
    );
    assert!(walked.iter().all(|t| t.get("origin").is_some()));
    let txn = by_origin["po_1"];
    assert_eq!(
        *txn,
        json!({
            "id": "txn_6",
            "created": now,
            "updated": now,
            "amount": "-12.34",
            "currency": "eur",
            "type": "payout",
            "status": "pending",
            "source": "acct_1",
            "destination": "rcp_3",
            "description": "March payroll",
            "origin": "po_1",
        })
    );
    assert_eq!(by_origin["tr_1"]["type"], "transfer");
    assert_eq!(by_origin["tr_1"]["destination"], "acct_2");
    assert_eq!(by_origin["tr_1"]["description"], "transfer tr_1");
    assert_eq!(by_origin["po_2"]["amount"], "-1500");
    assert_eq!(
        cp.transaction("txn_7").unwrap().origin.as_deref(),
        Some("tr_1")
    );
    assert_eq!(cp.transaction("txn_1").unwrap().origin, None);
    // The newest-first list puts them on top (same second: id descending).
    assert_eq!(
        ids(&walked[..4], "id"),
        ["txn_9", "txn_8", "txn_7", "txn_6"]
    );

    // Lookup by id.
    let reply = get(&format!("{}/v1/payouts/po_1", cp.url()), Some(TOKEN));
    assert_eq!(reply.status, 200);
    assert_eq!(json_of(&reply), payout);
    let reply = get(&format!("{}/v1/transfers/tr_1", cp.url()), Some(TOKEN));
    assert_eq!(json_of(&reply), transfer);
    for path in [
        "/v1/payouts/po_3",
        "/v1/payouts/po_0",
        "/v1/payouts/po_01",
        "/v1/payouts/tr_1",
        "/v1/transfers/po_1",
        "/v1/payouts/x",
    ] {
        let reply = get(&format!("{}{path}", cp.url()), Some(TOKEN));
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(json_of(&reply)["error"]["param"], "id", "{path}");
    }
    assert_eq!(
        get(&format!("{}/v1/payouts/po_1", cp.url()), None).status,
        401
    );

    // Lookup by reference: oldest first; without a reference, everything.
    let list = json_of(&get(
        &format!("{}/v1/payouts?reference=inv-1", cp.url()),
        Some(TOKEN),
    ));
    assert_eq!(list["object"], "list");
    assert_eq!(list["url"], "/v1/payouts");
    assert_eq!(list["has_more"], false);
    assert_eq!(
        ids(list["data"].as_array().unwrap(), "id"),
        ["po_1", "po_2"]
    );
    let list = json_of(&get(
        &format!("{}/v1/transfers?reference=inv-1", cp.url()),
        Some(TOKEN),
    ));
    assert_eq!(list["url"], "/v1/transfers");
    assert_eq!(list["data"], json!([]));
    let list = json_of(&get(&format!("{}/v1/transfers", cp.url()), Some(TOKEN)));
    assert_eq!(
        ids(list["data"].as_array().unwrap(), "id"),
        ["tr_1", "tr_2"]
    );
    for (query, param) in [
        ("limit=5", "limit"),
        ("reference=a&reference=b", "reference"),
    ] {
        let reply = get(&format!("{}/v1/payouts?{query}", cp.url()), Some(TOKEN));
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(json_of(&reply)["error"]["param"], param, "{query}");
    }
}

#[test]
fn cursorpay_idempotency_keys_replay_and_reject_other_bodies() {
    let cp = Cursorpay::start(22, TOKEN);
    let first = cp_post_json(&cp, "/v1/payouts", &order("r1"), Some("k1"));
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let created = json_of(&first);
    assert_eq!(created["id"], "po_1");

    // The same body (other key order and spacing) replays the remembered answer.
    cp.advance(30);
    let same = br#"{ "reference":"r1","destination":"rcp_3","source":"acct_1","currency":"eur","amount":"12.34" }"#;
    let replay = cp_post(&cp, "/v1/payouts", same, Some("k1"));
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(json_of(&replay), created);
    assert_eq!(cp.accepted(), 1);
    assert_eq!(cp.transactions().len(), 1);

    // Another body under that key is refused, and creates nothing.
    let mut other = order("r1");
    other["amount"] = json!("12.35");
    let reply = cp_post_json(&cp, "/v1/payouts", &other, Some("k1"));
    assert_eq!(reply.status, 400);
    let error = json_of(&reply)["error"].clone();
    assert_eq!(error["type"], "idempotency_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Keys for idempotent requests can only be used with the same parameters")
    );
    let reply = cp_post(&cp, "/v1/payouts", b"not json", Some("k1"));
    assert_eq!(json_of(&reply)["error"]["type"], "idempotency_error");
    assert_eq!(cp.accepted(), 1);

    // Keys are per kind.
    let reply = cp_post_json(&cp, "/v1/transfers", &order("r1"), Some("k1"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), None);
    assert_eq!(json_of(&reply)["id"], "tr_1");

    // A rejected request is not remembered: the key stays free.
    let mut bad = order("r2");
    bad["currency"] = json!("EUR");
    let reply = cp_post_json(&cp, "/v1/payouts", &bad, Some("k2"));
    assert_eq!(reply.status, 400);
    let reply = cp_post_json(&cp, "/v1/payouts", &order("r2"), Some("k2"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), None);
    assert_eq!(json_of(&reply)["id"], "po_2");

    // Without a key, the same body creates another payment.
    let reply = cp_post_json(&cp, "/v1/payouts", &order("r2"), None);
    assert_eq!(json_of(&reply)["id"], "po_3");
    assert_eq!(cp.duplicate_references(), ["r1", "r2"]);

    // Concurrent requests with one key create one payment.
    let replies: Vec<HttpReply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| cp_post_json(&cp, "/v1/transfers", &order("r3"), Some("k3"))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(replies.iter().all(|r| json_of(r)["id"] == "tr_2"));
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.header("idempotent-replayed").is_none())
            .count(),
        1
    );
    assert_eq!(cp.payments_for_reference("r3"), 1);
    assert_eq!(cp.accepted(), 5);
    assert_eq!(cp.initiation_posts(), 16);
}

#[test]
fn cursorpay_initiation_faults_fail_before_or_after_accepting() {
    let cp = Cursorpay::start(23, TOKEN);

    // Before: nothing is created, and the key is not remembered.
    cp.set_initiation_faults(1000, 0);
    let reply = cp_post_json(&cp, "/v1/payouts", &order("b1"), Some("kb"));
    assert_eq!(reply.status, 500);
    assert_eq!(json_of(&reply)["error"]["type"], "api_error");
    assert_eq!(cp.accepted(), 0);
    assert!(cp.payouts().is_empty());
    assert!(cp.transactions().is_empty());
    // Validation comes first: a bad request is still a 400.
    let reply = cp_post_json(&cp, "/v1/payouts", &json!({}), Some("kb"));
    assert_eq!(reply.status, 400);
    cp.set_initiation_faults(0, 0);
    let reply = cp_post_json(&cp, "/v1/payouts", &order("b1"), Some("kb"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), None);
    assert_eq!(json_of(&reply)["id"], "po_1");

    // After: the payment exists; the key replays the success.
    cp.set_initiation_faults(0, 1000);
    let reply = cp_post_json(&cp, "/v1/transfers", &order("a1"), Some("ka"));
    assert_eq!(reply.status, 500);
    assert_eq!(json_of(&reply)["error"]["type"], "api_error");
    assert_eq!(cp.accepted(), 2);
    assert_eq!(cp.transfers()[0]["reference"], "a1");
    assert_eq!(cp.transactions()[1].origin.as_deref(), Some("tr_1"));
    // A replay is not a new request: no fault drawn.
    let reply = cp_post_json(&cp, "/v1/transfers", &order("a1"), Some("ka"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(json_of(&reply), cp.transfers()[0]);
    // Without a key, a retry duplicates the payment.
    let reply = cp_post_json(&cp, "/v1/transfers", &order("a2"), None);
    assert_eq!(reply.status, 500);
    cp.set_initiation_faults(0, 0);
    let reply = cp_post_json(&cp, "/v1/transfers", &order("a2"), None);
    assert_eq!(reply.status, 200);
    assert_eq!(cp.duplicate_references(), ["a2"]);

    // Mixed rates: deterministic from the seed.
    let outcomes = |seed: u64| -> (Vec<u16>, usize) {
        let cp = Cursorpay::start(seed, TOKEN);
        cp.set_initiation_faults(250, 250);
        let statuses = (0..40)
            .map(|i| cp_post_json(&cp, "/v1/payouts", &order(&format!("m{i}")), None).status)
            .collect();
        (statuses, cp.accepted())
    };
    let (statuses, accepted) = outcomes(5);
    assert_eq!(outcomes(5), (statuses.clone(), accepted));
    assert_ne!(outcomes(6).0, statuses);
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 500));
    assert!(ok > 0 && accepted > ok && accepted < 40, "{ok} {accepted}");

    // Injected faults of the control count as initiation POSTs too.
    let before = cp.initiation_posts();
    cp.fail_next(1, 503, None);
    assert_eq!(
        cp_post_json(&cp, "/v1/payouts", &order("c1"), None).status,
        503
    );
    assert_eq!(cp.initiation_posts(), before + 1);
    cp.clear_faults();

    // Latency.
    cp.set_initiation_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(
        cp_post_json(&cp, "/v1/payouts", &order("l1"), None).status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    cp.set_initiation_latency(Duration::ZERO);
}

#[test]
fn cursorpay_hold_keeps_responses_until_released() {
    let cp = Cursorpay::start(24, TOKEN);
    assert!(!cp.wait_accepted(1, Duration::from_millis(50)));
    cp.hold_initiations(true);
    std::thread::scope(|scope| {
        let held = scope.spawn(|| cp_post_json(&cp, "/v1/payouts", &order("h1"), Some("kh")));
        assert!(cp.wait_accepted(1, TIMEOUT));
        // Created, answered later; the server keeps serving.
        assert_eq!(cp.payments_for_reference("h1"), 1);
        let reply = get(&format!("{}/v1/payouts/po_1", cp.url()), Some(TOKEN));
        assert_eq!(reply.status, 200);
        std::thread::sleep(Duration::from_millis(100));
        assert!(!held.is_finished());
        // The same key while its request is in flight: 409; another body: 400.
        let reply = cp_post_json(&cp, "/v1/payouts", &order("h1"), Some("kh"));
        assert_eq!(reply.status, 409);
        assert_eq!(json_of(&reply)["error"]["type"], "idempotency_error");
        let reply = cp_post_json(&cp, "/v1/payouts", &order("h2"), Some("kh"));
        assert_eq!(reply.status, 400);
        // Rejections are answered at once; so are requests that are not accepted.
        assert_eq!(
            cp_post_json(&cp, "/v1/payouts", &json!({}), None).status,
            400
        );
        assert!(!cp.wait_accepted(2, Duration::from_millis(50)));
        // A second accepted request is held too.
        let second = scope.spawn(|| cp_post_json(&cp, "/v1/transfers", &order("h3"), None));
        assert!(cp.wait_accepted(2, TIMEOUT));
        assert!(!held.is_finished() && !second.is_finished());

        cp.hold_initiations(false);
        let reply = held.join().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(json_of(&reply)["id"], "po_1");
        assert_eq!(json_of(&second.join().unwrap())["id"], "tr_1");
    });
    let reply = cp_post_json(&cp, "/v1/payouts", &order("h1"), Some("kh"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(cp.accepted(), 2);
    assert_eq!(cp.initiation_posts(), 6);

    // Dropping the mock releases a held response.
    let cp = Cursorpay::start(25, TOKEN);
    cp.hold_initiations(true);
    let url = cp.url();
    let held = std::thread::spawn(move || {
        cp_post_to(
            &url,
            "/v1/payouts",
            order("d1").to_string().as_bytes(),
            None,
        )
    });
    assert!(cp.wait_accepted(1, TIMEOUT));
    let started = Instant::now();
    drop(cp);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(held.join().unwrap().status, 200);
}

#[test]
fn cursorpay_initiation_validates_bodies_methods_and_auth() {
    let cp = Cursorpay::start(26, TOKEN);
    let with = |key: &str, value: Value| {
        let mut body = order("v");
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = order("v");
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (with("amount", json!("12.3")), "amount"),
        (with("amount", json!("12.345")), "amount"),
        (with("amount", json!("12")), "amount"),
        (with("amount", json!("-12.34")), "amount"),
        (with("amount", json!("+12.34")), "amount"),
        (with("amount", json!("0.00")), "amount"),
        (with("amount", json!("012.34")), "amount"),
        (with("amount", json!("1e3")), "amount"),
        (with("amount", json!(12.34)), "amount"),
        (with("amount", json!("")), "amount"),
        (without("amount"), "amount"),
        (
            json!({"amount": "1500.00", "currency": "jpy", "source": "a", "destination": "b",
                "reference": "v"}),
            "amount",
        ),
        (
            json!({"amount": "1.25", "currency": "kwd", "source": "a", "destination": "b",
                "reference": "v"}),
            "amount",
        ),
        (with("currency", json!("EUR")), "currency"),
        (with("currency", json!("xyz")), "currency"),
        (with("currency", json!(978)), "currency"),
        (without("currency"), "currency"),
        (with("source", json!("")), "source"),
        (without("source"), "source"),
        (with("destination", json!(null)), "destination"),
        (with("destination", json!(["rcp_3"])), "destination"),
        (with("reference", json!(7)), "reference"),
        (with("reference", json!("")), "reference"),
        (without("reference"), "reference"),
        (with("description", json!(5)), "description"),
        (with("metadata", json!("x")), "metadata"),
        (
            with("statement_descriptor", json!("x")),
            "statement_descriptor",
        ),
    ];
    let mut posts = 0;
    for (body, param) in &cases {
        for path in ["/v1/payouts", "/v1/transfers"] {
            let reply = cp_post_json(&cp, path, body, None);
            posts += 1;
            assert_eq!(reply.status, 400, "{path} {body}: {}", reply.text());
            let error = &json_of(&reply)["error"];
            assert_eq!(error["type"], "invalid_request_error", "{body}");
            assert_eq!(error["param"], *param, "{body}");
        }
    }
    for raw in [&b"[1]"[..], b"amount=12.34", b""] {
        let reply = cp_post(&cp, "/v1/payouts", raw, None);
        posts += 1;
        assert_eq!(reply.status, 400);
        assert_eq!(json_of(&reply)["error"]["type"], "invalid_request_error");
    }
    let reply = cp_post_json(&cp, "/v1/payouts", &order("v"), Some(""));
    posts += 1;
    assert_eq!(reply.status, 400);

    // Auth comes first.
    for token in [None, Some("wrong")] {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let reply = http_request(
            "POST",
            &format!("{}/v1/payouts", cp.url()),
            &headers,
            Some(order("v").to_string().as_bytes()),
            TIMEOUT,
        )
        .unwrap();
        posts += 1;
        assert_eq!(reply.status, 401);
    }
    assert_eq!(cp.accepted(), 0);
    assert!(cp.transactions().is_empty());

    // Other methods and paths.
    for (method, path) in [
        ("PUT", "/v1/payouts"),
        ("DELETE", "/v1/transfers/tr_1"),
        ("POST", "/v1/payouts/po_1"),
        ("POST", "/v1/refunds"),
    ] {
        let reply = http_request(
            method,
            &format!("{}{path}", cp.url()),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            Some(b"{}"),
            TIMEOUT,
        )
        .unwrap();
        assert_eq!(reply.status, 405, "{method} {path}");
    }
    assert_eq!(cp.initiation_posts(), posts);

    // The edges of what is valid.
    for (amount, currency) in [
        ("0.01", "eur"),
        ("1500", "jpy"),
        ("1.250", "kwd"),
        ("10.00", "usd"),
    ] {
        let body = json!({"amount": amount, "currency": currency, "source": "s",
            "destination": "d", "reference": amount, "description": null, "metadata": null});
        let reply = cp_post_json(&cp, "/v1/payouts", &body, None);
        assert_eq!(reply.status, 200, "{amount} {currency}: {}", reply.text());
        assert_eq!(json_of(&reply)["amount"], amount);
    }
    assert_eq!(cp.accepted(), 4);
}

// =============================================================================================
// Pageworks
// =============================================================================================

const CLIENT_ID: &str = "pw-client";
const CLIENT_SECRET: &str = "pw-secret";

fn pw_token(pw: &Pageworks) -> String {
    let reply = http_request(
        "POST",
        &pw.token_url(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(
            format!(
                "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            )
            .as_bytes(),
        ),
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    json_of(&reply)["access_token"].as_str().unwrap().to_owned()
}

/// Walks a Pageworks list page by page; returns the items and the first page's meta.
fn pw_walk(
    pw: &Pageworks,
    token: &str,
    path: &str,
    per_page: usize,
    extra: &[(&str, &str)],
) -> (Vec<Value>, Value) {
    let mut items = Vec::new();
    let mut first_meta = Value::Null;
    for page in 1..10_000 {
        let page_text = page.to_string();
        let per_page_text = per_page.to_string();
        let mut query = vec![
            ("page", page_text.as_str()),
            ("per_page", per_page_text.as_str()),
        ];
        query.extend_from_slice(extra);
        let reply = get(
            &format!("{}{path}?{}", pw.url(), encode_query(&query)),
            Some(token),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = json_of(&reply);
        let meta = body["meta"].clone();
        assert_eq!(meta["page"], page);
        assert_eq!(meta["per_page"], per_page);
        if page == 1 {
            first_meta = meta.clone();
        }
        let page_items = body["items"].as_array().unwrap();
        assert!(page_items.len() <= per_page);
        items.extend(page_items.iter().cloned());
        if page >= meta["total_pages"].as_u64().unwrap() as usize {
            return (items, first_meta);
        }
    }
    panic!("no end");
}

#[test]
fn pwtime_formats_and_parses_offsets() {
    assert_eq!(
        days_from_civil(2026, 3, 1) * 86_400 + 43_200,
        PAGEWORKS_EPOCH
    );
    let t = PwTime::from_unix(PAGEWORKS_EPOCH, 120);
    assert_eq!(t.rfc3339(), "2026-03-01T14:00:00+02:00");
    assert_eq!(
        t.with_offset(-300).plus_millis(250).rfc3339(),
        "2026-03-01T07:00:00.250-05:00"
    );
    assert_eq!(t.with_offset(0).rfc3339(), "2026-03-01T12:00:00Z");
    assert_eq!(t.with_offset(330).rfc3339(), "2026-03-01T17:30:00+05:30");
    for text in [
        "2026-03-01T14:00:00+02:00",
        "2026-03-01T07:00:00.250-05:00",
        "2024-02-29T23:59:59Z",
        "1999-12-31T19:00:00.123456789-05:00",
    ] {
        assert_eq!(PwTime::parse(text).unwrap().rfc3339(), text);
        assert_eq!(
            PwTime::parse(text).unwrap().unix_nanos as i128,
            parse_rfc3339(text).unwrap()
        );
    }
    for bad in [
        "2026-03-01T14:00:00",
        "2026-02-29T00:00:00Z",
        "2026-03-01 14:00:00Z",
        "x",
    ] {
        assert_eq!(PwTime::parse(bad), None, "{bad}");
    }
}

#[test]
fn pageworks_oauth_tokens_expire_and_refresh() {
    let pw = Pageworks::start(5, CLIENT_ID, CLIENT_SECRET);
    let accounts_url = format!("{}/api/v2/accounts", pw.url());
    let reply = get(&accounts_url, None);
    assert_eq!(reply.status, 401);
    assert_eq!(json_of(&reply)["error"], "invalid_token");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(
        get(&accounts_url, Some("tok_1")).status,
        401,
        "not issued yet"
    );

    let token = pw_token(&pw);
    assert_eq!(token, "tok_1");
    assert_eq!(get(&accounts_url, Some(&token)).status, 200);

    // HTTP basic client authentication.
    let basic = format!(
        "Basic {}",
        base64_encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
    );
    let reply = http_request(
        "POST",
        &pw.token_url(),
        &[
            ("Authorization", &basic),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(b"grant_type=client_credentials"),
        TIMEOUT,
    )
    .unwrap();
    let body = json_of(&reply);
    assert_eq!(body["access_token"], "tok_2");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);

    for (body, basic_header, status, error) in [
        (
            format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=nope"),
            None,
            401,
            "invalid_client",
        ),
        (
            "grant_type=client_credentials".to_owned(),
            None,
            401,
            "invalid_client",
        ),
        (
            format!("grant_type=password&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"),
            None,
            400,
            "unsupported_grant_type",
        ),
        (
            format!("client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"),
            None,
            400,
            "invalid_request",
        ),
        (
            format!("grant_type=client_credentials&client_id=other&client_secret={CLIENT_SECRET}"),
            Some(basic.as_str()),
            400,
            "invalid_request",
        ),
    ] {
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(basic) = basic_header {
            headers.push(("Authorization", basic));
        }
        let reply = http_request(
            "POST",
            &pw.token_url(),
            &headers,
            Some(body.as_bytes()),
            TIMEOUT,
        )
        .unwrap();
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert_eq!(json_of(&reply)["error"], error, "{body}");
    }
    assert_eq!(pw.token_requests(), 7);
    assert_eq!(pw.tokens_issued(), 2);

    // A short TTL: the token works, then expires; a fresh one works.
    pw.set_token_ttl(Duration::from_millis(400));
    let short = pw_token(&pw);
    assert_eq!(get(&accounts_url, Some(&short)).status, 200);
    std::thread::sleep(Duration::from_millis(500));
    let reply = get(&accounts_url, Some(&short));
    assert_eq!(reply.status, 401);
    assert_eq!(
        json_of(&reply)["error_description"],
        "The access token expired"
    );
    let fresh = pw_token(&pw);
    assert_eq!(get(&accounts_url, Some(&fresh)).status, 200);
    assert_eq!(
        get(&accounts_url, Some(&token)).status,
        200,
        "long-lived token"
    );
    pw.expire_tokens();
    assert_eq!(get(&accounts_url, Some(&fresh)).status, 401);
    assert_eq!(get(&accounts_url, Some(&token)).status, 401);
    assert_eq!(pw.token_requests(), 9);
}

#[test]
fn pageworks_pages_walk_every_record_once_oldest_first() {
    let pw = Pageworks::start(11, CLIENT_ID, CLIENT_SECRET);
    pw.seed_accounts(45);
    pw.seed_counterparties(30);
    pw.seed_transactions(200, 6);
    let token = pw_token(&pw);

    // Accounts.
    let (items, meta) = pw_walk(&pw, &token, "/api/v2/accounts", 7, &[]);
    assert_eq!(meta["total"], 45);
    assert_eq!(meta["total_pages"], 7);
    assert_eq!(pw.calls("/api/v2/accounts"), 7);
    let mut expected = pw.accounts();
    expected.sort_by(|a, b| {
        a.opened_at
            .instant_cmp(&b.opened_at)
            .then_with(|| a.uuid.cmp(&b.uuid))
    });
    assert_eq!(
        items,
        expected.iter().map(|a| a.to_json()).collect::<Vec<_>>()
    );
    let texts: Vec<String> = expected.iter().map(|a| a.opened_at.rfc3339()).collect();
    assert!(texts.iter().any(|t| t.ends_with('Z')));
    assert!(texts.iter().any(|t| t.ends_with("+02:00")));
    assert!(texts.iter().any(|t| t.ends_with("-05:00")));
    assert!(texts.iter().any(|t| t.contains('.')));
    let seconds: BTreeSet<i64> = expected.iter().map(|a| a.opened_at.secs()).collect();
    assert!(seconds.len() < expected.len(), "ties within a second");

    // Counterparties.
    let (items, meta) = pw_walk(&pw, &token, "/api/v2/counterparties", 100, &[]);
    assert_eq!(meta["total_pages"], 1);
    let mut expected = pw.counterparties();
    expected.sort_by(|a, b| {
        a.created_at
            .instant_cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    assert_eq!(
        items,
        expected.iter().map(|c| c.to_json()).collect::<Vec<_>>()
    );

    // Statements: flattened entries are every transaction once, oldest first.
    let (statements, meta) = pw_walk(&pw, &token, "/api/v2/statements", 5, &[]);
    assert_eq!(meta["total"].as_u64().unwrap() as usize, statements.len());
    assert!(statements.len() > 200 / 4 && statements.len() < 200);
    let mut flattened = Vec::new();
    for statement in &statements {
        let entries = statement["entries"].as_array().unwrap();
        assert!((1..=4).contains(&entries.len()));
        assert!(
            statement["statement_id"]
                .as_str()
                .unwrap()
                .starts_with("ST-")
        );
        flattened.extend(entries.iter().cloned());
    }
    let mut expected = pw.transactions();
    expected.sort_by(|a, b| {
        a.changed_at
            .instant_cmp(&b.changed_at)
            .then_with(|| a.reference.cmp(&b.reference))
    });
    assert_eq!(
        flattened,
        expected.iter().map(|t| t.to_json()).collect::<Vec<_>>()
    );
    assert_eq!(
        statements,
        pw.statements(None)
            .iter()
            .map(|s| s.to_json())
            .collect::<Vec<_>>()
    );
    // Exact-instant ties written in different zones exist.
    let mut zones_per_instant: BTreeMap<i64, BTreeSet<i32>> = BTreeMap::new();
    for t in &expected {
        zones_per_instant
            .entry(t.changed_at.unix_nanos)
            .or_default()
            .insert(t.changed_at.offset_minutes);
    }
    assert!(zones_per_instant.values().any(|zones| zones.len() > 1));
    for t in &expected {
        assert!(t.booked_at.unix_nanos <= t.changed_at.unix_nanos);
        assert_eq!(t.money.currency, t.money.currency.to_ascii_uppercase());
    }
    assert!(
        flattened
            .iter()
            .any(|t| t["tags"]["batch"].is_i64() && t["tags"]["channel"].is_string())
    );

    // Balances.
    let account = &pw.accounts()[3];
    let body = json_of(&get(
        &format!("{}/api/v2/accounts/{}/balances", pw.url(), account.uuid),
        Some(&token),
    ));
    assert_eq!(body["account_uuid"], account.uuid.as_str());
    assert_eq!(
        PwTime::parse(body["as_of"].as_str().unwrap())
            .unwrap()
            .unix_nanos,
        pw.now().unix_nanos
    );
    assert_eq!(
        body["balances"],
        json!(
            account
                .balances
                .iter()
                .map(|m| json!({"money": m.to_json()}))
                .collect::<Vec<_>>()
        )
    );
    assert!(pw.set_balances(&account.uuid, &[(123_456, "EUR"), (1500, "JPY")]));
    let body = json_of(&get(
        &format!("{}/api/v2/accounts/{}/balances", pw.url(), account.uuid),
        Some(&token),
    ));
    assert_eq!(
        body["balances"],
        json!([
            {"money": {"value_minor": 123_456, "currency": "EUR"}},
            {"money": {"value_minor": 1500, "currency": "JPY"}}
        ])
    );
    let reply = get(
        &format!("{}/api/v2/accounts/nope/balances", pw.url()),
        Some(&token),
    );
    assert_eq!(reply.status, 404);
    assert_eq!(json_of(&reply)["errors"][0]["code"], "not_found");
}

#[test]
fn pageworks_filters_and_errors() {
    let pw = Pageworks::start(2, CLIENT_ID, CLIENT_SECRET);
    let token = pw_token(&pw);
    let noon = PAGEWORKS_EPOCH - 3600;
    let a0 = pw.add_account(
        "a0",
        "o",
        Some(PwTime::from_unix(noon - 1, 0).plus_millis(999)),
    );
    let a1 = pw.add_account("a1", "o", Some(PwTime::from_unix(noon, 120)));
    let a2 = pw.add_account(
        "a2",
        "o",
        Some(PwTime::from_unix(noon, -300).plus_millis(250)),
    );
    let a3 = pw.add_account("a3", "o", Some(PwTime::from_unix(noon + 1, 0)));
    let uuids = |after: &str| -> Vec<String> {
        let (items, _) = pw_walk(
            &pw,
            &token,
            "/api/v2/accounts",
            2,
            &[("opened_after", after)],
        );
        items
            .iter()
            .map(|i| i["account"]["uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    let noon_z = PwTime::from_unix(noon, 0).rfc3339();
    // Exclusive at second precision: 11:00:00.250 is hidden by 11:00:00.
    assert_eq!(uuids(&noon_z), [a3.as_str()]);
    assert_eq!(
        uuids("2026-03-01T13:00:00.900+02:00"),
        [a3.as_str()],
        "same second, other zone"
    );
    let before = PwTime::from_unix(noon - 1, -300).rfc3339();
    assert_eq!(uuids(&before), [a1.clone(), a2.clone(), a3.clone()]);
    let (all, _) = pw_walk(&pw, &token, "/api/v2/accounts", 10, &[]);
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["account"]["uuid"], a0.as_str());
    assert_eq!(all[1]["account"]["opened_at"], "2026-03-01T13:00:00+02:00");
    assert_eq!(
        all[2]["account"]["opened_at"],
        "2026-03-01T06:00:00.250-05:00"
    );

    // changed_since: inclusive at full precision.
    let exact = PwTime::from_unix(noon, 60).plus_millis(250);
    let t1 = pw.add_transaction(PwNewTransaction {
        changed_at: Some(exact),
        ..Default::default()
    });
    let t2 = pw.add_transaction(PwNewTransaction {
        changed_at: Some(PwTime::from_unix(noon, 0)),
        value_minor: -1234,
        kind: "SEPA_OUT".to_owned(),
        ..Default::default()
    });
    let refs = |since: &str| -> Vec<String> {
        let (statements, _) = pw_walk(
            &pw,
            &token,
            "/api/v2/statements",
            3,
            &[("changed_since", since)],
        );
        statements
            .iter()
            .flat_map(|s| s["entries"].as_array().unwrap().clone())
            .map(|e| e["ref"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(refs(&exact.rfc3339()), [t1.as_str()]);
    assert_eq!(refs(&exact.with_offset(-300).rfc3339()), [t1.as_str()]);
    assert!(refs(&exact.plus_millis(1).rfc3339()).is_empty());
    assert_eq!(refs(&noon_z), [t2.clone(), t1.clone()]);
    let t2_json = pw.transaction(&t2).unwrap().to_json();
    assert_eq!(
        t2_json["money"],
        json!({"value_minor": -1234, "currency": "EUR"})
    );
    assert_eq!(t2_json["changed_at"], "2026-03-01T11:00:00Z");

    // Errors.
    for (path, query) in [
        ("/api/v2/accounts", "per_page=101"),
        ("/api/v2/accounts", "per_page=0"),
        ("/api/v2/accounts", "page=0"),
        ("/api/v2/accounts", "page=x"),
        ("/api/v2/accounts", "opened_after=2026-03-01T12:00:00"),
        ("/api/v2/accounts", "opened_since=2026-03-01T12:00:00Z"),
        (
            "/api/v2/counterparties",
            "created_after=2026-03-01T12:00:00Z",
        ),
        ("/api/v2/statements", "changed_since=yesterday"),
        ("/api/v2/statements", "page=1&page=2"),
    ] {
        let reply = get(&format!("{}{path}?{query}", pw.url()), Some(&token));
        assert_eq!(reply.status, 400, "{path}?{query}: {}", reply.text());
        assert_eq!(json_of(&reply)["errors"][0]["code"], "invalid_parameter");
    }
    let body = json_of(&get(
        &format!("{}/api/v2/accounts?page=99&per_page=2", pw.url()),
        Some(&token),
    ));
    assert_eq!(body["items"], json!([]));
    assert_eq!(body["meta"]["total_pages"], 2);
    assert_eq!(
        get(&format!("{}/api/v2/nothing", pw.url()), Some(&token)).status,
        404
    );

    let empty = Pageworks::start(2, CLIENT_ID, CLIENT_SECRET);
    let token = pw_token(&empty);
    let body = json_of(&get(
        &format!("{}/api/v2/statements", empty.url()),
        Some(&token),
    ));
    assert_eq!(
        body,
        json!({"meta": {"page": 1, "per_page": 25, "total_pages": 0, "total": 0}, "items": []})
    );
}

#[test]
fn pageworks_changes_clock_faults_and_call_counts() {
    let pw = Pageworks::start(13, CLIENT_ID, CLIENT_SECRET);
    pw.seed_accounts(4);
    let refs = pw.seed_transactions(30, 3);
    let token = pw_token(&pw);
    let now = pw.now();
    assert!(
        pw.transactions()
            .iter()
            .all(|t| t.changed_at.unix_nanos <= now.unix_nanos)
    );

    // An update moves the transaction to the end, with the clock's time in its own zone.
    pw.advance_millis(60_000);
    let target = &refs[0];
    let zone = pw.transaction(target).unwrap().changed_at.offset_minutes;
    assert!(pw.update_transaction(target, Some("REVERSED"), None));
    assert!(!pw.update_transaction("TX-NOPE", None, None));
    let (statements, _) = pw_walk(&pw, &token, "/api/v2/statements", 100, &[]);
    let last_statement = statements.last().unwrap();
    let last = last_statement["entries"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(last["ref"], target.as_str());
    assert_eq!(last["state"], "REVERSED");
    let changed = PwTime::parse(last["changed_at"].as_str().unwrap()).unwrap();
    assert_eq!(changed.unix_nanos, now.unix_nanos + 60 * 1_000_000_000);
    assert_eq!(changed.offset_minutes, zone);
    let since = changed.rfc3339();
    let (recent, _) = pw_walk(
        &pw,
        &token,
        "/api/v2/statements",
        100,
        &[("changed_since", &since)],
    );
    assert_eq!(recent.len(), 1);

    // Faults hit API calls only; the token endpoint keeps working.
    pw.reset_calls();
    pw.fail_every(2, 503, Some(1));
    let url = format!("{}/api/v2/counterparties", pw.url());
    let statuses: Vec<u16> = (0..4)
        .map(|i| {
            let reply = get(&url, Some(&token));
            if reply.status == 503 {
                assert_eq!(reply.header("retry-after"), Some("1"));
                assert_eq!(json_of(&reply)["errors"][0]["code"], "unavailable");
            }
            if i == 1 {
                pw_token(&pw);
            }
            reply.status
        })
        .collect();
    assert_eq!(statuses, [200, 503, 200, 503]);
    pw.fail_next(1, 429, None);
    let reply = get(&url, Some(&token));
    assert_eq!(reply.status, 429);
    assert_eq!(json_of(&reply)["errors"][0]["code"], "rate_limited");
    pw.clear_faults();
    pw.fail_every_on("/oauth/", 1, 503, None);
    let reply = http_request("POST", &pw.token_url(), &[], Some(b"x=y"), TIMEOUT).unwrap();
    assert_eq!(reply.status, 503);
    pw.clear_faults();
    assert_eq!(get(&url, Some(&token)).status, 200);
    assert_eq!(pw.calls("/api/v2/counterparties"), 6);
    assert_eq!(pw.calls("/oauth/token"), 2);
    assert_eq!(pw.calls("/"), 8);
}

// =============================================================================================
// The poller against a fake connector
// =============================================================================================

/// A record of the fake connector: `n` numbers it, `second` is its (unix) time.
#[derive(Clone, Debug)]
struct FakeRecord {
    n: u64,
    second: i64,
    version: u32,
}

/// A fake Generic connector over an in-memory list, implementing the listing protocol: sorted
/// ascending, inclusive second filter, page/pageSize. With `tie_offsets`, a record's served
/// timestamp is its second plus an offset below one second derived from the record alone
/// (a bijection of `n`, so two records never share a served timestamp); without, ties are
/// served as they are.
struct Fake {
    records: Mutex<Vec<FakeRecord>>,
    tie_offsets: bool,
    targets: Mutex<Vec<String>>,
}

const FAKE_KEY: &str = "fake-connector-key";

impl Fake {
    fn served(&self, record: &FakeRecord) -> i128 {
        let offset = if self.tie_offsets {
            i128::from(record.n.wrapping_mul(0x9E37_79B1) & ((1 << 29) - 1))
        } else {
            0
        };
        i128::from(record.second) * 1_000_000_000 + offset
    }

    fn id(n: u64) -> String {
        format!("rec-{n:05}")
    }

    fn handle(&self, request: &Request) -> Response {
        lock(&self.targets).push(request.target.clone());
        let error = |status: u16, detail: &str| {
            Response::json(status, &json!({"Title": "error", "Detail": detail}))
        };
        if request.bearer() != Some(FAKE_KEY) {
            return error(401, "bad key");
        }
        let (kind, filter, sort) = match request.path.as_str() {
            "/accounts" => (Kind::Accounts, "createdAtFrom", "createdAt:asc"),
            "/transactions" => (Kind::Transactions, "updatedAtFrom", "updatedAt:asc"),
            _ => return error(404, "no such path"),
        };
        let page: usize = match request.query_param("page").map(str::parse) {
            Some(Ok(p)) if p >= 1 => p,
            _ => return error(400, "page"),
        };
        let page_size: usize = match request.query_param("pageSize").map(str::parse) {
            Some(Ok(p)) if p >= 1 => p,
            _ => return error(400, "pageSize"),
        };
        if request.query_param("sort") != Some(sort) {
            return error(400, "sort");
        }
        let from = match request.query_param(filter) {
            None => None,
            Some(text) => match parse_rfc3339(text) {
                Some(from) => Some(from),
                None => return error(400, "filter"),
            },
        };
        let records = lock(&self.records);
        let mut listed: Vec<(i128, String, u32)> = records
            .iter()
            .map(|r| (self.served(r), Fake::id(r.n), r.version))
            .filter(|(ts, _, _)| from.is_none_or(|from| *ts >= from))
            .collect();
        listed.sort();
        let items: Vec<Value> = listed
            .iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(|(ts, id, version)| match kind {
                Kind::Accounts => json!({
                    "id": id,
                    "accountName": format!("account {id}"),
                    "createdAt": format_rfc3339_nanos(*ts),
                }),
                _ => json!({
                    "id": id,
                    "createdAt": "2026-01-01T00:00:00Z",
                    "updatedAt": format_rfc3339_nanos(*ts),
                    "currency": "EUR/2",
                    "type": "PAYIN",
                    "status": "SUCCEEDED",
                    "amount": "100",
                    "metadata": {"version": version.to_string()},
                }),
            })
            .collect();
        Response::json(200, &Value::Array(items))
    }
}

fn start_fake(records: Vec<FakeRecord>, tie_offsets: bool) -> (Arc<Fake>, MockServer) {
    let fake = Arc::new(Fake {
        records: Mutex::new(records),
        tie_offsets,
        targets: Mutex::new(Vec::new()),
    });
    let handler_fake = Arc::clone(&fake);
    let server = MockServer::from_fn(move |request| handler_fake.handle(request));
    (fake, server)
}

/// Records in bursts: `sizes` cycles through burst sizes; bursts 1 to 2 seconds apart.
fn bursty_records(
    count: usize,
    sizes: &[usize],
    start_n: u64,
    start_second: i64,
) -> Vec<FakeRecord> {
    let mut records = Vec::new();
    let mut second = start_second;
    let mut burst = 0;
    while records.len() < count {
        let size = sizes[burst % sizes.len()];
        for _ in 0..size.min(count - records.len()) {
            let n = start_n + records.len() as u64;
            records.push(FakeRecord {
                n,
                second,
                version: 1,
            });
        }
        second += 1 + (burst as i64 % 2);
        burst += 1;
    }
    records
}

const BURSTS: [usize; 8] = [1, 10, 3, 12, 7, 10, 2, 8];

#[test]
fn poller_loses_and_duplicates_nothing_with_a_correct_connector() {
    let base = PAGEWORKS_EPOCH;
    for page_size in [1, 7, 100] {
        let records = bursty_records(160, &BURSTS, 1, base);
        let total = records.len();
        let (fake, server) = start_fake(records, true);
        let mut poller = Poller::new(&server.url(), FAKE_KEY, page_size);
        for kind in [Kind::Accounts, Kind::Transactions] {
            let cycles = poller.sync(kind).unwrap();
            assert_eq!(
                poller.records(kind).len(),
                total,
                "{kind:?} page size {page_size}"
            );
            assert_eq!(poller.receipts(kind), total, "no duplicates");
            assert!(cycles >= total / page_size, "{cycles} cycles");
            assert!(poller.cycles(kind).iter().all(|c| c.out_of_order == 0));
        }
        // The first request carried no filter, later ones a second-precision UTC filter.
        let targets = lock(&fake.targets).clone();
        assert_eq!(
            targets[0],
            format!("/accounts?page=1&pageSize={page_size}&sort=createdAt%3Aasc")
        );
        let later = targets
            .iter()
            .find(|t| t.starts_with("/transactions?") && t.contains("updatedAtFrom="))
            .expect("a filtered transactions request");
        let value = later.rsplit("updatedAtFrom=").next().unwrap();
        assert!(value.contains("%3A"), "{later}");
        let decoded = percent_decode(value, true).unwrap();
        assert_eq!(decoded.len(), 20, "{decoded}");
        assert!(decoded.ends_with('Z'));
        assert!(parse_rfc3339(&decoded).unwrap() % 1_000_000_000 == 0);

        // Data changes between polls: 12 updates (a burst, one second) and 15 new records.
        {
            let mut records = lock(&fake.records);
            let later = base + 10_000;
            for record in records.iter_mut().filter(|r| r.n % 13 == 0).take(12) {
                record.second = later;
                record.version = 2;
            }
            records.extend(bursty_records(15, &[10, 5], 1000, later + 1));
        }
        poller.sync(Kind::Transactions).unwrap();
        let received = poller.records(Kind::Transactions);
        assert_eq!(received.len(), total + 15);
        assert_eq!(poller.receipts(Kind::Transactions), total + 12 + 15);
        assert_eq!(poller.repeats(Kind::Transactions), 0);
        let updated: Vec<&String> = received
            .iter()
            .filter(|(_, r)| r.versions == 2)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(updated.len(), 12);
        for (id, record) in received {
            let expected = if record.versions == 2 { "2" } else { "1" };
            assert_eq!(record.json["metadata"]["version"], expected, "{id}");
        }
        // Nothing new: one cycle, nothing received.
        assert_eq!(poller.sync(Kind::Transactions).unwrap(), 1);
        assert_eq!(poller.receipts(Kind::Transactions), total + 12 + 15);
    }
}

#[test]
fn a_connector_reporting_ties_as_they_are_loses_records_in_bursts() {
    let records = bursty_records(100, &[10], 1, PAGEWORKS_EPOCH);
    let (_fake, server) = start_fake(records, false);
    let mut poller = Poller::new(&server.url(), FAKE_KEY, 7);
    poller.sync(Kind::Transactions).unwrap();
    let received = poller.records(Kind::Transactions).len();
    // Each burst of 10 is cut after 7; the next cycle skips the other 3 (same timestamp).
    assert_eq!(received, 70, "received {received} of 100");
    assert_eq!(poller.repeats(Kind::Transactions), 0);

    // The same data with per-record tie offsets loses nothing.
    let records = bursty_records(100, &[10], 1, PAGEWORKS_EPOCH);
    let (_fake, server) = start_fake(records, true);
    let mut poller = Poller::new(&server.url(), FAKE_KEY, 7);
    poller.sync(Kind::Transactions).unwrap();
    assert_eq!(poller.records(Kind::Transactions).len(), 100);
}

/// A server answering every request with `body` (and recording the targets).
fn static_server(status: u16, body: Value) -> MockServer {
    MockServer::from_fn(move |_request| Response::json(status, &body))
}

fn transaction(overrides: Value) -> Value {
    let mut item = json!({
        "id": "t1",
        "createdAt": "2026-03-01T12:00:00Z",
        "updatedAt": "2026-03-01T14:00:00.5+02:00",
        "currency": "EUR/2",
        "type": "PAYOUT",
        "status": "SUCCEEDED",
        "amount": "1234",
        "sourceAccountID": "a1",
        "metadata": {"k": "v"},
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v == "<absent>" {
            item.as_object_mut().unwrap().remove(k);
        } else {
            item[k] = v.clone();
        }
    }
    item
}

#[test]
fn poller_decodes_strictly_and_one_bad_item_fails_the_page() {
    let goods = [
        json!({}),
        json!({"currency": "JPY", "amount": "0"}),
        json!({"currency": "BTC/8", "amount": "-5"}),
        json!({"metadata": null, "sourceAccountID": null}),
        json!({"metadata": "<absent>", "relatedTransactionID": "x", "scheme": "visa"}),
        json!({"updatedAt": "2026-03-01T12:00:00.123456789123Z", "status": "REFUND_REVERSED"}),
        json!({"extra": {"ignored": true}, "type": "OTHER", "status": "OTHER"}),
    ];
    for good in goods {
        let item = transaction(good.clone());
        let server = static_server(200, json!([item]));
        let mut poller = Poller::new(&server.url(), "k", 10);
        assert!(!poller.poll_cycle(Kind::Transactions).unwrap(), "{good}");
        assert_eq!(poller.records(Kind::Transactions).len(), 1, "{good}");
    }
    let server = static_server(200, json!([transaction(json!({}))]));
    let mut poller = Poller::new(&server.url(), "k", 10);
    poller.poll_cycle(Kind::Transactions).unwrap();
    assert_eq!(
        poller.state(Kind::Transactions),
        parse_rfc3339("2026-03-01T12:00:00.5Z")
    );
    assert_eq!(
        format_rfc3339_utc_seconds(poller.state(Kind::Transactions).unwrap()),
        "2026-03-01T12:00:00Z"
    );

    let bads = [
        json!({"amount": "12.34"}),
        json!({"amount": "1e3"}),
        json!({"amount": ""}),
        json!({"amount": 1234}),
        json!({"amount": " 12"}),
        json!({"currency": "eur"}),
        json!({"currency": "EUR/"}),
        json!({"currency": "EUR/x"}),
        json!({"currency": ""}),
        json!({"status": "DONE"}),
        json!({"status": "succeeded"}),
        json!({"type": "PAYMENT"}),
        json!({"metadata": {"n": 1}}),
        json!({"metadata": ["a"]}),
        json!({"createdAt": "2026-03-01T12:00:00"}),
        json!({"updatedAt": "2026-03-01 12:00:00Z"}),
        json!({"updatedAt": "2026-03-01t12:00:00z"}),
        json!({"updatedAt": "2026-02-30T12:00:00Z"}),
        json!({"updatedAt": "2026-03-01T12:00:60Z"}),
        json!({"updatedAt": "2026-03-01T12:00:00+24:00"}),
        json!({"updatedAt": null}),
        json!({"id": "<absent>"}),
        json!({"id": 7}),
        json!({"status": "<absent>"}),
        json!({"sourceAccountID": 3}),
    ];
    for bad in bads {
        // One good item, then the bad one: the whole page fails, nothing is stored.
        let server = static_server(
            200,
            json!([transaction(json!({"id": "good"})), transaction(bad.clone())]),
        );
        let mut poller = Poller::new(&server.url(), "k", 10);
        match poller.poll_cycle(Kind::Transactions) {
            Err(PollError::Decode { detail, .. }) => assert!(!detail.is_empty()),
            other => panic!("{bad}: expected a decode error, got {other:?}"),
        }
        assert!(poller.records(Kind::Transactions).is_empty(), "{bad}");
        assert_eq!(poller.state(Kind::Transactions), None, "{bad}");
    }
    for body in [json!({"items": []}), json!("x"), json!([1])] {
        let server = static_server(200, body.clone());
        let mut poller = Poller::new(&server.url(), "k", 10);
        assert!(
            matches!(
                poller.poll_cycle(Kind::Accounts),
                Err(PollError::Decode { .. })
            ),
            "{body}"
        );
    }
    // null is an empty page, as Go decodes it.
    let server = static_server(200, Value::Null);
    let mut poller = Poller::new(&server.url(), "k", 10);
    assert!(!poller.poll_cycle(Kind::Beneficiaries).unwrap());

    // Accounts and beneficiaries need their own required fields.
    for (kind, item) in [
        (
            Kind::Accounts,
            json!({"id": "a", "createdAt": "2026-03-01T12:00:00Z"}),
        ),
        (
            Kind::Beneficiaries,
            json!({"id": "b", "createdAt": "2026-03-01T12:00:00Z"}),
        ),
    ] {
        let server = static_server(200, json!([item]));
        let mut poller = Poller::new(&server.url(), "k", 10);
        assert!(matches!(
            poller.poll_cycle(kind),
            Err(PollError::Decode { .. })
        ));
    }
    let server = static_server(
        200,
        json!([{"id": "b", "createdAt": "2026-03-01T12:00:00-05:00", "ownerName": "X"}]),
    );
    let mut poller = Poller::new(&server.url(), "k", 10);
    poller.sync(Kind::Beneficiaries).unwrap();
    assert_eq!(poller.ids(Kind::Beneficiaries), ["b"]);

    assert!(check_amount("+12").is_ok() && check_amount("-").is_err());
    assert!(check_currency("USDC/6").is_ok() && check_currency("Eur").is_err());
}

#[test]
fn poller_retries_what_formance_retries_and_fails_on_other_4xx() {
    // Answers the statuses in `script` in turn, then 200 with an empty list.
    let scripted = |script: Vec<u16>| {
        let calls = Arc::new(Mutex::new(0usize));
        let counter = Arc::clone(&calls);
        let server = MockServer::from_fn(move |_request| {
            let mut n = lock(&counter);
            *n += 1;
            match script.get(*n - 1) {
                Some(status) => Response::json(
                    *status,
                    &json!({"title": "Nope", "detail": format!("status {status}")}),
                )
                .with_header("Retry-After", "1"),
                None => Response::json(200, &json!([])),
            }
        });
        (server, calls)
    };

    for retried in [429u16, 408, 421, 423, 425, 500, 502, 503, 504] {
        let (server, calls) = scripted(vec![retried, retried]);
        let mut poller = Poller::new(&server.url(), "k", 10);
        poller.sync(Kind::Accounts).unwrap();
        assert_eq!(poller.retries(), 2, "{retried}");
        assert_eq!(*lock(&calls), 3);
    }
    for fatal in [400u16, 401, 403, 404, 409, 422] {
        let (server, calls) = scripted(vec![fatal]);
        let mut poller = Poller::new(&server.url(), "k", 10);
        match poller.sync(Kind::Accounts) {
            Err(PollError::Status {
                status,
                title,
                detail,
                ..
            }) => {
                assert_eq!(status, fatal);
                assert_eq!(title, "Nope", "keys read case-insensitively");
                assert_eq!(detail, format!("status {fatal}"));
            }
            other => panic!("{fatal}: {other:?}"),
        }
        assert_eq!(*lock(&calls), 1, "{fatal} not retried");
        assert_eq!(poller.retries(), 0);
    }
    let (server, calls) = scripted(vec![503; 10]);
    let mut poller = Poller::new(&server.url(), "k", 10).with_retries(3, Duration::from_millis(1));
    assert!(matches!(
        poller.sync(Kind::Accounts),
        Err(PollError::Exhausted { attempts: 3, .. })
    ));
    assert_eq!(*lock(&calls), 3);

    // Connection refused is retried, then reported.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut poller = Poller::new(&format!("http://127.0.0.1:{port}"), "k", 10)
        .with_retries(2, Duration::from_millis(1));
    assert!(matches!(
        poller.sync(Kind::Accounts),
        Err(PollError::Exhausted { attempts: 2, .. })
    ));
    assert_eq!(poller.exchanges().len(), 2);
    assert!(poller.exchanges().iter().all(|e| e.status.is_none()));
}

#[test]
fn poller_reads_balances_strictly_and_keeps_the_path_prefix() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_handler = Arc::clone(&seen);
    let server = MockServer::from_fn(move |request: &Request| {
        lock(&seen_by_handler).push((request.target.clone(), request.bearer().map(String::from)));
        let id = request.segments()[2].clone();
        let amount = if id == "bad" { "12.5" } else { "1234" };
        Response::json(
            200,
            &json!({
                "id": format!("bal-{id}"),
                "accountID": id,
                "at": "2026-03-01T12:00:00+01:00",
                "balances": [{"amount": amount, "currency": "EUR/2"}, {"amount": "7", "currency": "JPY"}],
            }),
        )
    });
    let mut poller = Poller::new(&format!("{}/prefix/", server.url()), "key-1", 100);
    let balances = poller.balances("acct 1/x").unwrap();
    assert_eq!(balances.account_id, "acct 1/x");
    assert_eq!(balances.at, parse_rfc3339("2026-03-01T11:00:00Z").unwrap());
    assert_eq!(
        balances.balances,
        [
            ("1234".to_owned(), "EUR/2".to_owned()),
            ("7".to_owned(), "JPY".to_owned())
        ]
    );
    assert!(matches!(
        poller.balances("bad"),
        Err(PollError::Decode { .. })
    ));
    let seen = lock(&seen).clone();
    assert_eq!(seen[0].0, "/prefix/accounts/acct%201%2Fx/balances");
    assert_eq!(seen[0].1.as_deref(), Some("key-1"));
}

#[test]
fn poller_reports_a_connector_that_ignores_paging_as_stuck() {
    // Always the same full page of one timestamp: page 2, 3, ... never end.
    let items: Vec<Value> = (0..7)
        .map(|i| transaction(json!({"id": format!("t{i}")})))
        .collect();
    let server = static_server(200, Value::Array(items));
    let mut poller = Poller::new(&server.url(), "k", 7).with_limits(20, 100);
    match poller.sync(Kind::Transactions) {
        Err(PollError::Stuck { detail, .. }) => assert!(detail.contains("20 pages"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(poller.records(Kind::Transactions).len(), 7);
    assert_eq!(poller.requests(), 1 + 20);
}
