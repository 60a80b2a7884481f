//! The parts of a connector that do not depend on the spec's operations: errors, parameter
//! parsing, the HTTP runtime (config, auth, tracing, shutdown), and the settings the mapping
//! declares.

use proc_macro2::TokenStream;
use quote::quote;

use super::doc;
use crate::mapping::Setting;
use crate::names;
use crate::plan::{AuthPlan, Crate, Plan};

/// `pub mod` for every other file the plan puts in src/generated/.
pub fn generated_mod(plan: &Plan) -> TokenStream {
    let mut modules: Vec<&str> = plan
        .files
        .iter()
        .filter_map(|file| {
            file.path
                .strip_prefix("src/generated/")?
                .strip_suffix(".rs")
        })
        .filter(|module| *module != "mod")
        .collect();
    modules.sort_unstable();
    let modules = modules.into_iter().map(names::snake_ident);
    quote! {
        //! The protocol side of this connector, generated from the Generic connector spec and
        //! connector.yaml. `connector-gen generate` rewrites every file in this folder.
        #(#[rustfmt::skip] pub mod #modules;)*

        pub use api::Connector;
        pub use error::ConnectorError;
        pub use runtime::{Config, Context};
    }
}

pub fn settings(krate: &Crate) -> TokenStream {
    let fields = krate.settings.iter().map(|setting| {
        let ident = names::snake_ident(&setting.field);
        let source = match &setting.source {
            Setting::Env(var) => format!("{} Read from `{var}`.", setting.doc),
            Setting::Literal(value) => format!("{} Set in connector.yaml: `{value}`.", setting.doc),
        };
        let doc = doc(Some(&source));
        quote! { #doc pub #ident: String, }
    });
    let values = krate.settings.iter().map(|setting| {
        let ident = names::snake_ident(&setting.field);
        let value = match &setting.source {
            Setting::Env(var) => {
                let what = &setting.doc;
                quote!(super::runtime::required_env(env, #var, #what, problems))
            }
            Setting::Literal(value) => quote!(#value.to_owned()),
        };
        quote! { #ident: #value, }
    });
    let debug_fields = krate.settings.iter().map(|setting| {
        let (name, ident) = (&setting.field, names::snake_ident(&setting.field));
        if setting.secret {
            quote!(.field(#name, &"<redacted>"))
        } else {
            quote!(.field(#name, &self.#ident))
        }
    });
    let client = if krate.upstream {
        client_settings(krate)
    } else {
        TokenStream::new()
    };
    quote! {
        //! The provider settings declared in connector.yaml, read when the connector starts.

        /// How to reach the provider (`upstream` in connector.yaml).
        #[derive(Clone, PartialEq, Eq)]
        pub struct UpstreamSettings { #(#fields)* }

        impl UpstreamSettings {
            /// Reads every setting, recording each missing one in `problems`.
            pub(crate) fn from_lookup(env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Self {
                Self { #(#values)* }
            }

            #client
        }

        /// Credentials are never printed.
        impl std::fmt::Debug for UpstreamSettings {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("UpstreamSettings") #(#debug_fields)* .finish()
            }
        }
    }
}

fn client_settings(krate: &Crate) -> TokenStream {
    let field = |name: &str| {
        let ident = names::snake_ident(name);
        quote!(self.#ident.clone())
    };
    let auth = match &krate.auth {
        None => quote!(Auth::None),
        Some(AuthPlan::Bearer { token }) => {
            let token = field(token);
            quote!(Auth::Bearer(#token))
        }
        Some(AuthPlan::ApiKey {
            location,
            name,
            value,
        }) => {
            let value = field(value);
            match location {
                crate::mapping::KeyLocation::Header => {
                    quote!(Auth::Header { name: #name.to_owned(), value: #value })
                }
                crate::mapping::KeyLocation::Query => {
                    quote!(Auth::Query { name: #name.to_owned(), value: #value })
                }
            }
        }
        Some(AuthPlan::Basic { username, password }) => {
            let (username, password) = (field(username), field(password));
            quote!(Auth::Basic { username: #username, password: #password })
        }
        Some(AuthPlan::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        }) => {
            let (token_url, client_id, client_secret) =
                (field(token_url), field(client_id), field(client_secret));
            let scope = match scope {
                Some(scope) => quote!(Some(#scope.to_owned())),
                None => quote!(None),
            };
            quote!(Auth::OAuth2 { token_url: #token_url, client_id: #client_id, client_secret: #client_secret, scope: #scope })
        }
    };
    let headers = krate.headers.iter().map(|(name, settings_field)| {
        let value = field(settings_field);
        quote!((#name.to_owned(), #value))
    });
    let timeout = proc_macro2::Literal::u64_unsuffixed(krate.timeout_ms);
    let attempts = proc_macro2::Literal::u32_unsuffixed(krate.retry.attempts);
    let deadline = proc_macro2::Literal::u64_unsuffixed(krate.retry.deadline_ms);
    quote! {
        /// The provider client's settings: these values, and connector.yaml's auth, timeout and retries.
        pub(crate) fn client_settings(&self) -> super::upstream::ClientSettings {
            use super::upstream::Auth;
            super::upstream::ClientSettings {
                base_url: self.base_url.clone(),
                auth: #auth,
                headers: vec![#(#headers),*],
                timeout: std::time::Duration::from_millis(#timeout),
                attempts: #attempts,
                deadline: std::time::Duration::from_millis(#deadline),
            }
        }
    }
}

pub fn error() -> TokenStream {
    quote! {
        //! Errors the connector answers with, always as the protocol's `{"Title", "Detail"}` body.
        //! The status code tells Formance what to do: 429, 408, 421, 423, 425 and 5xx are retried,
        //! any other 4xx is reported as an invalid request and not retried.
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::{IntoResponse, Response};
        use serde::Serialize;

        /// An error answer: a status code and a human-readable detail.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct ConnectorError {
            pub status: StatusCode,
            pub title: String,
            pub detail: String,
            /// Seconds to wait before retrying, sent as `Retry-After`.
            pub retry_after: Option<u64>,
        }

        impl ConnectorError {
            /// An error with the status code's standard reason as its title.
            pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
                let title = status.canonical_reason().unwrap_or("Error").to_owned();
                Self { status, title, detail: detail.into(), retry_after: None }
            }

            /// 400: the request itself is invalid; Formance will not retry it.
            pub fn bad_request(detail: impl Into<String>) -> Self {
                Self::new(StatusCode::BAD_REQUEST, detail)
            }

            /// 401: the API key is missing or wrong.
            pub fn unauthorized(detail: impl Into<String>) -> Self {
                Self::new(StatusCode::UNAUTHORIZED, detail)
            }

            /// 404: the account, payout or transfer does not exist.
            pub fn not_found(detail: impl Into<String>) -> Self {
                Self::new(StatusCode::NOT_FOUND, detail)
            }

            /// 409: the request conflicts with an earlier one.
            pub fn conflict(detail: impl Into<String>) -> Self {
                Self::new(StatusCode::CONFLICT, detail)
            }

            /// 429: the provider is rate limiting; Formance retries later.
            pub fn rate_limited(detail: impl Into<String>, retry_after: Option<u64>) -> Self {
                Self { retry_after, ..Self::new(StatusCode::TOO_MANY_REQUESTS, detail) }
            }

            /// 500: something failed inside the connector.
            pub fn internal(detail: impl Into<String>) -> Self {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
            }

            /// 501: the connector does not implement this operation.
            pub fn not_implemented(operation: &str) -> Self {
                Self::new(StatusCode::NOT_IMPLEMENTED, format!("operation {operation} is not implemented by this connector"))
            }

            /// 502: the provider answered something the connector cannot use.
            pub fn bad_gateway(detail: impl Into<String>) -> Self {
                Self::new(StatusCode::BAD_GATEWAY, detail)
            }

            /// 503: the provider is unavailable; Formance retries later.
            pub fn unavailable(detail: impl Into<String>, retry_after: Option<u64>) -> Self {
                Self { retry_after, ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail) }
            }

            /// Replaces the title (the status code's reason by default).
            pub fn with_title(mut self, title: impl Into<String>) -> Self {
                self.title = title.into();
                self
            }
        }

        impl std::fmt::Display for ConnectorError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}: {}", self.status.as_u16(), self.title, self.detail)
            }
        }

        impl std::error::Error for ConnectorError {}

        #[derive(Serialize)]
        struct ErrorBody<'a> {
            #[serde(rename = "Title")]
            title: &'a str,
            #[serde(rename = "Detail")]
            detail: &'a str,
        }

        impl IntoResponse for ConnectorError {
            fn into_response(self) -> Response {
                let body = serde_json::to_vec(&ErrorBody { title: &self.title, detail: &self.detail }).unwrap_or_default();
                let content_type = HeaderValue::from_static("application/json");
                let mut response = (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
                if let Some(seconds) = self.retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                if self.status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                response
            }
        }
    }
}

pub fn validate() -> TokenStream {
    quote! {
        //! Parsing and checking of parameters and bodies. Every message names the parameter or
        //! field and says what was expected, so a 400 tells its reader what to fix.
        use std::fmt::Display;
        use std::str::FromStr;

        use chrono::{DateTime, NaiveDate, Utc};

        use super::error::ConnectorError;

        /// Checks the constraints of a request body that its type alone cannot express.
        pub trait Validate {
            /// `path` names this value inside the body (`""` for the body itself).
            fn validate(&self, path: &str) -> Result<(), ConnectorError>;
        }

        /// `parent.field`, or `field` at the top of the body.
        pub fn field_path(parent: &str, field: &str) -> String {
            if parent.is_empty() { field.to_owned() } else { format!("{parent}.{field}") }
        }

        /// A request's query string as decoded pairs.
        #[derive(Debug, Clone, Default)]
        pub struct Query {
            pairs: Vec<(String, String)>,
        }

        impl Query {
            pub fn parse(raw: Option<&str>) -> Self {
                let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
                Self { pairs }
            }

            /// The parameter's value; a parameter given twice is an error, not a guess.
            pub fn get(&self, name: &str) -> Result<Option<&str>, ConnectorError> {
                let mut values = self.pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str());
                let first = values.next();
                if values.next().is_some() {
                    return Err(ConnectorError::bad_request(format!("query parameter {name} is given more than once")));
                }
                Ok(first)
            }
        }

        pub fn required<'a>(name: &str, location: &str, raw: Option<&'a str>) -> Result<&'a str, ConnectorError> {
            raw.ok_or_else(|| ConnectorError::bad_request(format!("missing required {location} parameter {name}")))
        }

        pub fn parse_string(name: &str, raw: &str, minimum: Option<usize>, maximum: Option<usize>) -> Result<String, ConnectorError> {
            check_length(name, raw, minimum, maximum)?;
            Ok(raw.to_owned())
        }

        pub fn parse_integer<T: FromStr + PartialOrd + Display>(name: &str, raw: &str, minimum: Option<T>, maximum: Option<T>) -> Result<T, ConnectorError> {
            let value: T = raw
                .parse()
                .map_err(|_| ConnectorError::bad_request(format!("{name} must be an integer, got {raw:?}")))?;
            if let Some(minimum) = minimum {
                check_minimum(name, &value, &minimum)?;
            }
            if let Some(maximum) = maximum {
                check_maximum(name, &value, &maximum)?;
            }
            Ok(value)
        }

        pub fn parse_number(name: &str, raw: &str, minimum: Option<(f64, bool)>, maximum: Option<(f64, bool)>) -> Result<f64, ConnectorError> {
            let value = raw
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .ok_or_else(|| ConnectorError::bad_request(format!("{name} must be a number, got {raw:?}")))?;
            check_number(name, value, minimum, maximum)?;
            Ok(value)
        }

        pub fn parse_bool(name: &str, raw: &str) -> Result<bool, ConnectorError> {
            match raw {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ConnectorError::bad_request(format!("{name} must be true or false, got {raw:?}"))),
            }
        }

        /// RFC 3339 with any offset, converted to UTC. A `+` that arrived unencoded in a
        /// query string decodes as a space; it is taken back as the `+` it was.
        pub fn parse_date_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ConnectorError> {
            DateTime::parse_from_rfc3339(raw)
                .or_else(|error| if raw.contains(' ') { DateTime::parse_from_rfc3339(&raw.replace(' ', "+")) } else { Err(error) })
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    ConnectorError::bad_request(format!("{name} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z, got {raw:?}"))
                })
        }

        pub fn parse_date(name: &str, raw: &str) -> Result<NaiveDate, ConnectorError> {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map_err(|_| ConnectorError::bad_request(format!("{name} must be a date such as 2026-01-31, got {raw:?}")))
        }

        pub fn parse_enum<T: FromStr<Err = String>>(name: &str, raw: &str) -> Result<T, ConnectorError> {
            raw.parse().map_err(|error| ConnectorError::bad_request(format!("{name}: {error}")))
        }

        pub fn check_minimum<T: PartialOrd + Display>(name: &str, value: T, minimum: T) -> Result<(), ConnectorError> {
            if value < minimum {
                return Err(ConnectorError::bad_request(format!("{name} must be >= {minimum}, got {value}")));
            }
            Ok(())
        }

        pub fn check_maximum<T: PartialOrd + Display>(name: &str, value: T, maximum: T) -> Result<(), ConnectorError> {
            if value > maximum {
                return Err(ConnectorError::bad_request(format!("{name} must be <= {maximum}, got {value}")));
            }
            Ok(())
        }

        /// Bounds are `(value, exclusive)`.
        pub fn check_number(name: &str, value: f64, minimum: Option<(f64, bool)>, maximum: Option<(f64, bool)>) -> Result<(), ConnectorError> {
            if let Some((bound, exclusive)) = minimum
                && (value < bound || (exclusive && value == bound))
            {
                let op = if exclusive { ">" } else { ">=" };
                return Err(ConnectorError::bad_request(format!("{name} must be {op} {bound}, got {value}")));
            }
            if let Some((bound, exclusive)) = maximum
                && (value > bound || (exclusive && value == bound))
            {
                let op = if exclusive { "<" } else { "<=" };
                return Err(ConnectorError::bad_request(format!("{name} must be {op} {bound}, got {value}")));
            }
            Ok(())
        }

        pub fn check_length(name: &str, value: &str, minimum: Option<usize>, maximum: Option<usize>) -> Result<(), ConnectorError> {
            let length = value.chars().count();
            if minimum.is_some_and(|min| length < min) || maximum.is_some_and(|max| length > max) {
                let bounds = describe_bounds(minimum, maximum);
                return Err(ConnectorError::bad_request(format!("{name} must be {bounds} characters long, got {length}")));
            }
            Ok(())
        }

        pub fn check_items(name: &str, count: usize, minimum: Option<usize>, maximum: Option<usize>) -> Result<(), ConnectorError> {
            if minimum.is_some_and(|min| count < min) || maximum.is_some_and(|max| count > max) {
                let bounds = describe_bounds(minimum, maximum);
                return Err(ConnectorError::bad_request(format!("{name} must have {bounds} items, got {count}")));
            }
            Ok(())
        }

        fn describe_bounds(minimum: Option<usize>, maximum: Option<usize>) -> String {
            match (minimum, maximum) {
                (Some(min), Some(max)) => format!("{min} to {max}"),
                (Some(min), None) => format!("at least {min}"),
                (None, Some(max)) => format!("at most {max}"),
                (None, None) => "any number of".to_owned(),
            }
        }
    }
}

pub fn runtime(krate: &Crate) -> TokenStream {
    let package = &krate.package;
    let config = config();
    let http = http_runtime();
    let services = services(krate.upstream);
    quote! {
        //! Start-up and the HTTP plumbing every route shares: configuration from the
        //! environment, logging, authentication, request ids, body limits, panics, shutdown.
        use std::future::Future;
        use std::net::SocketAddr;
        use std::process::ExitCode;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::Instant;

        use axum::Router;
        use axum::body::Bytes;
        use axum::extract::{FromRequestParts, RawPathParams, Request, State};
        use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header, request::Parts};
        use axum::middleware::Next;
        use axum::response::{IntoResponse, Response};
        use serde::Serialize;
        use serde::de::DeserializeOwned;
        use subtle::ConstantTimeEq;
        use tracing::Instrument;

        use super::api::Connector;
        use super::error::ConnectorError;
        use super::server;
        use super::settings::UpstreamSettings;
        use super::validate::Query;
        use super::metrics::Metrics;

        const PACKAGE: &str = #package;

        /// Starts the connector: reads the configuration, sets up logging, and serves until
        /// SIGTERM or Ctrl-C. `make_connector` builds your `Connector` from the configuration.
        pub fn run<C: Connector>(make_connector: impl FnOnce(&Config) -> C) -> ExitCode {
            let config = match Config::from_env() {
                Ok(config) => config,
                Err(problems) => {
                    eprintln!("error: {PACKAGE} cannot start:");
                    for problem in problems {
                        eprintln!("  - {problem}");
                    }
                    return ExitCode::from(2);
                }
            };
            init_tracing(&config);
            std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "a handler panicked")));
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(serve(config, make_connector)),
                Err(error) => {
                    eprintln!("error: {PACKAGE} cannot start its runtime: {error}");
                    ExitCode::FAILURE
                }
            }
        }

        /// Binds `config.listen` and serves until a shutdown signal; in-flight requests finish.
        pub async fn serve<C: Connector>(config: Config, make_connector: impl FnOnce(&Config) -> C) -> ExitCode {
            let listener = match tokio::net::TcpListener::bind(config.listen).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(address = %config.listen, %error, "cannot listen");
                    return ExitCode::FAILURE;
                }
            };
            let address = listener.local_addr().unwrap_or(config.listen);
            let api_key = config.api_key.clone();
            let body_limit = config.body_limit;
            let connector = Arc::new(make_connector(&config));
            let services = match Services::start(config) {
                Ok(services) => services,
                Err(error) => {
                    tracing::error!(%error, "cannot start");
                    return ExitCode::FAILURE;
                }
            };
            let state = AppState { connector, services, api_key, body_limit };
            tracing::info!(%address, "connector listening");
            let served = axum::serve(listener, server::router(state)).with_graceful_shutdown(shutdown_signal()).await;
            match served {
                Ok(()) => {
                    tracing::info!("connector stopped");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    tracing::error!(%error, "server failed");
                    ExitCode::FAILURE
                }
            }
        }

        fn init_tracing(config: &Config) {
            use std::io::IsTerminal;
            let builder = tracing_subscriber::fmt()
                .with_max_level(config.log_level)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false);
            if config.log_json {
                builder.json().init();
            } else {
                builder.init();
            }
        }

        async fn shutdown_signal() {
            let ctrl_c = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let terminate = terminate_signal();
            let mut ctrl_c = std::pin::pin!(ctrl_c);
            let mut terminate = std::pin::pin!(terminate);
            std::future::poll_fn(|cx| {
                if ctrl_c.as_mut().poll(cx).is_ready() || terminate.as_mut().poll(cx).is_ready() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
        }

        #[cfg(unix)]
        async fn terminate_signal() {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut terminate) => {
                    terminate.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }

        #[cfg(not(unix))]
        async fn terminate_signal() {
            std::future::pending::<()>().await;
        }

        #config
        #services
        #http
    }
}

fn config() -> TokenStream {
    quote! {
        /// Everything the connector reads from its environment at start-up.
        #[derive(Debug, Clone)]
        pub struct Config {
            /// `CONNECTOR_LISTEN`: the address to serve on (default `127.0.0.1:8080`).
            pub listen: SocketAddr,
            /// `CONNECTOR_API_KEY`: the key Formance sends as `Authorization: Bearer <key>`.
            pub api_key: ApiKey,
            /// `CONNECTOR_LOG`: error, warn, info (default), debug or trace.
            pub log_level: tracing::Level,
            /// `CONNECTOR_LOG_FORMAT`: `text` (default) or `json`.
            pub log_json: bool,
            /// `CONNECTOR_BODY_LIMIT`: the largest request body accepted, in bytes (default 1 MiB).
            pub body_limit: usize,
            /// The provider settings declared in connector.yaml.
            pub upstream: UpstreamSettings,
        }

        impl Config {
            pub fn from_env() -> Result<Self, Vec<String>> {
                Self::from_lookup(&|name| std::env::var(name).ok())
            }

            /// Reads every setting through `env`, reporting all problems at once.
            pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
                let mut problems = Vec::new();
                let api_key = required_env(env, "CONNECTOR_API_KEY", "the API key Formance sends as `Authorization: Bearer <key>`", &mut problems);
                let listen = parse_env(env, "CONNECTOR_LISTEN", "127.0.0.1:8080", "an address such as 127.0.0.1:8080", &mut problems);
                let log_level = parse_env(env, "CONNECTOR_LOG", "info", "one of error, warn, info, debug, trace", &mut problems);
                let log_json = match env("CONNECTOR_LOG_FORMAT").as_deref().map(str::trim) {
                    None | Some("text") => false,
                    Some("json") => true,
                    Some(other) => {
                        problems.push(format!("CONNECTOR_LOG_FORMAT must be text or json, got {other:?}"));
                        false
                    }
                };
                let body_limit = parse_env(env, "CONNECTOR_BODY_LIMIT", "1048576", "a size in bytes", &mut problems);
                let upstream = UpstreamSettings::from_lookup(env, &mut problems);
                match (listen, log_level, body_limit) {
                    (Some(listen), Some(log_level), Some(body_limit)) if problems.is_empty() => Ok(Self {
                        listen,
                        api_key: ApiKey::new(api_key),
                        log_level,
                        log_json,
                        body_limit,
                        upstream,
                    }),
                    _ => Err(problems),
                }
            }
        }

        /// A required, non-empty environment variable; a missing one is recorded in `problems`.
        pub fn required_env(env: &dyn Fn(&str) -> Option<String>, name: &str, what: &str, problems: &mut Vec<String>) -> String {
            match env(name) {
                Some(value) if !value.trim().is_empty() => value,
                _ => {
                    problems.push(format!("{name} is not set: {what}"));
                    String::new()
                }
            }
        }

        fn parse_env<T: std::str::FromStr>(env: &dyn Fn(&str) -> Option<String>, name: &str, default: &str, expected: &str, problems: &mut Vec<String>) -> Option<T> {
            let raw = env(name).unwrap_or_else(|| default.to_owned());
            let parsed = raw.trim().parse().ok();
            if parsed.is_none() {
                problems.push(format!("{name} must be {expected}, got {raw:?}"));
            }
            parsed
        }

        /// The API key, compared in constant time and never printed.
        #[derive(Clone)]
        pub struct ApiKey(Arc<str>);

        impl ApiKey {
            pub fn new(key: String) -> Self {
                Self(Arc::from(key))
            }

            pub fn matches(&self, candidate: &str) -> bool {
                self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
            }
        }

        impl std::fmt::Debug for ApiKey {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("ApiKey(<redacted>)")
            }
        }
    }
}

fn http_runtime() -> TokenStream {
    quote! {
        /// What every handler shares.
        pub struct AppState<C> {
            pub connector: Arc<C>,
            pub services: Services,
            pub api_key: ApiKey,
            pub body_limit: usize,
        }

        impl<C> Clone for AppState<C> {
            fn clone(&self) -> Self {
                Self {
                    connector: Arc::clone(&self.connector),
                    services: self.services.clone(),
                    api_key: self.api_key.clone(),
                    body_limit: self.body_limit,
                }
            }
        }

        /// What every operation gets besides its parameters and body.
        #[derive(Clone)]
        pub struct Context {
            services: Services,
            request_id: Arc<str>,
        }

        impl Context {
            /// The configuration read at start-up, including the provider settings.
            pub fn config(&self) -> &Config {
                &self.services.config
            }

            /// This request's id, as logged and returned in `X-Request-Id`.
            pub fn request_id(&self) -> &str {
                &self.request_id
            }

            /// The connector's counters, served at `/metrics`.
            pub fn metrics(&self) -> &Metrics {
                &self.services.metrics
            }
        }

        impl std::fmt::Debug for Context {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Context").field("request_id", &self.request_id).finish_non_exhaustive()
            }
        }

        /// The id `trace_request` gave a request, carried in its extensions.
        #[derive(Debug, Clone)]
        struct RequestId(Arc<str>);

        /// `/healthz`, JSON 404s and request tracing around the protocol routes.
        pub fn with_common_routes(protocol: Router, metrics: Arc<Metrics>) -> Router {
            let scrape = Arc::clone(&metrics);
            Router::new()
                .route("/healthz", axum::routing::get(healthz))
                .route("/metrics", axum::routing::get(move || async move { render_metrics(&scrape) }))
                .method_not_allowed_fallback(method_not_allowed)
                .merge(protocol)
                .fallback(not_found)
                .layer(axum::middleware::from_fn_with_state(metrics, trace_request))
        }

        fn render_metrics(metrics: &Metrics) -> Response {
            let content_type = HeaderValue::from_static("text/plain; version=0.0.4");
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], metrics.render()).into_response()
        }

        /// Which operation answered, so that request metrics can say.
        #[derive(Debug, Clone, Copy)]
        pub struct OperationLabel(pub &'static str);

        async fn healthz() -> Response {
            let content_type = HeaderValue::from_static("application/json");
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], r#"{"status":"ok"}"#).into_response()
        }

        pub async fn not_found(method: Method, uri: Uri) -> ConnectorError {
            ConnectorError::not_found(format!("no route for {method} {}", uri.path()))
        }

        pub async fn method_not_allowed(method: Method, uri: Uri) -> ConnectorError {
            ConnectorError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
        }

        /// Lets a request through only with `Authorization: Bearer <CONNECTOR_API_KEY>`.
        pub async fn require_api_key(State(api_key): State<ApiKey>, request: Request, next: Next) -> Response {
            let token = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(bearer_token);
            match token {
                Some(token) if api_key.matches(token) => next.run(request).await,
                Some(_) => ConnectorError::unauthorized("the API key is not valid").into_response(),
                None => ConnectorError::unauthorized("send the API key as `Authorization: Bearer <key>`").into_response(),
            }
        }

        fn bearer_token(header: &str) -> Option<&str> {
            let (scheme, token) = header.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }

        /// Gives every request an id (the caller's `X-Request-Id`, or a new one), a span that
        /// carries it through every log line, and one log line when it is answered.
        pub async fn trace_request(State(metrics): State<Arc<Metrics>>, mut request: Request, next: Next) -> Response {
            let id = request_id(request.headers());
            request.extensions_mut().insert(RequestId(Arc::from(id.as_str())));
            let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
            let started = Instant::now();
            let mut response = next.run(request).instrument(span.clone()).await;
            let status = response.status().as_u16();
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            let operation = response.extensions().get::<OperationLabel>().map_or("other", |label| label.0);
            metrics.request(operation, status);
            span.in_scope(|| {
                if status >= 500 {
                    tracing::warn!(status, elapsed_ms, "request failed");
                } else {
                    tracing::info!(status, elapsed_ms, "request served");
                }
            });
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        }

        fn request_id(headers: &HeaderMap) -> String {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let given = headers
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()));
            match given {
                Some(id) => id.to_owned(),
                None => format!("{:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)),
            }
        }

        /// A request taken apart: its head, decoded path parameters, and body (within the limit).
        pub struct RequestInput {
            parts: Parts,
            request_id: Arc<str>,
            path: Vec<(String, String)>,
            body: Bytes,
        }

        impl RequestInput {
            pub async fn read(request: Request, body_limit: usize) -> Result<Self, ConnectorError> {
                let (mut parts, body) = request.into_parts();
                let path = RawPathParams::from_request_parts(&mut parts, &())
                    .await
                    .map_err(|rejection| ConnectorError::bad_request(format!("invalid path: {rejection}")))?
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect();
                let too_large = || {
                    ConnectorError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than {body_limit} bytes"))
                };
                let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
                if declared.is_some_and(|length| length > body_limit) {
                    return Err(too_large());
                }
                let body = axum::body::to_bytes(body, body_limit).await.map_err(|error| {
                    let limit_hit = std::error::Error::source(&error).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
                    if limit_hit { too_large() } else { ConnectorError::bad_request(format!("could not read the request body: {error}")) }
                })?;
                let request_id = parts.extensions.get::<RequestId>().map_or_else(|| Arc::from(""), |id| Arc::clone(&id.0));
                Ok(Self { parts, request_id, path, body })
            }

            /// The operation's context: configuration, services and request id.
            pub fn context(&self, services: &Services) -> Context {
                Context { services: services.clone(), request_id: Arc::clone(&self.request_id) }
            }

            pub fn query(&self) -> Query {
                Query::parse(self.parts.uri.query())
            }

            pub fn path_param(&self, name: &str) -> Option<&str> {
                self.path.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
            }

            pub fn header(&self, name: &str) -> Result<Option<&str>, ConnectorError> {
                match self.parts.headers.get(name) {
                    None => Ok(None),
                    Some(value) => value
                        .to_str()
                        .map(Some)
                        .map_err(|_| ConnectorError::bad_request(format!("header {name} must be visible ASCII"))),
                }
            }

            /// The JSON body; 415 unless it is sent as JSON, 400 naming the field that is wrong.
            pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
                self.optional_json_body()?.ok_or_else(|| ConnectorError::bad_request("a JSON request body is required"))
            }

            /// Like `json_body`, with an empty body meaning `None`.
            pub fn optional_json_body<T: DeserializeOwned>(&self) -> Result<Option<T>, ConnectorError> {
                if self.body.is_empty() {
                    return Ok(None);
                }
                if !self.is_json() {
                    return Err(ConnectorError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "the request body must be sent with Content-Type: application/json",
                    ));
                }
                let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
                let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                    let path = error.path().to_string();
                    let inner = error.into_inner();
                    if path == "." {
                        ConnectorError::bad_request(format!("invalid request body: {inner}"))
                    } else {
                        ConnectorError::bad_request(format!("invalid request body: {path}: {inner}"))
                    }
                })?;
                deserializer
                    .end()
                    .map_err(|error| ConnectorError::bad_request(format!("invalid request body: {error}")))?;
                Ok(Some(value))
            }

            fn is_json(&self) -> bool {
                let Some(content_type) = self.parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
                    return false;
                };
                let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
            }
        }

        /// Runs a `Connector` method on its own task, so that a panic in it becomes a 500 for
        /// this request instead of a dropped connection, and the server keeps serving.
        pub async fn call_connector<T: Send + 'static>(
            operation: &'static str,
            call: impl Future<Output = Result<T, ConnectorError>> + Send + 'static,
        ) -> Result<T, ConnectorError> {
            match tokio::spawn(call.in_current_span()).await {
                Ok(result) => result,
                Err(error) => {
                    tracing::error!(operation, panicked = error.is_panic(), "handler did not finish");
                    Err(ConnectorError::internal(format!("the {operation} handler failed unexpectedly; see the connector's logs")))
                }
            }
        }

        /// The success body as JSON with the spec's status code, or the error.
        pub fn respond<T: Serialize>(operation: &'static str, status: u16, result: Result<T, ConnectorError>) -> Response {
            let body = result.and_then(|value| {
                serde_json::to_vec(&value).map_err(|error| ConnectorError::internal(format!("cannot encode the response: {error}")))
            });
            let mut response = match body {
                Ok(body) => {
                    let content_type = HeaderValue::from_static("application/json");
                    (status_code(status), [(header::CONTENT_TYPE, content_type)], body).into_response()
                }
                Err(error) => error_response(error),
            };
            response.extensions_mut().insert(OperationLabel(operation));
            response
        }

        /// For operations whose success has no body.
        pub fn respond_empty(operation: &'static str, status: u16, result: Result<(), ConnectorError>) -> Response {
            let mut response = match result {
                Ok(()) => status_code(status).into_response(),
                Err(error) => error_response(error),
            };
            response.extensions_mut().insert(OperationLabel(operation));
            response
        }

        fn status_code(status: u16) -> StatusCode {
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
        }

        fn error_response(error: ConnectorError) -> Response {
            if error.status.is_server_error() {
                tracing::warn!(status = error.status.as_u16(), detail = %error.detail, "answering with an error");
            } else {
                tracing::debug!(status = error.status.as_u16(), detail = %error.detail, "answering with an error");
            }
            error.into_response()
        }
    }
}

/// `Services`: what the runtime builds once at start-up and every request shares.
fn services(upstream: bool) -> TokenStream {
    let (fields, build, clone, accessors) = if upstream {
        (
            quote! {
                upstream: Arc<super::upstream::Upstream>,
                lists: Arc<super::mapped::Lists>,
            },
            quote! {
                let upstream = super::upstream::Upstream::new(config.upstream.client_settings(), Arc::clone(&metrics))?;
                Ok(Self { config: Arc::new(config), metrics, upstream: Arc::new(upstream), lists: Arc::default() })
            },
            quote!(upstream: Arc::clone(&self.upstream), lists: Arc::clone(&self.lists),),
            quote! {
                impl Context {
                    /// The provider's API client: base URL, authentication, retries and error
                    /// classes as connector.yaml says.
                    pub fn upstream(&self) -> &super::upstream::Upstream {
                        &self.services.upstream
                    }

                    /// The mapped list operations' windows.
                    pub fn lists(&self) -> &super::mapped::Lists {
                        &self.services.lists
                    }
                }
            },
        )
    } else {
        (
            TokenStream::new(),
            quote!(Ok(Self {
                config: Arc::new(config),
                metrics
            })),
            TokenStream::new(),
            TokenStream::new(),
        )
    };
    quote! {
        /// What the runtime builds once at start-up and every request shares.
        pub struct Services {
            config: Arc<Config>,
            metrics: Arc<Metrics>,
            #fields
        }

        impl Services {
            fn start(config: Config) -> Result<Self, String> {
                let metrics = Arc::new(Metrics::default());
                #build
            }

            pub fn metrics(&self) -> Arc<Metrics> {
                Arc::clone(&self.metrics)
            }
        }

        impl Clone for Services {
            fn clone(&self) -> Self {
                Self { config: Arc::clone(&self.config), metrics: Arc::clone(&self.metrics), #clone }
            }
        }

        #accessors
    }
}
