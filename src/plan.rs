//! Protocol + mapping -> the list of files a connector crate consists of, who owns each, and
//! the crate-level decisions (names, environment variables, dependencies) rendering needs.

use std::collections::BTreeMap;

use crate::ir::Protocol;
use crate::mapping::{Auth, KeyLocation, Mapping, OperationMapping, Setting, Upstream};
use crate::names;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub krate: Crate,
    pub files: Vec<PlannedFile>,
    /// Present when the mapping answers operations from the provider's API.
    pub mapped: Option<Mapped>,
}

impl Plan {
    /// Whether the mapping fills this list's `relatedTransactionID` with the provider's
    /// reference of the initiating payment (`initiation:`), which is meaningless to Formance
    /// unless the store turns it into an idempotency key.
    pub fn links_by_provider_reference(&self, operation_id: &str) -> bool {
        let Some(mapping) = self
            .mapped
            .as_ref()
            .and_then(|m| m.operations.get(operation_id))
        else {
            return false;
        };
        mapping
            .fields
            .iter()
            .any(|field| matches!(field.value.source, crate::mapping::Source::Initiation(_)))
    }

    /// Whether the mapping can look up the payment of an initiation (`lookup`).
    pub fn finds_payments(&self) -> bool {
        self.mapped.as_ref().is_some_and(|m| {
            m.operations
                .values()
                .any(|op| op.initiation.as_ref().is_some_and(|i| i.lookup.is_some()))
        })
    }

    /// Whether the mapping answers this operation from the provider.
    pub fn maps(&self, operation_id: &str) -> bool {
        self.mapped
            .as_ref()
            .is_some_and(|m| m.operations.contains_key(operation_id))
    }
}

/// What the mapping says about answering operations from the provider, as rendering needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub upstream: Upstream,
    pub currencies: BTreeMap<String, u32>,
    pub operations: BTreeMap<String, OperationMapping>,
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
    Convert,
    Metrics,
    Upstream,
    Listing,
    Fields,
    Mapped,
    Store,
    Initiation,
    Runtime,
    Lib,
    Main,
    Handlers,
    CargoToml,
    Readme,
    Dockerfile,
    Dockerignore,
    Gitignore,
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
    /// Whether the crate has a client for the provider's API.
    pub upstream: bool,
    /// Whether the protocol initiates payments, which need the idempotency store.
    pub initiations: bool,
    /// How `UpstreamSettings` becomes the client's authentication, when it has one.
    pub auth: Option<AuthPlan>,
    /// Headers sent with every provider request: (header name, settings field).
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub retry: crate::mapping::Retry,
}

/// The authentication kind, with the `UpstreamSettings` fields that feed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPlan {
    Bearer {
        token: String,
    },
    ApiKey {
        location: KeyLocation,
        name: String,
        value: String,
    },
    Basic {
        username: String,
        password: String,
    },
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
}

/// One provider setting of the generated `UpstreamSettings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingPlan {
    pub field: String,
    pub doc: String,
    pub source: Setting,
    /// Never printed (credentials).
    pub secret: bool,
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
        r#"{ version = "1", features = ["net", "rt-multi-thread", "signal", "sync", "time"] }"#,
    ),
    ("tracing", r#""0.1""#),
    (
        "tracing-subscriber",
        r#"{ version = "0.3", default-features = false, features = ["ansi", "fmt", "json", "std"] }"#,
    ),
];

pub fn plan(protocol: &Protocol, mapping: &Mapping) -> Plan {
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
    let mut files = vec![
        generated("Cargo.toml", FileKind::CargoToml),
        generated("README.md", FileKind::Readme),
        generated("Dockerfile", FileKind::Dockerfile),
        generated(".dockerignore", FileKind::Dockerignore),
        generated("src/generated/mod.rs", FileKind::GeneratedMod),
        generated("src/generated/api.rs", FileKind::Api),
        generated("src/generated/convert.rs", FileKind::Convert),
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
        user(".gitignore", FileKind::Gitignore),
        generated("src/generated/metrics.rs", FileKind::Metrics),
    ];
    let initiations = protocol.initiations().next().is_some();
    if initiations {
        files.push(generated("src/generated/store.rs", FileKind::Store));
        files.push(generated(
            "src/generated/initiation.rs",
            FileKind::Initiation,
        ));
    }
    let krate = krate(mapping, initiations);
    let mapped = krate.upstream.then(|| Mapped {
        upstream: mapping.upstream.clone(),
        currencies: mapping.currencies.clone(),
        operations: mapping.operations.clone(),
    });
    if mapped.is_some() {
        files.push(generated("src/generated/upstream.rs", FileKind::Upstream));
        files.push(generated("src/generated/listing.rs", FileKind::Listing));
        files.push(generated("src/generated/fields.rs", FileKind::Fields));
        files.push(generated("src/generated/mapped.rs", FileKind::Mapped));
    }
    Plan {
        krate,
        files,
        mapped,
    }
}

/// A client for the provider is generated when the mapping maps operations or says how to
/// authenticate (hand-written handlers then get it ready to use).
fn has_client(mapping: &Mapping) -> bool {
    !mapping.operations.is_empty() || mapping.upstream.auth.is_some()
}

fn krate(mapping: &Mapping, initiations: bool) -> Crate {
    let upstream = &mapping.upstream;
    let mut settings = vec![setting(
        "base_url",
        "Base URL of the provider's API (`upstream.base_url`).",
        &upstream.base_url,
    )];
    let auth = upstream
        .auth
        .as_ref()
        .map(|auth| auth_plan(auth, &mut settings));
    let headers = upstream
        .headers
        .iter()
        .map(|(name, value)| {
            let field = format!("header_{}", names::snake(name));
            settings.push(setting(
                &field,
                &format!("The `{name}` header sent to the provider (`upstream.headers`)."),
                value,
            ));
            (name.clone(), field)
        })
        .collect();
    let has_client = has_client(mapping);
    let mut dependencies: Vec<DependencyLine> = SERVER_DEPENDENCIES
        .iter()
        .map(|(name, spec)| DependencyLine {
            name: (*name).to_owned(),
            spec: (*spec).to_owned(),
        })
        .collect();
    if has_client {
        dependencies.push(DependencyLine {
            name: "reqwest".to_owned(),
            spec: REQWEST.to_owned(),
        });
    }
    if initiations {
        dependencies.push(DependencyLine {
            name: "sqlx".to_owned(),
            spec: SQLX.to_owned(),
        });
    }
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
        upstream: has_client,
        initiations,
        auth,
        headers,
        timeout_ms: upstream.timeout_ms,
        retry: upstream.retry.clone(),
    }
}

/// The initiation store: SQLite (bundled, nothing to install) and PostgreSQL behind one `Any`
/// pool, rustls with ring as reqwest uses, no macros (no build-time database).
const SQLX: &str = r#"{ version = "0.8", default-features = false, features = ["any", "postgres", "runtime-tokio", "sqlite", "tls-rustls-ring-webpki"] }"#;

/// rustls with ring: TLS without a system OpenSSL, and quick to build.
const REQWEST: &str =
    r#"{ version = "0.12", default-features = false, features = ["json", "rustls-tls"] }"#;

fn setting(field: &str, doc: &str, source: &Setting) -> SettingPlan {
    let secret = matches!(
        field,
        "auth_token" | "api_key" | "password" | "client_secret"
    ) || field.starts_with("header_");
    SettingPlan {
        field: field.to_owned(),
        doc: doc.to_owned(),
        source: source.clone(),
        secret,
    }
}

fn auth_plan(auth: &Auth, settings: &mut Vec<SettingPlan>) -> AuthPlan {
    let mut add = |field: &str, doc: &str, source: &Setting| {
        settings.push(setting(field, doc, source));
        field.to_owned()
    };
    match auth {
        Auth::Bearer { token } => AuthPlan::Bearer {
            token: add(
                "auth_token",
                "The provider's API token (`upstream.auth.bearer`).",
                token,
            ),
        },
        Auth::ApiKey {
            location,
            name,
            value,
        } => AuthPlan::ApiKey {
            location: *location,
            name: name.clone(),
            value: add(
                "api_key",
                "The provider's API key (`upstream.auth.api_key`).",
                value,
            ),
        },
        Auth::Basic { username, password } => AuthPlan::Basic {
            username: add(
                "username",
                "The user name for the provider (`upstream.auth.basic`).",
                username,
            ),
            password: add(
                "password",
                "The password for the provider (`upstream.auth.basic`).",
                password,
            ),
        },
        Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        } => AuthPlan::OAuth2 {
            token_url: add(
                "token_url",
                "The provider's OAuth2 token endpoint (`upstream.auth.oauth2`).",
                token_url,
            ),
            client_id: add(
                "client_id",
                "The OAuth2 client id (`upstream.auth.oauth2`).",
                client_id,
            ),
            client_secret: add(
                "client_secret",
                "The OAuth2 client secret (`upstream.auth.oauth2`).",
                client_secret,
            ),
            scope: scope.clone(),
        },
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
