//! What the connector counts, served at `GET /metrics` in the OpenMetrics text format (which
//! Prometheus scrapes) by the `prometheus-client` crate: requests by operation and status,
//! upstream calls and their latency by operation, conversion failures and enum fallbacks by
//! field, initiations by outcome, API keys by position, time waited for the provider's rate
//! limit, and the lists stuck on a record the mapping cannot convert.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::health::FieldSource;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The longest label value kept from a provider's record (ids and values are cut to it).
const MAX_LABEL_CHARS: usize = 120;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A list operation that stopped on a provider record the mapping cannot convert: Formance
/// gets 502s for it (and retries) until the mapping or the provider's record is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// The protocol operation (`getTransactions`).
    pub operation: &'static str,
    /// The provider record's id, as the mapping's `id` reads it, when it has one.
    pub record: Option<String>,
    /// The protocol field that could not be set (`amount`).
    pub field: String,
    /// The provider's value at the field's path, as JSON text, when there is one.
    pub value: Option<String>,
    /// What was wrong with it.
    pub error: String,
    /// The connector.yaml line of the field's mapping.
    pub line: Option<u32>,
    /// When the list first stopped on this record.
    pub since: SystemTime,
    /// Requests that stopped on it so far.
    pub requests: u64,
}

impl Stuck {
    fn labels(&self) -> Labels {
        vec![
            ("operation", self.operation.to_owned()),
            ("record", cut(self.record.as_deref().unwrap_or(""))),
            ("field", self.field.clone()),
            ("value", cut(self.value.as_deref().unwrap_or(""))),
            (
                "line",
                self.line.map_or_else(String::new, |l| l.to_string()),
            ),
        ]
    }
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_LABEL_CHARS) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// The connector's metrics; cheap to record, encoded on demand.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    upstream_calls: Family<Labels, Counter>,
    upstream_latency: Family<Labels, Histogram, fn() -> Histogram>,
    conversion_failures: Family<Labels, Counter>,
    enum_fallbacks: Family<Labels, Counter>,
    initiations: Family<Labels, Counter>,
    api_keys: Family<Labels, Counter>,
    throttled: Counter<f64>,
    stuck_lists: Family<Labels, Gauge>,
    stuck: Mutex<BTreeMap<&'static str, Stuck>>,
    field_sources: std::sync::OnceLock<&'static [FieldSource]>,
    draining: std::sync::atomic::AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "connector_requests",
            "Requests answered, by operation and status",
            requests.clone(),
        );
        let upstream_calls = Family::<Labels, Counter>::default();
        registry.register(
            "connector_upstream_calls",
            "Calls to the provider, by operation and outcome",
            upstream_calls.clone(),
        );
        let upstream_latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "connector_upstream_latency_seconds",
            "Latency of calls to the provider",
            upstream_latency.clone(),
        );
        let conversion_failures = Family::<Labels, Counter>::default();
        registry.register(
            "connector_conversion_failures",
            "Provider values that could not be converted, by field",
            conversion_failures.clone(),
        );
        let enum_fallbacks = Family::<Labels, Counter>::default();
        registry.register(
            "connector_enum_fallbacks",
            "Provider enum values that went to the fallback, by field",
            enum_fallbacks.clone(),
        );
        let initiations = Family::<Labels, Counter>::default();
        registry.register(
            "connector_initiations",
            "Payment initiation requests by what their idempotency key found: first, replayed, recovered, conflict, busy",
            initiations.clone(),
        );
        let api_keys = Family::<Labels, Counter>::default();
        registry.register(
            "connector_api_key_requests",
            "Requests let in, by the position of their key in CONNECTOR_API_KEY (from 0)",
            api_keys.clone(),
        );
        let throttled = Counter::<f64>::default();
        registry.register(
            "connector_upstream_throttled_seconds",
            "Time provider calls waited for upstream.rate_limit or the provider's Retry-After",
            throttled.clone(),
        );
        let stuck_lists = Family::<Labels, Gauge>::default();
        registry.register(
            "connector_stuck_list",
            "1 for each list stopped on a provider record the mapping cannot convert: the operation, the record's id, the field, the provider's value and the connector.yaml line to fix",
            stuck_lists.clone(),
        );
        Self {
            registry,
            requests,
            upstream_calls,
            upstream_latency,
            conversion_failures,
            enum_fallbacks,
            initiations,
            api_keys,
            throttled,
            stuck_lists,
            stuck: Mutex::default(),
            field_sources: std::sync::OnceLock::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A request answered, labelled by operation (or `other` for unmatched routes).
    pub fn request(&self, operation: &str, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("operation", operation.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    /// One upstream call and how it ended (`200`, `429`, `timeout`, ...).
    pub fn upstream_call(&self, operation: &str, outcome: &str, latency: Duration) {
        self.upstream_calls
            .get_or_create(&vec![
                ("operation", operation.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        self.upstream_latency
            .get_or_create(&vec![("operation", operation.to_owned())])
            .observe(latency.as_secs_f64());
    }

    /// A provider value that could not be converted, by `operation.field`.
    pub fn conversion_failure(&self, field: &str) {
        self.conversion_failures
            .get_or_create(&vec![("field", field.to_owned())])
            .inc();
    }

    /// A provider enum value that no rule matched and went to the fallback.
    pub fn enum_fallback(&self, field: &str) {
        self.enum_fallbacks
            .get_or_create(&vec![("field", field.to_owned())])
            .inc();
    }

    /// What became of a payment initiation request: `first`, `replayed`, `recovered`,
    /// `conflict` or `busy`.
    pub fn initiation(&self, operation: &str, outcome: &'static str) {
        self.initiations
            .get_or_create(&vec![
                ("operation", operation.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// A request let in with the key at `index` of `CONNECTOR_API_KEY`.
    pub fn api_key_used(&self, index: usize) {
        self.api_keys
            .get_or_create(&vec![("index", index.to_string())])
            .inc();
    }

    /// A provider call waited `wait` for the rate limit.
    pub fn throttled(&self, wait: Duration) {
        self.throttled.inc_by(wait.as_secs_f64());
    }

    /// Upstream calls made so far for an operation, whatever their outcome.
    pub fn upstream_calls(&self, operation: &str) -> u64 {
        let mut total = 0;
        let text = self.render();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("connector_upstream_calls_total{") else {
                continue;
            };
            if rest.starts_with(&format!("operation=\"{operation}\",")) {
                total += rest
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }

    /// The list `stuck.operation` stopped on a record: reported at `/readyz` and `/metrics`
    /// until the operation serves a page again. A record already reported counts one more
    /// request; another record replaces it.
    pub fn stuck(&self, stuck: Stuck) -> Stuck {
        let mut lists = self.stuck.lock().unwrap_or_else(|p| p.into_inner());
        let current = lists.get(stuck.operation);
        let same = current.is_some_and(|current| {
            (&current.record, &current.field, &current.value)
                == (&stuck.record, &stuck.field, &stuck.value)
        });
        let entry = if same {
            let entry = lists.get_mut(stuck.operation).expect("just found");
            entry.requests += 1;
            entry.clone()
        } else {
            if let Some(old) = current {
                self.stuck_lists.remove(&old.labels());
            }
            let entry = Stuck {
                requests: 1,
                ..stuck
            };
            lists.insert(entry.operation, entry.clone());
            entry
        };
        self.stuck_lists.get_or_create(&entry.labels()).set(1);
        entry
    }

    /// The list `operation` served a page: it is no longer stuck.
    pub fn unstuck(&self, operation: &str) {
        let mut lists = self.stuck.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = lists.remove(operation) {
            self.stuck_lists.remove(&old.labels());
            tracing::info!(
                operation,
                record = old.record.as_deref().unwrap_or(""),
                "the list serves again past the record it was stuck on"
            );
        }
    }

    /// connector.yaml's line and path of each mapped list field, as the generated code
    /// gives them at start-up; set once.
    pub fn set_field_sources(&self, sources: &'static [FieldSource]) {
        let _ = self.field_sources.set(sources);
    }

    /// connector.yaml's line and path of each mapped list field.
    pub fn field_sources(&self) -> &'static [FieldSource] {
        self.field_sources.get().copied().unwrap_or_default()
    }

    /// The server stops: it finishes what it serves and takes nothing new.
    pub fn set_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the server is stopping.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The lists stopped on a record, by operation.
    pub fn stuck_lists(&self) -> Vec<Stuck> {
        let lists = self.stuck.lock().unwrap_or_else(|p| p.into_inner());
        lists.values().cloned().collect()
    }

    /// Everything, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_latency_render_in_the_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.request("getAccounts", 200);
        metrics.request("getAccounts", 200);
        metrics.request("other", 404);
        metrics.upstream_call("getAccounts", "200", Duration::from_millis(30));
        metrics.upstream_call("getAccounts", "503", Duration::from_millis(3));
        metrics.conversion_failure("getAccounts.createdAt");
        metrics.enum_fallback("getTransactions.status");
        metrics.initiation("createPayout", "replayed");
        metrics.api_key_used(1);
        metrics.throttled(Duration::from_millis(250));
        let text = metrics.render();
        for line in [
            "# TYPE connector_requests counter",
            "connector_requests_total{operation=\"getAccounts\",status=\"200\"} 2",
            "connector_requests_total{operation=\"other\",status=\"404\"} 1",
            "connector_upstream_calls_total{operation=\"getAccounts\",outcome=\"503\"} 1",
            "connector_upstream_latency_seconds_bucket{le=\"0.005\",operation=\"getAccounts\"} 1",
            "connector_upstream_latency_seconds_bucket{le=\"0.05\",operation=\"getAccounts\"} 2",
            "connector_upstream_latency_seconds_bucket{le=\"+Inf\",operation=\"getAccounts\"} 2",
            "connector_upstream_latency_seconds_count{operation=\"getAccounts\"} 2",
            "connector_conversion_failures_total{field=\"getAccounts.createdAt\"} 1",
            "connector_enum_fallbacks_total{field=\"getTransactions.status\"} 1",
            "connector_initiations_total{operation=\"createPayout\",outcome=\"replayed\"} 1",
            "connector_api_key_requests_total{index=\"1\"} 1",
            "connector_upstream_throttled_seconds_total 0.25",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(metrics.upstream_calls("getAccounts"), 2);
        assert_eq!(metrics.upstream_calls("getTransactions"), 0);
    }

    #[test]
    fn a_stuck_list_is_reported_until_it_serves_again() {
        let metrics = Metrics::default();
        let stuck = |record: &str| Stuck {
            operation: "getTransactions",
            record: Some(record.to_owned()),
            field: "amount".to_owned(),
            value: Some("\"12,5\"".to_owned()),
            error: "not a decimal".to_owned(),
            line: Some(48),
            since: SystemTime::now(),
            requests: 0,
        };
        assert_eq!(metrics.stuck(stuck("tx_9")).requests, 1);
        assert_eq!(metrics.stuck(stuck("tx_9")).requests, 2);
        let line = "connector_stuck_list{operation=\"getTransactions\",record=\"tx_9\",field=\"amount\",value=\"\\\"12,5\\\"\",line=\"48\"} 1";
        assert!(
            metrics.render().lines().any(|l| l == line),
            "{}",
            metrics.render()
        );
        metrics.stuck(stuck("tx_10"));
        let text = metrics.render();
        assert!(!text.contains("tx_9") && text.contains("tx_10"), "{text}");
        assert_eq!(metrics.stuck_lists().len(), 1);
        metrics.unstuck("getTransactions");
        assert!(metrics.stuck_lists().is_empty());
        assert!(!metrics.render().contains("tx_10"));
    }
}
