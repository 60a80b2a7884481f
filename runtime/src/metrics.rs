//! What the connector counts, served at `GET /metrics` in the Prometheus text format:
//! requests by operation and status, upstream calls and their latency by operation,
//! conversion failures and enum fallbacks by field.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; 12],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Registry {
    requests: BTreeMap<(String, u16), u64>,
    upstream_calls: BTreeMap<(String, String), u64>,
    upstream_latency: BTreeMap<String, Histogram>,
    conversion_failures: BTreeMap<String, u64>,
    enum_fallbacks: BTreeMap<String, u64>,
    initiations: BTreeMap<(String, &'static str), u64>,
}

/// The connector's counters; cheap to record, rendered on demand.
#[derive(Debug, Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Metrics {
    fn with(&self, record: impl FnOnce(&mut Registry)) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        record(&mut registry);
    }

    /// A request answered, labelled by operation (or `other` for unmatched routes).
    pub fn request(&self, operation: &str, status: u16) {
        self.with(|r| {
            *r.requests
                .entry((operation.to_owned(), status))
                .or_default() += 1;
        });
    }

    /// One upstream call and how it ended (`200`, `429`, `timeout`, ...).
    pub fn upstream_call(&self, operation: &str, outcome: &str, latency: Duration) {
        self.with(|r| {
            *r.upstream_calls
                .entry((operation.to_owned(), outcome.to_owned()))
                .or_default() += 1;
            let histogram = r.upstream_latency.entry(operation.to_owned()).or_default();
            let seconds = latency.as_secs_f64();
            for (bucket, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *bucket += 1;
                }
            }
            histogram.count += 1;
            histogram.sum += seconds;
        });
    }

    /// A provider value that could not be converted, by `operation.field`.
    pub fn conversion_failure(&self, field: &str) {
        self.with(|r| *r.conversion_failures.entry(field.to_owned()).or_default() += 1);
    }

    /// A provider enum value that no rule matched and went to the fallback.
    pub fn enum_fallback(&self, field: &str) {
        self.with(|r| *r.enum_fallbacks.entry(field.to_owned()).or_default() += 1);
    }

    /// What became of a payment initiation request: `first`, `replayed`, `recovered`,
    /// `conflict` or `busy`.
    pub fn initiation(&self, operation: &str, outcome: &'static str) {
        self.with(|r| {
            *r.initiations
                .entry((operation.to_owned(), outcome))
                .or_default() += 1;
        });
    }

    /// Upstream calls made so far for an operation, whatever their outcome.
    pub fn upstream_calls(&self, operation: &str) -> u64 {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry
            .upstream_calls
            .iter()
            .filter(|((op, _), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP connector_requests_total Requests answered, by operation and status.\n",
        );
        out.push_str("# TYPE connector_requests_total counter\n");
        for ((operation, status), n) in &registry.requests {
            let _ = writeln!(
                out,
                "connector_requests_total{{operation=\"{operation}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP connector_upstream_calls_total Calls to the provider, by operation and outcome.\n",
        );
        out.push_str("# TYPE connector_upstream_calls_total counter\n");
        for ((operation, outcome), n) in &registry.upstream_calls {
            let _ = writeln!(
                out,
                "connector_upstream_calls_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP connector_upstream_latency_seconds Latency of calls to the provider.\n",
        );
        out.push_str("# TYPE connector_upstream_latency_seconds histogram\n");
        for (operation, histogram) in &registry.upstream_latency {
            for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "connector_upstream_latency_seconds_bucket{{operation=\"{operation}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "connector_upstream_latency_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "connector_upstream_latency_seconds_sum{{operation=\"{operation}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "connector_upstream_latency_seconds_count{{operation=\"{operation}\"}} {}",
                histogram.count
            );
        }
        out.push_str(
            "# HELP connector_conversion_failures_total Provider values that could not be converted, by field.\n",
        );
        out.push_str("# TYPE connector_conversion_failures_total counter\n");
        for (field, n) in &registry.conversion_failures {
            let _ = writeln!(
                out,
                "connector_conversion_failures_total{{field=\"{field}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP connector_enum_fallbacks_total Provider enum values that went to the fallback, by field.\n",
        );
        out.push_str("# TYPE connector_enum_fallbacks_total counter\n");
        for (field, n) in &registry.enum_fallbacks {
            let _ = writeln!(
                out,
                "connector_enum_fallbacks_total{{field=\"{field}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP connector_initiations_total Payment initiation requests by what their idempotency key found: first, replayed, recovered, conflict, busy.\n",
        );
        out.push_str("# TYPE connector_initiations_total counter\n");
        for ((operation, outcome), n) in &registry.initiations {
            let _ = writeln!(
                out,
                "connector_initiations_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {n}"
            );
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
        let text = metrics.render();
        for line in [
            "# TYPE connector_requests_total counter",
            "connector_requests_total{operation=\"getAccounts\",status=\"200\"} 2",
            "connector_requests_total{operation=\"other\",status=\"404\"} 1",
            "connector_upstream_calls_total{operation=\"getAccounts\",outcome=\"503\"} 1",
            "connector_upstream_latency_seconds_bucket{operation=\"getAccounts\",le=\"0.005\"} 1",
            "connector_upstream_latency_seconds_bucket{operation=\"getAccounts\",le=\"0.05\"} 2",
            "connector_upstream_latency_seconds_bucket{operation=\"getAccounts\",le=\"+Inf\"} 2",
            "connector_upstream_latency_seconds_count{operation=\"getAccounts\"} 2",
            "connector_conversion_failures_total{field=\"getAccounts.createdAt\"} 1",
            "connector_enum_fallbacks_total{field=\"getTransactions.status\"} 1",
            "connector_initiations_total{operation=\"createPayout\",outcome=\"replayed\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(metrics.upstream_calls("getAccounts"), 2);
        assert_eq!(metrics.upstream_calls("getTransactions"), 0);
    }
}
