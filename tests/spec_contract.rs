//! The bundled protocol spec must stay contract-identical to the newest published Generic
//! connector spec: only prose (`description`, `summary`, `example`) may differ.

use serde_yaml::Value;
use std::path::{Path, PathBuf};

const BUNDLED: &str = "spec/generic-connector.yaml";
const HISTORY: &str = "tests/fixtures/spec-history";
const NEWEST: &str = "tests/fixtures/spec-history/08-2026-02-17.yaml";
const PROSE: [&str; 3] = ["description", "summary", "example"];

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// Removes prose keys at every depth (which covers `info.description`). Inside a `properties`
/// map the keys are field names, and payouts and transfers have a field called `description`,
/// so they are kept there.
fn strip_prose(value: &mut Value, in_properties: bool) {
    match value {
        Value::Mapping(map) => {
            if !in_properties {
                for key in PROSE {
                    map.remove(key);
                }
            }
            for (key, child) in map.iter_mut() {
                strip_prose(child, key.as_str() == Some("properties"));
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|item| strip_prose(item, false)),
        _ => {}
    }
}

fn pointer_segment(key: &Value) -> String {
    let raw = match key {
        Value::String(s) => s.clone(),
        other => show(other),
    };
    raw.replace('~', "~0").replace('/', "~1")
}

fn show(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

/// Describes the first difference as `pointer: left vs right`, or returns None when equal.
/// Key order is ignored: it is not part of the contract.
fn first_difference(path: &str, left: &Value, right: &Value) -> Option<String> {
    match (left, right) {
        (Value::Mapping(l), Value::Mapping(r)) => {
            for (key, lv) in l {
                let here = format!("{path}/{}", pointer_segment(key));
                match r.get(key) {
                    Some(rv) => {
                        if let Some(diff) = first_difference(&here, lv, rv) {
                            return Some(diff);
                        }
                    }
                    None => return Some(format!("{here}: {} vs (missing)", show(lv))),
                }
            }
            let key = r.keys().find(|key| !l.contains_key(*key))?;
            Some(format!(
                "{path}/{}: (missing) vs {}",
                pointer_segment(key),
                show(&r[key])
            ))
        }
        (Value::Sequence(l), Value::Sequence(r)) => {
            for (i, (lv, rv)) in l.iter().zip(r).enumerate() {
                if let Some(diff) = first_difference(&format!("{path}/{i}"), lv, rv) {
                    return Some(diff);
                }
            }
            (l.len() != r.len()).then(|| format!("{path}: {} items vs {} items", l.len(), r.len()))
        }
        _ => (left != right).then(|| format!("{path}: {} vs {}", show(left), show(right))),
    }
}

#[test]
fn bundled_spec_matches_newest_published_contract() {
    let mut bundled = load(&manifest_path(BUNDLED));
    let mut published = load(&manifest_path(NEWEST));
    strip_prose(&mut bundled, false);
    strip_prose(&mut published, false);
    if let Some(diff) = first_difference("", &bundled, &published) {
        panic!("{BUNDLED} differs from {NEWEST} (bundled vs published):\n  {diff}");
    }
}

#[test]
fn every_published_version_is_openapi_3_0() {
    let dir = manifest_path(HISTORY);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    for path in files {
        let version = load(&path)
            .get("openapi")
            .and_then(Value::as_str)
            .map(str::to_owned);
        assert!(
            version.as_deref().is_some_and(|v| v.starts_with("3.0.")),
            "{}: expected `openapi: 3.0.x`, found {version:?}",
            path.display()
        );
    }
}
