//! Start-up and the HTTP plumbing every route shares: logging, authentication, request
//! ids, `/healthz`, `/readyz` and `/metrics`, JSON 404 and 405 answers, graceful shutdown.

use std::future::{Future, IntoFuture};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tracing::Instrument;

use super::config::{Config, Env, UpstreamSettings};
use super::context::{RequestId, Services};
use super::error::ConnectorError;
use super::metrics::Metrics;

/// What the generated code tells the runtime about one connector: its name, the provider
/// settings connector.yaml declares, and the protocol's routes.
pub trait App: Send + Sync + Sized + 'static {
    /// The crate's name, for messages.
    const PACKAGE: &'static str;

    /// Reads the provider settings from the environment, recording what is missing.
    fn upstream_settings(env: Env, problems: &mut Vec<String>) -> UpstreamSettings;

    /// Every protocol route, each labelled with its operation (see [`operation`]), serving
    /// `connector`.
    fn routes(connector: Arc<Self>, services: Services) -> Router;

    /// The connector.yaml line and provider path of each mapped list field, so that a list
    /// stuck on a record names what to fix.
    fn field_sources() -> &'static [super::health::FieldSource] {
        &[]
    }
}

/// What every route shares: the connector (often a `dyn` trait object, so that the routes
/// are compiled once) and the services.
pub struct AppState<C: ?Sized> {
    pub connector: Arc<C>,
    pub services: Services,
}

impl<C: ?Sized> Clone for AppState<C> {
    fn clone(&self) -> Self {
        Self {
            connector: Arc::clone(&self.connector),
            services: self.services.clone(),
        }
    }
}

impl<C: ?Sized> FromRef<AppState<C>> for Services {
    fn from_ref(state: &AppState<C>) -> Self {
        state.services.clone()
    }
}

impl<C: ?Sized> FromRef<AppState<C>> for Arc<C> {
    fn from_ref(state: &AppState<C>) -> Self {
        Arc::clone(&state.connector)
    }
}

/// Starts the connector: reads the configuration, sets up logging, and serves until
/// SIGTERM or Ctrl-C. `make_connector` builds your connector from the configuration.
pub fn run<A: App>(make_connector: impl FnOnce(&Config) -> A) -> ExitCode {
    let config = match Config::from_env(A::upstream_settings) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("error: {} cannot start:", A::PACKAGE);
            for problem in problems {
                eprintln!("  - {problem}");
            }
            return ExitCode::from(2);
        }
    };
    init_tracing(&config, A::PACKAGE);
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "a handler panicked");
        super::logs::flush();
    }));
    let code = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(serve(config, make_connector)),
        Err(error) => {
            eprintln!("error: {} cannot start its runtime: {error}", A::PACKAGE);
            ExitCode::FAILURE
        }
    };
    #[cfg(feature = "otel")]
    super::otel::shutdown();
    super::logs::flush();
    code
}

/// Binds `config.listen` and serves (HTTPS when `config.tls` says so) until a shutdown
/// signal; in-flight requests then have `config.drain_timeout` to finish.
pub async fn serve<A: App>(config: Config, make_connector: impl FnOnce(&Config) -> A) -> ExitCode {
    #[cfg(feature = "tls")]
    let tls = match config.tls.clone().map(super::tls::Tls::load).transpose() {
        Ok(tls) => tls.map(Arc::new),
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(address = %config.listen, %error, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(config.listen);
    let drain_timeout = config.drain_timeout;
    #[cfg(feature = "provider")]
    super::listing::set_window_memory(config.window_memory);
    let connector = Arc::new(make_connector(&config));
    let services = match Services::start(config).await {
        Ok(services) => services,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    services.metrics().set_field_sources(A::field_sources());
    let metrics = Arc::clone(services.metrics());
    let router = router(A::routes(connector, services.clone()), services);
    let stopping = Arc::new(tokio::sync::Notify::new());
    let shutdown = {
        let stopping = Arc::clone(&stopping);
        async move {
            shutdown_signal().await;
            metrics.set_draining();
            stopping.notify_one();
        }
    };
    let plain = |listener, router, shutdown| -> BoxFuture<'static, std::io::Result<()>> {
        tracing::info!(%address, scheme = "http", "connector listening");
        Box::pin(
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .into_future(),
        )
    };
    #[cfg(feature = "tls")]
    let served = match tls {
        Some(tls) => {
            super::tls::reload_on_hangup(Arc::clone(&tls));
            let mutual_tls = tls.mutual();
            let listener = match super::tls::TlsListener::new(listener, tls) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, "cannot listen");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(%address, scheme = "https", mutual_tls, "connector listening");
            Box::pin(
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .into_future(),
            )
        }
        None => plain(listener, router, shutdown),
    };
    #[cfg(not(feature = "tls"))]
    let served = plain(listener, router, shutdown);
    let mut served = tokio::spawn(served);
    let joined = match first(&mut served, stopping.notified()).await {
        Either::Left(joined) => joined,
        Either::Right(()) => match tokio::time::timeout(drain_timeout, &mut served).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::warn!(
                    drain_timeout_ms = drain_timeout.as_millis() as u64,
                    "requests still in flight after CONNECTOR_DRAIN_TIMEOUT; stopping anyway"
                );
                return ExitCode::SUCCESS;
            }
        },
    };
    match joined {
        Ok(Ok(())) => {
            tracing::info!("connector stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

enum Either<L, R> {
    Left(L),
    Right(R),
}

/// Whichever of two futures finishes first.
async fn first<L: Future, R: Future>(left: L, right: R) -> Either<L::Output, R::Output> {
    let mut left = std::pin::pin!(left);
    let mut right = std::pin::pin!(right);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(value) = left.as_mut().poll(cx) {
            return std::task::Poll::Ready(Either::Left(value));
        }
        right.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

/// The protocol routes behind the API key, with `/healthz`, `/metrics`, JSON 404 and 405
/// answers and request tracing around them.
pub fn router(protocol: Router, services: Services) -> Router {
    let metrics = Arc::clone(services.metrics());
    let scrape = Arc::clone(&metrics);
    let protocol = protocol
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            services,
            require_api_key,
        ));
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route(
            "/readyz",
            axum::routing::get({
                let metrics = Arc::clone(&metrics);
                move || async move { readyz(&metrics) }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || async move { render_metrics(&scrape) }),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .merge(protocol)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(metrics, trace_request))
}

/// Labels every answer of a route with its operation, for the request metrics; rejected
/// parameters and bodies count for the operation too.
pub fn operation<S>(route: MethodRouter<S>, operation: &'static str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route.layer(axum::middleware::map_response(
        move |mut response: Response| async move {
            response.extensions_mut().insert(OperationLabel(operation));
            response
        },
    ))
}

/// Which operation answered, so that request metrics can say.
#[derive(Debug, Clone, Copy)]
struct OperationLabel(&'static str);

fn init_tracing(config: &Config, package: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(super::logs::Stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let fmt = if config.log_json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let registry = tracing_subscriber::registry().with(fmt).with(
        tracing_subscriber::filter::LevelFilter::from_level(config.log_level),
    );
    #[cfg(feature = "otel")]
    let registry = registry.with(super::otel::layer(package));
    #[cfg(not(feature = "otel"))]
    let _ = package;
    registry.init();
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

fn render_metrics(metrics: &Metrics) -> Response {
    let content_type =
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        metrics.render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    let content_type = HeaderValue::from_static("application/json");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// Ready for Formance unless a list is stuck on a record the mapping cannot convert (see
/// [`super::health`]).
fn readyz(metrics: &Metrics) -> Response {
    let (status, body) = super::health::readiness(metrics);
    let content_type = HeaderValue::from_static("application/json");
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        [(header::CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> ConnectorError {
    ConnectorError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ConnectorError {
    ConnectorError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Lets a request through only with `Authorization: Bearer <CONNECTOR_API_KEY>`.
async fn require_api_key(
    State(services): State<Services>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match token.map(|token| services.config().api_key.index_of(token)) {
        Some(Some(index)) => {
            // Which key of CONNECTOR_API_KEY was used, never the key: an operator rotating
            // keys sees when the old one is no longer sent.
            tracing::Span::current().record("key", index);
            services.metrics().api_key_used(index);
            next.run(request).await
        }
        Some(None) => ConnectorError::unauthorized("the API key is not valid").into_response(),
        None => ConnectorError::unauthorized("send the API key as `Authorization: Bearer <key>`")
            .into_response(),
    }
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Gives every request an id (the caller's `X-Request-Id`, or a new one), a span that
/// carries it through every log line, and one log line when it is answered.
async fn trace_request(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request_id(request.headers());
    request
        .extensions_mut()
        .insert(RequestId(Arc::from(id.as_str())));
    #[cfg(not(feature = "otel"))]
    let span = tracing::info_span!(
        "request", id = %id, method = %request.method(), path = %request.uri().path(),
        key = tracing::field::Empty
    );
    #[cfg(feature = "otel")]
    let span = {
        let span = tracing::info_span!(
            "request", id = %id, method = %request.method(), path = %request.uri().path(),
            key = tracing::field::Empty,
            otel.name = %format!("{} {}", request.method(), request.uri().path()),
            otel.kind = "server",
            http.response.status_code = tracing::field::Empty,
        );
        super::otel::continue_trace(&span, request.headers());
        span
    };
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let operation = response
        .extensions()
        .get::<OperationLabel>()
        .map_or("other", |label| label.0);
    metrics.request(operation, status);
    #[cfg(feature = "otel")]
    span.record("http.response.status_code", status);
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
        None => format!(
            "{:x}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

/// A boxed future, as a `dyn` connector's methods return them.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a read-only connector method (a list, a balance) in the request's own task: a
/// panic in it becomes a 500 for this request instead of a dropped connection, and a caller
/// that hangs up stops it. Not moving the call to a task of its own saves that task's
/// hand-over, which a request that does little else would pay for in latency.
pub async fn call_read<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    let mut call = std::pin::pin!(call);
    let outcome = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(Ok(result)),
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    })
    .await;
    outcome.unwrap_or_else(|()| Err(handler_failed(operation, true)))
}

/// Runs a connector method on its own task, so that a panic in it becomes a 500 for this
/// request instead of a dropped connection, the server keeps serving, and a caller that
/// hangs up does not stop a change to the provider half-way.
pub async fn call_connector<T: Send + 'static>(
    operation: &'static str,
    call: impl Future<Output = Result<T, ConnectorError>> + Send + 'static,
) -> Result<T, ConnectorError> {
    finished(operation, tokio::spawn(call.in_current_span()).await)
}

/// A connector method's task as it ended: its result, or a 500 when it panicked or was
/// stopped.
pub fn finished<T>(
    operation: &'static str,
    joined: Result<Result<T, ConnectorError>, tokio::task::JoinError>,
) -> Result<T, ConnectorError> {
    joined.unwrap_or_else(|error| Err(handler_failed(operation, error.is_panic())))
}

/// The 500 of a handler that panicked or was stopped, logged.
fn handler_failed(operation: &str, panicked: bool) -> ConnectorError {
    tracing::error!(operation, panicked, "handler did not finish");
    ConnectorError::internal(format!(
        "the {operation} handler failed unexpectedly; see the connector's logs"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testing::block_on;
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively_and_trimmed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn request_ids_are_taken_when_printable_and_short() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-request-id", HeaderValue::from_str(value).unwrap());
            request_id(&headers)
        };
        assert_eq!(with("abc-123"), "abc-123");
        let long = "x".repeat(129);
        assert_ne!(with(&long), long);
        assert_ne!(with("has space"), "has space");
        let fresh = request_id(&HeaderMap::new());
        assert!(
            fresh.starts_with(&format!("{:x}-", std::process::id())),
            "{fresh}"
        );
        assert_ne!(fresh, request_id(&HeaderMap::new()));
    }

    #[test]
    fn a_panicking_task_becomes_a_500_naming_the_operation() {
        block_on(async {
            let error = call_connector::<()>("getAccounts", async { panic!("boom") })
                .await
                .unwrap_err();
            assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(error.detail.contains("getAccounts"), "{}", error.detail);
            let fine = call_connector("getAccounts", async { Ok(7) }).await;
            assert_eq!(fine, Ok(7));
        });
    }

    #[test]
    fn a_read_that_panics_after_waiting_becomes_a_500_naming_the_operation() {
        block_on(async {
            let error = call_read::<()>("getBalances", async {
                tokio::task::yield_now().await;
                panic!("boom")
            })
            .await
            .unwrap_err();
            assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(error.detail.contains("getBalances"), "{}", error.detail);
            let fine = call_read("getBalances", async {
                tokio::task::yield_now().await;
                Ok(7)
            })
            .await;
            assert_eq!(fine, Ok(7));
        });
    }
}
