//! The provider's API, as the mapping describes it. Provider failures keep their class:
//! rate limits and outages become 429/503 (Formance retries them, `Retry-After` passed
//! on), refused credentials a 502 naming `upstream.auth`, never a plain 4xx.
//!
//! A token (OAuth2's, or a login call's) is fetched once and shared: requests that find it
//! missing or due for renewal wait for the one fetch under way, and a token the provider
//! refuses (401) is dropped once, by the first request it was refused to, so that any number
//! of requests refused together cause one new login.

pub use super::config::BodyEncoding;
use super::config::{Auth, Login, UpstreamSettings};
use super::error::ConnectorError;
use super::metrics::Metrics;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request to the provider; `url` (absolute) wins over `path` when set.
#[derive(Debug, Clone, Default)]
pub struct UpstreamRequest {
    pub method: String,
    pub path: String,
    pub url: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// How `body` is written.
    pub encoding: BodyEncoding,
}

impl UpstreamRequest {
    /// A GET: it changes nothing at the provider, so it may be retried.
    fn reads(&self) -> bool {
        self.method.eq_ignore_ascii_case("GET")
    }

    /// What tells it from another request: method, path or URL, and query.
    pub fn identity(&self) -> String {
        format!(
            "{} {} {:?} {:?}",
            self.method, self.path, self.url, self.query
        )
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A successful (2xx) answer, its body not parsed yet: for a reader of its own.
#[derive(Debug)]
pub struct TextResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

struct Token {
    value: String,
    /// When it is fetched again; never (until refused) when its lifetime is unknown.
    refresh_at: Option<Instant>,
}

impl Token {
    fn fresh(&self) -> bool {
        self.refresh_at.is_none_or(|at| Instant::now() < at)
    }
}

/// The provider's API client, shared by every request.
pub struct Upstream {
    client: reqwest::Client,
    settings: UpstreamSettings,
    token: tokio::sync::Mutex<Option<Token>>,
    metrics: Arc<Metrics>,
    limiter: Option<super::ratelimit::Limiter>,
}

enum Failure {
    /// The provider answered, with a status outside 2xx.
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
    /// No answer: time-out, refused connection, broken body.
    Transport(String),
    /// No token: `detail` names the OAuth2 token endpoint or the login endpoint and what it
    /// answered (for OAuth2, its RFC 6749 `error` and `error_description`), or why it did
    /// not; `status` is its answer's.
    Token {
        status: Option<u16>,
        retry_after: Option<u64>,
        detail: String,
    },
}

impl Upstream {
    pub fn new(settings: UpstreamSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(Self {
            client,
            limiter: settings.rate_limit.map(super::ratelimit::Limiter::new),
            settings,
            token: tokio::sync::Mutex::new(None),
            metrics,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sends a request; GETs are retried on 429, 5xx and transport failures until the
    /// attempts or the deadline run out. Answers only 2xx; anything else is an error
    /// whose status tells Formance whether to retry.
    pub async fn send(
        &self,
        operation: &'static str,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, ConnectorError> {
        let answer = self.send_text(operation, request).await?;
        let body = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&answer.text).map_err(|error| {
                self.not_json(operation, request, answer.status, &answer.text, &error)
            })?
        };
        Ok(UpstreamResponse {
            status: answer.status,
            headers: answer.headers,
            body,
        })
    }

    /// The error for a 2xx answer whose body is not JSON (`error` says why).
    pub fn not_json(
        &self,
        operation: &'static str,
        request: &UpstreamRequest,
        status: u16,
        text: &str,
        error: &dyn std::fmt::Display,
    ) -> ConnectorError {
        let failure = Failure::Status {
            status: 200,
            retry_after: None,
            body: format!(
                "the provider answered {status} with a body that is not JSON ({error}): {}",
                excerpt(text)
            ),
        };
        self.classify(operation, failure, request)
    }

    /// [`Upstream::send`], leaving the body as the provider's text.
    pub async fn send_text(
        &self,
        operation: &'static str,
        request: &UpstreamRequest,
    ) -> Result<TextResponse, ConnectorError> {
        let started = Instant::now();
        let retryable = request.reads();
        let mut attempt = 1;
        let mut refreshed_token = false;
        loop {
            let mut token = None;
            let failure = match self.attempt(operation, request, &mut token).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            if let Failure::Status { status: 401, .. } = failure
                && let Some(token) = token
                && !refreshed_token
            {
                // The cached token may have expired or been revoked early: one fresh
                // token, once.
                self.forget_token(&token).await;
                refreshed_token = true;
                continue;
            }
            let wait = backoff(attempt, &failure);
            let transient = match &failure {
                Failure::Status { status, .. }
                | Failure::Token {
                    status: Some(status),
                    ..
                } => *status == 429 || *status == 408 || *status >= 500,
                Failure::Transport(_) | Failure::Token { status: None, .. } => true,
            };
            if retryable
                && transient
                && attempt < self.settings.attempts
                && started.elapsed() + wait < self.settings.deadline
            {
                tracing::debug!(
                    operation,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "retrying the provider"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Err(self.classify(operation, failure, request));
        }
    }

    /// One request; `token` is set to the token it was sent with, if any.
    async fn attempt(
        &self,
        operation: &'static str,
        request: &UpstreamRequest,
        token: &mut Option<String>,
    ) -> Result<TextResponse, Failure> {
        let base = self.settings.base_url.trim_end_matches('/');
        let url = match &request.url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => url.clone(),
            Some(url) => format!("{base}{url}"),
            None => format!("{base}{}", request.path),
        };
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut builder = self
            .client
            .request(method, &url)
            .header("accept", "application/json");
        for (name, value) in self.settings.headers.iter().chain(&request.headers) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut query = request.query.clone();
        builder = match &self.settings.auth {
            Auth::None => builder,
            Auth::Bearer(token) => builder.bearer_auth(token),
            Auth::Header { name, value } => builder.header(name.as_str(), value.as_str()),
            Auth::Query { name, value } => {
                query.push((name.clone(), value.clone()));
                builder
            }
            Auth::Basic { username, password } => builder.basic_auth(username, Some(password)),
            Auth::OAuth2 { .. } => {
                let value = self.oauth2_token(operation).await?;
                let builder = builder.bearer_auth(&value);
                *token = Some(value);
                builder
            }
            Auth::Login(login) => {
                let value = self.login_token(operation, login).await?;
                let builder = builder.header(
                    login.header.as_str(),
                    format!("{}{value}", login.prefix).as_str(),
                );
                *token = Some(value);
                builder
            }
        };
        if !query.is_empty() {
            builder = builder.query(&query);
        }
        if let Some(body) = &request.body {
            builder = with_body(builder, body, request.encoding);
        }
        if let Some(limiter) = &self.limiter {
            let waited = limiter.acquire().await;
            if waited >= Duration::from_millis(1) {
                self.metrics.throttled(waited);
            }
        }
        let span = provider_span(operation, &request.method, &url);
        #[cfg(feature = "otel")]
        for (name, value) in super::otel::trace_headers(&span) {
            builder = builder.header(name, value);
        }
        let started = Instant::now();
        let result = tracing::Instrument::instrument(builder.send(), span.clone()).await;
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                let outcome = if error.is_timeout() {
                    "timeout"
                } else {
                    "error"
                };
                self.metrics
                    .upstream_call(operation, outcome, started.elapsed());
                return Err(Failure::Transport(transport_message(&error)));
            }
        };
        let status = response.status().as_u16();
        #[cfg(feature = "otel")]
        span.record("http.response.status_code", status);
        let headers = response.headers().clone();
        let text = match response.bytes().await {
            Ok(body) => text_of(body),
            Err(error) => {
                self.metrics
                    .upstream_call(operation, "error", started.elapsed());
                return Err(Failure::Transport(transport_message(&error)));
            }
        };
        self.metrics
            .upstream_call(operation, &status.to_string(), started.elapsed());
        if !(200..300).contains(&status) {
            let retry_after = retry_after(&headers);
            if let Some(limiter) = &self.limiter
                && (status == 429 || (status == 503 && retry_after.is_some()))
            {
                limiter.pause(Duration::from_secs(retry_after.unwrap_or(1).min(60)));
            }
            return Err(Failure::Status {
                status,
                retry_after,
                body: excerpt(&text),
            });
        }
        Ok(TextResponse {
            status,
            headers,
            text,
        })
    }

    /// A cached client-credentials token, fetched again shortly before it expires.
    async fn oauth2_token(&self, operation: &'static str) -> Result<String, Failure> {
        let Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        } = &self.settings.auth
        else {
            return Err(Failure::Transport("no OAuth2 settings".to_owned()));
        };
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.fresh()
        {
            return Ok(token.value.clone());
        }
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", client_secret);
            if let Some(scope) = scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let endpoint = format!("the OAuth2 token endpoint {token_url}");
        let request = self
            .client
            .post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form);
        let answer = self
            .token_answer(operation, &endpoint, "token", request)
            .await?;
        let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        if !answer.succeeded() {
            let said = oauth2_error(&body).unwrap_or_else(|| excerpt(&answer.text));
            return Err(answer.refusal(
                &endpoint,
                "the client credentials of `upstream.auth.oauth2`",
                &said,
            ));
        }
        let Some(value) = body.get("access_token").and_then(Value::as_str) else {
            return Err(answer.failure(format!(
                "{endpoint} answered {} without an access_token: {}",
                answer.status,
                excerpt(&answer.text)
            )));
        };
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(3600);
        *cached = Some(Token {
            value: value.to_owned(),
            refresh_at: Some(renewal(Duration::from_secs(lifetime))),
        });
        Ok(value.to_owned())
    }

    /// Drops the cached token if it is still `refused`: requests refused the same token
    /// together drop it once, and the first of them to ask again logs in for all.
    async fn forget_token(&self, refused: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|token| token.value == refused) {
            *cached = None;
        }
    }

    /// Sends a request to a token endpoint (OAuth2's, or a login call) and reads its answer,
    /// counted as `KIND STATUS`; no answer at all is a failure naming `endpoint`.
    async fn token_answer(
        &self,
        operation: &'static str,
        endpoint: &str,
        kind: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<TokenAnswer, Failure> {
        let unanswered = |error: reqwest::Error| Failure::Token {
            status: None,
            retry_after: None,
            detail: format!("{endpoint} did not answer: {}", transport_message(&error)),
        };
        let started = Instant::now();
        let response = request.send().await.map_err(unanswered)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = text_of(response.bytes().await.map_err(unanswered)?);
        self.metrics
            .upstream_call(operation, &format!("{kind} {status}"), started.elapsed());
        Ok(TokenAnswer {
            status,
            retry_after,
            text,
        })
    }

    /// A cached token from the provider's login call, fetched again shortly before it
    /// expires (when its lifetime is known) and after the provider refuses it.
    async fn login_token(&self, operation: &'static str, login: &Login) -> Result<String, Failure> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.fresh()
        {
            return Ok(token.value.clone());
        }
        let endpoint = format!("the login endpoint {} {}", login.method, login.url);
        let method =
            reqwest::Method::from_bytes(login.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut builder = self
            .client
            .request(method, &login.url)
            .header("accept", "application/json");
        for (name, value) in &self.settings.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some((username, password)) = &login.basic {
            builder = builder.basic_auth(username, Some(password));
        }
        if !login.body.is_empty() {
            builder = with_body(builder, &super::form::nest(&login.body), login.encoding);
        }
        let answer = self
            .token_answer(operation, &endpoint, "login", builder)
            .await?;
        let status = answer.status;
        if !answer.succeeded() {
            return Err(answer.refusal(
                &endpoint,
                "the credentials of `upstream.auth.login`",
                &excerpt(&answer.text),
            ));
        }
        let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
        // The answer holds a credential: a message names its keys, never its values.
        let value = match dotted(&body, &login.token) {
            Some(Value::String(value)) if !value.is_empty() => value.clone(),
            _ => {
                return Err(answer.failure(format!(
                    "{endpoint} answered {status} without a token at `{}` (the answer has {})",
                    login.token,
                    shape(&body)
                )));
            }
        };
        if axum::http::HeaderValue::from_str(&format!("{}{value}", login.prefix)).is_err() {
            return Err(answer.failure(format!(
                "{endpoint} answered {status} with a token at `{}` that a header cannot hold",
                login.token
            )));
        }
        let lifetime = login
            .expires_in
            .as_deref()
            .and_then(|path| dotted(&body, path))
            .and_then(|seconds| match seconds {
                Value::Number(number) => number.as_u64(),
                Value::String(text) => text.trim().parse().ok(),
                _ => None,
            })
            .map(Duration::from_secs)
            .or(login.expires_after);
        *cached = Some(Token {
            value: value.clone(),
            refresh_at: lifetime.map(renewal),
        });
        Ok(value)
    }

    fn classify(
        &self,
        operation: &'static str,
        failure: Failure,
        request: &UpstreamRequest,
    ) -> ConnectorError {
        let target = format!(
            "{} {}",
            request.method,
            request.url.as_deref().unwrap_or(&request.path)
        );
        let writes = !request.reads();
        match failure {
            Failure::Token {
                status,
                retry_after,
                detail,
            } => {
                tracing::warn!(operation, % detail, "no token from the provider");
                match status {
                    Some(429) => ConnectorError::rate_limited(detail, retry_after.or(Some(1))),
                    Some(status) if status < 500 && status != 408 => {
                        ConnectorError::bad_gateway(detail)
                    }
                    _ => ConnectorError::unavailable(detail, retry_after.or(Some(1))),
                }
            }
            Failure::Transport(message) => {
                tracing::warn!(
                    operation, % target, % message, "the provider did not answer"
                );
                ConnectorError::unavailable(
                    format!("the provider did not answer {target}: {message}"),
                    Some(1),
                )
            }
            Failure::Status {
                status: 429,
                retry_after,
                body,
            } => ConnectorError::rate_limited(
                format!("the provider is rate limiting {target}: {body}"),
                retry_after.or(Some(1)),
            ),
            Failure::Status {
                status: 401 | 403,
                body,
                ..
            } => ConnectorError::bad_gateway(format!(
                "the provider refused the credentials of {} for {target}: {body}",
                self.settings.auth.describe()
            )),
            Failure::Status {
                status: 404, body, ..
            } => ConnectorError::not_found(format!("the provider has no {target}: {body}")),
            Failure::Status {
                status: 200, body, ..
            } => ConnectorError::bad_gateway(body),
            Failure::Status {
                status,
                retry_after,
                body,
            } if status == 408 || status >= 500 => {
                let error = ConnectorError::unavailable(
                    format!("the provider failed {target} with {status}: {body}"),
                    retry_after.or(Some(1)),
                );
                if status == 503 || status == 408 || status == 504 {
                    error
                } else {
                    ConnectorError {
                        status: StatusCode::BAD_GATEWAY,
                        ..error
                    }
                }
            }
            // A payment the provider refuses (funds, limits, a closed account) is a final
            // answer, not a fault to retry; a key it is still working on is.
            Failure::Status {
                status: 409, body, ..
            } if writes => ConnectorError {
                retry_after: Some(1),
                ..ConnectorError::new(
                    StatusCode::TOO_EARLY,
                    format!("the provider is still working on {target}: {body}"),
                )
            },
            Failure::Status {
                status: 400 | 402 | 422,
                body,
                ..
            } if writes => {
                ConnectorError::bad_request(format!("the provider refused {target}: {body}"))
            }
            Failure::Status { status, body, .. } => ConnectorError::bad_gateway(format!(
                "the provider rejected {target} with {status}: {body}; the mapping may not match its API"
            )),
        }
    }
}

/// What a token endpoint answered.
struct TokenAnswer {
    status: u16,
    retry_after: Option<u64>,
    text: String,
}

impl TokenAnswer {
    fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// No token, for `detail`, with this answer's status and `Retry-After`.
    fn failure(&self, detail: String) -> Failure {
        Failure::Token {
            status: Some(self.status),
            retry_after: self.retry_after,
            detail,
        }
    }

    /// A non-2xx answer (`said` is what it says): an outage when 429 or 5xx, else a refusal
    /// of `credentials`.
    fn refusal(&self, endpoint: &str, credentials: &str, said: &str) -> Failure {
        let status = self.status;
        self.failure(if status == 429 || status >= 500 {
            format!("{endpoint} failed with {status}: {said}")
        } else {
            format!("{endpoint} refused {credentials} with {status}: {said}")
        })
    }
}

/// `Retry-After` in seconds, when the provider sent it so.
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// `builder` with `body`, written as `encoding` says.
fn with_body(
    builder: reqwest::RequestBuilder,
    body: &Value,
    encoding: BodyEncoding,
) -> reqwest::RequestBuilder {
    match encoding {
        BodyEncoding::Json => builder.json(body),
        BodyEncoding::Form => builder
            .header("content-type", "application/x-www-form-urlencoded")
            .body(super::form::encode(body)),
    }
}

/// When a token that lives `lifetime` from now is fetched again: at 90% of its life, and at
/// least 30 s early when it is long; a short-lived token still serves the first half of it.
fn renewal(lifetime: Duration) -> Instant {
    let early = (lifetime / 10)
        .max(lifetime.min(Duration::from_secs(30)))
        .min(lifetime / 2);
    Instant::now() + lifetime.saturating_sub(early)
}

/// The value at a dotted path of object keys (`data.accessToken`).
fn dotted<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

/// What an answer is, without its values: `keys data, status`, `an array`, `no JSON`.
fn shape(body: &Value) -> String {
    match body {
        Value::Object(fields) if fields.is_empty() => "no keys".to_owned(),
        Value::Object(fields) => {
            let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            format!("keys {}", keys.join(", "))
        }
        Value::Null => "no JSON object".to_owned(),
        _ => "no JSON object".to_owned(),
    }
}

/// A provider's answer as text: UTF-8 as it came, taken over without a copy; anything else
/// with each invalid sequence replaced by U+FFFD.
fn text_of(body: axum::body::Bytes) -> String {
    match String::from_utf8(Vec::from(body)) {
        Ok(text) => text,
        Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    }
}

/// One call to the provider, a child of the request's span (an OpenTelemetry client span
/// with the `otel` feature).
fn provider_span(operation: &'static str, method: &str, url: &str) -> tracing::Span {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    #[cfg(feature = "otel")]
    return tracing::info_span!(
        "provider", operation, method, path,
        otel.name = %format!("{method} {path}"),
        otel.kind = "client",
        http.response.status_code = tracing::field::Empty,
    );
    #[cfg(not(feature = "otel"))]
    tracing::debug_span!("provider", operation, method, path)
}

/// Exponential backoff, jittered within its upper half, or the provider's `Retry-After`
/// when given (at most 30 s).
fn backoff(attempt: u32, failure: &Failure) -> Duration {
    if let Failure::Status {
        retry_after: Some(seconds),
        ..
    }
    | Failure::Token {
        retry_after: Some(seconds),
        ..
    } = failure
    {
        return Duration::from_secs((*seconds).min(30));
    }

    let ceiling_ms = 100u64.saturating_mul(1 << attempt.min(10)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_millis(ceiling_ms / 2 + nanos % (ceiling_ms / 2 + 1))
}

fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }

    message
}

/// `invalid_client: unknown client` from an RFC 6749 error answer (`error`, with its
/// `error_description` when given).
fn oauth2_error(body: &Value) -> Option<String> {
    let error = body.get("error")?.as_str()?;
    Some(
        match body.get("error_description").and_then(Value::as_str) {
            Some(description) => format!("{error}: {description}"),
            None => error.to_owned(),
        },
    )
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::testing::{Received, block_on, serve};
    use super::*;

    fn get(path: &str) -> UpstreamRequest {
        UpstreamRequest {
            method: "GET".to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    fn post(path: &str) -> UpstreamRequest {
        UpstreamRequest {
            method: "POST".to_owned(),
            body: Some(serde_json::json!({"amount": "1.00"})),
            ..get(path)
        }
    }

    /// A provider answering the statuses in `script` in turn (then 200), and what it got.
    fn scripted(script: Vec<u16>) -> (UpstreamSettings, Arc<Mutex<Vec<Received>>>) {
        let next = AtomicUsize::new(0);
        let (url, received) = serve(move |_| {
            let status = script
                .get(next.fetch_add(1, Ordering::SeqCst))
                .copied()
                .unwrap_or(200);
            let extra = if status == 429 {
                vec!["retry-after: 0".to_owned()]
            } else {
                Vec::new()
            };
            (status, extra, r#"{"ok":true}"#.to_owned())
        });
        let mut settings = UpstreamSettings::new(url);
        settings.deadline = Duration::from_secs(5);
        (settings, received)
    }

    fn send(
        settings: UpstreamSettings,
        request: UpstreamRequest,
    ) -> Result<UpstreamResponse, ConnectorError> {
        let upstream = Upstream::new(settings, Arc::new(Metrics::default())).unwrap();
        block_on(upstream.send("getAccounts", &request))
    }

    #[test]
    fn reads_are_retried_on_transient_failures_within_their_attempts() {
        let (settings, received) = scripted(vec![503, 429]);
        let answer = send(settings, get("/accounts")).unwrap();
        assert_eq!(answer.body["ok"], true);
        assert_eq!(received.lock().unwrap().len(), 3);
        let (settings, received) = scripted(vec![500, 500, 500, 500]);
        let error = send(settings, get("/accounts")).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_GATEWAY, "{error}");
        assert_eq!(received.lock().unwrap().len(), 3, "3 attempts by default");
    }

    #[test]
    fn writes_are_never_retried_and_refusals_are_final() {
        let (settings, received) = scripted(vec![503]);
        let error = send(settings, post("/payouts")).unwrap_err();
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(received.lock().unwrap().len(), 1);
        for (provider, ours) in [(422, 400), (402, 400), (409, 425), (404, 404)] {
            let (settings, _) = scripted(vec![provider]);
            let error = send(settings, post("/payouts")).unwrap_err();
            assert_eq!(error.status.as_u16(), ours, "provider {provider}: {error}");
        }
    }

    #[test]
    fn provider_failures_keep_their_class_for_formance() {
        for (provider, ours) in [
            (429, 429),
            (401, 502),
            (403, 502),
            (400, 502),
            (408, 503),
            (504, 503),
        ] {
            let (mut settings, _) = scripted(vec![provider; 5]);
            settings.attempts = 1;
            let error = send(settings, get("/accounts")).unwrap_err();
            assert_eq!(error.status.as_u16(), ours, "provider {provider}: {error}");
            if provider == 401 {
                assert!(
                    error.detail.contains("no `upstream.auth`"),
                    "{}",
                    error.detail
                );
            }
        }
        let mut settings = UpstreamSettings::new("http://127.0.0.1:9".to_owned());
        settings.attempts = 1;
        let error = send(settings, get("/accounts")).unwrap_err();
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
        assert!(
            error.detail.contains("did not answer GET /accounts"),
            "{}",
            error.detail
        );
    }

    #[test]
    fn credentials_and_headers_go_with_every_request() {
        let (mut settings, received) = scripted(Vec::new());
        settings.auth = Auth::Query {
            name: "key".to_owned(),
            value: "k1".to_owned(),
        };
        settings.headers = vec![("X-Tenant".to_owned(), "t9".to_owned())];
        let mut request = get("/accounts");
        request.query = vec![("limit".to_owned(), "5".to_owned())];
        send(settings, request).unwrap();
        let received = received.lock().unwrap();
        assert!(
            received[0]
                .line
                .starts_with("GET /accounts?limit=5&key=k1 "),
            "{:?}",
            received[0]
        );
        assert_eq!(received[0].header("x-tenant"), Some("t9"));
        assert_eq!(received[0].header("accept"), Some("application/json"));
    }

    #[test]
    fn an_oauth2_token_is_reused_and_renewed_once_when_refused() {
        let issued = AtomicUsize::new(0);
        let refuse_next = std::sync::atomic::AtomicBool::new(false);
        let (url, received) = serve(move |request| {
            if request.line.starts_with("POST /token") {
                let n = issued.fetch_add(1, Ordering::SeqCst);
                return (
                    200,
                    Vec::new(),
                    format!(r#"{{"access_token":"t{n}","expires_in":3600}}"#),
                );
            }
            if request.header("authorization") == Some("Bearer t0")
                && !refuse_next.swap(true, Ordering::SeqCst)
            {
                return (200, Vec::new(), "{}".to_owned());
            }
            match request.header("authorization") {
                Some("Bearer t1") => (200, Vec::new(), "{}".to_owned()),
                _ => (401, Vec::new(), "{}".to_owned()),
            }
        });
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::OAuth2 {
            token_url: format!("{url}/token"),
            client_id: "id".to_owned(),
            client_secret: "secret".to_owned(),
            scope: None,
        };
        let upstream = Upstream::new(settings, Arc::new(Metrics::default())).unwrap();
        block_on(async {
            upstream.send("getAccounts", &get("/a")).await.unwrap();
            upstream.send("getAccounts", &get("/b")).await.unwrap();
        });
        let lines: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.line.clone())
            .collect();
        let tokens = lines
            .iter()
            .filter(|line| line.starts_with("POST /token"))
            .count();
        assert_eq!(
            tokens, 2,
            "one token, then one renewal after the 401: {lines:?}"
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
    }

    #[test]
    fn a_token_failure_names_the_token_endpoint_and_its_rfc6749_error() {
        let (url, received) = serve(|request| {
            if request.line.starts_with("POST /oauth/token") {
                return (
                    401,
                    Vec::new(),
                    r#"{"error":"invalid_client","error_description":"unknown client"}"#.to_owned(),
                );
            }
            (200, Vec::new(), "{}".to_owned())
        });
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::OAuth2 {
            token_url: format!("{url}/oauth/token"),
            client_id: "id".to_owned(),
            client_secret: "wrong".to_owned(),
            scope: None,
        };
        let error = send(settings.clone(), get("/accounts")).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_GATEWAY, "{error}");
        assert_eq!(
            error.detail,
            format!(
                "the OAuth2 token endpoint {url}/oauth/token refused the client credentials of `upstream.auth.oauth2` with 401: invalid_client: unknown client"
            )
        );
        assert_eq!(
            received.lock().unwrap().len(),
            1,
            "a refusal is not retried"
        );
        // An endpoint that does not answer is an outage, retried by Formance.
        settings.auth = Auth::OAuth2 {
            token_url: "http://127.0.0.1:9/oauth/token".to_owned(),
            client_id: "id".to_owned(),
            client_secret: "s".to_owned(),
            scope: None,
        };
        settings.attempts = 1;
        let error = send(settings, get("/accounts")).unwrap_err();
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
        assert!(
            error.detail.starts_with(
                "the OAuth2 token endpoint http://127.0.0.1:9/oauth/token did not answer: "
            ),
            "{}",
            error.detail
        );
        assert!(!error.detail.contains("/accounts"), "{}", error.detail);
    }

    fn login(url: &str) -> Login {
        Login {
            method: "POST".to_owned(),
            url: format!("{url}/v2/authenticate/api"),
            body: vec![
                ("login_id".to_owned(), "me@example.com".to_owned()),
                ("api_key".to_owned(), "k&1".to_owned()),
            ],
            encoding: BodyEncoding::Form,
            basic: None,
            token: "auth_token".to_owned(),
            expires_in: None,
            expires_after: None,
            header: "X-Auth-Token".to_owned(),
            prefix: String::new(),
        }
    }

    /// A provider that logs in with `/v2/authenticate/api` (tokens `t0`, `t1`, ...) and
    /// accepts only the newest token, or none while `revoked` is set.
    fn login_provider(
        answer: &'static str,
    ) -> (
        String,
        Arc<Mutex<Vec<Received>>>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let issued = Arc::new(AtomicUsize::new(0));
        let revoked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let revoke = Arc::clone(&revoked);
        let (url, received) = serve(move |request| {
            if request.line.starts_with("POST /v2/authenticate/api") {
                let n = issued.fetch_add(1, Ordering::SeqCst);
                revoked.store(false, Ordering::SeqCst);
                return (200, Vec::new(), answer.replace("{n}", &n.to_string()));
            }
            let newest = format!("t{}", issued.load(Ordering::SeqCst).saturating_sub(1));
            let sent = request
                .header("x-auth-token")
                .or(request.header("authorization"));
            let accepted = !revoked.load(Ordering::SeqCst)
                && sent.is_some_and(|sent| sent.trim_start_matches("Bearer ") == newest);
            if accepted {
                (200, Vec::new(), r#"{"ok":true}"#.to_owned())
            } else {
                (401, Vec::new(), r#"{"error":"stale token"}"#.to_owned())
            }
        });
        (url, received, revoke)
    }

    fn logins(received: &Mutex<Vec<Received>>) -> usize {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.line.starts_with("POST /v2/authenticate/api"))
            .count()
    }

    #[test]
    fn a_login_token_is_sent_reused_and_renewed_once_when_refused() {
        let (url, received, revoked) = login_provider(r#"{"auth_token":"t{n}"}"#);
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::Login(Box::new(login(&url)));
        let upstream = Upstream::new(settings, Arc::new(Metrics::default())).unwrap();
        block_on(async {
            upstream.send("getAccounts", &get("/a")).await.unwrap();
            upstream.send("getAccounts", &get("/b")).await.unwrap();
            revoked.store(true, Ordering::SeqCst);
            upstream.send("getAccounts", &get("/c")).await.unwrap();
        });
        let received = received.lock().unwrap();
        let lines: Vec<&str> = received.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(
            lines
                .iter()
                .map(|l| l.split(' ').nth(1).unwrap())
                .collect::<Vec<_>>(),
            [
                "/v2/authenticate/api",
                "/a",
                "/b",
                "/c",
                "/v2/authenticate/api",
                "/c"
            ],
            "{lines:?}"
        );
        let first = &received[0];
        assert_eq!(first.body, "api_key=k%261&login_id=me%40example.com");
        assert_eq!(
            first.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(received[1].header("x-auth-token"), Some("t0"));
        assert_eq!(received[5].header("x-auth-token"), Some("t1"));
    }

    #[test]
    fn requests_refused_together_cause_one_login() {
        let (url, received, revoked) = login_provider(r#"{"auth_token":"t{n}"}"#);
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::Login(Box::new(login(&url)));
        let upstream = Arc::new(Upstream::new(settings, Arc::new(Metrics::default())).unwrap());
        block_on(async {
            upstream.send("getAccounts", &get("/warm")).await.unwrap();
            revoked.store(true, Ordering::SeqCst);
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let upstream = Arc::clone(&upstream);
                    tokio::spawn(async move {
                        upstream.send("getAccounts", &get(&format!("/r{i}"))).await
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        });
        assert_eq!(
            logins(&received),
            2,
            "one login, then one for all the refusals"
        );
    }

    #[test]
    fn a_login_token_is_renewed_before_it_expires() {
        // Moneycorp-like: a JSON body, the token and its lifetime nested in `data`, sent as
        // a bearer token; the token lives one second, so it is renewed after half of it.
        let (url, received, _) =
            login_provider(r#"{"data":{"accessToken":"t{n}","expiresIn":"1"}}"#);
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::Login(Box::new(Login {
            body: vec![
                ("loginId".to_owned(), "me".to_owned()),
                ("credentials.apiKey".to_owned(), "k".to_owned()),
            ],
            encoding: BodyEncoding::Json,
            token: "data.accessToken".to_owned(),
            expires_in: Some("data.expiresIn".to_owned()),
            expires_after: Some(Duration::from_secs(3600)),
            header: "Authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
            ..login(&url)
        }));
        let upstream = Upstream::new(settings, Arc::new(Metrics::default())).unwrap();
        block_on(async {
            upstream.send("getAccounts", &get("/a")).await.unwrap();
            upstream.send("getAccounts", &get("/b")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(600)).await;
            upstream.send("getAccounts", &get("/c")).await.unwrap();
        });
        assert_eq!(logins(&received), 2);
        let received = received.lock().unwrap();
        let body: Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"loginId": "me", "credentials": {"apiKey": "k"}})
        );
        assert_eq!(received[1].header("authorization"), Some("Bearer t0"));
        assert!(
            received
                .iter()
                .all(|r| r.line.split(' ').nth(1) != Some("/c")
                    || r.header("authorization") == Some("Bearer t1"))
        );
    }

    #[test]
    fn a_fixed_lifetime_serves_when_the_answer_gives_none() {
        let (url, received, _) = login_provider(r#"{"auth_token":"t{n}"}"#);
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::Login(Box::new(Login {
            expires_in: Some("expires_in".to_owned()),
            expires_after: Some(Duration::from_millis(400)),
            ..login(&url)
        }));
        let upstream = Upstream::new(settings, Arc::new(Metrics::default())).unwrap();
        block_on(async {
            upstream.send("getAccounts", &get("/a")).await.unwrap();
            upstream.send("getAccounts", &get("/b")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            upstream.send("getAccounts", &get("/c")).await.unwrap();
        });
        assert_eq!(logins(&received), 2, "renewed after half of 400 ms");
    }

    #[test]
    fn a_refused_login_names_the_login_endpoint_and_its_status() {
        let (url, received) = serve(|request| {
            if request
                .line
                .starts_with("POST /api/v1/authorizations/authorize")
            {
                return match request.header("authorization") {
                    Some(basic) if basic.starts_with("Basic ") && basic != "Basic aWQ6cmlnaHQ=" => {
                        (
                            403,
                            Vec::new(),
                            r#"{"message":"bad credentials"}"#.to_owned(),
                        )
                    }
                    _ => (
                        200,
                        Vec::new(),
                        r#"{"acces_token":"secret-value","expires_in":60}"#.to_owned(),
                    ),
                };
            }
            (200, Vec::new(), "{}".to_owned())
        });
        let banking_circle = |password: &str| Login {
            url: format!("{url}/api/v1/authorizations/authorize"),
            body: Vec::new(),
            basic: Some(("id".to_owned(), password.to_owned())),
            token: "access_token".to_owned(),
            expires_in: Some("expires_in".to_owned()),
            header: "Authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
            ..login(&url)
        };
        let mut settings = UpstreamSettings::new(url.clone());
        settings.auth = Auth::Login(Box::new(banking_circle("wrong")));
        let error = send(settings.clone(), get("/accounts")).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_GATEWAY, "{error}");
        assert_eq!(
            error.detail,
            format!(
                "the login endpoint POST {url}/api/v1/authorizations/authorize refused the credentials of `upstream.auth.login` with 403: {{\"message\":\"bad credentials\"}}"
            )
        );
        assert_eq!(
            received.lock().unwrap().len(),
            1,
            "a refusal is not retried"
        );
        // A token that is not where the mapping says is named, and never its neighbours.
        settings.auth = Auth::Login(Box::new(banking_circle("right")));
        let error = send(settings, get("/accounts")).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_GATEWAY, "{error}");
        assert!(
            error.detail.ends_with(
                "answered 200 without a token at `access_token` (the answer has keys acces_token, expires_in)"
            ),
            "{}",
            error.detail
        );
        assert!(!error.detail.contains("secret-value"), "{}", error.detail);
        let received = received.lock().unwrap();
        assert!(received[1].body.is_empty(), "no body: {:?}", received[1]);
        assert_eq!(
            received[1].header("authorization"),
            Some("Basic aWQ6cmlnaHQ=")
        );
    }

    #[test]
    fn form_bodies_are_sent_form_encoded() {
        let (settings, received) = scripted(Vec::new());
        let mut request = post("/payouts");
        request.body = Some(serde_json::json!({"amount": "1.00", "metadata": {"order id": "42"}}));
        request.encoding = BodyEncoding::Form;
        send(settings, request).unwrap();
        let received = received.lock().unwrap();
        assert_eq!(received[0].body, "amount=1.00&metadata%5Border+id%5D=42");
        assert_eq!(
            received[0].header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let transport = Failure::Transport(String::new());
        for attempt in 1..6 {
            let ceiling = Duration::from_millis((100 << attempt).min(5_000));
            let wait = backoff(attempt, &transport);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "attempt {attempt}: {wait:?}"
            );
        }
        let told = |seconds| Failure::Status {
            status: 429,
            retry_after: Some(seconds),
            body: String::new(),
        };
        assert_eq!(backoff(1, &told(7)), Duration::from_secs(7));
        assert_eq!(backoff(1, &told(3600)), Duration::from_secs(30));
    }

    #[test]
    fn long_provider_answers_are_cut_in_messages() {
        assert_eq!(excerpt("  short  "), "short");
        let long = "é".repeat(400);
        let cut = excerpt(&long);
        assert!(cut.ends_with("...") && cut.chars().count() == 303, "{cut}");
    }
}
