//! `connector-gen draft` measured: accuracy against a careful author's answers on real provider
//! documents, and time and memory on a 4 MB document. Prints figures; asserts nothing.
//!
//! ```sh
//! DRAFT_PROVIDER_SPECS=../shared/reference/provider-specs cargo bench --bench draft
//! cargo bench --bench draft                      # time and memory on a generated 4 MB document
//! ```
//!
//! The documents are read from `$DRAFT_PROVIDER_SPECS` (gzipped or not) and never copied here;
//! the answers are tests/fixtures/draft/expected-providers.yaml.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use connector_gen::diagnostics::SourceFile;
use connector_gen::{draft, generate, spec};
use serde_json::Value;

const EXPECTED: &str = include_str!("../tests/fixtures/draft/expected-providers.yaml");
const CRITERIA: [&str; 9] = [
    "endpoint",
    "absent",
    "auth",
    "paging",
    "since",
    "records",
    "amount",
    "idempotency",
    "confident_wrong",
];

fn main() {
    timing_and_memory();
    match std::env::var("DRAFT_PROVIDER_SPECS") {
        Ok(dir) => accuracy(Path::new(&dir)),
        Err(_) => {
            println!("\nset DRAFT_PROVIDER_SPECS to the providers' documents to measure accuracy")
        }
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A document of about 4 MB shaped like a large provider's: many list endpoints whose schemas
/// reference each other (cycles included), deepObject filters, form bodies. Written as text, so
/// that making it does not weigh on the memory measured.
fn synthetic(target: usize) -> String {
    let mut paths = String::from("openapi: 3.0.0\ninfo: { title: t, version: '1' }\npaths:\n");
    let mut schemas = String::from("components:\n  schemas:\n");
    let mut i = 0;
    while paths.len() + schemas.len() < target {
        let (name, next) = (format!("resource_{i}"), format!("resource_{}", i + 1));
        paths.push_str(&format!("  /v1/{name}s:\n    get:\n      operationId: List{i}\n      description: Returns a list of objects, newest first.\n      parameters:\n        - {{ name: created, in: query, style: deepObject, schema: {{ type: object, properties: {{ gte: {{ type: integer }}, lt: {{ type: integer }} }} }} }}\n        - {{ name: limit, in: query, schema: {{ type: integer, maximum: 100 }} }}\n        - {{ name: starting_after, in: query, schema: {{ type: string }} }}\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema:\n                type: object\n                properties:\n                  data: {{ type: array, items: {{ $ref: '#/components/schemas/{name}' }} }}\n                  has_more: {{ type: boolean }}\n    post:\n      operationId: Create{i}\n      requestBody:\n        content:\n          application/x-www-form-urlencoded:\n            schema: {{ $ref: '#/components/schemas/{name}' }}\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {{ $ref: '#/components/schemas/{name}' }}\n"));
        schemas.push_str(&format!("    {name}:\n      type: object\n      description: A resource with many fields, documented at length so that the document is as large as real ones.\n      properties:\n        id: {{ type: string }}\n        created: {{ type: integer, description: Time at which the object was created, in seconds since the Unix epoch. }}\n        amount: {{ type: integer, description: Amount in the smallest currency unit. }}\n        currency: {{ type: string }}\n        status: {{ type: string, enum: [pending, succeeded, failed] }}\n        related:\n          anyOf: [{{ $ref: '#/components/schemas/{next}' }}, {{ $ref: '#/components/schemas/{name}' }}]\n        metadata: {{ type: object, additionalProperties: {{ type: string }} }}\n"));
        i += 1;
    }
    paths + &schemas
}

fn timing_and_memory() {
    let before = peak_rss_mb();
    let text = synthetic(4_000_000);
    let source = SourceFile::new("synthetic.yaml", text);
    let generated = peak_rss_mb();
    let start = Instant::now();
    let result = draft::draft(std::slice::from_ref(&source), "synthetic", None);
    let elapsed = start.elapsed();
    println!(
        "draft on a generated {:.2} MB YAML document: {:.0} ms, peak RSS {:.0} MB (process {:.0} MB before the document, {:.0} MB with it); {}",
        source.text.len() as f64 / 1e6,
        elapsed.as_secs_f64() * 1000.0,
        peak_rss_mb(),
        before,
        generated,
        if result.is_ok() { "drafted" } else { "FAILED" }
    );
}

fn read(dir: &Path, file: &str) -> Option<SourceFile> {
    let path = dir.join(file);
    let bytes = if file.ends_with(".gz") {
        Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .ok()
            .filter(|o| o.status.success())?
            .stdout
    } else {
        std::fs::read(&path).ok()?
    };
    Some(SourceFile::new(
        file.trim_end_matches(".gz"),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn accepted(value: &serde_yaml::Value) -> Vec<String> {
    match value {
        serde_yaml::Value::Sequence(items) => items.iter().flat_map(accepted).collect(),
        serde_yaml::Value::String(s) => vec![s.clone()],
        other => vec![
            serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ],
    }
}

fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// (hits, counted) per criterion.
type Tally = BTreeMap<&'static str, (u32, u32)>;

fn count(tally: &mut Tally, criterion: &'static str, hit: bool) {
    let entry = tally.entry(criterion).or_default();
    entry.1 += 1;
    if hit {
        entry.0 += 1;
    }
}

fn accuracy(dir: &Path) {
    let expected: serde_yaml::Mapping =
        serde_yaml::from_str(EXPECTED).expect("the expected answers parse");
    let mut total = Tally::new();
    let mut misses = Vec::new();
    println!(
        "\n{:<14} {}",
        "provider",
        CRITERIA.map(|c| format!("{c:>16}")).join("")
    );
    for (provider, answers) in &expected {
        let provider = provider.as_str().unwrap_or_default();
        let files: Vec<String> = answers["files"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        let Some(sources) = files
            .iter()
            .map(|f| read(dir, f))
            .collect::<Option<Vec<_>>>()
        else {
            println!("{provider:<14} (documents not found in {})", dir.display());
            continue;
        };
        let started = Instant::now();
        let drafted = match draft::draft(&sources, provider, None) {
            Ok(d) => d,
            Err(e) => {
                println!("{provider:<14} draft failed: {e:?}");
                continue;
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let passes = generate(
            &SourceFile::new(spec::BUNDLED_NAME, spec::BUNDLED),
            &SourceFile::new("connector.yaml", drafted.mapping.clone()),
        )
        .is_ok();
        let report: Value = serde_json::from_str(&drafted.report).expect("the report is JSON");
        let mut tally = Tally::new();
        let auth = format!(
            "{} {}",
            report["auth"]["kind"].as_str().unwrap_or(""),
            report["auth"]["header"].as_str().unwrap_or("")
        )
        .trim()
        .to_owned();
        let want_auth = answers["auth"].as_str().unwrap_or_default();
        let auth_hit = auth == want_auth || auth.split(' ').next() == Some(want_auth);
        count(&mut tally, "auth", auth_hit);
        if !auth_hit {
            misses.push(format!(
                "{provider} auth: drafted `{auth}`, expected `{want_auth}`"
            ));
        }
        for (id, want) in answers["operations"].as_mapping().into_iter().flatten() {
            let id = id.as_str().unwrap_or_default();
            let got = &report["operations"][id];
            compare(provider, id, want, got, &mut tally, &mut misses);
        }
        let row: Vec<String> = CRITERIA
            .iter()
            .map(|c| tally.get(c).map_or("-".into(), |(h, n)| format!("{h}/{n}")))
            .map(|s| format!("{s:>16}"))
            .collect();
        println!(
            "{provider:<14} {}   ({ms:.0} ms, check+generate {})",
            row.join(""),
            if passes { "pass" } else { "FAIL" }
        );
        for (criterion, (h, n)) in tally {
            let entry = total.entry(criterion).or_default();
            entry.0 += h;
            entry.1 += n;
        }
    }
    let row: Vec<String> = CRITERIA
        .iter()
        .map(|c| {
            total.get(c).map_or("-".into(), |(h, n)| {
                format!(
                    "{:.0}% ({h}/{n})",
                    100.0 * f64::from(*h) / f64::from((*n).max(1))
                )
            })
        })
        .map(|s| format!("{s:>16}"))
        .collect();
    println!("{:<14} {}", "all", row.join(""));
    println!(
        "(confident_wrong counts answers that are NOT a wrong amount format or idempotency given with confidence >= 0.7)"
    );
    println!("\nmisses:");
    for miss in misses {
        println!("  {miss}");
    }
}

fn compare(
    provider: &str,
    id: &str,
    want: &serde_yaml::Value,
    got: &Value,
    tally: &mut Tally,
    misses: &mut Vec<String>,
) {
    let decision = got["decision"].as_str().unwrap_or("none");
    let endpoint = format!(
        "{} {}",
        got["method"].as_str().unwrap_or(""),
        shape(got["path"].as_str().unwrap_or(""))
    );
    if want.as_str() == Some("none") {
        let hit = decision != "mapped";
        count(tally, "absent", hit);
        if !hit {
            misses.push(format!("{provider} {id}: mapped {endpoint}, expected none"));
        }
        return;
    }
    let mut check = |criterion: &'static str, drafted: String, key: &str, tally: &mut Tally| {
        let Some(value) = want.get(key) else { return };
        let accepted = accepted(value);
        let hit = accepted
            .iter()
            .any(|a| *a == drafted || shape(a) == drafted);
        count(tally, criterion, hit);
        if !hit {
            misses.push(format!(
                "{provider} {id} {criterion}: drafted `{drafted}`, expected {accepted:?}"
            ));
        }
    };
    let endpoint = if decision == "none" {
        "none".to_owned()
    } else {
        endpoint
    };
    check("endpoint", endpoint, "endpoint", tally);
    let paging = &got["paging"];
    let paging = format!(
        "{} {}",
        paging["kind"].as_str().unwrap_or("none"),
        paging["param"].as_str().unwrap_or("")
    )
    .trim()
    .to_owned();
    check("paging", paging, "paging", tally);
    check(
        "records",
        got["records"].as_str().unwrap_or("-").to_owned(),
        "records",
        tally,
    );
    check(
        "since",
        got["since"]["param"].as_str().unwrap_or("none").to_owned(),
        "since",
        tally,
    );
    let amount = [
        &got["fields"]["amount"],
        &got["body"]["amount"],
        &got["fields"]["balances"]["fields"]["amount"],
    ]
    .into_iter()
    .find(|v| v.is_object());
    let amount_format = amount
        .and_then(|a| a["format"].as_str())
        .unwrap_or("-")
        .to_owned();
    let amount_confidence = amount.and_then(|a| a["confidence"].as_f64()).unwrap_or(0.0);
    check("amount", amount_format.clone(), "amount", tally);
    let idempotency = &got["idempotency"];
    let todo_flags = got["todo"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t.as_str().is_some_and(|t| t.starts_with("idempotency")));
    let drafted_key = if let Some(h) = idempotency["header"].as_str() {
        format!("header {h}")
    } else if let Some(b) = idempotency["body"].as_str() {
        format!("body {b}")
    } else if todo_flags {
        "undeclared".to_owned()
    } else {
        "-".to_owned()
    };
    let key_confidence = idempotency["confidence"].as_f64().unwrap_or(0.0);
    check("idempotency", drafted_key.clone(), "idempotency", tally);
    let wrong_amount = want
        .get("amount")
        .is_some_and(|w| !accepted(w).contains(&amount_format))
        && amount_confidence >= 0.7
        && amount_format != "-";
    let wrong_key = want
        .get("idempotency")
        .is_some_and(|w| !accepted(w).contains(&drafted_key))
        && key_confidence >= 0.7;
    if want.get("amount").is_some() || want.get("idempotency").is_some() {
        count(tally, "confident_wrong", !(wrong_amount || wrong_key));
        if wrong_amount || wrong_key {
            misses.push(format!("{provider} {id}: a wrong answer given with confidence >= 0.7 (amount {amount_format} {amount_confidence}, key {drafted_key} {key_confidence})"));
        }
    }
}
