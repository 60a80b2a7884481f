//! The connector runtime (the workspace's `runtime/` crate), embedded in the generator: its
//! sources, copied byte for byte into every generated crate under `src/generated/runtime/`,
//! and its manifest's dependencies and features, which the generated Cargo.toml repeats.

/// One source file of the runtime: its path under `src/generated/runtime/` and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFile {
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! sources {
    ($($path:literal => $file:literal),* $(,)?) => {
        &[$(SourceFile { path: $path, text: include_str!(concat!("../runtime/src/", $file)) }),*]
    };
}

/// Every file of the runtime crate's `src/`; its `lib.rs` becomes the module's `mod.rs`.
pub const SOURCES: &[SourceFile] = sources![
    "mod.rs" => "lib.rs",
    "config.rs" => "config.rs",
    "context.rs" => "context.rs",
    "convert.rs" => "convert.rs",
    "error.rs" => "error.rs",
    "fields.rs" => "fields.rs",
    "form.rs" => "form.rs",
    "health.rs" => "health.rs",
    "initiation.rs" => "initiation.rs",
    "join.rs" => "join.rs",
    "listing.rs" => "listing.rs",
    "logs.rs" => "logs.rs",
    "metrics.rs" => "metrics.rs",
    "otel.rs" => "otel.rs",
    "ratelimit.rs" => "ratelimit.rs",
    "request.rs" => "request.rs",
    "response.rs" => "response.rs",
    "server.rs" => "server.rs",
    "store.rs" => "store.rs",
    "store/postgres.rs" => "store/postgres.rs",
    "store/sqlite.rs" => "store/sqlite.rs",
    "tls.rs" => "tls.rs",
    "upstream.rs" => "upstream.rs",
    "validate.rs" => "validate.rs",
];

const MANIFEST: &str = include_str!("../runtime/Cargo.toml");

/// The feature that builds the provider client and the mapping's list walking.
pub const PROVIDER_FEATURE: &str = "provider";
/// The feature that builds HTTPS (rustls), on in every generated crate.
pub const TLS_FEATURE: &str = "tls";
/// The feature that builds the initiation store.
pub const STORE_FEATURE: &str = "store";
/// The feature that reads local times of named zones.
pub const ZONES_FEATURE: &str = "zones";
/// The feature that makes mimalloc the process's allocator, on in every crate.
pub const MIMALLOC_FEATURE: &str = "mimalloc";

/// `name = value` lines of one table of the runtime's Cargo.toml, in order, with the
/// comment lines just above each (the manifest keeps one entry per line).
pub fn manifest_table(table: &str) -> Vec<ManifestEntry> {
    let header = format!("[{table}]");
    let mut entries = Vec::new();
    let mut comments = Vec::new();
    let lines = MANIFEST
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.starts_with('['));
    for line in lines {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            comments.push(comment.trim().to_owned());
        } else if let Some((name, value)) = line.split_once(" = ") {
            entries.push(ManifestEntry {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
                comments: std::mem::take(&mut comments),
            });
        } else {
            comments.clear();
        }
    }
    entries
}

/// One `name = value` entry of the runtime's Cargo.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub name: String,
    pub value: String,
    pub comments: Vec<String>,
}

impl ManifestEntry {
    /// Whether the dependency is only built with a feature.
    pub fn optional(&self) -> bool {
        self.value.contains("optional = true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_source_is_vendored() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src");
        let mut on_disk = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap().to_string_lossy();
                    on_disk.push(relative.replace("lib.rs", "mod.rs"));
                }
            }
        }
        on_disk.sort();
        let mut vendored: Vec<&str> = SOURCES.iter().map(|file| file.path).collect();
        vendored.sort();
        assert_eq!(on_disk, vendored);
    }

    #[test]
    fn the_manifest_gives_dependencies_and_features() {
        let dependencies = manifest_table("dependencies");
        let axum = dependencies.iter().find(|d| d.name == "axum").unwrap();
        assert!(axum.value.starts_with("{ version = \"0.8\""), "{axum:?}");
        assert!(!axum.optional());
        assert!(
            dependencies
                .iter()
                .any(|d| d.name == "reqwest" && d.optional())
        );
        let features = manifest_table("features");
        let names: Vec<&str> = features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "default",
                PROVIDER_FEATURE,
                STORE_FEATURE,
                ZONES_FEATURE,
                TLS_FEATURE,
                "otel",
                "postgres",
                MIMALLOC_FEATURE
            ]
        );
        assert!(!features[1].comments.is_empty(), "features are documented");
        assert!(
            manifest_table("dev-dependencies")
                .iter()
                .all(|d| d.name != "axum")
        );
    }
}
