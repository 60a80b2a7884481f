//! Prints how fast connector-gen turns the bundled spec and the largest example mapping
//! (cursorpay) into a crate on disk, and how much memory that takes:
//!
//!     cargo bench --bench generate
//!
//! With `OPENAPI_GENERATOR_JAR=path/to/openapi-generator-cli.jar` it also times
//! openapi-generator's `rust-axum` generator on the same spec, runs taking turns with ours.
//! With `BENCH_CLEAN_BUILD=1` it times a from-scratch `cargo build` of the generated crates
//! (minimal and cursorpay; a fresh target directory each, dependencies from the local registry
//! cache).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use connector_gen::diagnostics::SourceFile;
use connector_gen::output::{self, Mode};
use connector_gen::spec;

const ITERATIONS: usize = 200;
const PROCESS_RUNS: usize = 30;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mapping_path = root.join("generated-examples/cursorpay/connector.yaml");
    let scratch = tempfile::tempdir().expect("temporary directory");

    let in_process = time_in_process(&mapping_path, scratch.path());
    report(
        "in-process: load spec, model, render, format, write",
        &in_process,
    );
    println!(
        "peak memory (VmHWM of this process): {:.1} MB",
        peak_rss_mb()
    );

    let jar = std::env::var_os("OPENAPI_GENERATOR_JAR").map(PathBuf::from);
    let (whole, theirs) = time_whole_process(&root, &mapping_path, scratch.path(), jar.as_deref());
    report(
        "whole process: `connector-gen generate` into an empty directory",
        &whole,
    );
    if !theirs.is_empty() {
        report(
            "whole process: openapi-generator -g rust-axum, same spec",
            &theirs,
        );
        println!(
            "openapi-generator / connector-gen, medians: {:.0}x",
            median(&theirs) / median(&whole)
        );
    }

    if std::env::var_os("BENCH_CLEAN_BUILD").is_some() {
        for example in ["minimal", "cursorpay"] {
            let mapping = root.join(format!("generated-examples/{example}/connector.yaml"));
            let wall = clean_build(&root, &mapping, &scratch.path().join(example));
            println!(
                "clean build of the generated {example} crate, default features (fresh target dir): {:.1} s",
                wall.as_secs_f64()
            );
        }
    }
}

fn median(samples: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64()).collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn time_in_process(mapping_path: &Path, scratch: &Path) -> Vec<Duration> {
    let mapping_text = std::fs::read_to_string(mapping_path).expect("example mapping");
    (0..ITERATIONS)
        .map(|i| {
            let out = scratch.join(format!("in-process-{i}"));
            let started = Instant::now();
            let spec = SourceFile::new(spec::BUNDLED_NAME, spec::BUNDLED);
            let mapping = SourceFile::new("connector.yaml", mapping_text.as_str());
            let generated = connector_gen::generate(&spec, &mapping).expect("example generates");
            output::apply(&out, &generated.files, Mode::Write { force: false }).expect("written");
            started.elapsed()
        })
        .collect()
}

/// Ours and, given its jar, openapi-generator's, taking turns.
fn time_whole_process(
    root: &Path,
    mapping_path: &Path,
    scratch: &Path,
    jar: Option<&Path>,
) -> (Vec<Duration>, Vec<Duration>) {
    let runs = if jar.is_some() { 10 } else { PROCESS_RUNS };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..runs {
        let out = scratch.join(format!("process-{i}"));
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_connector-gen"))
            .args(["generate", "--mapping"])
            .arg(mapping_path)
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("connector-gen runs");
        assert!(status.success(), "connector-gen failed");
        ours.push(started.elapsed());
        if let Some(jar) = jar {
            let out = scratch.join(format!("openapi-generator-{i}"));
            let started = Instant::now();
            let status = Command::new("java")
                .arg("-jar")
                .arg(jar)
                .args(["generate", "-g", "rust-axum", "-i"])
                .arg(root.join("spec/generic-connector.yaml"))
                .arg("-o")
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("java runs");
            assert!(status.success(), "openapi-generator failed");
            theirs.push(started.elapsed());
        }
    }
    (ours, theirs)
}

fn clean_build(root: &Path, mapping_path: &Path, scratch: &Path) -> Duration {
    let wrapper = scratch.join("clean-build");
    let _ = std::fs::remove_dir_all(&wrapper);
    let krate = wrapper.join("crate");
    let status = Command::new(env!("CARGO_BIN_EXE_connector-gen"))
        .args(["generate", "--mapping"])
        .arg(mapping_path)
        .arg("--out")
        .arg(&krate)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("connector-gen runs");
    assert!(status.success());
    std::fs::write(
        wrapper.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crate\"]\nresolver = \"3\"\n",
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), wrapper.join("Cargo.lock")).unwrap();
    let started = Instant::now();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(&wrapper)
        .env("CARGO_TARGET_DIR", wrapper.join("target"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "generated crate did not build");
    started.elapsed()
}

fn report(what: &str, samples: &[Duration]) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: n={} min {:.2} ms, median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
