//! Answers: a success body with the status the spec gives it ([`Reply`], [`Empty`]); errors
//! answer through [`ConnectorError`]'s own `IntoResponse`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ConnectorError;

/// A JSON success body answered with `STATUS`: `Reply::<200, _>(accounts)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<const STATUS: u16, T>(pub T);

impl<const STATUS: u16, T: Serialize> IntoResponse for Reply<STATUS, T> {
    fn into_response(self) -> Response {
        // A list page is tens of kilobytes: start big enough to skip most regrowing.
        let mut body = Vec::with_capacity(16 * 1024);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => json_response(STATUS, body),
            Err(error) => ConnectorError::internal(format!("cannot encode the response: {error}"))
                .into_response(),
        }
    }
}

/// A success without a body, answered with `STATUS`: `Empty::<204>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty<const STATUS: u16>;

impl<const STATUS: u16> IntoResponse for Empty<STATUS> {
    fn into_response(self) -> Response {
        StatusCode::from_u16(STATUS)
            .unwrap_or(StatusCode::NO_CONTENT)
            .into_response()
    }
}

/// A JSON body already encoded, with its status code.
pub fn json_response(status: u16, body: impl Into<axum::body::Body>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let content_type = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::testing::block_on;
    use super::*;

    #[test]
    fn replies_carry_their_status_and_json() {
        block_on(async {
            let response = Reply::<201, _>(serde_json::json!({"id": "p-1"})).into_response();
            assert_eq!(response.status(), StatusCode::CREATED);
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert_eq!(&body[..], br#"{"id":"p-1"}"#);
        });
    }
}
