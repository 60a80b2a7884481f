//! The baseline of the throughput comparison: `GET /accounts` of a Cursorpay connector written
//! by hand, doing per request the work the generated connector's mapping does (one walk of the
//! provider's list, the same conversion, the same order) and nothing else: no window kept
//! between requests, no request log, no metrics, no request ids, no panic isolation.
//!
//! - reads `CURSORPAY_BASE_URL`, `CURSORPAY_API_KEY`, `CONNECTOR_API_KEY`, `CONNECTOR_LISTEN`;
//! - checks `Authorization: Bearer <CONNECTOR_API_KEY>`;
//! - calls `GET {base}/v1/accounts?limit=100&created[gte]=<unix seconds>` with reqwest, following
//!   `starting_after` while `has_more`;
//! - converts every record as `generated-examples/cursorpay/connector.yaml` says: `created`
//!   (unix seconds) to RFC 3339 UTC plus the generated runtime's per-record tie offset (FNV-1a
//!   of the id, in nanoseconds, below one second), `metadata` = `country`, `default_currency`
//!   and the leaves of `settings` flattened as `settings.a.b`;
//! - keeps records at or after the second of `createdAtFrom`, sorts them by (time, id) and
//!   answers page `page` of `pageSize` as the protocol's JSON array.
//!
//! It logs one line, `connector listening address=...`, like the generated connectors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Provider pages walked at most per request.
const MAX_PAGES: usize = 10_000;

struct App {
    client: reqwest::Client,
    base_url: String,
    provider_key: String,
    api_key: String,
}

#[derive(Deserialize)]
struct ProviderList {
    has_more: bool,
    data: Vec<ProviderAccount>,
}

#[derive(Deserialize)]
struct ProviderAccount {
    id: String,
    name: String,
    created: i64,
    country: Option<String>,
    default_currency: Option<String>,
    settings: Option<Value>,
}

#[derive(Serialize)]
struct Account {
    id: String,
    #[serde(rename = "accountName")]
    account_name: String,
    #[serde(rename = "createdAt")]
    created_at: DateTime<Utc>,
    metadata: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Problem {
    #[serde(rename = "Title")]
    title: &'static str,
    #[serde(rename = "Detail")]
    detail: String,
}

fn problem(status: StatusCode, title: &'static str, detail: String) -> Response {
    let body = serde_json::to_vec(&Problem { title, detail }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let settings = (|| -> Result<(App, SocketAddr), String> {
        let listen = std::env::var("CONNECTOR_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let listen = listen
            .parse()
            .map_err(|_| format!("CONNECTOR_LISTEN: not an address: {listen}"))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let app = App {
            client,
            base_url: env("CURSORPAY_BASE_URL")?.trim_end_matches('/').to_owned(),
            provider_key: env("CURSORPAY_API_KEY")?,
            api_key: env("CONNECTOR_API_KEY")?,
        };
        Ok((app, listen))
    })();
    let (app, listen) = match settings {
        Ok(settings) => settings,
        Err(problem) => {
            eprintln!("error: handwritten cannot start: {problem}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let address = listener.local_addr().unwrap_or(listen);
        eprintln!("connector listening address={address}");
        let router = Router::new()
            .route("/accounts", get(accounts))
            .with_state(Arc::new(app));
        match axum::serve(listener, router).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn accounts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| key == app.api_key);
    if !authorized {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send the API key".into(),
        );
    }
    let (page, page_size, since) = match parse_query(query.as_deref().unwrap_or("")) {
        Ok(parsed) => parsed,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, "Bad Request", detail),
    };
    let records = match fetch_all(&app, since).await {
        Ok(records) => records,
        Err(detail) => return problem(StatusCode::BAD_GATEWAY, "Bad Gateway", detail),
    };
    let mut accounts: Vec<Account> = records
        .into_iter()
        .filter_map(|record| convert(record).ok())
        .filter(|account| since.is_none_or(|since| account.created_at >= since))
        .collect();
    accounts.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let from = (page - 1).saturating_mul(page_size).min(accounts.len());
    let to = from.saturating_add(page_size).min(accounts.len());
    match serde_json::to_vec(&accounts[from..to]) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            e.to_string(),
        ),
    }
}

/// `(page, pageSize, createdAtFrom cut to its second)`.
fn parse_query(query: &str) -> Result<(usize, usize, Option<DateTime<Utc>>), String> {
    let (mut page, mut page_size, mut since) = (1usize, 100usize, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "page" => page = value.parse().map_err(|_| "page: not a number")?,
            "pageSize" => page_size = value.parse().map_err(|_| "pageSize: not a number")?,
            "createdAtFrom" => {
                let time = DateTime::parse_from_rfc3339(&value)
                    .map_err(|e| format!("createdAtFrom: {e}"))?
                    .with_timezone(&Utc);
                since = Some(time.with_nanosecond(0).unwrap_or(time));
            }
            _ => {}
        }
    }
    if page == 0 || page_size == 0 {
        return Err("page and pageSize must be at least 1".into());
    }
    Ok((page, page_size, since))
}

/// Every provider record created at or after `since`, walking the cursor.
async fn fetch_all(
    app: &App,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<ProviderAccount>, String> {
    let url = format!("{}/v1/accounts", app.base_url);
    let mut records = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query: Vec<(&str, String)> = vec![("limit", "100".to_owned())];
        if let Some(since) = since {
            query.push(("created[gte]", since.timestamp().to_string()));
        }
        if let Some(cursor) = &cursor {
            query.push(("starting_after", cursor.clone()));
        }
        let response = app
            .client
            .get(&url)
            .header(header::ACCEPT, "application/json")
            .bearer_auth(&app.provider_key)
            .query(&query)
            .send()
            .await
            .map_err(|e| format!("the provider did not answer: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the provider answered {}", response.status()));
        }
        let list: ProviderList = response
            .json()
            .await
            .map_err(|e| format!("the provider's answer is not a list: {e}"))?;
        cursor = list.data.last().map(|record| record.id.clone());
        records.extend(list.data);
        if !list.has_more || cursor.is_none() {
            return Ok(records);
        }
    }
    Err(format!("more than {MAX_PAGES} provider pages"))
}

fn convert(record: ProviderAccount) -> Result<Account, String> {
    let created_at = DateTime::from_timestamp(record.created, tie_offset(&record.id))
        .ok_or_else(|| format!("{}: created out of range", record.id))?;
    let mut metadata = BTreeMap::new();
    if let Some(settings) = &record.settings {
        flatten(&mut metadata, "settings", settings);
    }
    if let Some(country) = record.country {
        metadata.insert("country".to_owned(), country);
    }
    if let Some(currency) = record.default_currency {
        metadata.insert("default_currency".to_owned(), currency);
    }
    Ok(Account {
        id: record.id,
        account_name: record.name,
        created_at,
        metadata,
    })
}

/// Nanoseconds added to a whole-second time so that ties get distinct, stable times:
/// 64-bit FNV-1a of the id, modulo one second (what the generated runtime does).
fn tie_offset(id: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 1_000_000_000) as u32
}

fn flatten(out: &mut BTreeMap<String, String>, key: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for (sub, value) in map {
                flatten(out, &format!("{key}.{sub}"), value);
            }
        }
        Value::Null => {}
        Value::String(text) => {
            out.insert(key.to_owned(), text.clone());
        }
        other => {
            out.insert(key.to_owned(), other.to_string());
        }
    }
}
