//! End-to-end: a generated connector crate with user handlers, built and run as a real
//! server, spoken to over HTTP/1.1 on a loopback port.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::{Process, Server, TestCrate, chunked, error_detail, terminate};

const NAME: &str = "http-e2e";

/// getAccounts reports what it received (parameters, request id, upstream URL) in the first
/// account's metadata;
/// getAccountBalances panics for `boom` and answers 404 for `missing`; createTransfer
/// echoes its request (with the description `flaky`, its first attempt fails as a provider
/// time-out would, and the next reports the attempt it is); getTransactions names the
/// provider's transfer `tr-1` as a transaction's origin; createPayout keeps the generated 501.
const HANDLERS: &str = r#"
use crate::generated::{Config, Connector, ConnectorError, Context, models, params::*};
use chrono::{DateTime, SecondsFormat, Utc};

pub struct Handlers {}

impl Handlers {
    pub fn new(config: &Config) -> Self {
        let _ = config;
        Self {}
    }
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().expect("a valid time")
}

impl Connector for Handlers {
    async fn get_accounts(
        &self,
        ctx: Context,
        params: GetAccountsParams,
    ) -> Result<Vec<models::Account>, ConnectorError> {
        let created_at_from = params
            .created_at_from
            .map_or("none".to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        let seen = [
            ("page", params.page.to_string()),
            ("pageSize", params.page_size.to_string()),
            ("sort", params.sort.unwrap_or_else(|| "none".to_owned())),
            ("createdAtFrom", created_at_from),
            ("requestId", ctx.request_id().to_owned()),
            ("upstream", ctx.config().upstream.base_url.clone()),
        ];
        Ok(vec![
            models::Account {
                id: "acc-1".to_owned(),
                account_name: "Main account".to_owned(),
                created_at: time("2026-01-02T03:04:05Z"),
                metadata: Some(seen.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            },
            models::Account {
                id: "acc-2".to_owned(),
                account_name: "Savings".to_owned(),
                created_at: time("2026-01-03T00:00:00Z"),
                metadata: None,
            },
        ])
    }

    async fn get_account_balances(
        &self,
        _ctx: Context,
        params: GetAccountBalancesParams,
    ) -> Result<models::Balances, ConnectorError> {
        match params.account_id.as_str() {
            "boom" => panic!("simulated provider crash"),
            "missing" => Err(ConnectorError::not_found("account missing does not exist")),
            id => Ok(models::Balances {
                id: format!("bal-{id}"),
                account_id: id.to_owned(),
                at: time("2026-01-02T03:04:05Z"),
                balances: vec![models::Balance {
                    amount: "1234".to_owned(),
                    currency: "EUR/2".to_owned(),
                }],
            }),
        }
    }

    async fn create_transfer(
        &self,
        ctx: Context,
        body: models::TransferRequest,
    ) -> Result<models::Transfer, ConnectorError> {
        let attempt = ctx.initiation().expect("a transfer runs as an initiation");
        assert_eq!(attempt.key(), body.idempotency_key);
        let description = match body.description.as_deref() {
            Some("flaky") if attempt.attempt() == 1 => {
                return Err(ConnectorError::unavailable("the provider timed out", Some(1)));
            }
            Some("flaky") => Some(format!("attempt {} recovering {}", attempt.attempt(), attempt.recovering())),
            _ => body.description,
        };
        Ok(models::Transfer {
            id: "tr-1".to_owned(),
            idempotency_key: body.idempotency_key,
            amount: body.amount,
            currency: body.currency,
            source_account_id: body.source_account_id,
            destination_account_id: body.destination_account_id,
            description,
            status: models::TransactionStatus::Pending,
            created_at: time("2026-01-02T03:04:05Z"),
            updated_at: None,
            metadata: body.metadata,
        })
    }

    async fn get_transactions(
        &self,
        _ctx: Context,
        _params: GetTransactionsParams,
    ) -> Result<Vec<models::Transaction>, ConnectorError> {
        let transaction = |id: &str, origin: &str| models::Transaction {
            id: id.to_owned(),
            related_transaction_id: Some(origin.to_owned()),
            created_at: time("2026-01-02T03:04:05Z"),
            updated_at: time("2026-01-02T03:04:05Z"),
            currency: "EUR/2".to_owned(),
            scheme: None,
            type_: models::TransactionType::Other,
            status: models::TransactionStatus::Pending,
            amount: "1500".to_owned(),
            source_account_id: None,
            destination_account_id: None,
            metadata: None,
        };
        Ok(vec![transaction("tx-1", "tr-1"), transaction("tx-2", "refund-of-9")])
    }
}
"#;

/// The crate is generated and built once for every test in this file.
fn krate() -> &'static (TestCrate, PathBuf) {
    static BUILT: OnceLock<Option<(TestCrate, PathBuf)>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            std::panic::catch_unwind(|| {
                let krate = TestCrate::new("http", NAME);
                krate.generate(None, &[]).assert_code(0);
                krate.write("src/handlers.rs", HANDLERS);
                let binary = krate.build();
                (krate, binary)
            })
            .ok()
        })
        .as_ref()
        .expect("generating or building the http-e2e crate failed; see the first failing test")
}

fn binary() -> &'static Path {
    &krate().1
}

fn start() -> Server {
    Server::start(binary(), &krate().0.server_env())
}

fn start_with(extra: &[(&str, &str)]) -> Server {
    let mut env = krate().0.server_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Server::start(binary(), &env)
}

fn transfer_request() -> Value {
    json!({
        "idempotencyKey": "key-1",
        "amount": "1500",
        "currency": "EUR/2",
        "sourceAccountId": "acc-1",
        "destinationAccountId": "acc-2",
    })
}

fn account_metadata(response: &support::Response) -> Value {
    assert_eq!(response.status, 200, "{response:?}");
    response.json()[0]["metadata"].clone()
}

#[test]
fn healthz_answers_without_credentials() {
    let server = start();
    let response = server.request("GET", "/healthz").send();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json(), json!({"status": "ok"}));
}

#[test]
fn protocol_routes_require_the_bearer_api_key() {
    let server = start();
    let attempts = [
        ("no header", None),
        ("wrong key", Some("Bearer not-the-key")),
        ("other scheme", Some("Basic ZTJlOmtleQ==")),
        ("key without scheme", Some(support::API_KEY)),
    ];
    for (case, authorization) in attempts {
        let mut request = server.request("GET", "/accounts");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send();
        error_detail(&response, 401);
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer"),
            "{case}"
        );
    }
    // The scheme is case-insensitive (RFC 9110).
    let lower = server
        .request("GET", "/accounts")
        .header("Authorization", &format!("bearer {}", support::API_KEY))
        .send();
    assert_eq!(lower.status, 200, "{lower:?}");
}

#[test]
fn get_accounts_sends_wire_names_and_applies_spec_defaults() {
    let server = start();
    let response = server
        .request("GET", "/accounts")
        .auth()
        .header("X-Request-Id", "req-defaults")
        .send();
    assert_eq!(response.status, 200, "{response:?}");
    let expected = json!([
        {
            "id": "acc-1",
            "accountName": "Main account",
            "createdAt": "2026-01-02T03:04:05Z",
            "metadata": {
                "page": "1",
                "pageSize": "100",
                "sort": "none",
                "createdAtFrom": "none",
                "requestId": "req-defaults",
                "upstream": support::UPSTREAM_URL,
            },
        },
        {"id": "acc-2", "accountName": "Savings", "createdAt": "2026-01-03T00:00:00Z"},
    ]);
    assert_eq!(response.json(), expected);
}

#[test]
fn query_parameters_are_parsed_and_times_converted_to_utc() {
    let server = start();
    let metadata =
        account_metadata(&server.get(
            "/accounts?page=3&pageSize=25&sort=createdAt:asc&createdAtFrom=2026-11-24T12:00:05Z",
        ));
    let expected = [
        ("page", "3"),
        ("pageSize", "25"),
        ("sort", "createdAt:asc"),
        ("createdAtFrom", "2026-11-24T12:00:05Z"),
    ];
    for (key, value) in expected {
        assert_eq!(metadata[key], value, "{key} in {metadata}");
    }
    let encoded_offset =
        account_metadata(&server.get("/accounts?createdAtFrom=2026-01-02T03:04:05%2B02:00"));
    assert_eq!(encoded_offset["createdAtFrom"], "2026-01-02T01:04:05Z");
    // An unencoded `+` arrives as a space; it is still read as the offset's sign.
    let raw_offset =
        account_metadata(&server.get("/accounts?createdAtFrom=2026-01-02T03:04:05+02:00"));
    assert_eq!(raw_offset["createdAtFrom"], "2026-01-02T01:04:05Z");
}

#[test]
fn invalid_query_parameters_are_400_naming_the_parameter() {
    let server = start();
    let cases = [
        ("pageSize=0", "pageSize must be >= 1, got 0"),
        ("pageSize=abc", "pageSize must be an integer, got \"abc\""),
        ("page=-1", "page must be >= 1, got -1"),
        (
            "page=1&page=2",
            "query parameter page is given more than once",
        ),
    ];
    for (query, expected) in cases {
        let detail = error_detail(&server.get(&format!("/accounts?{query}")), 400);
        assert_eq!(detail, expected, "for ?{query}");
    }
    let detail = error_detail(&server.get("/accounts?createdAtFrom=yesterday"), 400);
    assert!(
        detail.starts_with("createdAtFrom must be an RFC 3339 date-time")
            && detail.contains("\"yesterday\""),
        "{detail}"
    );
}

#[test]
fn get_account_balances_decodes_the_path_and_passes_user_errors_through() {
    let server = start();
    let response = server.get("/accounts/acc%201/balances");
    assert_eq!(response.status, 200, "{response:?}");
    let expected = json!({
        "id": "bal-acc 1",
        "accountID": "acc 1",
        "at": "2026-01-02T03:04:05Z",
        "balances": [{"amount": "1234", "currency": "EUR/2"}],
    });
    assert_eq!(response.json(), expected);

    let detail = error_detail(&server.get("/accounts/missing/balances"), 404);
    assert_eq!(detail, "account missing does not exist");
}

#[test]
fn unknown_routes_and_wrong_methods_answer_json() {
    let server = start();
    let detail = error_detail(&server.get("/nope"), 404);
    assert!(detail.contains("/nope"), "{detail}");
    let detail = error_detail(&server.request("DELETE", "/accounts").auth().send(), 405);
    assert!(detail.contains("DELETE"), "{detail}");
    let detail = error_detail(&server.get("/transfers"), 405);
    assert!(detail.contains("GET"), "{detail}");
}

#[test]
fn unimplemented_operation_answers_501_naming_it() {
    let server = start();
    let payout = json!({
        "idempotencyKey": "key-1",
        "amount": "1500",
        "currency": "EUR/2",
        "sourceAccountId": "acc-1",
        "destinationAccountId": "ben-1",
    });
    let detail = error_detail(&server.post_json("/payouts", &payout), 501);
    assert_eq!(
        detail,
        "operation createPayout is not implemented by this connector"
    );
}

#[test]
fn create_transfer_answers_201_with_the_users_result() {
    let server = start();
    let mut request = transfer_request();
    request["description"] = json!("rent");
    request["metadata"] = json!({"ref": "r-9"});
    let response = server
        .request("POST", "/transfers")
        .auth()
        .header("Content-Type", "application/json; charset=utf-8")
        .body(request.to_string())
        .send();
    assert_eq!(response.status, 201, "{response:?}");
    let expected = json!({
        "id": "tr-1",
        "idempotencyKey": "key-1",
        "amount": "1500",
        "currency": "EUR/2",
        "sourceAccountId": "acc-1",
        "destinationAccountId": "acc-2",
        "description": "rent",
        "status": "PENDING",
        "createdAt": "2026-01-02T03:04:05Z",
        "metadata": {"ref": "r-9"},
    });
    assert_eq!(response.json(), expected);
}

#[test]
fn hand_written_initiations_are_idempotent_recovered_and_linked() {
    let server = start();
    let mut flaky = transfer_request();
    flaky["idempotencyKey"] = json!("key-flaky");
    flaky["description"] = json!("flaky");
    let failed = server.post_json("/transfers", &flaky);
    assert_eq!(failed.status, 503, "{failed:?}");
    let recovered = server.post_json("/transfers", &flaky);
    assert_eq!(recovered.status, 201, "{recovered:?}");
    assert_eq!(recovered.json()["description"], "attempt 2 recovering true");
    let replayed = server.post_json("/transfers", &flaky);
    assert_eq!(
        replayed.json(),
        recovered.json(),
        "a retry gets the stored answer"
    );

    let transactions = server.get("/transactions?pageSize=10");
    assert_eq!(transactions.status, 200, "{transactions:?}");
    let items = transactions.json();
    assert_eq!(items[0]["relatedTransactionID"], "key-flaky", "{items}");
    assert_eq!(items[0]["type"], "TRANSFER");
    assert_eq!(
        items[1]["relatedTransactionID"], "refund-of-9",
        "unknown values are kept"
    );
    assert_eq!(items[1]["type"], "OTHER");
}

#[test]
fn invalid_transfer_bodies_are_400_naming_the_field() {
    let server = start();
    let mut missing = transfer_request();
    missing.as_object_mut().unwrap().remove("amount");
    let mut wrong_type = transfer_request();
    wrong_type["amount"] = json!(1500);
    let mut bad_metadata = transfer_request();
    bad_metadata["metadata"] = json!({"ref": 9});
    let cases = [
        (
            missing.to_string(),
            "invalid request body: missing field `amount`",
        ),
        (
            wrong_type.to_string(),
            "invalid request body: amount: invalid type",
        ),
        (
            bad_metadata.to_string(),
            "invalid request body: metadata.ref: invalid type",
        ),
        ("{\"amount\": ".to_owned(), "invalid request body"),
        (
            format!("{} trailing", transfer_request()),
            "invalid request body",
        ),
        (String::new(), "a JSON request body is required"),
    ];
    for (body, expected) in cases {
        let response = server
            .request("POST", "/transfers")
            .auth()
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send();
        let detail = error_detail(&response, 400);
        assert!(detail.starts_with(expected), "body {body:?}: {detail}");
    }
}

#[test]
fn transfer_bodies_must_be_sent_as_json() {
    let server = start();
    let body = transfer_request().to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = server
            .request("POST", "/transfers")
            .auth()
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        error_detail(&request.send(), 415);
    }
}

#[test]
fn bodies_over_the_limit_are_413() {
    let server = start_with(&[("CONNECTOR_BODY_LIMIT", "1024")]);
    let sized = |len: usize| {
        let mut request = transfer_request();
        let padding = len - request.to_string().len() - r#","description":"""#.len();
        request["description"] = json!("x".repeat(padding));
        let text = request.to_string();
        assert_eq!(text.len(), len);
        text
    };
    let at_limit = server
        .request("POST", "/transfers")
        .auth()
        .header("Content-Type", "application/json")
        .body(sized(1024))
        .send();
    assert_eq!(at_limit.status, 201, "{at_limit:?}");
    let over = server
        .request("POST", "/transfers")
        .auth()
        .header("Content-Type", "application/json")
        .body(sized(2000))
        .send();
    error_detail(&over, 413);
    // Without a Content-Length the limit is enforced while reading.
    let streamed = server
        .request("POST", "/transfers")
        .auth()
        .header("Content-Type", "application/json")
        .header("Transfer-Encoding", "chunked")
        .body(chunked(sized(2000).as_bytes(), 500))
        .send();
    error_detail(&streamed, 413);
}

#[test]
fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let server = start();
    let detail = error_detail(&server.get("/accounts/boom/balances"), 500);
    assert!(detail.contains("getAccountBalances"), "{detail}");
    assert!(
        !detail.contains("simulated provider crash"),
        "panic text leaked: {detail}"
    );
    let after = server.get("/accounts/acc-1/balances");
    assert_eq!(after.status, 200, "{after:?}");
    assert!(
        server.process.logs().contains("simulated provider crash"),
        "panic not logged:\n{}",
        server.process.logs()
    );
}

#[test]
fn request_ids_are_echoed_or_assigned_and_reach_the_handler() {
    let server = start();
    let echoed = server
        .request("GET", "/accounts")
        .auth()
        .header("X-Request-Id", "req-42")
        .send();
    assert_eq!(echoed.header("x-request-id"), Some("req-42"), "{echoed:?}");
    assert_eq!(account_metadata(&echoed)["requestId"], "req-42");
    let on_error = server
        .request("GET", "/nope")
        .header("X-Request-Id", "req-43")
        .send();
    assert_eq!(
        on_error.header("x-request-id"),
        Some("req-43"),
        "{on_error:?}"
    );

    let first = server.get("/accounts");
    let second = server.get("/accounts");
    let assigned = |r: &support::Response| r.header("x-request-id").unwrap_or_default().to_owned();
    assert!(!assigned(&first).is_empty(), "{first:?}");
    assert_ne!(assigned(&first), assigned(&second));
    assert_eq!(
        account_metadata(&first)["requestId"],
        assigned(&first).as_str()
    );
}

#[test]
fn sigterm_stops_the_server_with_exit_code_0() {
    let mut server = start();
    assert_eq!(server.get("/accounts").status, 200);
    terminate(&server.process);
    let status = server.process.wait_exit();
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.process.logs());
}

#[test]
fn missing_configuration_exits_2_listing_every_problem() {
    let upstream = krate().0.base_url_env();
    let mut process = Process::spawn(
        Command::new(binary())
            .env_remove("CONNECTOR_API_KEY")
            .env_remove(&upstream)
            .env("CONNECTOR_LISTEN", "127.0.0.1:0")
            .env("CONNECTOR_LOG_FORMAT", "xml"),
    );
    let status = process.wait_exit();
    let logs = process.logs();
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.starts_with(&format!("error: {NAME} cannot start:\n")),
        "{logs}"
    );
    let problems: Vec<&str> = logs
        .lines()
        .filter(|line| line.starts_with("  - "))
        .collect();
    assert_eq!(problems.len(), 3, "{logs}");
    for name in ["CONNECTOR_API_KEY", &upstream, "CONNECTOR_LOG_FORMAT"] {
        assert!(
            problems.iter().any(|p| p.contains(name)),
            "{name} not reported:\n{logs}"
        );
    }
}
