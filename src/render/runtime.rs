//! runtime.rs of a generated crate: start-up and the HTTP plumbing every route shares
//! (configuration, logging, authentication, request ids, body limits, panics, shutdown).

use proc_macro2::TokenStream;
use quote::quote;

use crate::plan::Crate;

pub fn render(krate: &Crate) -> TokenStream {
    let package = &krate.package;
    let config = config(krate.initiations);
    let services = services(krate.upstream, krate.initiations);
    let http = http_runtime(&context(krate.initiations));
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
            let services = match Services::start(config).await {
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

fn config(initiations: bool) -> TokenStream {
    let (store_field, store_read, store_init) = if initiations {
        (
            quote! {
                /// Where initiations are recorded: `DATABASE_URL` or `CONNECTOR_STORE`.
                pub store: super::store::StoreSettings,
            },
            quote!(let store = super::store::StoreSettings::from_lookup(env, &mut problems);),
            quote!(store,),
        )
    } else {
        (TokenStream::new(), TokenStream::new(), TokenStream::new())
    };
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
            #store_field
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
                #store_read
                match (listen, log_level, body_limit) {
                    (Some(listen), Some(log_level), Some(body_limit)) if problems.is_empty() => Ok(Self {
                        listen,
                        api_key: ApiKey::new(api_key),
                        log_level,
                        log_json,
                        body_limit,
                        upstream,
                        #store_init
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

fn http_runtime(context: &TokenStream) -> TokenStream {
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

        #context

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
                Context::new(services.clone(), Arc::clone(&self.request_id))
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
            finished(operation, tokio::spawn(call.in_current_span()).await)
        }

        /// A `Connector` method's task as it ended: its result, or a 500 when it panicked or
        /// was stopped.
        pub fn finished<T>(operation: &'static str, joined: Result<Result<T, ConnectorError>, tokio::task::JoinError>) -> Result<T, ConnectorError> {
            joined.unwrap_or_else(|error| {
                tracing::error!(operation, panicked = error.is_panic(), "handler did not finish");
                Err(ConnectorError::internal(format!("the {operation} handler failed unexpectedly; see the connector's logs")))
            })
        }

        /// The success body as JSON with the spec's status code, or the error.
        pub fn respond<T: Serialize>(operation: &'static str, status: u16, result: Result<T, ConnectorError>) -> Response {
            let encoded = result.and_then(|value| {
                serde_json::to_vec(&value)
                    .map(|body| (status, body))
                    .map_err(|error| ConnectorError::internal(format!("cannot encode the response: {error}")))
            });
            respond_encoded(operation, encoded)
        }

        /// A JSON body already encoded, with its status code, or the error.
        pub fn respond_encoded(operation: &'static str, result: Result<(u16, Vec<u8>), ConnectorError>) -> Response {
            let mut response = match result {
                Ok((status, body)) => {
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

/// `Context`: what every operation gets besides its parameters and body.
fn context(initiations: bool) -> TokenStream {
    let (field, init, accessors) = if initiations {
        (
            quote!(initiation: Option<Arc<super::initiation::Initiation>>,),
            quote!(initiation: None,),
            quote! {
                /// The attempt this request makes, when it initiates a payment.
                pub fn initiation(&self) -> Option<&super::initiation::Initiation> {
                    self.initiation.as_deref()
                }

                pub(crate) fn with_initiation(mut self, initiation: super::initiation::Initiation) -> Self {
                    self.initiation = Some(Arc::new(initiation));
                    self
                }
            },
        )
    } else {
        (TokenStream::new(), TokenStream::new(), TokenStream::new())
    };
    quote! {
        /// What every operation gets besides its parameters and body.
        #[derive(Clone)]
        pub struct Context {
            services: Services,
            request_id: Arc<str>,
            #field
        }

        impl Context {
            fn new(services: Services, request_id: Arc<str>) -> Self {
                Self { services, request_id, #init }
            }

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

            /// What every request shares.
            pub fn services(&self) -> &Services {
                &self.services
            }

            #accessors
        }
    }
}

/// `Services`: what the runtime builds once at start-up and every request shares.
fn services(upstream: bool, initiations: bool) -> TokenStream {
    let (store_field, store_open, store_value, store_clone, store_accessors) = if initiations {
        (
            quote! {
                store: Arc<super::store::Store>,
                instance: Arc<str>,
            },
            quote!(let store = super::store::Store::open(&config.store).await?;),
            quote!(store: Arc::new(store), instance: Arc::from(instance_id()),),
            quote!(store: Arc::clone(&self.store), instance: Arc::clone(&self.instance),),
            quote! {
                /// The record of payment initiations.
                pub fn store(&self) -> &super::store::Store {
                    &self.store
                }

                /// This process, as the owner of the initiations it works on.
                pub fn instance(&self) -> &str {
                    &self.instance
                }
            },
        )
    } else {
        Default::default()
    };
    let instance = if initiations {
        quote! {
            /// Unique among the processes sharing a store: host, process id and start time.
            fn instance_id() -> String {
                let host = std::env::var("HOSTNAME").unwrap_or_default();
                let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                format!("{host}/{}/{started:x}", std::process::id())
            }
        }
    } else {
        TokenStream::new()
    };
    let (fields, build, clone, accessors) = if upstream {
        (
            quote! {
                upstream: Arc<super::upstream::Upstream>,
                lists: Arc<super::mapped::Lists>,
            },
            quote! {
                let upstream = super::upstream::Upstream::new(config.upstream.client_settings(), Arc::clone(&metrics))?;
                #store_open
                Ok(Self { config: Arc::new(config), metrics, upstream: Arc::new(upstream), lists: Arc::default(), #store_value })
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
            quote! {
                #store_open
                Ok(Self { config: Arc::new(config), metrics, #store_value })
            },
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
            #store_field
        }

        impl Services {
            async fn start(config: Config) -> Result<Self, String> {
                let metrics = Arc::new(Metrics::default());
                #build
            }

            pub fn metrics(&self) -> Arc<Metrics> {
                Arc::clone(&self.metrics)
            }

            #store_accessors
        }

        impl Clone for Services {
            fn clone(&self) -> Self {
                Self { config: Arc::clone(&self.config), metrics: Arc::clone(&self.metrics), #clone #store_clone }
            }
        }

        #accessors
        #instance
    }
}
