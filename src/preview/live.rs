//! `--live`: the operation's first provider request, sent with the runtime's provider client
//! and the credentials connector.yaml reads from the environment, as the generated
//! `settings.rs` reads them.

use std::collections::BTreeMap;
use std::sync::Arc;

use connector_runtime::config::{Auth, BodyEncoding, Login, Piece, UpstreamSettings, Variables};
use connector_runtime::convert;
use connector_runtime::fields;
use connector_runtime::listing::{self, ListSpec, Source};
use connector_runtime::metrics::Metrics;
use connector_runtime::upstream::{Upstream, UpstreamRequest, UpstreamResponse};
use serde_json::Value;

use super::statics::{intern, steps};
use crate::mapping::{KeyLocation, RequestTemplate, SettingPart, Template, TemplatePart};
use crate::plan::{AuthPlan, Crate, SettingKind};

/// The provider settings from `env` (the process environment in use), or every problem
/// with them (a variable unset, a URL that is not one).
pub fn settings(
    krate: &Crate,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<UpstreamSettings, Vec<String>> {
    let mut problems = Vec::new();
    let wanted: Vec<(&'static str, &str)> = krate
        .variables
        .iter()
        .map(|variable| (intern(&variable.name), variable.doc.as_str()))
        .collect();
    let vars = Variables::read(env, &wanted, &mut problems);
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for setting in &krate.settings {
        let pieces: Vec<Piece> = setting
            .source
            .parts()
            .iter()
            .map(|part| match part {
                SettingPart::Text(text) => Piece::Text(intern(text)),
                SettingPart::Env(name) => Piece::Var(intern(name)),
            })
            .collect();
        let value = match &setting.kind {
            SettingKind::Url => vars.url(
                &format!("`upstream.{}`", setting.field),
                &pieces,
                &mut problems,
            ),
            SettingKind::TokenUrl => {
                let base = values.get("base_url").cloned().unwrap_or_default();
                vars.token_url(&base, &pieces, &mut problems)
            }
            SettingKind::LoginUrl => {
                let base = values.get("base_url").cloned().unwrap_or_default();
                vars.endpoint("`upstream.auth.login.url`", &base, &pieces, &mut problems)
            }
            SettingKind::Header(name) => vars.header(name, &pieces, &mut problems),
            SettingKind::Text => vars.text(&pieces),
        };
        values.insert(setting.field.as_str(), value);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let value = |field: &str| values.get(field).cloned().unwrap_or_default();
    let auth = match &krate.auth {
        None => Auth::None,
        Some(AuthPlan::Bearer { token }) => Auth::Bearer(value(token)),
        Some(AuthPlan::ApiKey {
            location,
            name,
            value: setting,
        }) => match location {
            KeyLocation::Header => Auth::Header {
                name: name.clone(),
                value: value(setting),
            },
            KeyLocation::Query => Auth::Query {
                name: name.clone(),
                value: value(setting),
            },
        },
        Some(AuthPlan::Basic { username, password }) => Auth::Basic {
            username: value(username),
            password: value(password),
        },
        Some(AuthPlan::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        }) => Auth::OAuth2 {
            token_url: value(token_url),
            client_id: value(client_id),
            client_secret: value(client_secret),
            scope: scope.clone(),
        },
        Some(AuthPlan::Login {
            method,
            url,
            body,
            encoding,
            basic,
            token,
            expires_in,
            expires_after_ms,
            header,
            prefix,
        }) => Auth::Login(Box::new(Login {
            method: method.clone(),
            url: value(url),
            body: body
                .iter()
                .map(|(name, field)| (name.clone(), value(field)))
                .collect(),
            encoding: match encoding {
                crate::mapping::BodyEncoding::Json => BodyEncoding::Json,
                crate::mapping::BodyEncoding::Form => BodyEncoding::Form,
            },
            basic: basic
                .as_ref()
                .map(|(username, password)| (value(username), value(password))),
            token: token.clone(),
            expires_in: expires_in.clone(),
            expires_after: expires_after_ms.map(std::time::Duration::from_millis),
            header: header.clone(),
            prefix: prefix.clone(),
        })),
    };
    Ok(UpstreamSettings {
        base_url: value("base_url"),
        auth,
        headers: krate
            .headers
            .iter()
            .map(|(name, field)| (name.clone(), value(field)))
            .collect(),
        timeout: std::time::Duration::from_millis(krate.timeout_ms),
        attempts: krate.retry.attempts,
        deadline: std::time::Duration::from_millis(krate.retry.deadline_ms),
        rate_limit: krate
            .rate_limit
            .map(|limit| connector_runtime::config::RateLimit {
                requests: limit.requests,
                per: std::time::Duration::from_millis(limit.per_ms),
                burst: limit.burst,
            }),
    })
}

/// The provider request of a template (`request_builder` in render/mapped.rs), with
/// parameters at their spec defaults and `{parent.x}` read from `parent`.
pub fn request(
    template: &RequestTemplate,
    parent: Option<&Value>,
    param: &dyn Fn(&str) -> String,
) -> UpstreamRequest {
    let text = |template: &Template, in_path: bool| {
        let mut text = String::new();
        for part in &template.parts {
            let value = match part {
                TemplatePart::Text(literal) => {
                    text.push_str(literal);
                    continue;
                }
                TemplatePart::Param(name) => param(name),
                TemplatePart::Parent(path) | TemplatePart::Value(path) => parent
                    .and_then(|parent| convert::lookup(parent, &steps(&path.steps)))
                    .and_then(convert::to_text)
                    .unwrap_or_default(),
            };
            if in_path {
                text.push_str(&fields::path_segment(&value));
            } else {
                text.push_str(&value);
            }
        }
        text
    };
    let pairs = |pairs: &[(String, Template)]| {
        pairs
            .iter()
            .map(|(key, value)| (key.clone(), text(value, false)))
            .collect()
    };
    UpstreamRequest {
        method: template.method.clone(),
        path: text(&template.path, true),
        query: pairs(&template.query),
        headers: pairs(&template.headers),
        ..Default::default()
    }
}

/// Whether a request template reads the `for_each` parent's record.
pub fn reads_parent(template: &RequestTemplate) -> bool {
    template.templates().any(|t| {
        t.parts
            .iter()
            .any(|part| matches!(part, TemplatePart::Parent(_)))
    })
}

/// Sends the first request of a walk (or the one request of a single-object operation).
pub fn send(
    settings: UpstreamSettings,
    operation: &str,
    spec: Option<&ListSpec>,
    request: UpstreamRequest,
    parent: Option<&Value>,
) -> Result<(UpstreamRequest, UpstreamResponse), String> {
    let request = match spec {
        Some(spec) => listing::first_request(
            spec,
            Source {
                request,
                parent: parent.cloned().map(Arc::new),
                ..Source::default()
            },
        )
        .map_err(|error| error.detail)?,
        None => request,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the HTTP client: {error}"))?;
    let upstream = Upstream::new(settings, Arc::new(Metrics::default()))?;
    let operation = intern(operation);
    let response = runtime
        .block_on(upstream.send(operation, &request))
        .map_err(|error| error.detail)?;
    Ok((request, response))
}

/// `GET https://api.example.com/v1/transactions?limit=100`, for messages (no credentials:
/// they travel in headers, or in a query parameter the client adds itself).
pub fn describe(base_url: &str, request: &UpstreamRequest) -> String {
    let url = request.url.clone().unwrap_or_else(|| {
        format!(
            "{}{}",
            base_url.trim_end_matches('/'),
            if request.path.starts_with('/') || request.path.is_empty() {
                request.path.clone()
            } else {
                format!("/{}", request.path)
            }
        )
    });
    let query: Vec<String> = request
        .query
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if query.is_empty() {
        format!("{} {url}", request.method)
    } else {
        format!("{} {url}?{}", request.method, query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Setting;
    use crate::plan::{SettingPlan, Variable};

    fn krate() -> Crate {
        Crate {
            package: "acme".into(),
            lib: "acme".into(),
            settings: vec![
                SettingPlan {
                    field: "base_url".into(),
                    doc: String::new(),
                    source: Setting::Env("ACME_URL".into()),
                    secret: false,
                    kind: SettingKind::Url,
                },
                SettingPlan {
                    field: "auth_token".into(),
                    doc: String::new(),
                    source: Setting::Env("ACME_TOKEN".into()),
                    secret: true,
                    kind: SettingKind::Text,
                },
            ],
            variables: vec![
                Variable {
                    name: "ACME_URL".into(),
                    doc: "the URL".into(),
                },
                Variable {
                    name: "ACME_TOKEN".into(),
                    doc: "the token".into(),
                },
            ],
            dependencies: Vec::new(),
            features: Vec::new(),
            default_features: Vec::new(),
            upstream: true,
            initiations: false,
            auth: Some(AuthPlan::Bearer {
                token: "auth_token".into(),
            }),
            headers: Vec::new(),
            timeout_ms: 1000,
            retry: Default::default(),
            rate_limit: None,
        }
    }

    #[test]
    fn settings_come_from_the_environment_and_name_what_is_missing() {
        let env = |name: &str| (name == "ACME_URL").then(|| "http://127.0.0.1:1".to_owned());
        let problems = settings(&krate(), &env).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("ACME_TOKEN")),
            "{problems:?}"
        );
        let env = |name: &str| match name {
            "ACME_URL" => Some("http://127.0.0.1:1".to_owned()),
            "ACME_TOKEN" => Some("t0ken".to_owned()),
            _ => None,
        };
        let settings = settings(&krate(), &env).unwrap();
        assert_eq!(settings.base_url, "http://127.0.0.1:1");
        assert!(settings.auth == Auth::Bearer("t0ken".into()));
    }

    #[test]
    fn describe_shows_method_url_and_query() {
        let request = UpstreamRequest {
            method: "GET".into(),
            path: "/v1/tx".into(),
            query: vec![("limit".into(), "100".into())],
            ..Default::default()
        };
        assert_eq!(
            describe("http://h/", &request),
            "GET http://h/v1/tx?limit=100"
        );
    }
}
