//! Protocol + mapping -> the list of files a connector crate consists of, who owns each, and
//! the crate-level decisions (names, environment variables, dependencies) rendering needs.

use crate::mapping::{Mapping, Setting};
use crate::names;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub krate: Crate,
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// Rewritten by every `generate`; a hand edit is detected and protected.
    Generator,
    /// Written once if missing, never touched again.
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    GeneratedMod,
    Models,
    Params,
    Api,
    Server,
    Settings,
    Error,
    Validate,
    Runtime,
    Lib,
    Main,
    Handlers,
    CargoToml,
    Readme,
    Dockerfile,
    Dockerignore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: String,
    pub owner: Owner,
    pub kind: FileKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    /// Cargo package and binary name.
    pub package: String,
    /// The library's name in Rust paths (`acme-bank` -> `acme_bank`).
    pub lib: String,
    pub settings: Vec<SettingPlan>,
    pub dependencies: Vec<DependencyLine>,
}

/// One provider setting of the generated `UpstreamSettings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingPlan {
    pub field: String,
    pub doc: String,
    pub source: Setting,
}

/// `name = <toml value>` in the generated Cargo.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyLine {
    pub name: String,
    pub spec: String,
}

/// The crates every generated server uses, with the fewest features that do the job: a
/// connector should build from scratch quickly on a small CI machine.
pub const SERVER_DEPENDENCIES: &[(&str, &str)] = &[
    (
        "axum",
        r#"{ version = "0.8", default-features = false, features = ["http1", "tokio"] }"#,
    ),
    (
        "chrono",
        r#"{ version = "0.4", default-features = false, features = ["clock", "serde", "std"] }"#,
    ),
    ("form_urlencoded", r#""1""#),
    ("http-body-util", r#""0.1""#),
    ("serde", r#"{ version = "1", features = ["derive"] }"#),
    ("serde_json", r#""1""#),
    ("serde_path_to_error", r#""0.1""#),
    ("subtle", r#""2""#),
    (
        "tokio",
        r#"{ version = "1", features = ["net", "rt-multi-thread", "signal", "time"] }"#,
    ),
    ("tracing", r#""0.1""#),
    (
        "tracing-subscriber",
        r#"{ version = "0.3", default-features = false, features = ["ansi", "fmt", "json", "std"] }"#,
    ),
];

pub fn plan(mapping: &Mapping) -> Plan {
    let generated = |path: &str, kind| PlannedFile {
        path: path.to_owned(),
        owner: Owner::Generator,
        kind,
    };
    let user = |path: &str, kind| PlannedFile {
        path: path.to_owned(),
        owner: Owner::User,
        kind,
    };
    let files = vec![
        generated("Cargo.toml", FileKind::CargoToml),
        generated("README.md", FileKind::Readme),
        generated("Dockerfile", FileKind::Dockerfile),
        generated(".dockerignore", FileKind::Dockerignore),
        generated("src/generated/mod.rs", FileKind::GeneratedMod),
        generated("src/generated/api.rs", FileKind::Api),
        generated("src/generated/error.rs", FileKind::Error),
        generated("src/generated/models.rs", FileKind::Models),
        generated("src/generated/params.rs", FileKind::Params),
        generated("src/generated/runtime.rs", FileKind::Runtime),
        generated("src/generated/server.rs", FileKind::Server),
        generated("src/generated/settings.rs", FileKind::Settings),
        generated("src/generated/validate.rs", FileKind::Validate),
        user("src/lib.rs", FileKind::Lib),
        user("src/main.rs", FileKind::Main),
        user("src/handlers.rs", FileKind::Handlers),
    ];
    Plan {
        krate: krate(mapping),
        files,
    }
}

fn krate(mapping: &Mapping) -> Crate {
    let settings = vec![SettingPlan {
        field: "base_url".to_owned(),
        doc: "Base URL of the provider's API (`upstream.base_url`).".to_owned(),
        source: mapping.upstream.base_url.clone(),
    }];
    let mut dependencies: Vec<DependencyLine> = SERVER_DEPENDENCIES
        .iter()
        .map(|(name, spec)| DependencyLine {
            name: (*name).to_owned(),
            spec: (*spec).to_owned(),
        })
        .collect();
    for (name, dependency) in &mapping.dependencies {
        let mut parts = vec![format!("version = {}", toml_string(&dependency.version))];
        if !dependency.default_features {
            parts.push("default-features = false".to_owned());
        }
        if !dependency.features.is_empty() {
            let features: Vec<String> =
                dependency.features.iter().map(|f| toml_string(f)).collect();
            parts.push(format!("features = [{}]", features.join(", ")));
        }
        let spec = if parts.len() == 1 {
            toml_string(&dependency.version)
        } else {
            format!("{{ {} }}", parts.join(", "))
        };
        dependencies.push(DependencyLine {
            name: name.clone(),
            spec,
        });
    }
    dependencies.sort_by(|a, b| a.name.cmp(&b.name));
    Crate {
        package: mapping.name.clone(),
        lib: names::snake(&mapping.name),
        settings,
        dependencies,
    }
}

fn toml_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => format!("\\u{:04X}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
