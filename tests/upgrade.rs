//! `connector-gen upgrade`: the published spec history walked in order with every example's
//! mapping, and a made-up version that breaks the cursorpay example in every way the report
//! must block on.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use support::{Run, connector_gen, spec_history, workspace};

fn example_mapping(example: &str) -> PathBuf {
    workspace()
        .join("generated-examples")
        .join(example)
        .join("connector.yaml")
}

/// `upgrade --from OLD --spec NEW --mapping MAPPING --format json`, checked against the
/// Markdown run's exit code; returns the exit code and the JSON report.
fn upgrade(old: &Path, new: &Path, mapping: &Path) -> (i32, Value) {
    let args = |format: &str| {
        vec![
            "upgrade".to_owned(),
            "--from".to_owned(),
            old.display().to_string(),
            "--spec".to_owned(),
            new.display().to_string(),
            "--mapping".to_owned(),
            mapping.display().to_string(),
            "--format".to_owned(),
            format.to_owned(),
        ]
    };
    let json_run = connector_gen(args("json"));
    let report: Value = serde_json::from_str(&json_run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{json_run}"));
    let markdown = connector_gen(args("markdown"));
    assert_eq!(markdown.code, json_run.code, "{markdown}");
    assert!(
        markdown.stdout.starts_with("## Protocol upgrade"),
        "{markdown}"
    );
    let code = json_run.code.expect("an exit code");
    check_consistent(&report, code, &markdown);
    (code, report)
}

/// The summary counts the items; the exit code follows the worst severity.
fn check_consistent(report: &Value, code: i32, markdown: &Run) {
    let items = report["items"].as_array().unwrap();
    let count = |severity: &str| items.iter().filter(|i| i["severity"] == severity).count();
    let summary = &report["summary"];
    assert_eq!(summary["blocking"], count("blocking"), "{report:#}");
    assert_eq!(summary["look"], count("look"));
    assert_eq!(summary["info"], count("info"));
    let expected = if count("blocking") > 0 {
        1
    } else if count("look") > 0 {
        3
    } else {
        0
    };
    assert_eq!(code, expected, "{report:#}");
    for item in items {
        let message = item["message"].as_str().unwrap();
        assert!(markdown.stdout.contains(message), "{message}\n{markdown}");
    }
}

fn items<'r>(report: &'r Value, change: &str) -> Vec<&'r Value> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["change"] == change)
        .collect()
}

fn item_for<'r>(report: &'r Value, change: &str, key: &str, value: &str) -> &'r Value {
    items(report, change)
        .into_iter()
        .find(|i| i[key] == value)
        .unwrap_or_else(|| panic!("no {change} item with {key} {value}: {report:#}"))
}

/// `connector.yaml:LINE:COL` of the first line of `file` starting with `prefix` (after spaces).
fn line_of(file: &Path, prefix: &str) -> String {
    let text = fs::read_to_string(file).unwrap();
    let (n, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix} in {}", file.display()));
    let column = line.len() - line.trim_start().len() + 1;
    format!("{}:{}:{column}", file.display(), n + 1)
}

#[test]
fn the_published_history_walked_in_order_with_every_example() {
    let history = spec_history();
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy()[..2].to_owned();
    for example in ["minimal", "cursorpay", "pageworks"] {
        let mapping = example_mapping(example);
        let maps_payments = example == "cursorpay";
        for pair in history.windows(2) {
            let (code, report) = upgrade(&pair[0], &pair[1], &mapping);
            let context = format!("{example}: {} -> {}", name(&pair[0]), name(&pair[1]));
            assert_eq!(report["summary"]["blocking"], 0, "{context}: {report:#}");
            match (name(&pair[0]).as_str(), name(&pair[1]).as_str()) {
                ("01", "02") => {
                    let payout = item_for(&report, "operation-added", "operation", "createPayout");
                    let status =
                        item_for(&report, "operation-added", "operation", "getPayoutStatus");
                    assert_eq!(status["severity"], "look", "{context}");
                    if maps_payments {
                        assert_eq!(payout["severity"], "info", "{context}");
                        assert_eq!(payout["locations"][0], line_of(&mapping, "createPayout:"));
                    } else {
                        assert_eq!(payout["severity"], "look", "{context}");
                        assert!(payout["message"].as_str().unwrap().contains("501"));
                    }
                    assert_eq!(code, 3, "{context}");
                }
                ("02", "03") => {
                    let transfer =
                        item_for(&report, "operation-added", "operation", "createTransfer");
                    let expected = if maps_payments { "info" } else { "look" };
                    assert_eq!(transfer["severity"], expected, "{context}");
                    let bank =
                        item_for(&report, "operation-added", "operation", "createBankAccount");
                    assert_eq!(bank["severity"], "look", "{context}");
                }
                ("03", "04") => {
                    let added = items(&report, "enum-value-added");
                    assert!(!added.is_empty(), "{context}");
                    assert!(
                        added
                            .iter()
                            .all(|i| i["values"] == serde_json::json!(["PROCESSING"]))
                    );
                    if example == "minimal" {
                        assert!(added.iter().all(|i| i["severity"] == "info"), "{context}");
                        assert_eq!(code, 0, "{context}");
                    } else {
                        // Nothing maps to it: the status rules' fallback takes it.
                        let rule = added
                            .iter()
                            .find(|i| i["severity"] == "look")
                            .expect(&context);
                        assert!(
                            rule["message"]
                                .as_str()
                                .unwrap()
                                .contains("fallback `OTHER`")
                        );
                        assert!(
                            rule["message"]
                                .as_str()
                                .unwrap()
                                .contains("getTransactions.status")
                        );
                        assert_eq!(code, 3, "{context}");
                    }
                }
                ("07", "08") => {
                    for removed in ["getPayoutStatus", "getTransferStatus", "createBankAccount"] {
                        let item = item_for(&report, "operation-removed", "operation", removed);
                        assert_eq!(item["severity"], "info", "{context}: nobody used {removed}");
                    }
                    let values: Vec<&Value> = items(&report, "enum-value-removed")
                        .iter()
                        .map(|i| &i["values"][0])
                        .collect();
                    assert_eq!(values, ["PROCESSING", "PROCESSED"], "{context}");
                    assert_eq!(code, 0, "{context}: nothing for the examples to do");
                }
                _ => {}
            }
        }
        // The newest published version is the bundled one: nothing to do.
        let newest = history.last().unwrap();
        let bundled = workspace().join("spec/generic-connector.yaml");
        let (code, report) = upgrade(newest, &bundled, &mapping);
        assert_eq!(code, 0, "{example}: {report:#}");
    }
}

/// The bundled spec with getAccountBalances gone, `SUCCEEDED` gone, a new required
/// transaction field and accounts without `accountName`.
fn breaking_spec() -> String {
    let spec = fs::read_to_string(workspace().join("spec/generic-connector.yaml")).unwrap();
    let start = spec.find("  /accounts/{accountId}/balances:").unwrap();
    let end = spec.find("  /beneficiaries:").unwrap();
    let mut spec = format!("{}{}", &spec[..start], &spec[end..]);
    let edits = [
        ("\n        - SUCCEEDED\n", "\n"),
        (
            "        - status\n        - amount\n      properties:\n",
            "        - status\n        - amount\n        - channel\n      properties:\n        channel:\n          type: string\n",
        ),
        ("        - id\n        - accountName\n", "        - id\n"),
        (
            "        accountName:\n          type: string\n          description: Display name of the account.\n",
            "",
        ),
    ];
    for (from, to) in edits {
        assert_eq!(spec.matches(from).count(), 1, "{from:?}");
        spec = spec.replacen(from, to, 1);
    }
    spec
}

#[test]
fn a_breaking_version_blocks_with_every_place_named() {
    let dir = workspace().join("target/upgrade-breaking");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("src")).unwrap();
    let example = workspace().join("generated-examples/cursorpay");
    fs::copy(example.join("connector.yaml"), dir.join("connector.yaml")).unwrap();
    fs::copy(example.join("src/handlers.rs"), dir.join("src/handlers.rs")).unwrap();
    fs::write(dir.join("next.yaml"), breaking_spec()).unwrap();
    let mapping = dir.join("connector.yaml");
    let bundled = workspace().join("spec/generic-connector.yaml");
    let (code, report) = upgrade(&bundled, &dir.join("next.yaml"), &mapping);
    assert_eq!(code, 1, "{report:#}");

    let removed = item_for(
        &report,
        "operation-removed",
        "operation",
        "getAccountBalances",
    );
    assert_eq!(removed["severity"], "blocking");
    let handlers = fs::read_to_string(dir.join("src/handlers.rs")).unwrap();
    let (line, text) = handlers
        .lines()
        .enumerate()
        .find(|(_, l)| {
            l.contains("async fn get_account_balances(") && !l.trim_start().starts_with("//")
        })
        .unwrap();
    let column = text.find("get_account_balances").unwrap() + 1;
    let locations = removed["locations"].to_string();
    assert!(
        locations.contains(&format!("src/handlers.rs:{}:{column}", line + 1)),
        "{locations}"
    );
    assert!(
        locations.contains(&line_of(&mapping, "getAccountBalances:")),
        "{locations}"
    );

    let succeeded = item_for(&report, "enum-value-removed", "schema", "TransactionStatus");
    assert_eq!(succeeded["severity"], "blocking");
    assert_eq!(succeeded["values"][0], "SUCCEEDED");
    assert!(
        succeeded["message"]
            .as_str()
            .unwrap()
            .contains("getTransactions.status")
    );
    assert!(
        succeeded["locations"].as_array().unwrap().len() >= 2,
        "{succeeded:#}"
    );

    let channel = item_for(&report, "field-added", "field", "channel");
    assert_eq!(channel["severity"], "blocking");
    assert_eq!(channel["schema"], "Transaction");
    assert_eq!(
        channel["locations"][0],
        line_of(&mapping, "getTransactions:")
    );

    let name = item_for(&report, "field-removed", "field", "accountName");
    assert_eq!(name["severity"], "blocking");
    assert_eq!(name["locations"][0], line_of(&mapping, "accountName: name"));
}

#[test]
fn a_missing_mapping_or_spec_is_a_usage_error() {
    let bundled = workspace().join("spec/generic-connector.yaml");
    let run = connector_gen([
        "upgrade",
        "--spec",
        &bundled.display().to_string(),
        "--mapping",
        "/nonexistent/connector.yaml",
    ]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("cannot read /nonexistent/connector.yaml"),
        "{run}"
    );
    let run = connector_gen([
        "upgrade",
        "--spec",
        "/nonexistent/next.yaml",
        "--mapping",
        &example_mapping("minimal").display().to_string(),
    ]);
    run.assert_code(2);
}
