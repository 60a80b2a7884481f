//! Protocol + mapping -> the list of files a connector crate consists of, who owns each, and
//! the crate-level decisions (names, environment variables, dependencies) rendering needs.

use std::collections::BTreeMap;

use crate::ir::Protocol;
use crate::mapping::{
    Auth, BodyEncoding, KeyLocation, Mapping, OperationMapping, Setting, Upstream,
};
use crate::names;
use crate::runtime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub krate: Crate,
    pub files: Vec<PlannedFile>,
    /// Present when the mapping answers operations from the provider's API.
    pub mapped: Option<Mapped>,
    /// Where each mapped list field is in connector.yaml (see [`field_lines`]).
    pub field_lines: Vec<FieldLine>,
}

/// A mapped list field's line in connector.yaml and the path of its value in the provider's
/// record: a list stuck on a record it cannot convert names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLine {
    pub operation: String,
    pub field: String,
    pub line: u32,
    pub path: Option<Vec<crate::mapping::Step>>,
}

/// Every top-level field of each mapped list operation, with its line in `source` (the
/// mapping file).
pub fn field_lines(mapping: &Mapping, source: &crate::diagnostics::SourceFile) -> Vec<FieldLine> {
    use crate::mapping::{Expr, Source};
    fn value_path(expr: &Expr) -> Option<&crate::mapping::Path> {
        match &expr.source {
            Source::Path(path) | Source::Initiation(path) | Source::Each { path, .. } => Some(path),
            Source::FirstOf(choices) => choices.iter().find_map(value_path),
            _ => None,
        }
    }
    let line_of = |offset: usize| u32::try_from(source.line_col(offset).0).unwrap_or(u32::MAX);
    mapping
        .operations
        .iter()
        .filter(|(_, operation)| operation.list.is_some())
        .flat_map(|(id, operation)| operation.fields.iter().map(move |field| (id, field)))
        .map(|(id, field)| FieldLine {
            operation: id.clone(),
            field: field.field.clone(),
            line: line_of(field.span.start),
            path: value_path(&field.value).map(|path| {
                path.steps
                    .iter()
                    .filter(|step| !matches!(step, crate::mapping::Step::Each))
                    .cloned()
                    .collect()
            }),
        })
        .collect()
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
    Mapped,
    /// A file of the connector runtime, by its path under `src/generated/runtime/`.
    Runtime(&'static str),
    Lib,
    Main,
    Handlers,
    CargoToml,
    Readme,
    Dockerfile,
    Dockerignore,
    Gitignore,
    Kubernetes,
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
    /// The environment variables the settings read, in the order they are first used.
    pub variables: Vec<Variable>,
    /// The runtime's dependencies (some behind its features), then the mapping's.
    pub dependencies: Vec<DependencyLine>,
    /// The runtime's features, as its manifest declares them.
    pub features: Vec<FeatureLine>,
    /// The runtime features this crate needs, on by default.
    pub default_features: Vec<&'static str>,
    /// Whether the crate has a client for the provider's API.
    pub upstream: bool,
    /// Whether the protocol initiates payments, which need the idempotency store.
    pub initiations: bool,
    /// How the provider settings become the client's authentication, when it has one.
    pub auth: Option<AuthPlan>,
    /// Headers sent with every provider request: (header name, settings field).
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub retry: crate::mapping::Retry,
    pub rate_limit: Option<crate::mapping::RateLimit>,
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
    /// `upstream.auth.login`, its settings named by field.
    Login {
        method: String,
        url: String,
        /// Dotted body names and the fields of their values.
        body: Vec<(String, String)>,
        encoding: BodyEncoding,
        basic: Option<(String, String)>,
        token: String,
        expires_in: Option<String>,
        expires_after_ms: Option<u64>,
        header: String,
        prefix: String,
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
    /// What the connector checks of the value when it starts.
    pub kind: SettingKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingKind {
    /// An absolute http(s) URL.
    Url,
    /// The OAuth2 token endpoint: an absolute URL, or a path appended to the base URL.
    TokenUrl,
    /// The login endpoint, likewise.
    LoginUrl,
    /// The value of this header, sent with every request.
    Header(String),
    Text,
}

/// An environment variable the settings read: once, however many of them use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    /// What it is for: the docs of the settings that use it.
    pub doc: String,
}

/// `name = <toml value>` in the generated Cargo.toml, with the comment lines above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyLine {
    pub name: String,
    pub spec: String,
    pub comments: Vec<String>,
}

/// `name = [...]` in the generated Cargo.toml's `[features]`, with the comment lines above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLine {
    pub name: String,
    pub value: String,
    pub comments: Vec<String>,
}

/// A crate the connector runtime depends on, as a mapping's `dependencies` may meet it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDependency {
    pub name: String,
    /// Its version requirement, as the runtime's manifest writes it.
    pub version: String,
    /// Only built with one of the runtime's features: the mapping may name it (with a
    /// compatible version) to use it in its own code, which turns that feature on.
    pub optional: bool,
}

pub fn runtime_dependencies() -> Vec<RuntimeDependency> {
    runtime::manifest_table("dependencies")
        .into_iter()
        .map(|entry| RuntimeDependency {
            optional: entry.optional(),
            version: dependency_version(&entry.value),
            name: entry.name,
        })
        .collect()
}

/// The version requirement of a manifest entry: `"1"`, or the `version` of an inline table.
fn dependency_version(spec: &str) -> String {
    let quoted = match spec.find("version = ") {
        Some(at) => &spec[at + "version = ".len()..],
        None => spec,
    };
    quoted
        .trim_start_matches('"')
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether two version requirements pick the same semver-compatible release series
/// (`0.12` and `^0.12.3`; `1` and `1.4`).
pub fn same_release_series(a: &str, b: &str) -> bool {
    let series = |version: &str| -> Vec<u64> {
        let numbers: Vec<u64> = version
            .trim_start_matches(['^', '~', '='])
            .trim()
            .split('.')
            .map_while(|part| part.parse().ok())
            .collect();
        let significant = if numbers.first() == Some(&0) { 2 } else { 1 };
        numbers.into_iter().take(significant).collect()
    };
    let (a, b) = (series(a), series(b));
    !a.is_empty() && a == b
}

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
        generated("src/generated/models.rs", FileKind::Models),
        generated("src/generated/params.rs", FileKind::Params),
        generated("src/generated/server.rs", FileKind::Server),
        generated("src/generated/settings.rs", FileKind::Settings),
        user("src/lib.rs", FileKind::Lib),
        user("src/main.rs", FileKind::Main),
        user("src/handlers.rs", FileKind::Handlers),
        user(".gitignore", FileKind::Gitignore),
        user("deploy/kubernetes.yaml", FileKind::Kubernetes),
    ];
    files.extend(runtime::SOURCES.iter().map(|source| PlannedFile {
        path: format!("src/generated/runtime/{}", source.path),
        owner: Owner::Generator,
        kind: FileKind::Runtime(source.path),
    }));
    let initiations = protocol.initiations().next().is_some();
    let krate = krate(mapping, initiations);
    let mapped = krate.upstream.then(|| Mapped {
        upstream: mapping.upstream.clone(),
        currencies: mapping.currencies.clone(),
        operations: mapping.operations.clone(),
    });
    if mapped.is_some() {
        files.push(generated("src/generated/mapped.rs", FileKind::Mapped));
    }
    Plan {
        krate,
        files,
        mapped,
        field_lines: Vec::new(),
    }
}

/// A client for the provider is generated when the mapping maps operations or says how to
/// authenticate (hand-written handlers then get it ready to use).
fn has_client(mapping: &Mapping) -> bool {
    !mapping.operations.is_empty() || mapping.upstream.auth.is_some()
}

fn krate(mapping: &Mapping, initiations: bool) -> Crate {
    let upstream = &mapping.upstream;
    let mut settings = vec![SettingPlan {
        kind: SettingKind::Url,
        ..setting(
            "base_url",
            "Base URL of the provider's API (`upstream.base_url`).",
            &upstream.base_url,
        )
    }];
    let auth = upstream
        .auth
        .as_ref()
        .map(|auth| auth_plan(auth, &mut settings));
    let headers = upstream
        .headers
        .iter()
        .map(|(name, value)| {
            let field = format!("header_{}", names::snake(name));
            settings.push(SettingPlan {
                kind: SettingKind::Header(name.clone()),
                ..setting(
                    &field,
                    &format!("The `{name}` header sent to the provider (`upstream.headers`)."),
                    value,
                )
            });
            (name.clone(), field)
        })
        .collect();
    let features: Vec<FeatureLine> = runtime::manifest_table("features")
        .into_iter()
        .filter(|entry| entry.name != "default")
        .map(|entry| FeatureLine {
            name: entry.name,
            value: entry.value,
            comments: entry.comments,
        })
        .collect();
    let (dependencies, wanted_features) = dependencies(mapping, &features);
    // A crate the runtime builds only with a feature, named by the mapping for the user's
    // own code, turns that feature on.
    let has_client = has_client(mapping) || wanted_features.contains(runtime::PROVIDER_FEATURE);
    let default_features = [
        (true, runtime::TLS_FEATURE),
        (true, runtime::MIMALLOC_FEATURE),
        (has_client, runtime::PROVIDER_FEATURE),
        (
            initiations || wanted_features.contains(runtime::STORE_FEATURE),
            runtime::STORE_FEATURE,
        ),
        (uses_zones(mapping), runtime::ZONES_FEATURE),
    ]
    .into_iter()
    .filter_map(|(wanted, feature)| wanted.then_some(feature))
    .collect();
    let variables = variables(&settings);
    Crate {
        package: mapping.name.clone(),
        lib: names::snake(&mapping.name),
        settings,
        variables,
        dependencies,
        features,
        default_features,
        upstream: has_client,
        initiations,
        auth,
        headers,
        timeout_ms: upstream.timeout_ms,
        retry: upstream.retry.clone(),
        rate_limit: upstream.rate_limit,
    }
}

/// The runtime's dependencies with the mapping's added, and the features that build the
/// optional ones the mapping names (whose features it may extend).
fn dependencies(
    mapping: &Mapping,
    features: &[FeatureLine],
) -> (
    Vec<DependencyLine>,
    std::collections::BTreeSet<&'static str>,
) {
    let mut wanted = std::collections::BTreeSet::new();
    let mut lines: Vec<DependencyLine> = runtime::manifest_table("dependencies")
        .into_iter()
        .map(|entry| {
            let spec = match mapping.dependencies.get(&entry.name) {
                Some(own) if entry.optional() => {
                    let enabling = format!("\"dep:{}\"", entry.name);
                    for feature in features.iter().filter(|f| f.value.contains(&enabling)) {
                        if let Some(known) = [runtime::PROVIDER_FEATURE, runtime::STORE_FEATURE]
                            .into_iter()
                            .find(|known| *known == feature.name)
                        {
                            wanted.insert(known);
                        }
                    }
                    with_features(&entry.value, &own.features)
                }
                _ => entry.value,
            };
            DependencyLine {
                name: entry.name,
                spec,
                comments: entry.comments,
            }
        })
        .collect();
    let runtime_names: Vec<String> = lines.iter().map(|line| line.name.clone()).collect();
    lines.extend(
        mapping
            .dependencies
            .iter()
            .filter(|(name, _)| !runtime_names.contains(name))
            .map(user_dependency),
    );
    lines.sort_by(|a, b| a.name.cmp(&b.name));
    (lines, wanted)
}

/// Whether a time format of the mapping names an IANA zone (the runtime's `zones` feature).
fn uses_zones(mapping: &Mapping) -> bool {
    use crate::mapping::{Conversion, Expr, Source, TimeFormat};
    fn zoned(format: &TimeFormat) -> bool {
        matches!(format, TimeFormat::Zoned { .. })
    }
    fn expr(e: &Expr) -> bool {
        let converts = matches!(&e.conversion, Some(Conversion::Time(format)) if zoned(format));
        converts
            || match &e.source {
                Source::FirstOf(options) => options.iter().any(expr),
                Source::Each { fields, .. } => fields.iter().any(|f| expr(&f.value)),
                Source::Switch {
                    on, cases, default, ..
                } => {
                    expr(on)
                        || cases.iter().any(|(_, c)| expr(c))
                        || default.as_deref().is_some_and(expr)
                }
                _ => false,
            }
    }
    mapping.operations.values().any(|op| {
        op.fields.iter().any(|f| expr(&f.value))
            || op
                .list
                .as_ref()
                .and_then(|list| list.since.as_ref())
                .is_some_and(|since| zoned(&since.format))
    })
}

/// An inline dependency table with `extra` added to its `features` list.
fn with_features(spec: &str, extra: &[String]) -> String {
    let Some(start) = spec.find("features = [") else {
        return spec.to_owned();
    };
    let list_start = start + "features = [".len();
    let Some(length) = spec[list_start..].find(']') else {
        return spec.to_owned();
    };
    let mut names: Vec<String> = spec[list_start..list_start + length]
        .split(',')
        .map(|name| name.trim().trim_matches('"').to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    for feature in extra {
        if !names.contains(feature) {
            names.push(feature.clone());
        }
    }
    names.sort();
    let list: Vec<String> = names.iter().map(|name| toml_string(name)).collect();
    format!(
        "{}{}{}",
        &spec[..list_start],
        list.join(", "),
        &spec[list_start + length..]
    )
}

fn user_dependency((name, dependency): (&String, &crate::mapping::Dependency)) -> DependencyLine {
    let mut parts = vec![format!("version = {}", toml_string(&dependency.version))];
    if !dependency.default_features {
        parts.push("default-features = false".to_owned());
    }
    if !dependency.features.is_empty() {
        let features: Vec<String> = dependency.features.iter().map(|f| toml_string(f)).collect();
        parts.push(format!("features = [{}]", features.join(", ")));
    }
    let spec = if parts.len() == 1 {
        toml_string(&dependency.version)
    } else {
        format!("{{ {} }}", parts.join(", "))
    };
    DependencyLine {
        name: name.clone(),
        spec,
        comments: Vec::new(),
    }
}

/// Each variable once, with what every setting that reads it is for.
fn variables(settings: &[SettingPlan]) -> Vec<Variable> {
    let mut found: Vec<Variable> = Vec::new();
    for setting in settings {
        for name in setting.source.variables() {
            match found.iter_mut().find(|v| v.name == name) {
                Some(known) if !known.doc.contains(&setting.doc) => {
                    known.doc = format!("{} {}", known.doc, setting.doc);
                }
                Some(_) => {}
                None => found.push(Variable {
                    name: name.to_owned(),
                    doc: setting.doc.clone(),
                }),
            }
        }
    }
    found
}

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
        kind: if field == "token_url" {
            SettingKind::TokenUrl
        } else {
            SettingKind::Text
        },
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
        Auth::Login(login) => login_plan(login, settings),
    }
}

fn login_plan(login: &crate::mapping::Login, settings: &mut Vec<SettingPlan>) -> AuthPlan {
    settings.push(SettingPlan {
        kind: SettingKind::LoginUrl,
        ..setting(
            "login_url",
            "The provider's login endpoint (`upstream.auth.login`).",
            &login.url,
        )
    });
    let mut body = Vec::new();
    for (name, value) in &login.body {
        let base = format!("login_{}", names::snake(&name.replace('.', "_")));
        let mut field = base.clone();
        let mut n = 2;
        while settings.iter().any(|s| s.field == field) {
            field = format!("{base}_{n}");
            n += 1;
        }
        settings.push(SettingPlan {
            secret: true,
            ..setting(
                &field,
                &format!("The `{name}` of the provider's login call (`upstream.auth.login`)."),
                value,
            )
        });
        body.push((name.clone(), field));
    }
    let basic = login.basic.as_ref().map(|(username, password)| {
        settings.push(setting(
            "login_username",
            "The user name of the provider's login call (`upstream.auth.login.basic`).",
            username,
        ));
        settings.push(SettingPlan {
            secret: true,
            ..setting(
                "login_password",
                "The password of the provider's login call (`upstream.auth.login.basic`).",
                password,
            )
        });
        ("login_username".to_owned(), "login_password".to_owned())
    });
    AuthPlan::Login {
        method: login.method.clone(),
        url: "login_url".to_owned(),
        body,
        encoding: login.encoding,
        basic,
        token: login.token.clone(),
        expires_in: login.expires_in.clone(),
        expires_after_ms: login.expires_after_ms,
        header: login.header.clone(),
        prefix: login.prefix.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_series_follow_semver_compatibility() {
        assert!(same_release_series("0.12", "0.12"));
        assert!(same_release_series("^0.12.3", "0.12"));
        assert!(same_release_series("1.4", "1"));
        assert!(same_release_series("=1.0.2", "1"));
        assert!(!same_release_series("0.11", "0.12"));
        assert!(!same_release_series("2", "1"));
        assert!(!same_release_series("*", "1"));
    }

    #[test]
    fn features_are_added_to_an_inline_table_once_and_sorted() {
        let spec = r#"{ version = "0.12", default-features = false, features = ["json", "rustls-tls"], optional = true }"#;
        assert_eq!(
            with_features(spec, &["stream".to_owned(), "json".to_owned()]),
            r#"{ version = "0.12", default-features = false, features = ["json", "rustls-tls", "stream"], optional = true }"#
        );
        assert_eq!(with_features(r#""1""#, &["x".to_owned()]), r#""1""#);
    }

    #[test]
    fn runtime_dependencies_carry_their_versions() {
        let dependencies = runtime_dependencies();
        let reqwest = dependencies.iter().find(|d| d.name == "reqwest").unwrap();
        assert_eq!(reqwest.version, "0.12");
        assert!(reqwest.optional);
        let serde_json = dependencies
            .iter()
            .find(|d| d.name == "serde_json")
            .unwrap();
        assert_eq!(
            (serde_json.version.as_str(), serde_json.optional),
            ("1", false)
        );
    }
}
