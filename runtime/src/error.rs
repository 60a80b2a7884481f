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
        Self {
            status,
            title,
            detail: detail.into(),
            retry_after: None,
        }
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
        Self {
            retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, detail)
        }
    }

    /// 500: something failed inside the connector.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }

    /// 501: the connector does not implement this operation.
    pub fn not_implemented(operation: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("operation {operation} is not implemented by this connector"),
        )
    }

    /// 502: the provider answered something the connector cannot use.
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, detail)
    }

    /// 503: the provider is unavailable; Formance retries later.
    pub fn unavailable(detail: impl Into<String>, retry_after: Option<u64>) -> Self {
        Self {
            retry_after,
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
        }
    }

    /// Replaces the title (the status code's reason by default).
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
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

impl ConnectorError {
    /// The `{"Title", "Detail"}` body, as sent.
    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody {
            title: &self.title,
            detail: &self.detail,
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ConnectorError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), detail = %self.detail, "answering with an error");
        } else {
            tracing::debug!(status = self.status.as_u16(), detail = %self.detail, "answering with an error");
        }
        let body = self.body();
        let content_type = HeaderValue::from_static("application/json");
        let mut response =
            (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
