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
    let lossy: Value = serde_json::from_str(&text).unwrap();
    assert_ne!(lossy["a"].to_string(), "12345678901234567.89");

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
