//! What `preview` prints: the protocol records as JSON or as a table, and a report of every
//! record that failed.

use serde_json::Value;

use super::interpret::Out;

/// A record that could not be converted, placed in the sample and in connector.yaml.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// Position of the record among the sample's records, from 1.
    pub record: usize,
    /// Where the record is in the sample (a JSON pointer).
    pub pointer: String,
    /// The protocol field (dotted inside `each` and `items`).
    pub field: String,
    /// The provider value the field was computed from (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// What the connector answers Formance for this record (a 502's detail).
    pub error: String,
    /// `connector.yaml:LINE:COLUMN` of the mapping that produced the error.
    pub mapping: String,
}

#[derive(Debug, serde::Serialize)]
pub struct Report<'a> {
    pub operation: &'a str,
    pub records: &'a [Out],
    pub failures: &'a [Failure],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub notes: &'a [String],
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

/// The widest a table cell gets before it is cut with `…`.
const CELL: usize = 40;

/// One row per record, one column per protocol field any record has, in the order of
/// `fields` (the spec's); strings as they are, other values as compact JSON, `-` for a
/// field left out.
pub fn table(records: &[Out], fields: &[&str]) -> String {
    let columns: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|name| records.iter().any(|record| record.field(name).is_some()))
        .collect();
    if columns.is_empty() {
        return "(no records)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            columns
                .iter()
                .map(|column| match record.field(column) {
                    Some(value) => cell(value),
                    None => "-".to_owned(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            rows.iter()
                .map(|row| row[index].chars().count())
                .chain([column.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(columns.clone());
    let rules: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
    out.push_str(&line(rules.iter().map(String::as_str).collect()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn cell(value: &Out) -> String {
    let text = match value {
        Out::Value(Value::String(text)) => text.clone(),
        Out::Value(Value::Null) => "null".to_owned(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > CELL {
        let cut: String = text.chars().take(CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The failures for a person: one paragraph each.
pub fn failures(failures: &[Failure], total: usize) -> String {
    let mut out = String::new();
    for failure in failures {
        if failure.field.is_empty() {
            // The answer itself does not fit (no object where `record` says).
            out.push_str(&format!(
                "error: {}\n  --> {}\n",
                failure.error, failure.mapping
            ));
            continue;
        }
        out.push_str(&format!(
            "error: record {} of {total} ({}) fails at field `{}`\n",
            failure.record, failure.pointer, failure.field
        ));
        let value = match &failure.value {
            Some(value) => value.to_string(),
            None => "none (the record has no value there)".to_owned(),
        };
        out.push_str(&format!("  provider value: {value}\n"));
        out.push_str(&format!("  error: {}\n", failure.error));
        out.push_str(&format!("  --> {}\n", failure.mapping));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, amount: &str) -> Out {
        Out::Object(vec![
            ("id".into(), Out::Value(json!(id))),
            ("amount".into(), Out::Value(json!(amount))),
            ("metadata".into(), Out::Value(json!({"k": "v"}))),
        ])
    }

    #[test]
    fn a_table_has_a_column_per_field_in_spec_order() {
        let text = table(
            &[record("tx_1", "100"), record("tx_22", "5")],
            &["id", "amount", "metadata", "never"],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id     amount  metadata");
        assert!(lines[1].starts_with("-----  ------"));
        assert_eq!(lines[2], r#"tx_1   100     {"k":"v"}"#);
        assert_eq!(lines[3], r#"tx_22  5       {"k":"v"}"#);
    }

    #[test]
    fn long_cells_are_cut_and_no_records_say_so() {
        let long = "x".repeat(100);
        let text = table(&[record(&long, "1")], &["id"]);
        assert!(text.contains(&format!("{}…", "x".repeat(39))), "{text}");
        assert_eq!(table(&[], &["id"]), "(no records)\n");
    }

    #[test]
    fn json_keeps_the_field_order() {
        let records = [record("tx_1", "100")];
        let text = json(&Report {
            operation: "getTransactions",
            records: &records,
            failures: &[],
            notes: &[],
        });
        let id = text.find("\"id\"").unwrap();
        let amount = text.find("\"amount\"").unwrap();
        assert!(id < amount, "{text}");
        assert!(!text.contains("notes"));
    }

    #[test]
    fn a_failure_names_record_field_value_and_mapping() {
        let text = failures(
            &[Failure {
                record: 3,
                pointer: "/data/2".into(),
                field: "amount".into(),
                value: Some(json!("12,5")),
                error: "getTransactions: field amount: bad".into(),
                mapping: "connector.yaml:40:9".into(),
            }],
            10,
        );
        assert!(text.contains("record 3 of 10 (/data/2) fails at field `amount`"));
        assert!(text.contains("provider value: \"12,5\""));
        assert!(text.contains("--> connector.yaml:40:9"));
        let whole = failures(
            &[Failure {
                record: 1,
                pointer: String::new(),
                field: String::new(),
                value: None,
                error: "getAccountBalances: the provider's answer has nothing at `data`".into(),
                mapping: "connector.yaml:12:3".into(),
            }],
            1,
        );
        assert_eq!(
            whole,
            "error: getAccountBalances: the provider's answer has nothing at `data`\n  --> connector.yaml:12:3\n"
        );
    }
}
