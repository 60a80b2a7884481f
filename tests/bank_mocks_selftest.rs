//! Self-tests of the bank-shaped mock providers: Nordbank (`support/mock_bank.rs`, shaped like
//! Modulr) and Walletpay (`support/mock_wallets.rs`, shaped like Mangopay). Each test speaks
//! HTTP to a mock and checks the contract its module documentation states.

#[path = "support/formance.rs"]
mod formance;
#[path = "support/mock_bank.rs"]
mod mock_bank;
#[path = "support/mock_cursor.rs"]
mod mock_cursor;
#[path = "support/mock_http.rs"]
mod mock_http;
#[path = "support/mock_pages.rs"]
mod mock_pages;
#[path = "support/mock_wallets.rs"]
mod mock_wallets;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use formance::{HttpReply, http_request};
use mock_bank::{
    Fold, NB_TYPES, NORDBANK_EPOCH_MS, NORDBANK_MAX_WINDOW_MS, NORDBANK_SEED_START_MS,
    NbCounterparty, NbNewTransaction, NbTransaction, Nordbank, nb_number_minor, nb_number_text,
    nordbank_query_time, nordbank_reference_ok, oslo_is_ambiguous, oslo_local_text, oslo_resolve,
    oslo_summer_time, parse_json_exact, raw_lexeme, raw_number, render_json,
};
use mock_http::{base64_encode, encode_query};
use mock_pages::days_from_civil;
use mock_wallets::{WALLETPAY_EPOCH, Walletpay, WpNewTransaction, WpTransaction, walletpay_key_ok};

const TIMEOUT: Duration = Duration::from_secs(10);
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> HttpReply {
    http_request(method, url, headers, body, TIMEOUT).expect("request")
}

fn json_of(reply: &HttpReply) -> Value {
    reply
        .json()
        .unwrap_or_else(|| panic!("not JSON ({}): {}", reply.status, reply.text()))
}

/// The body parsed keeping every number's exact text.
fn exact_of(reply: &HttpReply) -> Value {
    parse_json_exact(&reply.text())
        .unwrap_or_else(|e| panic!("not JSON ({e}, {}): {}", reply.status, reply.text()))
}

/// Unix milliseconds of a UTC wall-clock reading.
fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
    days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MINUTE + s * 1000 + ms
}

// =============================================================================================
// Nordbank: values
// =============================================================================================

#[test]
fn oslo_local_times_follow_the_eu_summer_time_rule() {
    assert_eq!(utc(2026, 4, 15, 10, 0, 0, 0), NORDBANK_EPOCH_MS);
    assert_eq!(utc(2025, 10, 1, 0, 0, 0, 0), NORDBANK_SEED_START_MS);
    assert_eq!(
        oslo_summer_time(2026),
        (utc(2026, 3, 29, 1, 0, 0, 0), utc(2026, 10, 25, 1, 0, 0, 0))
    );
    assert_eq!(
        oslo_summer_time(2025),
        (utc(2025, 3, 30, 1, 0, 0, 0), utc(2025, 10, 26, 1, 0, 0, 0))
    );
    assert_eq!(
        oslo_local_text(utc(2026, 1, 15, 12, 0, 0, 5)),
        "2026-01-15T13:00:00.005"
    );
    assert_eq!(
        oslo_local_text(utc(2026, 7, 1, 22, 30, 0, 0)),
        "2026-07-02T00:30:00.000"
    );

    // Spring: 01:59:59.999 is followed by 03:00:00.000.
    let spring = utc(2026, 3, 29, 1, 0, 0, 0);
    assert_eq!(oslo_local_text(spring - 1), "2026-03-29T01:59:59.999");
    assert_eq!(oslo_local_text(spring), "2026-03-29T03:00:00.000");
    // A gap text is read at +01:00: 02:30 is 01:30Z, written 03:30.
    let gap = oslo_resolve("2026-03-29T02:30:00.000", Fold::Earlier).unwrap();
    assert_eq!(gap, spring + 30 * MINUTE);
    assert_eq!(oslo_local_text(gap), "2026-03-29T03:30:00.000");
    assert_eq!(
        oslo_resolve("2026-03-29T02:30:00.000", Fold::Later),
        Some(gap)
    );

    // Autumn: the hour 02:00..03:00 happens twice, with the same texts.
    let autumn = utc(2025, 10, 26, 1, 0, 0, 0);
    let (first, second) = (autumn - 30 * MINUTE, autumn + 30 * MINUTE);
    assert_eq!(oslo_local_text(first), "2025-10-26T02:30:00.000");
    assert_eq!(oslo_local_text(second), "2025-10-26T02:30:00.000");
    assert_eq!(oslo_local_text(autumn - 1), "2025-10-26T02:59:59.999");
    assert_eq!(oslo_local_text(autumn), "2025-10-26T02:00:00.000");
    assert!(oslo_is_ambiguous(first) && oslo_is_ambiguous(second));
    assert!(oslo_is_ambiguous(autumn - HOUR) && !oslo_is_ambiguous(autumn - HOUR - 1));
    assert!(oslo_is_ambiguous(autumn + HOUR - 1) && !oslo_is_ambiguous(autumn + HOUR));
    assert!(!oslo_is_ambiguous(spring) && !oslo_is_ambiguous(spring - 1));
    let text = "2025-10-26T02:30:00.000";
    assert_eq!(oslo_resolve(text, Fold::Earlier), Some(first));
    assert_eq!(oslo_resolve(text, Fold::Later), Some(second));
    assert_eq!(
        oslo_resolve("2026-01-15T13:00:00.005", Fold::Later),
        Some(utc(2026, 1, 15, 12, 0, 0, 5))
    );

    // Query times: local (overlap = earlier), or exact with a zone; at most 3 decimals.
    for (text, expected) in [
        ("2025-10-26T02:30:00", first),
        ("2025-10-26T02:30:00.000", first),
        ("2025-10-26T02:30:00+01:00", second),
        ("2025-10-26T02:30:00+0100", second),
        ("2025-10-26T00:30:00Z", first),
        ("2025-10-25T20:30:00.000-04:00", first),
        ("2026-01-15T13:00:00.5", utc(2026, 1, 15, 12, 0, 0, 500)),
        ("2026-01-15T13:00:00.12", utc(2026, 1, 15, 12, 0, 0, 120)),
        ("2026-03-29T02:30:00", gap),
    ] {
        assert_eq!(nordbank_query_time(text), Some(expected), "{text}");
    }
    for bad in [
        "2026-01-15T13:00:00.1234",
        "2026-02-29T00:00:00",
        "2026-03-01 00:00:00",
        "2026-03-01T24:00:00",
        "2026-03-01T00:00:00+25:00",
        "2026-03-01T00:00:00+01",
        "2026-03-01T00:00:00z",
        "2026-03-01",
        "2026-03-01T00:00:0\u{e9}",
        "2026-03-01T00:00:00+\u{e9}\u{e9}:00",
        "",
    ] {
        assert_eq!(nordbank_query_time(bad), None, "{bad:?}");
    }
}

#[test]
fn nordbank_numbers_keep_their_exact_decimal_text() {
    for (minor, exponent, text) in [
        (150_000, 2, "1500"),
        (1500, 0, "1500"),
        (1250, 2, "12.5"),
        (5, 3, "0.005"),
        (100, 3, "0.1"),
        (0, 2, "0"),
        (-1, 2, "-0.01"),
        (1_234_567_890_123_456_789, 2, "12345678901234567.89"),
        (900_719_925_474_099_301, 3, "900719925474099.301"),
    ] {
        assert_eq!(nb_number_text(minor, exponent), text, "{minor} {exponent}");
        assert_eq!(nb_number_minor(text, exponent), Some(minor), "{text}");
    }
    for (lexeme, exponent, minor) in [
        ("12.50", 2, Some(1250)),
        ("12.500", 2, Some(1250)),
        ("1.25e1", 2, Some(1250)),
        ("1250E-2", 2, Some(1250)),
        ("1.25e+1", 2, Some(1250)),
        ("1500.0", 0, Some(1500)),
        ("-3", 2, Some(-300)),
        ("0.000", 3, Some(0)),
        ("12.505", 2, None),
        ("15.5", 0, None),
        ("0.0005", 3, None),
        ("01", 2, None),
        ("1.", 2, None),
        (".5", 2, None),
        ("1e40", 2, None),
        ("99999999999999999999", 0, None),
        ("12,5", 2, None),
        ("", 2, None),
    ] {
        assert_eq!(nb_number_minor(lexeme, exponent), minor, "{lexeme}");
    }

    // Raw numbers are written as their text; an f64 would not keep these digits.
    let value = json!({
        "a": raw_number("12345678901234567.89"),
        "b": [raw_number("0.005"), "x\"y\u{e9}", raw_number("1500")],
        "c": null,
        "d": true,
    });
    let text = render_json(&value);
    assert_eq!(
        text,
        r#"{"a":12345678901234567.89,"b":[0.005,"x\"y\u00e9",1500],"c":null,"d":true}"#
            .replace("\\u00e9", "\u{e9}")
    );
    let as_f64: f64 = serde_json::from_str::<Value>(&text).unwrap()["a"]
        .as_f64()
        .unwrap();
    assert_ne!(as_f64.to_string(), "12345678901234567.89");

    // The exact parser keeps lexemes and round-trips through render_json.
    let input = r#" { "amount" : 12345678901234567.89 , "n" : [1, -0.5e-3, 0, true, false, null],
        "s" : "a\u00e9\ud83d\ude00\n\"\\\/", "o": {} , "e": [] } "#;
    let parsed = parse_json_exact(input).unwrap();
    assert_eq!(raw_lexeme(&parsed["amount"]), Some("12345678901234567.89"));
    assert_eq!(raw_lexeme(&parsed["n"][1]), Some("-0.5e-3"));
    assert_eq!(parsed["s"], "a\u{e9}\u{1F600}\n\"\\/");
    assert_eq!(raw_lexeme(&parsed["s"]), None);
    assert_eq!(
        render_json(&parsed),
        r#"{"amount":12345678901234567.89,"e":[],"n":[1,-0.5e-3,0,true,false,null],"o":{},"s":"a\u00e9😀\n\"\\/"}"#
            .replace("\\u00e9", "\u{e9}")
    );
    let deep = "[".repeat(100) + &"]".repeat(100);
    for bad in [
        r#"{"a":1,"a":2}"#,
        "[1,]",
        "01",
        "1.",
        "-",
        "+1",
        r#""\ud800""#,
        r#""\ud800\u0041""#,
        "\"\u{1}\"",
        "\"\u{e000}\"",
        r#"{"a":1} x"#,
        "{a:1}",
        "tru",
        "",
        &deep,
    ] {
        assert!(parse_json_exact(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn nordbank_references_follow_the_documented_rule() {
    for good in [
        "INV-01",
        "Salary March 2026",
        "A&B/C.D-E 12345678",
        "aaaaab",
    ] {
        assert!(nordbank_reference_ok(good), "{good}");
    }
    for bad in [
        "INV01",
        "This is nineteen ch",
        "aaaaaa",
        "INV_0001",
        "INV#0001",
        "fakt\u{e9}ra 1",
        "",
    ] {
        assert!(!nordbank_reference_ok(bad), "{bad}");
    }
}

// =============================================================================================
// Nordbank: HTTP
// =============================================================================================

const NB_CLIENT: &str = "nb-client";
const NB_SECRET: &str = "nb-secret";

fn nb_token_request(nb: &Nordbank, form: &str, basic: Option<&str>) -> HttpReply {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(basic) = basic {
        headers.push(("Authorization", basic));
    }
    send("POST", &nb.token_url(), &headers, Some(form.as_bytes()))
}

fn nb_token(nb: &Nordbank) -> String {
    let form =
        format!("grant_type=client_credentials&client_id={NB_CLIENT}&client_secret={NB_SECRET}");
    let reply = nb_token_request(nb, &form, None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    json_of(&reply)["access_token"].as_str().unwrap().to_owned()
}

fn nb_get(nb: &Nordbank, token: &str, path: &str, query: &[(&str, &str)]) -> HttpReply {
    let url = if query.is_empty() {
        format!("{}{path}", nb.url())
    } else {
        format!("{}{path}?{}", nb.url(), encode_query(query))
    };
    let auth = format!("Bearer {token}");
    send("GET", &url, &[("Authorization", &auth)], None)
}

fn nb_post(nb: &Nordbank, token: &str, body: &str) -> HttpReply {
    let auth = format!("Bearer {token}");
    send(
        "POST",
        &format!("{}/api/payments", nb.url()),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(body.as_bytes()),
    )
}

/// Checks a Nordbank error answer; returns its (field, code).
#[track_caller]
fn nb_error(reply: &HttpReply, status: u16) -> (Value, String) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = json_of(reply);
    let errors = body.as_array().expect("errors are a JSON array");
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    (
        errors[0]["field"].clone(),
        errors[0]["code"].as_str().unwrap().to_owned(),
    )
}

/// Walks a Nordbank list from page 0; checks the envelope and the stop rule; returns the
/// items with their exact number texts.
fn nb_walk(
    nb: &Nordbank,
    token: &str,
    path: &str,
    size: usize,
    extra: &[(&str, &str)],
) -> Vec<Value> {
    let mut items = Vec::new();
    let size_text = size.to_string();
    for page in 0..100_000 {
        let page_text = page.to_string();
        let mut query = vec![("page", page_text.as_str()), ("size", size_text.as_str())];
        query.extend_from_slice(extra);
        let reply = nb_get(nb, token, path, &query);
        assert_eq!(reply.status, 200, "{path} {query:?}: {}", reply.text());
        let meta = json_of(&reply);
        let body = exact_of(&reply);
        let content = body["content"].as_array().unwrap();
        assert_eq!(meta["page"], page);
        assert_eq!(meta["size"], size);
        let total = meta["totalSize"].as_u64().unwrap() as usize;
        let total_pages = meta["totalPages"].as_u64().unwrap() as usize;
        assert_eq!(total_pages, total.div_ceil(size));
        let last = page + 1 >= total_pages;
        // The stop rule: the last page is totalPages - 1; only it may be short.
        let expected = if last { total - page * size } else { size };
        assert_eq!(content.len(), expected, "{path} page {page}");
        items.extend(content.iter().cloned());
        if last {
            assert_eq!(items.len(), total);
            return items;
        }
    }
    panic!("no end");
}

fn text_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

#[test]
fn nordbank_oauth_tokens_are_short_lived() {
    let nb = Nordbank::start(1, NB_CLIENT, NB_SECRET);
    let reply = nb_get(&nb, "nbt_1", "/api/accounts", &[]);
    assert_eq!(reply.status, 401);
    assert_eq!(json_of(&reply)["error"], "invalid_token");
    let reply = send("GET", &format!("{}/api/accounts", nb.url()), &[], None);
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );

    let form =
        format!("grant_type=client_credentials&client_id={NB_CLIENT}&client_secret={NB_SECRET}");
    let reply = nb_token_request(&nb, &form, None);
    assert_eq!(reply.status, 200);
    let body = json_of(&reply);
    assert_eq!(body["access_token"], "nbt_1");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300, "short-lived by default");
    assert_eq!(nb_get(&nb, "nbt_1", "/api/accounts", &[]).status, 200);

    let basic = format!(
        "Basic {}",
        base64_encode(format!("{NB_CLIENT}:{NB_SECRET}").as_bytes())
    );
    let reply = nb_token_request(&nb, "grant_type=client_credentials", Some(&basic));
    assert_eq!(json_of(&reply)["access_token"], "nbt_2");
    for (form, basic, status, error) in [
        (
            format!("grant_type=client_credentials&client_id={NB_CLIENT}&client_secret=x"),
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
            format!("grant_type=password&client_id={NB_CLIENT}&client_secret={NB_SECRET}"),
            None,
            400,
            "unsupported_grant_type",
        ),
        (
            format!("client_id={NB_CLIENT}&client_secret={NB_SECRET}"),
            None,
            400,
            "invalid_request",
        ),
        (
            format!("grant_type=client_credentials&client_id=other&client_secret={NB_SECRET}"),
            Some(basic.as_str()),
            400,
            "invalid_request",
        ),
    ] {
        let reply = nb_token_request(&nb, &form, basic);
        assert_eq!(reply.status, status, "{form}: {}", reply.text());
        assert_eq!(json_of(&reply)["error"], error, "{form}");
    }
    let reply = send("GET", &nb.token_url(), &[], None);
    assert_eq!(reply.status, 405);
    assert_eq!(nb.token_requests(), 8);
    assert_eq!(nb.tokens_issued(), 2);

    // A token dies after its TTL, with an RFC 6749-style body; a new one works.
    nb.set_token_ttl(Duration::from_millis(300));
    let reply = nb_token_request(&nb, &form, None);
    assert_eq!(json_of(&reply)["expires_in"], 1, "rounded up");
    let short = json_of(&reply)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(nb_get(&nb, &short, "/api/accounts", &[]).status, 200);
    std::thread::sleep(Duration::from_millis(400));
    let reply = nb_get(&nb, &short, "/api/accounts", &[]);
    assert_eq!(reply.status, 401);
    assert_eq!(
        json_of(&reply),
        json!({"error": "invalid_token", "error_description": "The access token expired"})
    );
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("The access token expired")
    );
    assert_eq!(nb_get(&nb, "nbt_1", "/api/accounts", &[]).status, 200);
    // Expiring every token at once.
    nb.expire_tokens();
    assert_eq!(nb_get(&nb, "nbt_1", "/api/accounts", &[]).status, 401);
    assert_eq!(nb_get(&nb, "nbt_2", "/api/accounts", &[]).status, 401);
    let fresh = nb_token(&nb);
    assert_eq!(nb_get(&nb, &fresh, "/api/accounts", &[]).status, 200);
    assert_eq!(nb.token_requests(), 10);
}

#[test]
fn nordbank_accounts_and_beneficiaries_page_from_zero() {
    let nb = Nordbank::start(2, NB_CLIENT, NB_SECRET);
    let ids = nb.seed_accounts(23);
    nb.seed_beneficiaries(17);
    let token = nb.issue_token();

    let truth = nb.accounts();
    let mut sorted = truth.clone();
    sorted.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
    assert!(
        sorted
            .windows(2)
            .any(|w| w[0].created_ms == w[1].created_ms),
        "ties on the millisecond"
    );
    for size in [1, 5, 23, 500] {
        let items = nb_walk(&nb, &token, "/api/accounts", size, &[]);
        let served: Vec<&str> = items.iter().map(|a| text_of(&a["id"])).collect();
        let expected: Vec<&str> = sorted.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(served, expected, "size {size}");
        for (item, account) in items.iter().zip(&sorted) {
            assert_eq!(render_json(item), render_json(&account.to_json()));
            assert!(item.get("balance").is_none(), "lists carry no balance");
        }
    }
    assert_eq!(ids.len(), 23);

    // Page 0 is the first page; defaults are page 0 and size 20; past the end is empty.
    let first = json_of(&nb_get(&nb, &token, "/api/accounts", &[]));
    assert_eq!(first["page"], 0);
    assert_eq!(first["size"], 20);
    assert_eq!(first["totalPages"], 2);
    assert_eq!(first["totalSize"], 23);
    assert_eq!(first["content"][0]["id"], sorted[0].id.as_str());
    let past = json_of(&nb_get(
        &nb,
        &token,
        "/api/accounts",
        &[("page", "2"), ("size", "20")],
    ));
    assert_eq!(past["content"], json!([]));
    assert_eq!(past["totalPages"], 2);
    let second = json_of(&nb_get(&nb, &token, "/api/accounts", &[("page", "1")]));
    assert_eq!(second["content"].as_array().unwrap().len(), 3);

    // fromCreatedDate is inclusive.
    let pivot = &sorted[10];
    let from = oslo_local_text(pivot.created_ms);
    let items = nb_walk(
        &nb,
        &token,
        "/api/accounts",
        4,
        &[("fromCreatedDate", &from)],
    );
    let expected: Vec<&str> = sorted
        .iter()
        .filter(|a| a.created_ms >= pivot.created_ms)
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(
        items.iter().map(|a| text_of(&a["id"])).collect::<Vec<_>>(),
        expected
    );

    for (query, field) in [
        (vec![("page", "-1")], "page"),
        (vec![("page", "x")], "page"),
        (vec![("size", "0")], "size"),
        (vec![("size", "501")], "size"),
        (vec![("page", "0"), ("page", "1")], "page"),
        (vec![("pageSize", "5")], "pageSize"),
        (vec![("fromCreatedDate", "yesterday")], "fromCreatedDate"),
    ] {
        let (got, _) = nb_error(&nb_get(&nb, &token, "/api/accounts", &query), 400);
        assert_eq!(got, field, "{query:?}");
    }
    assert_eq!(
        nb_error(&nb_get(&nb, &token, "/api/nothing", &[]), 404).1,
        "NOT_FOUND"
    );
    let auth = format!("Bearer {token}");
    let reply = send(
        "DELETE",
        &format!("{}/api/accounts", nb.url()),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(nb_error(&reply, 405).1, "METHOD_NOT_ALLOWED");

    // One account: one object with its balances as exact JSON numbers.
    let account = &truth[3];
    assert!(nb.set_balance(&account.id, 1_234_567_890_123_456_789, -5));
    let account = nb.account(&account.id).unwrap();
    let reply = nb_get(&nb, &token, &format!("/api/accounts/{}", account.id), &[]);
    assert_eq!(reply.status, 200);
    let detail = exact_of(&reply);
    assert_eq!(
        raw_lexeme(&detail["balance"]),
        Some(account.balance_text().as_str())
    );
    assert_eq!(
        raw_lexeme(&detail["availableBalance"]),
        Some(account.available_text().as_str())
    );
    assert_eq!(detail["currency"], account.currency.as_str());
    assert_eq!(render_json(&detail), render_json(&account.detail_json()));
    assert!(reply.text().contains(&format!(
        "\"balance\":{}",
        nb_number_text(1_234_567_890_123_456_789, account.exponent())
    )));
    let (field, code) = nb_error(&nb_get(&nb, &token, "/api/accounts/A0000000", &[]), 404);
    assert_eq!((field, code.as_str()), (json!("accountId"), "NOT_FOUND"));

    // Beneficiaries: the same paging.
    let mut beneficiaries = nb.beneficiaries();
    beneficiaries.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
    let items = nb_walk(&nb, &token, "/api/beneficiaries", 6, &[]);
    assert_eq!(items.len(), 17);
    for (item, beneficiary) in items.iter().zip(&beneficiaries) {
        assert_eq!(render_json(item), render_json(&beneficiary.to_json()));
    }
    let created = text_of(&items[0]["createdDate"]);
    assert_eq!(created.len(), 23, "{created}");
    assert!(!created.ends_with('Z') && !created.contains('+'));
}

#[test]
fn nordbank_transactions_need_a_window_of_at_most_31_days() {
    let nb = Nordbank::start(3, NB_CLIENT, NB_SECRET);
    let account = nb.add_account("Main", "EUR", Some(NORDBANK_SEED_START_MS));
    let token = nb.issue_token();
    let path = format!("/api/accounts/{account}/transactions");
    let from = "2026-01-01T00:00:00";
    let get = |query: &[(&str, &str)]| nb_get(&nb, &token, &path, query);

    for (query, field, code) in [
        (vec![], "fromDate", "REQUIRED"),
        (vec![("toDate", from)], "fromDate", "REQUIRED"),
        (vec![("fromDate", from)], "toDate", "REQUIRED"),
        (
            vec![("fromDate", from), ("toDate", "2026-02-01T00:00:00.001")],
            "toDate",
            "WINDOW_TOO_LONG",
        ),
        (
            vec![("fromDate", from), ("toDate", "2026-03-01T00:00:00")],
            "toDate",
            "WINDOW_TOO_LONG",
        ),
        (
            vec![("fromDate", from), ("toDate", from)],
            "toDate",
            "INVALID_WINDOW",
        ),
        (
            vec![("fromDate", from), ("toDate", "2025-12-31T00:00:00")],
            "toDate",
            "INVALID_WINDOW",
        ),
        (
            vec![
                ("fromDate", "2026-01-01"),
                ("toDate", "2026-01-02T00:00:00"),
            ],
            "fromDate",
            "INVALID_DATE",
        ),
        (
            vec![("fromDate", from), ("toDate", "2026-01-02T00:00:00.0001")],
            "toDate",
            "INVALID_DATE",
        ),
        (
            vec![
                ("fromDate", from),
                ("toDate", "2026-01-02T00:00:00"),
                ("limit", "5"),
            ],
            "limit",
            "UNKNOWN_PARAMETER",
        ),
    ] {
        let (got_field, got_code) = nb_error(&get(&query), 400);
        assert_eq!(
            (got_field, got_code.as_str()),
            (json!(field), code),
            "{query:?}"
        );
    }
    // Exactly 31 days is allowed (local times in winter: one offset throughout).
    let reply = get(&[("fromDate", from), ("toDate", "2026-02-01T00:00:00")]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(json_of(&reply)["content"], json!([]));
    // The cap is on instants: across the spring change, 31 local days are 30 d 23 h.
    let reply = get(&[
        ("fromDate", "2026-03-15T00:00:00"),
        ("toDate", "2026-04-15T01:00:00"),
    ]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (field, code) = nb_error(
        &get(&[
            ("fromDate", "2026-03-15T00:00:00"),
            ("toDate", "2026-04-15T01:00:00.001"),
        ]),
        400,
    );
    assert_eq!((field, code.as_str()), (json!("toDate"), "WINDOW_TOO_LONG"));
    assert_eq!(NORDBANK_MAX_WINDOW_MS, 31 * DAY);
    let (field, _) = nb_error(
        &nb_get(
            &nb,
            &token,
            "/api/accounts/A0000000/transactions",
            &[("fromDate", from), ("toDate", "2026-01-02T00:00:00")],
        ),
        404,
    );
    assert_eq!(field, "accountId");

    // fromDate inclusive, toDate exclusive, at the millisecond; ties on both ends.
    let at = utc(2026, 1, 10, 8, 0, 0, 250);
    let add = |updated: i64| {
        nb.add_transaction(NbNewTransaction {
            account_id: account.clone(),
            updated_ms: Some(updated),
            ..NbNewTransaction::default()
        })
    };
    let on_from = [add(at), add(at)];
    let before = add(at - 1);
    let on_to = add(at + DAY);
    let inside = add(at + DAY - 1);
    let window = |from: &str, to: &str| -> Vec<String> {
        let items = nb_walk(&nb, &token, &path, 2, &[("fromDate", from), ("toDate", to)]);
        items.iter().map(|t| text_of(&t["id"]).to_owned()).collect()
    };
    let mut expected = on_from.to_vec();
    expected.sort();
    expected.push(inside.clone());
    assert_eq!(
        window("2026-01-10T09:00:00.250", "2026-01-11T09:00:00.250"),
        expected
    );
    assert_eq!(
        window("2026-01-10T08:00:00.250Z", "2026-01-11T08:00:00.250Z"),
        expected,
        "the same window in UTC"
    );
    assert_eq!(
        window("2026-01-10T09:00:00.249", "2026-01-10T09:00:00.250"),
        vec![before]
    );
    assert_eq!(
        window("2026-01-11T09:00:00.250", "2026-01-11T09:00:00.251"),
        vec![on_to]
    );
}

/// Every transaction of an account, walking consecutive 31-day windows from the seed start.
fn nb_walk_windows(nb: &Nordbank, token: &str, account: &str, size: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut from = NORDBANK_SEED_START_MS - DAY;
    while from < nb.now_ms() + DAY {
        let to = from + NORDBANK_MAX_WINDOW_MS;
        // Local texts would be ambiguous on the autumn change; the offset form is exact.
        let query = [
            ("fromDate", mock_bank::utc_text(from)),
            ("toDate", mock_bank::utc_text(to)),
        ];
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        items.extend(nb_walk(
            nb,
            token,
            &format!("/api/accounts/{account}/transactions"),
            size,
            &query,
        ));
        from = to;
    }
    items
}

#[test]
fn nordbank_windows_serve_every_transaction_once_with_exact_values() {
    let nb = Nordbank::start(4, NB_CLIENT, NB_SECRET);
    let accounts = nb.seed_accounts(4);
    nb.seed_transactions(80);
    let token = nb.issue_token();
    let truth: HashMap<String, NbTransaction> = nb
        .transactions()
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    assert!(truth.len() >= 4 * 80);

    let mut seen_types = BTreeSet::new();
    let mut big = 0;
    let mut burst_max = 0;
    let mut ties = 0;
    for account in &accounts {
        let items = nb_walk_windows(&nb, &token, account, 9);
        let served: Vec<&NbTransaction> = items.iter().map(|i| &truth[text_of(&i["id"])]).collect();
        // Every transaction of the account exactly once, oldest first by lastUpdated, ties by id.
        let mut expected: Vec<&NbTransaction> = truth
            .values()
            .filter(|t| &t.account_id == account)
            .collect();
        expected.sort_by(|a, b| a.updated_ms.cmp(&b.updated_ms).then(a.id.cmp(&b.id)));
        let ids = |list: &[&NbTransaction]| list.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&served), ids(&expected), "account {account}");
        assert!(served.len() >= 80);
        let all = nb.window(account, i64::MIN, i64::MAX);
        assert_eq!(
            all.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
            ids(&expected)
        );

        ties += served
            .windows(2)
            .filter(|w| w[0].updated_ms == w[1].updated_ms)
            .count();
        let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
        for t in &served {
            *per_second.entry(t.updated_ms.div_euclid(1000)).or_default() += 1;
        }
        burst_max = burst_max.max(*per_second.values().max().unwrap());
        let months: BTreeSet<i64> = served.iter().map(|t| t.updated_ms / (30 * DAY)).collect();
        assert!(months.len() >= 5, "spread over months: {months:?}");

        for (item, t) in items.iter().zip(&served) {
            // The whole record, exact number text included.
            assert_eq!(render_json(item), render_json(&t.to_json()));
            let amount = raw_lexeme(&item["amount"]).expect("amount is a JSON number");
            assert_eq!(amount, t.amount_text());
            assert!(t.amount_minor > 0 && !amount.starts_with('-'));
            assert!(!amount.contains(['e', 'E']));
            assert!(!amount.contains('.') || !amount.ends_with('0'), "{amount}");
            let exponent = mock_cursor::currency_exponent(&t.currency);
            assert_eq!(nb_number_minor(amount, exponent), Some(t.amount_minor));
            if amount.parse::<f64>().unwrap().to_string() != amount {
                big += 1;
            }
            // Local texts, no zone, milliseconds.
            for (key, ms) in [
                ("lastUpdated", Some(t.updated_ms)),
                ("transactionDate", Some(t.transaction_ms)),
                ("postedDate", t.posted_ms),
            ] {
                match ms {
                    Some(ms) => {
                        let text = text_of(&item[key]);
                        assert_eq!(text, oslo_local_text(ms));
                        assert_eq!(text.len(), 23);
                        assert_eq!(&text[19..20], ".");
                        if !oslo_is_ambiguous(ms) {
                            assert_eq!(oslo_resolve(text, Fold::Earlier), Some(ms));
                        }
                    }
                    None => assert_eq!(item[key], Value::Null),
                }
            }
            assert_eq!(t.posted_ms.is_some(), t.status == "PROCESSED");
            if let Some(posted) = t.posted_ms {
                assert_eq!(posted, t.updated_ms);
            }
            // Direction by type; the counterparty field by type.
            let (_, direction) = NB_TYPES.iter().find(|(k, _)| *k == t.kind).unwrap();
            if let Some(credit) = direction {
                assert_eq!(item["credit"], *credit, "{}", t.kind);
            }
            seen_types.insert(t.kind.clone());
            let counterparty = item.get("counterpartyName");
            match t.kind.as_str() {
                k if k.starts_with("PI_") || k.starts_with("PO_") => {
                    assert!(
                        counterparty
                            .unwrap()
                            .as_str()
                            .is_some_and(|n| !n.is_empty())
                    );
                }
                "INT_INTERC" => {
                    assert_eq!(counterparty, Some(&Value::Null));
                    let other = text_of(&item["counterpartyAccountId"]);
                    let payment = item["paymentId"].as_str().unwrap();
                    let partner = truth
                        .values()
                        .find(|p| p.account_id == other && p.payment_id.as_deref() == Some(payment))
                        .expect("the other leg");
                    assert_eq!(partner.credit, !t.credit);
                    assert_eq!(partner.amount_minor, t.amount_minor);
                }
                k if k.starts_with("CARD_") => assert_eq!(counterparty, Some(&json!(""))),
                k if k.starts_with("FEE_") => assert_eq!(counterparty, None),
                other => panic!("unexpected type {other}"),
            }
            if t.kind != "INT_INTERC" {
                assert!(item.get("counterpartyAccountId").is_none());
            }
            if t.kind == "CARD_AUTH" {
                assert!(matches!(t.status.as_str(), "HELD" | "RELEASED"));
            } else {
                assert!(matches!(
                    t.status.as_str(),
                    "PROCESSED" | "PENDING" | "FAILED"
                ));
            }
        }

        // The DST records: four with one overlap text (two instants), the spring pair.
        let overlap: Vec<&NbTransaction> = served
            .iter()
            .copied()
            .filter(|t| oslo_local_text(t.updated_ms) == "2025-10-26T02:30:00.000")
            .collect();
        assert_eq!(overlap.len(), 4);
        let instants: BTreeSet<i64> = overlap.iter().map(|t| t.updated_ms).collect();
        assert_eq!(
            instants,
            BTreeSet::from([
                utc(2025, 10, 26, 0, 30, 0, 0),
                utc(2025, 10, 26, 1, 30, 0, 0)
            ])
        );
        assert!(
            overlap[0].updated_ms < overlap[3].updated_ms,
            "true-instant order"
        );
        let texts: BTreeSet<String> = served
            .iter()
            .map(|t| oslo_local_text(t.updated_ms))
            .collect();
        assert!(texts.contains("2026-03-29T01:59:59.999"));
        assert!(texts.contains("2026-03-29T03:00:00.000"));
        assert!(!texts.iter().any(|t| t.starts_with("2026-03-29T02:")));
    }
    assert!(ties >= 20, "ties on one millisecond: {ties}");
    assert!(burst_max >= 8, "bursts in one second: {burst_max}");
    assert!(big >= 3, "amounts an f64 cannot hold: {big}");
    for kind in ["PI_FAST", "PO_FAST", "INT_INTERC", "CARD_AUTH", "FEE_TXN"] {
        assert!(seen_types.contains(kind), "{kind} in {seen_types:?}");
    }
    let statuses: BTreeSet<&str> = truth.values().map(|t| t.status.as_str()).collect();
    assert!(statuses.contains("HELD") && statuses.contains("PENDING"));
    let currencies: BTreeSet<String> = nb.accounts().iter().map(|a| a.currency.clone()).collect();
    assert!(currencies.len() >= 2, "{currencies:?}");

    // A seed gives the same data every time.
    let again = Nordbank::start(4, NB_CLIENT, NB_SECRET);
    again.seed_accounts(4);
    again.seed_transactions(80);
    assert_eq!(again.transactions(), nb.transactions());
}

#[test]
fn nordbank_amounts_of_zero_two_and_three_decimal_currencies() {
    let nb = Nordbank::start(5, NB_CLIENT, NB_SECRET);
    let token = nb.issue_token();
    let at = utc(2026, 2, 1, 12, 0, 0, 0);
    for (currency, minor, text) in [
        ("JPY", 1500, "1500"),
        ("EUR", 1250, "12.5"),
        ("EUR", 100_000, "1000"),
        ("KWD", 5, "0.005"),
        ("KWD", 1_250, "1.25"),
        ("EUR", 900_719_925_474_099_301, "9007199254740993.01"),
    ] {
        let account = nb.add_account(currency, currency, Some(at - DAY));
        nb.add_transaction(NbNewTransaction {
            account_id: account.clone(),
            amount_minor: minor,
            updated_ms: Some(at),
            ..NbNewTransaction::default()
        });
        let reply = nb_get(
            &nb,
            &token,
            &format!("/api/accounts/{account}/transactions"),
            &[
                ("fromDate", "2026-02-01T00:00:00"),
                ("toDate", "2026-02-02T00:00:00"),
            ],
        );
        assert!(
            reply.text().contains(&format!("\"amount\":{text},")),
            "{}",
            reply.text()
        );
        let item = &exact_of(&reply)["content"][0];
        assert_eq!(raw_lexeme(&item["amount"]), Some(text));
        assert_eq!(item["currency"], currency);
        assert_eq!(item["credit"], true);
    }
}

#[test]
fn nordbank_status_changes_move_last_updated_between_windows() {
    let nb = Nordbank::start(6, NB_CLIENT, NB_SECRET);
    let account = nb.add_account("Main", "NOK", Some(NORDBANK_SEED_START_MS));
    let token = nb.issue_token();
    let t0 = utc(2026, 2, 10, 9, 0, 0, 0);
    let id = nb.add_transaction(NbNewTransaction {
        account_id: account.clone(),
        kind: "PO_FAST".to_owned(),
        status: "PENDING".to_owned(),
        credit: false,
        updated_ms: Some(t0),
        ..NbNewTransaction::default()
    });
    let path = format!("/api/accounts/{account}/transactions");
    let in_window = |from: &str, to: &str| -> Vec<Value> {
        nb_walk(
            &nb,
            &token,
            &path,
            10,
            &[("fromDate", from), ("toDate", to)],
        )
    };
    let february = in_window("2026-02-01T00:00:00", "2026-03-01T00:00:00");
    assert_eq!(february.len(), 1);
    assert_eq!(february[0]["status"], "PENDING");
    assert_eq!(february[0]["postedDate"], Value::Null);

    nb.set_now_ms(utc(2026, 3, 5, 7, 30, 0, 0));
    assert!(nb.update_transaction(&id, "PROCESSED", None));
    assert!(!nb.update_transaction("T0000000000", "PROCESSED", None));
    assert!(in_window("2026-02-01T00:00:00", "2026-03-01T00:00:00").is_empty());
    let march = in_window("2026-03-01T00:00:00", "2026-03-31T00:00:00");
    assert_eq!(march.len(), 1);
    assert_eq!(march[0]["status"], "PROCESSED");
    assert_eq!(march[0]["lastUpdated"], "2026-03-05T08:30:00.000");
    assert_eq!(march[0]["postedDate"], "2026-03-05T08:30:00.000");
    assert_eq!(march[0]["transactionDate"], "2026-02-10T10:00:00.000");

    // Newest first on demand.
    for k in 0..3 {
        nb.add_transaction(NbNewTransaction {
            account_id: account.clone(),
            updated_ms: Some(utc(2026, 3, 6, 0, 0, 0, 0) + k / 2),
            ..NbNewTransaction::default()
        });
    }
    let oldest_first = in_window("2026-03-01T00:00:00", "2026-03-31T00:00:00");
    nb.set_newest_first(true);
    let mut newest_first = in_window("2026-03-01T00:00:00", "2026-03-31T00:00:00");
    newest_first.reverse();
    assert_eq!(oldest_first, newest_first);
    assert_eq!(oldest_first.len(), 4);
}

fn nb_payment(
    source: &str,
    kind: &str,
    destination: &str,
    amount: &str,
    currency: &str,
    reference: &str,
) -> String {
    format!(
        r#"{{"sourceAccountId":"{source}","destination":{{"type":"{kind}","id":"{destination}"}},"amount":{amount},"currency":"{currency}","reference":"{reference}"}}"#
    )
}

#[test]
fn nordbank_payments_execute_every_time_with_their_legs() {
    let nb = Nordbank::start(7, NB_CLIENT, NB_SECRET);
    let source = nb.add_account("Operations", "EUR", Some(NORDBANK_SEED_START_MS));
    let savings = nb.add_account("Savings", "EUR", Some(NORDBANK_SEED_START_MS));
    let yen = nb.add_account("Yen", "JPY", Some(NORDBANK_SEED_START_MS));
    let beneficiary = nb.add_beneficiary("Kari Nordmann", Some(NORDBANK_SEED_START_MS));
    assert!(nb.set_balance(&source, 1_000_000, 1_000_000));
    let token = nb.issue_token();
    let now = nb.now_ms();

    // A payout: 201, one debit leg on the source, PENDING, with the payment id and reference.
    let reply = nb_post(
        &nb,
        &token,
        &nb_payment(
            &source,
            "BENEFICIARY",
            &beneficiary,
            "12.50",
            "EUR",
            "INV 2026-0042",
        ),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let payout = exact_of(&reply);
    assert_eq!(raw_lexeme(&payout["amount"]), Some("12.5"));
    assert_eq!(payout["status"], "SUBMITTED");
    assert_eq!(payout["reference"], "INV 2026-0042");
    assert_eq!(payout["createdDate"], oslo_local_text(now).as_str());
    assert_eq!(
        payout["destination"],
        json!({"type": "BENEFICIARY", "id": beneficiary})
    );
    let payout_id = text_of(&payout["id"]).to_owned();
    let legs: Vec<NbTransaction> = nb
        .transactions()
        .into_iter()
        .filter(|t| t.payment_id.as_deref() == Some(payout_id.as_str()))
        .collect();
    assert_eq!(legs.len(), 1);
    let leg = &legs[0];
    assert_eq!(
        (
            leg.account_id.as_str(),
            leg.kind.as_str(),
            leg.status.as_str(),
            leg.credit
        ),
        (source.as_str(), "PO_SECT", "PENDING", false)
    );
    assert_eq!(leg.amount_minor, 1250);
    assert_eq!(leg.reference, "INV 2026-0042");
    assert_eq!(
        leg.counterparty,
        NbCounterparty::Name("Kari Nordmann".to_owned())
    );
    assert_eq!(leg.updated_ms, now);
    assert_eq!(
        nb.account(&source).unwrap().available_minor,
        1_000_000 - 1250
    );
    assert_eq!(nb.account(&source).unwrap().balance_minor, 1_000_000);

    // An internal transfer: two legs sharing the payment id, debit and credit.
    let reply = nb_post(
        &nb,
        &token,
        &nb_payment(
            &source,
            "ACCOUNT",
            &savings,
            "1.25e2",
            "EUR",
            "Savings March",
        ),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let transfer = exact_of(&reply);
    assert_eq!(raw_lexeme(&transfer["amount"]), Some("125"));
    let transfer_id = text_of(&transfer["id"]).to_owned();
    let legs: Vec<NbTransaction> = nb
        .transactions()
        .into_iter()
        .filter(|t| t.payment_id.as_deref() == Some(transfer_id.as_str()))
        .collect();
    assert_eq!(legs.len(), 2);
    assert_eq!(
        legs.iter()
            .map(|l| (
                l.account_id.as_str(),
                l.credit,
                l.counterparty_account_id.as_deref()
            ))
            .collect::<Vec<_>>(),
        vec![
            (source.as_str(), false, Some(savings.as_str())),
            (savings.as_str(), true, Some(source.as_str()))
        ]
    );
    assert!(legs.iter().all(|l| l.kind == "INT_INTERC"
        && l.reference == "Savings March"
        && l.amount_minor == 12_500
        && l.counterparty == NbCounterparty::Null));
    // Both legs are served in their accounts' windows.
    let window = [
        ("fromDate", mock_bank::utc_text(now)),
        ("toDate", mock_bank::utc_text(now + 1)),
    ];
    let window: Vec<(&str, &str)> = window.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let on_source = nb_walk(
        &nb,
        &token,
        &format!("/api/accounts/{source}/transactions"),
        10,
        &window,
    );
    assert_eq!(
        on_source.len(),
        2,
        "the payout leg and the transfer's debit"
    );
    let on_savings = nb_walk(
        &nb,
        &token,
        &format!("/api/accounts/{savings}/transactions"),
        10,
        &window,
    );
    assert_eq!(on_savings.len(), 1);
    assert_eq!(on_savings[0]["paymentId"], transfer_id.as_str());
    assert_eq!(on_savings[0]["credit"], true);

    // Found again by reference; paged from 0.
    let found = nb_walk(
        &nb,
        &token,
        "/api/payments",
        5,
        &[("reference", "Savings March")],
    );
    assert_eq!(found.len(), 1);
    assert_eq!(render_json(&found[0]), render_json(&transfer));
    let by_id = nb_walk(&nb, &token, "/api/payments", 5, &[("id", &payout_id)]);
    assert_eq!(by_id.len(), 1);
    assert_eq!(nb_walk(&nb, &token, "/api/payments", 1, &[]).len(), 2);
    assert!(nb_walk(&nb, &token, "/api/payments", 5, &[("reference", "nope")]).is_empty());

    // No idempotency: the same body twice pays twice.
    let body = nb_payment(
        &source,
        "BENEFICIARY",
        &beneficiary,
        "7",
        "EUR",
        "Rent 2026-04",
    );
    assert_eq!(nb_post(&nb, &token, &body).status, 201);
    assert_eq!(nb_post(&nb, &token, &body).status, 201);
    assert_eq!(nb.executions_for_reference("Rent 2026-04"), 2);

    // 500 after executing: the payment exists although the answer is an error.
    nb.fail_after_executing(1);
    let body = nb_payment(
        &source,
        "BENEFICIARY",
        &beneficiary,
        "3.10",
        "EUR",
        "Invoice 77",
    );
    let reply = nb_post(&nb, &token, &body);
    assert_eq!(nb_error(&reply, 500).1, "INTERNAL_ERROR");
    assert_eq!(nb.executions_for_reference("Invoice 77"), 1);
    let found = nb_walk(
        &nb,
        &token,
        "/api/payments",
        5,
        &[("reference", "Invoice 77")],
    );
    assert_eq!(found.len(), 1, "a client can find what the 500 hid");
    assert_eq!(
        nb_post(&nb, &token, &body).status,
        201,
        "only the next one failed"
    );
    assert_eq!(nb.executions_for_reference("Invoice 77"), 2);
    // An injected fault answers before routing: nothing is executed.
    nb.fail_next_on("/api/payments", 1, 503, Some(2));
    let reply = nb_post(
        &nb,
        &token,
        &nb_payment(
            &source,
            "BENEFICIARY",
            &beneficiary,
            "1",
            "EUR",
            "Never paid",
        ),
    );
    assert_eq!(nb_error(&reply, 503).1, "SERVICE_UNAVAILABLE");
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert_eq!(nb.executions_for_reference("Never paid"), 0);

    // Validation: field-level 400s, nothing executed.
    let executed = nb.payments().len();
    for (body, field, code) in [
        ("not json".to_owned(), Value::Null, "INVALID_JSON"),
        ("[]".to_owned(), Value::Null, "INVALID_JSON"),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                &beneficiary,
                "\"12.50\"",
                "EUR",
                "INV 2026-0042",
            ),
            json!("amount"),
            "INVALID_TYPE",
        ),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                &beneficiary,
                "12.505",
                "EUR",
                "INV 2026-0042",
            ),
            json!("amount"),
            "INVALID_AMOUNT",
        ),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                &beneficiary,
                "0",
                "EUR",
                "INV 2026-0042",
            ),
            json!("amount"),
            "INVALID_AMOUNT",
        ),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                &beneficiary,
                "-5",
                "EUR",
                "INV 2026-0042",
            ),
            json!("amount"),
            "INVALID_AMOUNT",
        ),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                &beneficiary,
                "5",
                "NOK",
                "INV 2026-0042",
            ),
            json!("currency"),
            "CURRENCY_MISMATCH",
        ),
        (
            nb_payment(&source, "BENEFICIARY", &beneficiary, "5", "EUR", "INV"),
            json!("reference"),
            "INVALID_REFERENCE",
        ),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                &beneficiary,
                "5",
                "EUR",
                "A reference too long",
            ),
            json!("reference"),
            "INVALID_REFERENCE",
        ),
        (
            nb_payment(&source, "BENEFICIARY", &beneficiary, "5", "EUR", "xxxxxxxx"),
            json!("reference"),
            "INVALID_REFERENCE",
        ),
        (
            nb_payment(
                &source,
                "BENEFICIARY",
                "B0000000",
                "5",
                "EUR",
                "INV 2026-0042",
            ),
            json!("destination.id"),
            "BENEFICIARY_NOT_FOUND",
        ),
        (
            nb_payment(&source, "ACCOUNT", &source, "5", "EUR", "INV 2026-0042"),
            json!("destination.id"),
            "SAME_ACCOUNT",
        ),
        (
            nb_payment(&source, "ACCOUNT", &yen, "5", "EUR", "INV 2026-0042"),
            json!("destination.id"),
            "CURRENCY_MISMATCH",
        ),
        (
            nb_payment(&source, "IBAN", &beneficiary, "5", "EUR", "INV 2026-0042"),
            json!("destination.type"),
            "INVALID_VALUE",
        ),
        (
            nb_payment(
                "A0000000",
                "BENEFICIARY",
                &beneficiary,
                "5",
                "EUR",
                "INV 2026-0042",
            ),
            json!("sourceAccountId"),
            "ACCOUNT_NOT_FOUND",
        ),
        (
            nb_payment(
                &yen,
                "BENEFICIARY",
                &beneficiary,
                "1.5",
                "JPY",
                "INV 2026-0042",
            ),
            json!("amount"),
            "INVALID_AMOUNT",
        ),
        (
            format!(
                r#"{{"sourceAccountId":"{source}","amount":5,"currency":"EUR","reference":"INV 2026-0042"}}"#
            ),
            json!("destination"),
            "REQUIRED",
        ),
        (
            format!(
                r#"{{"sourceAccountId":"{source}","destination":{{"type":"BENEFICIARY"}},"amount":5,"currency":"EUR","reference":"INV 2026-0042"}}"#
            ),
            json!("destination.id"),
            "REQUIRED",
        ),
        (
            format!(
                r#"{{"sourceAccountId":"{source}","destination":{{"type":"BENEFICIARY","id":"{beneficiary}"}},"amount":5,"currency":"EUR","reference":"INV 2026-0042","description":"x"}}"#
            ),
            json!("description"),
            "UNKNOWN_FIELD",
        ),
    ] {
        let reply = nb_post(&nb, &token, &body);
        let (got_field, got_code) = nb_error(&reply, 400);
        assert_eq!((got_field, got_code.as_str()), (field, code), "{body}");
    }
    assert_eq!(nb.payments().len(), executed);
    let reply = nb_post(
        &nb,
        "nbt_404",
        &nb_payment(
            &source,
            "BENEFICIARY",
            &beneficiary,
            "5",
            "EUR",
            "INV 2026-0042",
        ),
    );
    assert_eq!(reply.status, 401);
    assert_eq!(nb.payments().len(), executed);
    assert_eq!(nb.payment_posts(), 7 + 19 + 1);
    // A yen amount is whole.
    let reply = nb_post(
        &nb,
        &token,
        &nb_payment(
            &yen,
            "BENEFICIARY",
            &beneficiary,
            "1500",
            "JPY",
            "Yen payout",
        ),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(raw_lexeme(&exact_of(&reply)["amount"]), Some("1500"));

    // Settling: legs PROCESSED now, balances move; a failed payment restores the available.
    nb.advance_millis(5_000);
    let later = nb.now_ms();
    let rent = nb
        .payments()
        .into_iter()
        .find(|p| p.reference == "Rent 2026-04")
        .unwrap();
    assert!(nb.fail_payment(&rent.id));
    assert!(!nb.fail_payment(&rent.id), "no longer submitted");
    let before = nb.account(&source).unwrap();
    let settled = nb.settle_payments();
    assert_eq!(settled, nb.payments().len() - 1);
    assert_eq!(nb.settle_payments(), 0);
    let after = nb.account(&source).unwrap();
    let debited: i64 = nb
        .payments()
        .iter()
        .filter(|p| p.source_account_id == source && p.status == "PROCESSED")
        .map(|p| p.amount_minor)
        .sum();
    assert_eq!(after.balance_minor, before.balance_minor - debited);
    assert_eq!(after.available_minor, 1_000_000 - debited);
    assert_eq!(nb.account(&savings).unwrap().balance_minor, 12_500);
    let legs: Vec<NbTransaction> = nb
        .transactions()
        .into_iter()
        .filter(|t| t.payment_id.is_some())
        .collect();
    for leg in &legs {
        let payment = nb
            .payments()
            .into_iter()
            .find(|p| Some(&p.id) == leg.payment_id.as_ref())
            .unwrap();
        assert_eq!(leg.status, payment.status);
        assert_eq!(leg.updated_ms, later);
        assert_eq!(
            leg.posted_ms,
            (payment.status == "PROCESSED").then_some(later)
        );
    }
}

#[test]
fn nordbank_faults_latency_and_call_counts() {
    let nb = Nordbank::start(8, NB_CLIENT, NB_SECRET);
    nb.seed_accounts(3);
    let token = nb.issue_token();

    nb.fail_every(2, 429, Some(7));
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            let reply = nb_get(&nb, &token, "/api/accounts", &[]);
            if reply.status == 429 {
                assert_eq!(reply.header("retry-after"), Some("7"));
                assert_eq!(nb_error(&reply, 429).1, "RATE_LIMITED");
            }
            reply.status
        })
        .collect();
    assert_eq!(statuses, [200, 429, 200, 429]);
    // The token endpoint is not under /api/.
    nb_token(&nb);
    nb_token(&nb);
    nb.fail_every_on("/oauth2/token", 1, 503, None);
    assert_eq!(
        nb_token_request(&nb, "grant_type=client_credentials", None).status,
        503
    );
    nb.clear_faults();
    assert_eq!(nb_get(&nb, &token, "/api/accounts", &[]).status, 200);

    assert_eq!(nb.calls("/api/accounts"), 5);
    assert_eq!(nb.calls("/oauth2/token"), 3);
    let log = nb.call_log();
    assert_eq!(log.len(), 8);
    assert_eq!(log[1].status, 429);
    assert_eq!(log[7].path, "/api/accounts");
    nb.reset_calls();
    assert_eq!(nb.calls("/"), 0);

    nb.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(nb_get(&nb, &token, "/api/accounts", &[]).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    nb.set_latency(Duration::ZERO);

    // The clock is the mock's own.
    assert_eq!(nb.now_ms(), NORDBANK_EPOCH_MS);
    nb.advance_millis(1_500);
    assert_eq!(nb.now_ms(), NORDBANK_EPOCH_MS + 1_500);
    nb.set_now_ms(0);
    assert_eq!(nb.now_ms(), 0);
}

// =============================================================================================
// Walletpay
// =============================================================================================

const WP_CLIENT: &str = "wp-client";
const WP_KEY: &str = "wp-api-key";

fn wp_get(wp: &Walletpay, path: &str, query: &[(&str, &str)]) -> HttpReply {
    let url = if query.is_empty() {
        format!("{}{path}", wp.url())
    } else {
        format!("{}{path}?{}", wp.url(), encode_query(query))
    };
    send("GET", &url, &[("Authorization", &wp.basic_auth())], None)
}

fn wp_post(wp: &Walletpay, path: &str, body: &Value, key: Option<&str>) -> HttpReply {
    let auth = wp.basic_auth();
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    let body = body.to_string();
    send(
        "POST",
        &format!("{}{path}", wp.url()),
        &headers,
        Some(body.as_bytes()),
    )
}

/// Checks a Walletpay error; returns its `Type` and `Errors`.
#[track_caller]
fn wp_error(reply: &HttpReply, status: u16) -> (String, Value) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = json_of(reply);
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["Date", "Errors", "Id", "Message", "Type"])
    );
    assert!(body["Errors"].is_object());
    (
        body["Type"].as_str().unwrap().to_owned(),
        body["Errors"].clone(),
    )
}

/// Walks a Walletpay list from page 1; checks the headers and the stop rule.
fn wp_walk(wp: &Walletpay, path: &str, per_page: usize, extra: &[(&str, &str)]) -> Vec<Value> {
    let mut items = Vec::new();
    let per_page_text = per_page.to_string();
    for page in 1..100_000 {
        let page_text = page.to_string();
        let mut query = vec![
            ("page", page_text.as_str()),
            ("per_page", per_page_text.as_str()),
        ];
        query.extend_from_slice(extra);
        let reply = wp_get(wp, path, &query);
        assert_eq!(reply.status, 200, "{path} {query:?}: {}", reply.text());
        let body = json_of(&reply);
        let content = body.as_array().expect("a bare JSON array");
        let total: usize = reply.header("x-number-of-items").unwrap().parse().unwrap();
        let pages: usize = reply.header("x-number-of-pages").unwrap().parse().unwrap();
        assert_eq!(pages, total.div_ceil(per_page));
        let last = page >= pages;
        let expected = if last {
            total.saturating_sub((page - 1) * per_page)
        } else {
            per_page
        };
        assert_eq!(content.len(), expected, "{path} page {page}");
        items.extend(content.iter().cloned());
        if last {
            assert_eq!(items.len(), total);
            return items;
        }
    }
    panic!("no end");
}

fn ids_of(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| text_of(&i["Id"]).to_owned()).collect()
}

#[test]
fn walletpay_wants_http_basic_on_every_request() {
    let wp = Walletpay::start(1, WP_CLIENT, WP_KEY);
    wp.seed_users(2);
    let url = format!("{}/v2/users", wp.url());
    let reply = send("GET", &url, &[], None);
    let (kind, _) = wp_error(&reply, 401);
    assert_eq!(kind, "unauthorized");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"walletpay\"")
    );
    let wrong = format!(
        "Basic {}",
        base64_encode(format!("{WP_CLIENT}:nope").as_bytes())
    );
    assert_eq!(
        send("GET", &url, &[("Authorization", &wrong)], None).status,
        401
    );
    let bearer = format!("Bearer {WP_KEY}");
    assert_eq!(
        send("GET", &url, &[("Authorization", &bearer)], None).status,
        401
    );
    let right = format!(
        "Basic {}",
        base64_encode(format!("{WP_CLIENT}:{WP_KEY}").as_bytes())
    );
    assert_eq!(wp.basic_auth(), right);
    assert_eq!(
        send("GET", &url, &[("Authorization", &right)], None).status,
        200
    );
    // Payments too.
    let reply = send(
        "POST",
        &format!("{}/v2/transfers", wp.url()),
        &[("Content-Type", "application/json")],
        Some(b"{}"),
    );
    assert_eq!(reply.status, 401);
    assert_eq!(wp.payment_posts(), 1);
}

#[test]
fn walletpay_users_wallets_and_bank_accounts_page_from_one() {
    let wp = Walletpay::start(2, WP_CLIENT, WP_KEY);
    let users = wp.seed_users(27);
    wp.seed_wallets(3);
    wp.seed_bank_accounts(2);

    // Users: newest first by default, oldest first on demand, ties by Id.
    let truth = wp.users();
    let mut ascending = truth.clone();
    ascending.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    assert!(
        ascending.windows(2).any(|w| w[0].created == w[1].created),
        "ties on the second"
    );
    let expected: Vec<String> = ascending.iter().map(|u| u.id.clone()).collect();
    for per_page in [1, 4, 27, 100] {
        let asc = wp_walk(&wp, "/v2/users", per_page, &[("Sort", "CreationDate:ASC")]);
        assert_eq!(ids_of(&asc), expected);
        let mut desc = ids_of(&wp_walk(&wp, "/v2/users", per_page, &[]));
        desc.reverse();
        assert_eq!(desc, expected, "DESC is the default");
        let explicit = wp_walk(&wp, "/v2/users", per_page, &[("Sort", "CreationDate:DESC")]);
        assert_eq!(
            ids_of(&explicit).into_iter().rev().collect::<Vec<_>>(),
            expected
        );
    }
    let asc = wp_walk(&wp, "/v2/users", 10, &[("Sort", "CreationDate:ASC")]);
    for (item, user) in asc.iter().zip(&ascending) {
        assert_eq!(item, &user.to_json());
        assert!(item["CreationDate"].is_i64());
        if user.person_type == "NATURAL" {
            assert!(item["FirstName"].is_string() && item.get("Name").is_none());
        } else {
            assert!(item["Name"].is_string() && item.get("FirstName").is_none());
        }
    }
    assert!(truth.iter().any(|u| u.person_type == "LEGAL"));
    assert!(truth.iter().any(|u| u.person_type == "NATURAL"));
    assert!(
        truth.iter().any(|u| u.tag.is_none()) && truth.iter().any(|u| u.tag.as_deref() == Some(""))
    );

    // Defaults: page 1, 10 per page; past the end is []; page 0 does not exist.
    let reply = wp_get(&wp, "/v2/users", &[]);
    assert_eq!(json_of(&reply).as_array().unwrap().len(), 10);
    assert_eq!(reply.header("x-number-of-pages"), Some("3"));
    assert_eq!(reply.header("x-number-of-items"), Some("27"));
    let reply = wp_get(&wp, "/v2/users", &[("page", "4")]);
    assert_eq!(json_of(&reply), json!([]));
    for (query, field) in [
        (vec![("page", "0")], "page"),
        (vec![("per_page", "101")], "per_page"),
        (vec![("per_page", "0")], "per_page"),
        (vec![("Sort", "CreationDate:asc")], "Sort"),
        (vec![("Sort", "Id:ASC")], "Sort"),
        (vec![("page", "1"), ("page", "2")], "page"),
        (vec![("AfterDate", "5")], "AfterDate"),
        (vec![("pageSize", "5")], "pageSize"),
    ] {
        let (kind, errors) = wp_error(&wp_get(&wp, "/v2/users", &query), 400);
        assert_eq!(kind, "param_error");
        assert!(errors.get(field).is_some(), "{query:?}: {errors}");
    }

    // Wallets and bank accounts are per user: a fan-out.
    let wallets = wp.wallets();
    let banks = wp.bank_accounts();
    let mut fanned = BTreeSet::new();
    for user in &users {
        let items = wp_walk(
            &wp,
            &format!("/v2/users/{user}/wallets"),
            2,
            &[("Sort", "CreationDate:ASC")],
        );
        assert_eq!(items.len(), 3);
        for item in &items {
            let wallet = wallets
                .iter()
                .find(|w| w.id == text_of(&item["Id"]))
                .unwrap();
            assert_eq!(item, &wallet.to_json());
            assert_eq!(item["Owners"], json!([user]));
            assert_eq!(item["Balance"]["Currency"], item["Currency"]);
            assert_eq!(item["Balance"]["Amount"].as_i64(), Some(wallet.balance));
            assert!(fanned.insert(wallet.id.clone()));
        }
        let accounts = wp_walk(&wp, &format!("/v2/users/{user}/bankaccounts"), 1, &[]);
        assert_eq!(accounts.len(), 2);
        for item in &accounts {
            let account = banks.iter().find(|b| b.id == text_of(&item["Id"])).unwrap();
            assert_eq!(item, &account.to_json());
            assert_eq!(item["UserId"], user.as_str());
        }
        assert!(accounts[0]["CreationDate"].as_i64() >= accounts[1]["CreationDate"].as_i64());
    }
    assert_eq!(fanned.len(), wallets.len());
    assert!(banks.iter().any(|b| !b.active));
    let currencies: BTreeSet<&str> = wallets.iter().map(|w| w.currency.as_str()).collect();
    assert!(
        currencies.contains("JPY") || currencies.contains("KWD"),
        "{currencies:?}"
    );

    let wallet = &wallets[4];
    let reply = wp_get(&wp, &format!("/v2/wallets/{}", wallet.id), &[]);
    assert_eq!(json_of(&reply), wallet.to_json());
    let reply = wp_get(&wp, &format!("/v2/users/{}", users[0]), &[]);
    assert_eq!(json_of(&reply), truth[0].to_json());
    for path in [
        "/v2/wallets/9999999",
        "/v2/users/9999999",
        "/v2/users/9999999/wallets",
        "/v2/users/9999999/bankaccounts",
        "/v2/wallets/9999999/transactions",
        "/v2/nothing",
        "/v2/payouts/9999999",
        "/v2/transfers/9999999",
        "/v2/responses/unknown-key-0000000",
    ] {
        let (kind, _) = wp_error(&wp_get(&wp, path, &[]), 404);
        assert_eq!(kind, "resource_not_found", "{path}");
    }
    let reply = send(
        "DELETE",
        &format!("{}/v2/users", wp.url()),
        &[("Authorization", &wp.basic_auth())],
        None,
    );
    assert_eq!(wp_error(&reply, 405).0, "method_not_allowed");
}

#[test]
fn walletpay_wallet_transactions_tie_on_seconds_and_leave_sides_empty() {
    let wp = Walletpay::start(3, WP_CLIENT, WP_KEY);
    wp.seed_users(4);
    let wallets = wp.seed_wallets(3);
    wp.seed_transactions(40);
    let truth: HashMap<String, WpTransaction> = wp
        .transactions()
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();

    let mut listed: HashMap<String, usize> = HashMap::new();
    let mut ties = 0;
    let mut burst_max = 0;
    let mut big = 0;
    for wallet in &wallets {
        let path = format!("/v2/wallets/{wallet}/transactions");
        let asc = wp_walk(&wp, &path, 7, &[("Sort", "CreationDate:ASC")]);
        let served: Vec<&WpTransaction> = asc.iter().map(|i| &truth[text_of(&i["Id"])]).collect();
        let mut expected: Vec<&WpTransaction> =
            truth.values().filter(|t| t.touches(wallet)).collect();
        expected.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        let ids = |list: &[&WpTransaction]| list.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&served), ids(&expected), "wallet {wallet}");
        assert!(served.len() >= 40);
        assert_eq!(
            ids(&served),
            wp.wallet_transactions(wallet, None, None, true)
                .iter()
                .map(|t| t.id.clone())
                .collect::<Vec<_>>()
        );
        // The default order is newest first, ties by Id descending.
        let mut desc = ids_of(&wp_walk(&wp, &path, 9, &[]));
        desc.reverse();
        assert_eq!(desc, ids(&served));

        ties += served
            .windows(2)
            .filter(|w| w[0].created == w[1].created)
            .count();
        let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
        for t in &served {
            *per_second.entry(t.created).or_default() += 1;
            *listed.entry(t.id.clone()).or_default() += 1;
        }
        burst_max = burst_max.max(*per_second.values().max().unwrap());

        for (item, t) in asc.iter().zip(&served) {
            assert_eq!(item, &t.to_json());
            // The missing side is "", never null.
            let (debited, credited) = (&item["DebitedWalletId"], &item["CreditedWalletId"]);
            match t.kind.as_str() {
                "PAYIN" => {
                    assert_eq!(debited, "");
                    assert_eq!(credited, wallet.as_str());
                    assert_eq!(item["CreditedUserId"], item["AuthorId"]);
                }
                "PAYOUT" => {
                    assert_eq!(debited, wallet.as_str());
                    assert_eq!(credited, "");
                    assert_eq!(item["CreditedUserId"], Value::Null);
                }
                "TRANSFER" => {
                    assert!(debited.as_str().is_some_and(|d| !d.is_empty()));
                    assert!(credited.as_str().is_some_and(|c| !c.is_empty()));
                    assert_ne!(debited, credited);
                    assert!(debited == wallet.as_str() || credited == wallet.as_str());
                }
                other => panic!("type {other}"),
            }
            let owner = |w: &Value| -> Option<String> { wp.wallet(w.as_str()?).map(|w| w.owner) };
            let author_side = if t.kind == "PAYIN" { credited } else { debited };
            assert_eq!(
                item["AuthorId"].as_str().map(str::to_owned),
                owner(author_side)
            );
            // Minor units; CreditedFunds = DebitedFunds - Fees.
            let amount = |key: &str| item[key]["Amount"].as_i64().unwrap();
            assert_eq!(
                amount("CreditedFunds"),
                amount("DebitedFunds") - amount("Fees")
            );
            assert!(amount("Fees") >= 0 && amount("DebitedFunds") > 0);
            for key in ["DebitedFunds", "CreditedFunds", "Fees"] {
                assert_eq!(item[key]["Currency"], t.currency.as_str());
            }
            if amount("DebitedFunds") > (1 << 53) {
                big += 1;
                let as_float = item["DebitedFunds"]["Amount"].as_f64().unwrap();
                assert_ne!(
                    as_float as i64,
                    amount("DebitedFunds"),
                    "an f64 loses digits"
                );
            }
            // ExecutionDate and the result follow the status.
            match t.status.as_str() {
                "CREATED" => {
                    assert_eq!(item["ExecutionDate"], Value::Null);
                    assert_eq!(item["ResultCode"], Value::Null);
                }
                "SUCCEEDED" => {
                    assert!(item["ExecutionDate"].as_i64().unwrap() >= t.created);
                    assert_eq!(item["ResultCode"], "000000");
                }
                "FAILED" => {
                    assert!(item["ExecutionDate"].is_i64());
                    assert!(matches!(text_of(&item["ResultCode"]), "001001" | "001999"));
                }
                other => panic!("status {other}"),
            }
            assert!(matches!(
                t.nature.as_str(),
                "REGULAR" | "REFUND" | "REPUDIATION"
            ));
        }
    }
    // A transfer between two seeded wallets is listed under both, with one Id.
    let transfers: Vec<&WpTransaction> = truth.values().filter(|t| t.kind == "TRANSFER").collect();
    assert!(!transfers.is_empty());
    for t in &transfers {
        assert_eq!(listed[&t.id], 2, "{}", t.id);
    }
    for t in truth.values().filter(|t| t.kind != "TRANSFER") {
        assert_eq!(listed[&t.id], 1);
    }
    assert!(ties >= 20, "ties: {ties}");
    assert!(burst_max >= 6, "bursts: {burst_max}");
    assert!(big >= 1, "amounts above 2^53: {big}");
    let natures: BTreeSet<&str> = truth.values().map(|t| t.nature.as_str()).collect();
    assert!(natures.contains("REFUND"), "{natures:?}");
    let statuses: BTreeSet<&str> = truth.values().map(|t| t.status.as_str()).collect();
    assert_eq!(statuses, BTreeSet::from(["CREATED", "FAILED", "SUCCEEDED"]));

    // AfterDate inclusive, BeforeDate exclusive, on CreationDate.
    let wallet = &wallets[0];
    let path = format!("/v2/wallets/{wallet}/transactions");
    let all = wp.wallet_transactions(wallet, None, None, true);
    let pivot = all[all.len() / 2].created;
    let tied = all.iter().filter(|t| t.created == pivot).count();
    let after = pivot.to_string();
    let from_pivot = wp_walk(
        &wp,
        &path,
        5,
        &[("AfterDate", &after), ("Sort", "CreationDate:ASC")],
    );
    assert_eq!(
        from_pivot.len(),
        all.iter().filter(|t| t.created >= pivot).count()
    );
    assert_eq!(from_pivot[0]["CreationDate"], pivot);
    let before = wp_walk(&wp, &path, 5, &[("BeforeDate", &after)]);
    assert_eq!(before.len(), all.len() - from_pivot.len());
    assert!(
        before
            .iter()
            .all(|t| t["CreationDate"].as_i64().unwrap() < pivot)
    );
    let next = (pivot + 1).to_string();
    let one_second = wp_walk(
        &wp,
        &path,
        5,
        &[("AfterDate", &after), ("BeforeDate", &next)],
    );
    assert_eq!(one_second.len(), tied);
    let (_, errors) = wp_error(
        &wp_get(&wp, &path, &[("AfterDate", &after), ("BeforeDate", &after)]),
        400,
    );
    assert!(errors.get("BeforeDate").is_some());
    let (_, errors) = wp_error(&wp_get(&wp, &path, &[("AfterDate", "2026-01-01")]), 400);
    assert!(errors.get("AfterDate").is_some());

    // A status change sets ExecutionDate only: a poll on CreationDate does not see it.
    let pending = all
        .iter()
        .find(|t| t.status == "CREATED")
        .expect("a pending one");
    wp.advance(3600);
    assert!(wp.update_transaction(&pending.id, "SUCCEEDED", None));
    let changed = wp.transaction(&pending.id).unwrap();
    assert_eq!(changed.created, pending.created);
    assert_eq!(changed.executed, Some(wp.now()));
    let recent = (WALLETPAY_EPOCH - 1).to_string();
    assert!(wp_walk(&wp, &path, 5, &[("AfterDate", &recent)]).is_empty());
    assert!(!wp.update_transaction("9999999", "FAILED", None));

    // A seed gives the same data every time.
    let again = Walletpay::start(3, WP_CLIENT, WP_KEY);
    again.seed_users(4);
    again.seed_wallets(3);
    again.seed_transactions(40);
    let original: Vec<WpTransaction> = {
        let mut t = wp.transactions();
        let i = t.iter().position(|t| t.id == pending.id).unwrap();
        t[i] = pending.clone();
        t
    };
    assert_eq!(again.transactions(), original);

    // add_transaction derives the author and the credited user from the wallets.
    let other = &wallets[1];
    let id = wp.add_transaction(WpNewTransaction {
        kind: "TRANSFER".to_owned(),
        debited_wallet: Some(wallet.clone()),
        credited_wallet: Some(other.clone()),
        currency: wp.wallet(wallet).unwrap().currency,
        ..WpNewTransaction::default()
    });
    let t = wp.transaction(&id).unwrap();
    assert_eq!(t.author_id, wp.wallet(wallet).unwrap().owner);
    assert_eq!(t.credited_user_id, Some(wp.wallet(other).unwrap().owner));
    assert_eq!(t.created, wp.now());
}

/// A user with an EUR wallet (balance 10 000.00) and an active and an inactive bank account,
/// plus a second user with a wallet and a bank account.
struct WpFixture {
    wp: Walletpay,
    user: String,
    wallet: String,
    bank: String,
    inactive_bank: String,
    other_user: String,
    other_wallet: String,
    other_bank: String,
}

fn wp_fixture(seed: u64) -> WpFixture {
    let wp = Walletpay::start(seed, WP_CLIENT, WP_KEY);
    let created = Some(WALLETPAY_EPOCH - 30 * 86_400);
    let user = wp.add_user(true, "Ada Lovelace", created);
    let wallet = wp.add_wallet(&user, "EUR", 1_000_000, created);
    let bank = wp.add_bank_account(&user, true, created);
    let inactive_bank = wp.add_bank_account(&user, false, created);
    let other_user = wp.add_user(false, "Acme SAS", created);
    let other_wallet = wp.add_wallet(&other_user, "EUR", 0, created);
    let other_bank = wp.add_bank_account(&other_user, true, created);
    WpFixture {
        wp,
        user,
        wallet,
        bank,
        inactive_bank,
        other_user,
        other_wallet,
        other_bank,
    }
}

fn payout_body(author: &str, wallet: &str, bank: &str, amount: i64) -> Value {
    json!({
        "AuthorId": author,
        "DebitedWalletId": wallet,
        "DebitedFunds": {"Currency": "EUR", "Amount": amount},
        "Fees": {"Currency": "EUR", "Amount": 0},
        "BankAccountId": bank,
        "BankWireRef": "INV 42",
    })
}

#[test]
fn walletpay_payouts_need_the_wallet_owner_and_replay_by_key() {
    let f = wp_fixture(4);
    let wp = &f.wp;
    let key = "3f2b1c9e-7a41-4d0c-9f55-0b6f1e2a7c11";

    // A connector knowing only the wallet looks up its owner first.
    let wallet = json_of(&wp_get(wp, &format!("/v2/wallets/{}", f.wallet), &[]));
    let author = text_of(&wallet["Owners"][0]).to_owned();
    assert_eq!(author, f.user);

    let body = payout_body(&author, &f.wallet, &f.bank, 12_345);
    let reply = wp_post(wp, "/v2/payouts/bankwire", &body, Some(key));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let payout = json_of(&reply);
    let payout_id = text_of(&payout["Id"]).to_owned();
    assert_eq!(payout["Type"], "PAYOUT");
    assert_eq!(payout["Nature"], "REGULAR");
    assert_eq!(payout["Status"], "CREATED");
    assert_eq!(payout["ExecutionDate"], Value::Null);
    assert_eq!(payout["CreationDate"], wp.now());
    assert_eq!(payout["DebitedWalletId"], f.wallet.as_str());
    assert_eq!(payout["CreditedWalletId"], "");
    assert_eq!(payout["BankAccountId"], f.bank.as_str());
    assert_eq!(payout["BankWireRef"], "INV 42");
    assert_eq!(payout["PaymentType"], "BANK_WIRE");
    assert_eq!(
        payout["DebitedFunds"],
        json!({"Currency": "EUR", "Amount": 12_345})
    );
    assert_eq!(wp.wallet(&f.wallet).unwrap().balance, 1_000_000 - 12_345);
    assert_eq!(wp.executions_for_key(key), 1);

    // The same key and body: the same answer, nothing executed again.
    let replay = wp_post(wp, "/v2/payouts/bankwire", &body, Some(key));
    assert_eq!(replay.status, 200);
    assert_eq!(json_of(&replay), payout);
    assert_eq!(wp.executions_for_key(key), 1);
    assert_eq!(wp.payouts().len(), 1);
    // Another body, or another path, with that key: 409.
    let other = payout_body(&author, &f.wallet, &f.bank, 1);
    assert_eq!(
        wp_error(&wp_post(wp, "/v2/payouts/bankwire", &other, Some(key)), 409).0,
        "idempotency_conflict"
    );
    assert_eq!(
        wp_error(&wp_post(wp, "/v2/transfers", &body, Some(key)), 409).0,
        "idempotency_conflict"
    );
    let remembered = json_of(&wp_get(wp, &format!("/v2/responses/{key}"), &[]));
    assert_eq!(remembered["StatusCode"], 200);
    assert_eq!(remembered["RequestURL"], "/v2/payouts/bankwire");
    assert_eq!(remembered["Resource"], payout);

    // The payout is in the wallet's transactions with the same Id.
    let listed = wp_walk(
        wp,
        &format!("/v2/wallets/{}/transactions", f.wallet),
        10,
        &[],
    );
    assert_eq!(ids_of(&listed), vec![payout_id.clone()]);
    assert_eq!(listed[0]["CreditedWalletId"], "");
    assert_eq!(listed[0]["AuthorId"], f.user.as_str());
    assert!(listed[0].get("BankAccountId").is_none());
    assert_eq!(
        json_of(&wp_get(wp, &format!("/v2/payouts/{payout_id}"), &[])),
        payout
    );

    // Keys: 16 to 36 of A-Z a-z 0-9 -.
    for (key, ok) in [
        ("0123456789abcdef", true),
        ("0123456789abcde", false),
        ("0123456789abcdef0123456789abcdef0123", true),
        ("0123456789abcdef0123456789abcdef01234", false),
        ("0123456789abcdef_", false),
        ("0123456789abcdef ", false),
    ] {
        assert_eq!(walletpay_key_ok(key), ok, "{key:?}");
    }
    let posts = wp.payment_posts();
    for bad in [
        "short-key",
        "0123456789abcdef0123456789abcdef01234",
        "0123456789abcdef!",
    ] {
        let reply = wp_post(wp, "/v2/payouts/bankwire", &body, Some(bad));
        let (kind, errors) = wp_error(&reply, 400);
        assert_eq!(kind, "param_error");
        assert!(errors.get("Idempotency-Key").is_some(), "{bad}");
    }
    let sixteen = wp_post(
        wp,
        "/v2/payouts/bankwire",
        &payout_body(&author, &f.wallet, &f.bank, 5),
        Some("0123456789abcdef"),
    );
    assert_eq!(sixteen.status, 200, "{}", sixteen.text());

    // Validation: the author must own the wallet, the bank account must be theirs and active.
    for (body, field) in [
        (
            payout_body(&f.other_user, &f.wallet, &f.bank, 5),
            "AuthorId",
        ),
        (
            payout_body(&author, &f.wallet, &f.other_bank, 5),
            "BankAccountId",
        ),
        (
            payout_body(&author, &f.wallet, &f.inactive_bank, 5),
            "BankAccountId",
        ),
        (
            payout_body(&author, "9999999", &f.bank, 5),
            "DebitedWalletId",
        ),
        (
            payout_body(&author, &f.wallet, &f.bank, 0),
            "DebitedFunds.Amount",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 5.5}, "BankAccountId": f.bank}),
            "Fees.Amount",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 6}, "BankAccountId": f.bank}),
            "Fees.Amount",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "GBP", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 0}, "BankAccountId": f.bank}),
            "DebitedFunds.Currency",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": "5"}, "Fees": {"Currency": "EUR", "Amount": 0}, "BankAccountId": f.bank}),
            "DebitedFunds.Amount",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "BankAccountId": f.bank}),
            "Fees",
        ),
        (
            json!({"DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 0}, "BankAccountId": f.bank}),
            "AuthorId",
        ),
        (
            json!({"AuthorId": "", "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 0}, "BankAccountId": f.bank}),
            "AuthorId",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 0}, "BankAccountId": f.bank, "BankWireRef": "far too long a ref"}),
            "BankWireRef",
        ),
        (
            json!({"AuthorId": author, "DebitedWalletId": f.wallet, "DebitedFunds": {"Currency": "EUR", "Amount": 5}, "Fees": {"Currency": "EUR", "Amount": 0}, "BankAccountId": f.bank, "Amount": 5}),
            "Amount",
        ),
        (json!([1]), "body"),
    ] {
        let reply = wp_post(
            wp,
            "/v2/payouts/bankwire",
            &body,
            Some("validation-0000001"),
        );
        let (kind, errors) = wp_error(&reply, 400);
        assert_eq!(kind, "param_error");
        assert!(errors.get(field).is_some(), "{field}: {errors} for {body}");
    }
    assert_eq!(
        wp.executions_for_key("validation-0000001"),
        0,
        "rejections are not remembered"
    );
    assert_eq!(wp.payment_posts(), posts + 3 + 1 + 15);

    // Not enough money: 200 with a FAILED payout, nothing moves.
    let balance = wp.wallet(&f.wallet).unwrap().balance;
    let reply = wp_post(
        wp,
        "/v2/payouts/bankwire",
        &payout_body(&author, &f.wallet, &f.bank, balance + 1),
        None,
    );
    assert_eq!(reply.status, 200);
    let failed = json_of(&reply);
    assert_eq!(failed["Status"], "FAILED");
    assert_eq!(failed["ResultCode"], "001001");
    assert_eq!(failed["ExecutionDate"], wp.now());
    assert_eq!(wp.wallet(&f.wallet).unwrap().balance, balance);

    // 500 after executing: the retry with the same key replays the success.
    wp.fail_after_executing(1);
    let key2 = "retry-me-0000000000001";
    let body = payout_body(&author, &f.wallet, &f.bank, 700);
    let reply = wp_post(wp, "/v2/payouts/bankwire", &body, Some(key2));
    assert_eq!(wp_error(&reply, 500).0, "internal_error");
    assert_eq!(wp.executions_for_key(key2), 1);
    let retry = wp_post(wp, "/v2/payouts/bankwire", &body, Some(key2));
    assert_eq!(retry.status, 200);
    assert_eq!(json_of(&retry)["DebitedFunds"]["Amount"], 700);
    assert_eq!(wp.executions_for_key(key2), 1, "executed once");
    // Without a key, a retry executes again.
    wp.fail_after_executing(1);
    let body = payout_body(&author, &f.wallet, &f.bank, 800);
    assert_eq!(wp_post(wp, "/v2/payouts/bankwire", &body, None).status, 500);
    assert_eq!(wp_post(wp, "/v2/payouts/bankwire", &body, None).status, 200);
    let eight_hundred = wp
        .payouts()
        .iter()
        .filter(|p| p.debited_amount == 800)
        .count();
    assert_eq!(eight_hundred, 2);
    // An injected fault answers before routing: nothing executed, nothing remembered.
    wp.fail_next("/v2/payouts", 1, 503, Some(3));
    let key3 = "fault-before-0000000001";
    let reply = wp_post(
        wp,
        "/v2/payouts/bankwire",
        &payout_body(&author, &f.wallet, &f.bank, 900),
        Some(key3),
    );
    assert_eq!(wp_error(&reply, 503).0, "internal_error");
    assert_eq!(reply.header("retry-after"), Some("3"));
    assert_eq!(wp.executions_for_key(key3), 0);
    assert_eq!(
        wp_post(
            wp,
            "/v2/payouts/bankwire",
            &payout_body(&author, &f.wallet, &f.bank, 900),
            Some(key3)
        )
        .status,
        200
    );
    assert_eq!(wp.executions_for_key(key3), 1);

    // Settling and failing payouts.
    wp.advance(120);
    let failing = wp
        .payouts()
        .into_iter()
        .find(|p| p.debited_amount == 5)
        .unwrap();
    let before = wp.wallet(&f.wallet).unwrap().balance;
    assert!(wp.fail_payout(&failing.id));
    assert!(!wp.fail_payout(&failing.id));
    assert_eq!(wp.wallet(&f.wallet).unwrap().balance, before + 5);
    let created = wp
        .payouts()
        .iter()
        .filter(|p| p.status == "CREATED")
        .count();
    assert_eq!(wp.settle_payouts(), created);
    assert_eq!(wp.settle_payouts(), 0);
    let settled = wp.transaction(&payout_id).unwrap();
    assert_eq!(settled.status, "SUCCEEDED");
    assert_eq!(settled.executed, Some(wp.now()));
    assert_eq!(
        settled.created, WALLETPAY_EPOCH,
        "CreationDate does not move"
    );
    let listed = wp_walk(
        wp,
        &format!("/v2/wallets/{}/transactions", f.wallet),
        100,
        &[("Sort", "CreationDate:ASC")],
    );
    assert_eq!(listed[0]["Status"], "SUCCEEDED");
    assert_eq!(listed[0]["ResultCode"], "000000");
    assert_eq!(listed.len(), wp.payouts().len());
}

#[test]
fn walletpay_transfers_move_money_and_appear_under_both_wallets() {
    let f = wp_fixture(5);
    let wp = &f.wp;
    let body = json!({
        "AuthorId": f.user,
        "DebitedWalletId": f.wallet,
        "CreditedWalletId": f.other_wallet,
        "DebitedFunds": {"Currency": "EUR", "Amount": 10_000},
        "Fees": {"Currency": "EUR", "Amount": 250},
        "Tag": "rent",
    });
    let key = "transfer-key-000000001";
    let reply = wp_post(wp, "/v2/transfers", &body, Some(key));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let transfer = json_of(&reply);
    let id = text_of(&transfer["Id"]).to_owned();
    assert_eq!(transfer["Type"], "TRANSFER");
    assert_eq!(transfer["Status"], "SUCCEEDED");
    assert_eq!(transfer["ExecutionDate"], wp.now());
    assert_eq!(transfer["CreditedFunds"]["Amount"], 9_750);
    assert_eq!(transfer["CreditedUserId"], f.other_user.as_str());
    assert_eq!(transfer["Tag"], "rent");
    assert!(transfer.get("BankAccountId").is_none());
    assert_eq!(wp.wallet(&f.wallet).unwrap().balance, 1_000_000 - 10_000);
    assert_eq!(wp.wallet(&f.other_wallet).unwrap().balance, 9_750);
    for wallet in [&f.wallet, &f.other_wallet] {
        let listed = wp_walk(wp, &format!("/v2/wallets/{wallet}/transactions"), 10, &[]);
        assert_eq!(
            listed,
            vec![transfer.clone()],
            "one object, under both wallets"
        );
    }
    assert_eq!(
        json_of(&wp_get(wp, &format!("/v2/transfers/{id}"), &[])),
        transfer
    );
    assert_eq!(wp_post(wp, "/v2/transfers", &body, Some(key)).status, 200);
    assert_eq!(wp.transfers().len(), 1);
    assert_eq!(wp.executions_for_key(key), 1);

    for (change, field) in [
        (json!({"CreditedWalletId": f.wallet}), "CreditedWalletId"),
        (json!({"CreditedWalletId": "9999999"}), "CreditedWalletId"),
        (json!({"AuthorId": f.other_user}), "AuthorId"),
        (json!({"CreditedUserId": f.user}), "CreditedUserId"),
        (json!({"BankAccountId": f.bank}), "BankAccountId"),
        (json!({"Tag": 5}), "Tag"),
    ] {
        let mut bad = body.clone();
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let (kind, errors) = wp_error(&wp_post(wp, "/v2/transfers", &bad, None), 400);
        assert_eq!(kind, "param_error");
        assert!(errors.get(field).is_some(), "{field}: {errors}");
    }
    let gbp = wp.add_wallet(&f.other_user, "GBP", 0, None);
    let mut bad = body.clone();
    bad["CreditedWalletId"] = json!(gbp);
    assert!(
        wp_error(&wp_post(wp, "/v2/transfers", &bad, None), 400)
            .1
            .get("CreditedWalletId")
            .is_some()
    );
    let mut good = body.clone();
    good["CreditedUserId"] = json!(f.other_user);
    assert_eq!(wp_post(wp, "/v2/transfers", &good, None).status, 200);

    // Not enough money: a FAILED transfer, listed, nothing moves.
    let mut big = body.clone();
    big["DebitedFunds"]["Amount"] = json!(100_000_000);
    let reply = wp_post(wp, "/v2/transfers", &big, None);
    assert_eq!(reply.status, 200);
    assert_eq!(json_of(&reply)["Status"], "FAILED");
    assert_eq!(json_of(&reply)["ResultCode"], "001001");
    assert_eq!(wp.wallet(&f.other_wallet).unwrap().balance, 2 * 9_750);
    assert_eq!(wp.transfers().len(), 3);
    let listed = wp_walk(
        wp,
        &format!("/v2/wallets/{}/transactions", f.other_wallet),
        10,
        &[],
    );
    assert_eq!(listed.len(), 3);
}

#[test]
fn walletpay_faults_latency_clock_and_call_counts() {
    let wp = Walletpay::start(6, WP_CLIENT, WP_KEY);
    wp.seed_users(3);
    wp.fail_every("/v2/", 2, 429, Some(4));
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            let reply = wp_get(&wp, "/v2/users", &[]);
            if reply.status == 429 {
                assert_eq!(reply.header("retry-after"), Some("4"));
                assert_eq!(wp_error(&reply, 429).0, "rate_limit");
            }
            reply.status
        })
        .collect();
    assert_eq!(statuses, [200, 429, 200, 429]);
    wp.fail_next("/v2/users", 2, 503, None);
    assert_eq!(wp_get(&wp, "/v2/users", &[]).status, 503);
    assert_eq!(wp_get(&wp, "/v2/users", &[]).status, 503);
    assert_eq!(wp_get(&wp, "/v2/users", &[]).status, 200);
    wp.clear_faults();
    assert_eq!(wp.calls("/v2/users"), 7);
    assert_eq!(wp.call_log()[1].status, 429);
    wp.reset_calls();
    assert_eq!(wp.calls("/"), 0);

    wp.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(wp_get(&wp, "/v2/users", &[]).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    wp.set_latency(Duration::ZERO);

    assert_eq!(wp.now(), WALLETPAY_EPOCH);
    wp.advance(10);
    assert_eq!(wp.now(), WALLETPAY_EPOCH + 10);
    wp.set_now(5);
    assert_eq!(wp.now(), 5);
    assert!(wp.users().iter().all(|u| u.created < WALLETPAY_EPOCH));
}
