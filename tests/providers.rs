//! The twelve providers Formance ships connectors for, each as a mapping in
//! `tests/fixtures/providers/`: every one passes `check` without a problem, generates, and the
//! twelve generated crates compile together in one throwaway workspace (one `cargo build`, so
//! the dependencies and the runtime's dependencies compile once).
//!
//! Each fixture opens with a comment header saying what is declarative and what is left to
//! Rust; the test holds the header to the file: every `rust:` function and every protocol
//! operation the mapping leaves out must be named there.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use support::{Run, connector_gen, workspace};

/// The file names (without `.yaml`), one per provider.
const PROVIDERS: &[&str] = &[
    "adyen",
    "atlar",
    "bankingcircle",
    "column",
    "currencycloud",
    "increase",
    "mangopay",
    "modulr",
    "moneycorp",
    "qonto",
    "stripe",
    "wise",
];

const OPERATIONS: &[&str] = &[
    "getAccounts",
    "getAccountBalances",
    "getBeneficiaries",
    "getTransactions",
    "createPayout",
    "createTransfer",
];

fn fixtures() -> PathBuf {
    workspace().join("tests/fixtures/providers")
}

fn fixture(name: &str) -> (PathBuf, String) {
    let path = fixtures().join(format!("{name}.yaml"));
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path, text)
}

/// The comment lines the file opens with, without their `#`.
fn header(text: &str) -> String {
    text.lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `rust: crate::handlers::f` the mapping names (commented-out lines are not mapping).
fn rust_functions(text: &str) -> Vec<String> {
    let mut functions = Vec::new();
    for line in text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
    {
        let mut rest = line;
        while let Some(at) = rest.find("rust:") {
            rest = &rest[at + "rust:".len()..];
            let function: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !function.is_empty() {
                functions.push(function);
            }
        }
    }
    functions
}

/// The protocol operations the mapping describes.
fn mapped_operations(text: &str) -> Vec<String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).expect("the fixture is YAML");
    value
        .get("operations")
        .and_then(|ops| ops.as_mapping())
        .map(|ops| {
            ops.keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn there_is_one_fixture_per_provider() {
    let mut found: Vec<String> = fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found, PROVIDERS,
        "tests/fixtures/providers/ and PROVIDERS differ"
    );
}

#[test]
fn every_header_says_what_is_declarative_and_what_is_left_to_rust() {
    let mut problems = Vec::new();
    for name in PROVIDERS {
        let (_, text) = fixture(name);
        let header = header(&text);
        for section in ["Follows", "Declarative:", "Left to Rust:"] {
            if !header.contains(section) {
                problems.push(format!("{name}: the header has no `{section}`"));
            }
        }
        let left = header
            .split("Left to Rust:")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        for function in rust_functions(&text) {
            let short = function.rsplit("::").next().unwrap_or(&function);
            if !left.contains(short) {
                problems.push(format!(
                    "{name}: `rust: {function}` is not named after `Left to Rust:`"
                ));
            }
        }
        let mapped = mapped_operations(&text);
        for operation in OPERATIONS {
            if !mapped.iter().any(|m| m == operation) && !left.contains(operation) {
                problems.push(format!(
                    "{name}: `{operation}` is not mapped, and the header does not say why after `Left to Rust:`"
                ));
            }
        }
        if left.contains("nothing") && !rust_functions(&text).is_empty() {
            problems.push(format!(
                "{name}: the header says nothing is left to Rust but the file has `rust:` fields"
            ));
        }
        if !text.contains("${env:") {
            problems.push(format!("{name}: no `${{env:...}}` setting at all"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_fixture_checks_without_a_problem() {
    let mut failures = Vec::new();
    for name in PROVIDERS {
        let (path, text) = fixture(name);
        let run = connector_gen(["check".as_ref(), "--mapping".as_ref(), path.as_os_str()]);
        let output = format!("{}{}", run.stdout, run.stderr);
        let warned = output.contains("warning");
        if run.code != Some(0) || output.contains("error") {
            failures.push(format!("{name}: check failed\n{run}"));
        } else if warned && !header(&text).contains("Warnings:") {
            failures.push(format!(
                "{name}: check warns, and the header has no `Warnings:` explaining it\n{run}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Generates all twelve crates into one workspace under `target/e2e/providers/` and builds them
/// with a single `cargo build` (`PROVIDERS_CARGO=check` runs `cargo check` instead).
#[test]
fn every_fixture_generates_a_crate_that_builds() {
    let root = workspace().join("target/e2e/providers");
    if root.exists() {
        fs::remove_dir_all(&root).unwrap();
    }
    fs::create_dir_all(&root).unwrap();
    let members: Vec<String> = PROVIDERS.iter().map(|name| format!("{name:?}")).collect();
    fs::write(
        root.join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [{}]\nresolver = \"3\"\n",
            members.join(", ")
        ),
    )
    .unwrap();
    // Same versions as the main workspace: all already downloaded, the build stays offline.
    fs::copy(workspace().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();

    let mut generated = BTreeMap::new();
    for name in PROVIDERS {
        let (_, text) = fixture(name);
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        let mapping = dir.join("connector.yaml");
        fs::write(&mapping, &text).unwrap();
        let started = Instant::now();
        let run = connector_gen([
            "generate".as_ref(),
            "--mapping".as_ref(),
            mapping.as_os_str(),
        ]);
        assert_eq!(run.code, Some(0), "generate {name} failed\n{run}");
        generated.insert(*name, started.elapsed());
    }
    eprintln!("generated: {generated:?}");

    let subcommand = std::env::var("PROVIDERS_CARGO").unwrap_or_else(|_| "build".to_owned());
    assert!(
        subcommand == "build" || subcommand == "check",
        "PROVIDERS_CARGO is `build` or `check`, not {subcommand:?}"
    );
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO"));
    command
        .args([subcommand.as_str(), "--offline", "--quiet", "--workspace"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", workspace().join("target/e2e-target"))
        // Throwaway crates: no incremental caches or debug info to fill CI's disk.
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "0");
    let run = Run::of(&mut command);
    assert_eq!(
        run.code,
        Some(0),
        "cargo {subcommand} of the provider crates failed\n{run}"
    );
    eprintln!(
        "cargo {subcommand} of {} provider crates: {:.1?}",
        PROVIDERS.len(),
        started.elapsed()
    );
}
