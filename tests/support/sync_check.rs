//! What the end-to-end tests of mapped examples share: building an example once per test
//! binary, the rules read back from its connector.yaml, and the checks of a Formance-style
//! sync against a mock provider's ground truth (nothing lost, nothing duplicated, every value
//! converted, the served order, the upstream calls and /metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::formance::{
    Kind, Poller, decode_page, format_rfc3339_nanos, http_request, is_retryable, parse_rfc3339,
};
use super::mock_http::Call;
use super::{API_KEY, Server, TestCrate};

pub const NANOS: i128 = 1_000_000_000;

pub struct Example {
    pub binary: PathBuf,
    /// The example's connector.yaml: the enum tables and sign rules are read from it.
    pub mapping: serde_yaml::Value,
}

/// The example `name`, generated and built on first use. A build that failed fails every
/// later caller too, without building again.
pub fn example(name: &'static str) -> &'static Example {
    variant(name, name, |text| text)
}

/// Crate `name`: example `example` with its connector.yaml passed through `edit` (which
/// must rename it to `name`, so that its binary has a name of its own in the shared target),
/// generated and built on first use.
pub fn variant(
    name: &'static str,
    example: &'static str,
    edit: fn(String) -> String,
) -> &'static Example {
    static BUILT: Mutex<BTreeMap<&'static str, Option<&'static Example>>> =
        Mutex::new(BTreeMap::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = built.entry(name).or_insert_with(|| {
        let example = std::panic::catch_unwind(|| build_example(name, example, edit)).ok()?;
        Some(Box::leak(Box::new(example)))
    });
    entry.unwrap_or_else(|| {
        panic!("generating or building the {name} example failed; see the first failing test")
    })
}

/// `target/e2e/mapped-<name>/crate`: the example's connector.yaml and user files, the
/// generated code written by `connector-gen generate`, built into the shared e2e target.
fn build_example(name: &str, example: &str, edit: fn(String) -> String) -> Example {
    let krate = TestCrate::from_example(&format!("mapped-{name}"), example, name, edit);
    let mapping = serde_yaml::from_str(&krate.read("connector.yaml")).expect("connector.yaml");
    Example {
        binary: krate.build(),
        mapping,
    }
}

pub fn base_url(server: &Server) -> String {
    format!("http://{}", server.addr)
}

// =============================================================================================
// Conversion rules read from connector.yaml
// =============================================================================================

/// An `enum:` table of getTransactions with its fallback.
pub struct EnumRule {
    map: BTreeMap<String, String>,
    fallback: String,
}

impl EnumRule {
    pub fn of(example: &Example, field: &str) -> EnumRule {
        let rule = &example.mapping["operations"]["getTransactions"]["fields"][field]["enum"];
        let map: BTreeMap<String, String> = rule["map"]
            .as_mapping()
            .unwrap_or_else(|| panic!("no enum map for {field}"))
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_owned(),
                    v.as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(!map.is_empty());
        let fallback = rule["fallback"].as_str().unwrap_or_default().to_owned();
        assert_eq!(fallback, "OTHER", "{field}: unknown values go to OTHER");
        EnumRule { map, fallback }
    }

    pub fn apply(&self, value: &str) -> String {
        self.map.get(value).unwrap_or(&self.fallback).clone()
    }
}

/// The `sign:` of getTransactions' amount, applied to minor units.
pub fn transaction_sign(example: &Example) -> fn(i64) -> i64 {
    let sign =
        &example.mapping["operations"]["getTransactions"]["fields"]["amount"]["amount"]["sign"];
    match sign.as_str().unwrap_or("keep") {
        "keep" => |v| v,
        "absolute" => i64::abs,
        "negate" => |v: i64| -v,
        other => panic!("unknown sign rule {other}"),
    }
}

/// `flatten` of a metadata object: nested keys joined with `.`, scalars as text.
pub fn flatten(out: &mut Map<String, Value>, prefix: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                flatten(out, &format!("{prefix}.{key}"), value);
            }
        }
        Value::Null => {}
        Value::String(text) => {
            out.insert(prefix.to_owned(), json!(text));
        }
        other => {
            out.insert(prefix.to_owned(), json!(other.to_string()));
        }
    }
}

// =============================================================================================
// Ground truth and comparison
// =============================================================================================

/// What one record must look like once served: its JSON without nulls and without the time
/// fields, and the provider instants (unix nanoseconds) those time fields must fall in (the
/// same second: the connector may separate ties inside it).
#[derive(Clone, Debug)]
pub struct Want {
    pub json: Value,
    pub times: Vec<(&'static str, i128)>,
}

pub type Truth = BTreeMap<String, Want>;

pub fn only(truth: &Truth, ids: &BTreeSet<String>) -> Truth {
    truth
        .iter()
        .filter(|(id, _)| ids.contains(*id))
        .map(|(id, want)| (id.clone(), want.clone()))
        .collect()
}

pub fn compare(item: &Value, want: &Want) -> Result<(), String> {
    let mut rest = item.as_object().ok_or("not an object")?.clone();
    rest.retain(|_, v| !v.is_null());
    for (field, instant) in &want.times {
        let text = rest
            .remove(*field)
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or(format!("no {field}"))?;
        let served = parse_rfc3339(&text).ok_or(format!("{field} {text:?} is not RFC 3339"))?;
        if served.div_euclid(NANOS) != instant.div_euclid(NANOS) {
            return Err(format!(
                "{field} {text} is not in the second of the provider's {}",
                format_rfc3339_nanos(*instant)
            ));
        }
    }
    let rest = Value::Object(rest);
    if rest != want.json {
        return Err(format!("got {rest}\n  want {}", want.json));
    }
    Ok(())
}

pub fn sample<T: std::fmt::Debug>(items: &[T]) -> String {
    format!("{:?}", &items[..items.len().min(5)])
}

/// Every record of `truth` was received exactly once (in the poller's records since its last
/// `clear_records`), nothing else was, and each one is converted as the mapping says.
#[track_caller]
pub fn check_received(poller: &Poller, kind: Kind, truth: &Truth, context: &str) {
    let got = poller.records(kind);
    let lost: Vec<&String> = truth.keys().filter(|id| !got.contains_key(*id)).collect();
    let unexpected: Vec<&String> = got.keys().filter(|id| !truth.contains_key(*id)).collect();
    assert!(
        lost.is_empty() && unexpected.is_empty(),
        "{context}: {kind:?}: {} of {} lost (e.g. {}), {} unexpected (e.g. {})",
        lost.len(),
        truth.len(),
        sample(&lost),
        unexpected.len(),
        sample(&unexpected)
    );
    let mismatches: Vec<String> = truth
        .iter()
        .filter_map(|(id, want)| {
            compare(&got[id].json, want)
                .err()
                .map(|why| format!("{id}: {why}"))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{context}: {kind:?}: {} of {} records differ from the provider's:\n{}",
        mismatches.len(),
        truth.len(),
        mismatches[..mismatches.len().min(8)].join("\n")
    );
    assert_eq!(
        poller.receipts(kind),
        truth.len(),
        "{context}: {kind:?}: {} duplicated receipts",
        poller.receipts(kind) - truth.len()
    );
    assert_eq!(poller.repeats(kind), 0, "{context}: {kind:?}: repeats");
    let unsorted: usize = poller.cycles(kind).iter().map(|c| c.out_of_order).sum();
    assert_eq!(
        unsorted, 0,
        "{context}: {kind:?}: items served out of order"
    );
}

/// Walks the connector's list with no filter, page after page at `page_size`, as one
/// fixed query: returns (id, served timestamp) in the served order.
pub fn served_order(server: &Server, kind: Kind, page_size: usize) -> Vec<(String, i128)> {
    let poller = Poller::new(&base_url(server), API_KEY, page_size);
    let auth = format!("Bearer {API_KEY}");
    let mut out = Vec::new();
    for page in 1..=10_000 {
        let url = poller.list_url(kind, page, None);
        let reply = http_request(
            "GET",
            &url,
            &[("Authorization", &auth)],
            None,
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(reply.status, 200, "GET {url}: {}", reply.text());
        let items = decode_page(kind, &reply.body).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let count = items.len();
        out.extend(items.into_iter().map(|(id, ts, _)| (id, ts)));
        if count < page_size {
            return out;
        }
    }
    panic!("{kind:?}: no short page after 10000 pages");
}

/// The served order holds every record once, with strictly increasing timestamps.
#[track_caller]
pub fn check_served_order(server: &Server, kind: Kind, truth: &Truth, page_size: usize) {
    let order = served_order(server, kind, page_size);
    for pair in order.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "{kind:?} at page size {page_size}: {} ({}) is served before {} ({})",
            pair[0].0,
            format_rfc3339_nanos(pair[0].1),
            pair[1].0,
            format_rfc3339_nanos(pair[1].1)
        );
    }
    let ids: BTreeSet<&String> = order.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), order.len(), "{kind:?}: an id served twice");
    assert!(
        ids.iter().copied().eq(truth.keys()),
        "{kind:?}: served {} records, the provider has {}",
        ids.len(),
        truth.len()
    );
}

pub fn operation_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Accounts => "getAccounts",
        Kind::Beneficiaries => "getBeneficiaries",
        Kind::Transactions => "getTransactions",
    }
}

pub fn count_calls(calls: &[Call], classify: fn(&str) -> &'static str, operation: &str) -> usize {
    calls
        .iter()
        .filter(|c| classify(&c.path) == operation)
        .count()
}

/// `connector_upstream_calls_total` by (operation, outcome), token fetches gathered under
/// the operation `token` (the mock cannot tell which operation needed them).
pub fn upstream_metrics(server: &Server) -> BTreeMap<(String, String), u64> {
    let response = server.request("GET", "/metrics").send();
    assert_eq!(response.status, 200, "{response:?}");
    let mut out = BTreeMap::new();
    for line in response.text().lines() {
        let Some(rest) = line.strip_prefix("connector_upstream_calls_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("a sample");
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                .to_owned()
        };
        let (operation, outcome) = (label("operation"), label("outcome"));
        let operation = if outcome.starts_with("token ") {
            "token".to_owned()
        } else {
            operation
        };
        *out.entry((operation, outcome)).or_default() += value.parse::<u64>().unwrap();
    }
    out
}

/// `/metrics` counts exactly the calls the mock received, by operation and status.
#[track_caller]
pub fn check_metrics(server: &Server, calls: &[Call], classify: fn(&str) -> &'static str) {
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for call in calls {
        let operation = classify(&call.path);
        assert_ne!(operation, "unknown", "unexpected upstream call {call:?}");
        let outcome = if operation == "token" {
            format!("token {}", call.status)
        } else {
            call.status.to_string()
        };
        *expected.entry((operation.to_owned(), outcome)).or_default() += 1;
    }
    assert_eq!(upstream_metrics(server), expected, "/metrics vs the mock");
}

/// Every answer the poller got was a success or something Formance retries.
#[track_caller]
pub fn check_never_plain_4xx(poller: &Poller) {
    for exchange in poller.exchanges() {
        let status = exchange.status.expect("the connector answered");
        assert!(
            (200..300).contains(&status) || is_retryable(status),
            "{} answered {status}",
            exchange.url
        );
    }
}

#[track_caller]
pub fn sync(poller: &mut Poller, kind: Kind, context: &str) -> usize {
    poller
        .sync(kind)
        .unwrap_or_else(|e| panic!("{context}: {kind:?}: {e}"))
}

pub fn unix_now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}
