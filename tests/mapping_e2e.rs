//! End-to-end tests of mapping features one at a time, each written the way a new user meets
//! it: a small connector.yaml for the Nordbank mock (`support/mock_bank.rs`: OAuth2 client
//! credentials with RFC 6749 errors, one account object carrying `balance` and
//! `availableBalance`), generated, built, started on loopback and called over HTTP.
//!
//! - `nordlink` composes its URLs and a header from variables (`"${env:NORDBANK_URL}/api"`,
//!   the token endpoint from the same variable) and maps the account object with `each: .`.
//! - `nordlist` names its token endpoint relative to the base URL (`/oauth2/token`) and writes
//!   the balances list out with `items`.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::json;

use support::mock_bank::Nordbank;
use support::{API_KEY, Process, Server, TestCrate};

const NB_CLIENT: &str = "nordlink-client";
const NB_SECRET: &str = "nordlink-secret";

const NORDLINK: &str = r#"version: 1
name: nordlink
upstream:
  base_url: "${env:NORDBANK_URL}/api"
  auth:
    oauth2:
      token_url: "${env:NORDBANK_URL}/oauth2/token"
      client_id: ${env:NORDBANK_CLIENT}
      client_secret: ${env:NORDBANK_SECRET}
  headers:
    X-Client: "nordlink-${env:NORDBANK_CLIENT}"
operations:
  getAccountBalances:
    request: { path: "/accounts/{accountId}" }
    fields:
      id: { template: "{id}@balances" }
      accountID: id
      at: { now: true }
      balances:
        each: .
        fields:
          amount: { path: availableBalance, amount: { currency: currency, format: decimal } }
          currency: { path: currency, currency: true }
"#;

const NORDLIST: &str = r#"version: 1
name: nordlist
upstream:
  base_url: ${env:NORDBANK_URL}
  auth:
    oauth2:
      token_url: /oauth2/token
      client_id: ${env:NORDBANK_CLIENT}
      client_secret: ${env:NORDBANK_SECRET}
operations:
  getAccountBalances:
    request: { path: "/api/accounts/{accountId}" }
    fields:
      id: { template: "{id}@balances" }
      accountID: id
      at: { now: true }
      balances:
        items:
          - amount: { path: availableBalance, amount: { currency: currency, format: decimal } }
            currency: { path: currency, currency: true }
          - amount: { path: balance, amount: { currency: currency, format: decimal } }
            currency: { path: currency, currency: true }
"#;

/// The crate generated from `mapping`, built once per test binary.
fn binary(name: &'static str) -> &'static PathBuf {
    static NORDLINK_BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    static NORDLIST_BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    let (cell, mapping) = match name {
        "nordlink" => (&NORDLINK_BIN, NORDLINK),
        _ => (&NORDLIST_BIN, NORDLIST),
    };
    cell.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let krate = TestCrate::empty(&format!("mapping-{name}"), name);
            krate.write("connector.yaml", mapping);
            krate.generate(None, &[]).assert_code(0);
            krate.build()
        })
        .ok()
    })
    .as_ref()
    .unwrap_or_else(|| panic!("generating or building {name} failed; see the first failing test"))
}

fn env(nb: &Nordbank, secret: &str) -> Vec<(String, String)> {
    vec![
        ("NORDBANK_URL".to_owned(), nb.url()),
        ("NORDBANK_CLIENT".to_owned(), NB_CLIENT.to_owned()),
        ("NORDBANK_SECRET".to_owned(), secret.to_owned()),
    ]
}

/// A bank with one EUR account holding 1234.50, of which 1200 available.
fn bank(seed: u64) -> (Nordbank, String) {
    let nb = Nordbank::start(seed, NB_CLIENT, NB_SECRET);
    let account = nb.add_account("Operations", "EUR", None);
    assert!(nb.set_balance(&account, 123_450, 120_000));
    (nb, account)
}

/// The binary started with `env` (over the server's usual settings), expected to refuse to
/// start: its exit code and the problems it listed.
fn refused_start(binary: &PathBuf, env: &[(&str, &str)]) -> Vec<String> {
    let mut command = Command::new(binary);
    command
        .env("CONNECTOR_API_KEY", API_KEY)
        .env("CONNECTOR_LISTEN", "127.0.0.1:0")
        .env_remove("NORDBANK_URL")
        .env_remove("NORDBANK_CLIENT")
        .env_remove("NORDBANK_SECRET")
        .envs(env.iter().copied());
    let mut process = Process::spawn(&mut command);
    let status = process.wait_exit();
    let logs = process.logs();
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(logs.starts_with("error: "), "{logs}");
    logs.lines()
        .filter_map(|line| line.strip_prefix("  - "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn composed_urls_reach_the_provider_and_each_of_one_object_is_one_element() {
    let (nb, account) = bank(61);
    let server = Server::start(binary("nordlink"), &env(&nb, NB_SECRET));
    let response = server.get(&format!("/accounts/{account}/balances"));
    assert_eq!(response.status, 200, "{response:?}");
    let body = response.json();
    assert_eq!(body["id"], format!("{account}@balances"));
    assert_eq!(body["accountID"], account.as_str());
    assert_eq!(
        body["balances"],
        json!([{ "amount": "120000", "currency": "EUR/2" }])
    );
    // "${env:NORDBANK_URL}/api" + the path, and the token from "${env:NORDBANK_URL}/oauth2/token".
    assert_eq!(nb.calls(&format!("/api/accounts/{account}")), 1);
    assert_eq!(nb.token_requests(), 1);
}

#[test]
fn a_relative_token_url_and_a_list_written_out_with_items() {
    let (nb, account) = bank(62);
    let server = Server::start(binary("nordlist"), &env(&nb, NB_SECRET));
    let response = server.get(&format!("/accounts/{account}/balances"));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.json()["balances"],
        json!([
            { "amount": "120000", "currency": "EUR/2" },
            { "amount": "123450", "currency": "EUR/2" },
        ])
    );
    assert_eq!(nb.calls("/oauth2/token"), 1, "{:?}", nb.call_log());
    assert_eq!(nb.token_requests(), 1);
}

#[test]
fn a_refused_token_request_names_the_token_endpoint_and_its_rfc6749_error() {
    let (nb, account) = bank(63);
    let server = Server::start(binary("nordlink"), &env(&nb, "not-the-secret"));
    let response = server.get(&format!("/accounts/{account}/balances"));
    assert_eq!(response.status, 502, "{response:?}");
    let detail = response.json()["Detail"].as_str().unwrap().to_owned();
    assert_eq!(
        detail,
        format!(
            "the OAuth2 token endpoint {} refused the client credentials of `upstream.auth.oauth2` with 401: invalid_client: unknown client or wrong secret",
            nb.token_url()
        )
    );
    assert_eq!(nb.calls("/api/"), 0, "no API call without a token");
    assert_eq!(nb.token_requests(), 1, "a refusal is final: not retried");
    let logs = server.process.logs();
    let logged = logs
        .lines()
        .find(|line| line.contains("no token from the provider"))
        .unwrap_or_else(|| panic!("no log line of the token failure:\n{logs}"));
    assert!(
        logged.contains(&nb.token_url()) && logged.contains("invalid_client"),
        "{logged}"
    );

    // An endpoint that fails is an outage Formance retries, still named for what it is.
    let server = Server::start(binary("nordlink"), &env(&nb, NB_SECRET));
    nb.fail_every_on("/oauth2/token", 1, 503, None);
    let response = server.get(&format!("/accounts/{account}/balances"));
    assert_eq!(response.status, 503, "{response:?}");
    let detail = response.json()["Detail"].as_str().unwrap().to_owned();
    assert!(
        detail.starts_with(&format!(
            "the OAuth2 token endpoint {} failed with 503: ",
            nb.token_url()
        )),
        "{detail}"
    );
    assert!(!detail.contains("/api/accounts"), "{detail}");
    nb.clear_faults();
    let response = server.get(&format!("/accounts/{account}/balances"));
    assert_eq!(response.status, 200, "{response:?}");
}

#[test]
fn start_up_reads_each_variable_once_and_refuses_bad_urls_naming_the_variable() {
    let binary = binary("nordlink");
    // NORDBANK_URL feeds two settings and NORDBANK_CLIENT two: one problem each.
    let problems = refused_start(binary, &[("NORDBANK_SECRET", "s")]);
    assert_eq!(
        problems,
        [
            "NORDBANK_URL is not set: Base URL of the provider's API (`upstream.base_url`). The provider's OAuth2 token endpoint (`upstream.auth.oauth2`).",
            "NORDBANK_CLIENT is not set: The OAuth2 client id (`upstream.auth.oauth2`). The `X-Client` header sent to the provider (`upstream.headers`).",
        ]
    );
    // A value that cannot make a URL stops the connector at start-up, with its variable.
    let problems = refused_start(
        binary,
        &[
            ("NORDBANK_URL", "127.0.0.1:9"),
            ("NORDBANK_CLIENT", "c"),
            ("NORDBANK_SECRET", "s"),
        ],
    );
    assert_eq!(
        problems,
        [
            "NORDBANK_URL: `upstream.base_url` is \"127.0.0.1:9/api\", which is not an absolute http(s) URL such as https://api.example.com",
            "NORDBANK_URL: `upstream.auth.oauth2.token_url` is \"127.0.0.1:9/oauth2/token\", which is not an absolute http(s) URL such as https://api.example.com",
        ]
    );
    let problems = refused_start(
        binary,
        &[
            ("NORDBANK_URL", "http://127.0.0.1:9"),
            ("NORDBANK_CLIENT", "c\u{7f}"),
            ("NORDBANK_SECRET", "s"),
        ],
    );
    assert_eq!(
        problems,
        [
            "NORDBANK_CLIENT: the `X-Client` header (`upstream.headers`) has characters a header value cannot hold"
        ]
    );
}
