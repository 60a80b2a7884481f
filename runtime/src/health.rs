//! What operators look at besides the logs: `/healthz` (the process serves), `/readyz`
//! (ready to serve Formance: no list is stuck on a record the mapping cannot convert), and
//! the connector.yaml line behind each mapped field, so that a stuck list names what to fix.

use std::cell::RefCell;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::convert::{self, Step};
use super::error::ConnectorError;
use super::metrics::{Metrics, Stuck};

/// Where a mapped list field comes from in connector.yaml: the line of its mapping and the
/// path of its value in the provider's record (`None` for templates, constants, `rust:`).
/// The generator writes one per field of each mapped list, `id` included.
#[derive(Debug, Clone, Copy)]
pub struct FieldSource {
    pub operation: &'static str,
    pub field: &'static str,
    pub line: u32,
    pub path: Option<&'static [Step]>,
}

thread_local! {
    /// The last field conversion that failed on this thread: (operation, field, error).
    /// A record is converted synchronously, so the list that called the conversion reads it
    /// right after on the same thread.
    static LAST_FAILURE: RefCell<Option<(&'static str, &'static str, String)>> =
        const { RefCell::new(None) };
}

/// Records that `operation.field` could not be converted (called by the field conversions).
pub fn note_conversion_failure(operation: &'static str, field: &'static str, error: String) {
    LAST_FAILURE.with(|last| *last.borrow_mut() = Some((operation, field, error)));
}

fn take_conversion_failure(operation: &str) -> Option<(&'static str, String)> {
    LAST_FAILURE
        .with(|last| last.borrow_mut().take())
        .filter(|(failed, _, _)| *failed == operation)
        .map(|(_, field, error)| (field, error))
}

/// The list `operation` stopped on `record`, which the mapping could not convert (`error`):
/// reported at `/readyz` and `/metrics` and logged with the connector.yaml line to fix.
pub fn stuck_on(
    metrics: &Metrics,
    operation: &'static str,
    record: &Value,
    error: &ConnectorError,
) {
    let (field, detail) =
        take_conversion_failure(operation).unwrap_or_else(|| ("", error.detail.clone()));
    let source = |field: &str| {
        metrics
            .field_sources()
            .iter()
            .find(|source| source.operation == operation && source.field == field)
    };
    let at = |path: Option<&[Step]>| path.and_then(|path| convert::lookup(record, path));
    let record_id = source("id")
        .and_then(|id| at(id.path))
        .or_else(|| record.get("id"))
        .and_then(convert::to_text);
    let field_source = source(field);
    let value = field_source
        .and_then(|source| at(source.path))
        .map(Value::to_string);
    let line = field_source.map(|source| source.line);
    let stuck = metrics.stuck(Stuck {
        operation,
        record: record_id,
        field: field.to_owned(),
        value,
        error: detail,
        line,
        since: SystemTime::now(),
        requests: 0,
    });
    let fix = match line {
        Some(line) => format!("fix the mapping of `{field}` at connector.yaml line {line}"),
        None => format!("fix the mapping of `{field}` in connector.yaml"),
    };
    let record = stuck.record.as_deref().unwrap_or("(no id)");
    let value = stuck.value.as_deref().unwrap_or("(none)");
    if stuck.requests == 1 {
        tracing::error!(
            operation,
            record,
            field = %stuck.field,
            value,
            line = stuck.line,
            error = %stuck.error,
            "{operation} is stuck on provider record {record}: field `{}` cannot take the provider's value {value}; \
             Formance's sync of this list stops here and is retried until then: {fix}, regenerate and redeploy",
            stuck.field
        );
    } else {
        tracing::warn!(
            operation,
            record,
            field = %stuck.field,
            line = stuck.line,
            requests = stuck.requests,
            "{operation} is still stuck on provider record {record}: {fix}"
        );
    }
}

/// `/readyz`: 503 once the server has been told to stop; else 200, `ready`, or `stuck` with
/// each stuck list. A stuck list stays ready: taking the replica out of service would stop
/// every other operation too (payouts included), on every replica stuck on the same record.
pub fn readiness(metrics: &Metrics) -> (u16, Value) {
    if metrics.draining() {
        return (503, json!({"status": "draining"}));
    }
    let stuck = metrics.stuck_lists();
    if stuck.is_empty() {
        return (200, json!({"status": "ready"}));
    }
    let lists: Vec<Value> = stuck
        .iter()
        .map(|stuck| {
            let since = chrono::DateTime::<chrono::Utc>::from(stuck.since)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            json!({
                "operation": stuck.operation,
                "record": stuck.record,
                "field": stuck.field,
                "value": stuck.value,
                "error": stuck.error,
                "line": stuck.line,
                "since": since,
                "requests": stuck.requests,
            })
        })
        .collect();
    (200, json!({"status": "stuck", "stuck": lists}))
}

#[cfg(test)]
mod tests {
    use super::*;

    static SOURCES: &[FieldSource] = &[
        FieldSource {
            operation: "getTransactions",
            field: "id",
            line: 40,
            path: Some(&[Step::Key("ref")]),
        },
        FieldSource {
            operation: "getTransactions",
            field: "amount",
            line: 48,
            path: Some(&[Step::Key("money"), Step::Key("value")]),
        },
    ];

    #[test]
    fn a_stuck_record_names_its_id_field_value_and_line_until_the_list_serves() {
        let metrics = Metrics::default();
        metrics.set_field_sources(SOURCES);
        assert_eq!(readiness(&metrics).0, 200);
        let record = json!({"ref": "tx_9", "money": {"value": "12,5"}});
        note_conversion_failure("getTransactions", "amount", "not a decimal".to_owned());
        let error = ConnectorError::bad_gateway("getTransactions: field amount: not a decimal");
        stuck_on(&metrics, "getTransactions", &record, &error);
        let (status, body) = readiness(&metrics);
        assert_eq!(
            status, 200,
            "a stuck list does not take the replica out of service"
        );
        assert_eq!(body["status"], "stuck");
        let stuck = &body["stuck"][0];
        assert_eq!(stuck["operation"], "getTransactions");
        assert_eq!(stuck["record"], "tx_9");
        assert_eq!(stuck["field"], "amount");
        assert_eq!(stuck["value"], "\"12,5\"");
        assert_eq!(stuck["line"], 48);
        assert_eq!(stuck["error"], "not a decimal");
        metrics.unstuck("getTransactions");
        assert_eq!(readiness(&metrics).1["status"], "ready");
    }

    #[test]
    fn a_failure_of_another_operation_is_not_taken_for_this_one() {
        let metrics = Metrics::default();
        metrics.set_field_sources(SOURCES);
        note_conversion_failure("getAccounts", "createdAt", "bad time".to_owned());
        let error = ConnectorError::bad_gateway("something else");
        stuck_on(&metrics, "getTransactions", &json!({"id": 7}), &error);
        let stuck = &metrics.stuck_lists()[0];
        assert_eq!(stuck.record.as_deref(), Some("7"));
        assert_eq!(stuck.field, "");
        assert_eq!(stuck.error, "something else");
        assert_eq!(stuck.line, None);
    }
}
