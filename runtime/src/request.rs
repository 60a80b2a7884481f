//! Reading a request: its parameters ([`RequestParts`], which generated parameter types
//! build themselves from) and its JSON body ([`Json`]). Every rejection is a
//! `{Title, Detail}` answer naming what is wrong: 400, 413 or 415.

use axum::extract::{
    FromRef, FromRequest, FromRequestParts, OptionalFromRequest, RawPathParams, Request,
};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::context::Services;
use super::error::ConnectorError;
use super::validate::{Query, Validate};

/// A request's parameters, decoded: the path's, the query's and the headers.
pub struct RequestParts<'r> {
    parts: &'r Parts,
    path: Vec<(String, String)>,
    query: Query,
}

impl<'r> RequestParts<'r> {
    /// Decodes the path parameters and the query string; 400 when they are not valid
    /// percent-encoded UTF-8.
    pub async fn read(parts: &'r mut Parts) -> Result<Self, ConnectorError> {
        let path = RawPathParams::from_request_parts(parts, &())
            .await
            .map_err(|rejection| ConnectorError::bad_request(format!("invalid path: {rejection}")))?
            .iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let query = Query::parse(parts.uri.query());
        Ok(Self { parts, path, query })
    }

    /// The query string's parameters.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// A path parameter, decoded.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A header's value; 400 unless it is visible ASCII.
    pub fn header(&self, name: &str) -> Result<Option<&str>, ConnectorError> {
        match self.parts.headers.get(name) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| {
                ConnectorError::bad_request(format!("header {name} must be visible ASCII"))
            }),
        }
    }
}

/// A JSON request body, parsed and validated: 415 unless it is sent as JSON, 413 over
/// `CONNECTOR_BODY_LIMIT`, 400 naming the field that is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    Services: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ConnectorError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ConnectorError> {
        read_json(request, state)
            .await?
            .map(Json)
            .ok_or_else(|| ConnectorError::bad_request("a JSON request body is required"))
    }
}

/// An optional body: an empty one is `None`.
impl<S, T> OptionalFromRequest<S> for Json<T>
where
    Services: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ConnectorError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ConnectorError> {
        Ok(read_json(request, state).await?.map(Json))
    }
}

/// The body as `T`, checked; `None` when it is empty.
async fn read_json<S, T>(request: Request, state: &S) -> Result<Option<T>, ConnectorError>
where
    Services: FromRef<S>,
    T: DeserializeOwned + Validate,
{
    let limit = Services::from_ref(state).config().body_limit;
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts, body, limit).await?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(&parts) {
        return Err(ConnectorError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be sent with Content-Type: application/json",
        ));
    }
    let value: T = parse_json(&bytes)?;
    value.validate("")?;
    Ok(Some(value))
}

/// The body, within `limit` bytes: a larger declared `Content-Length` is refused before
/// reading, a longer stream while reading.
async fn read_body(
    parts: &Parts,
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ConnectorError> {
    let too_large = || {
        ConnectorError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let limit_hit = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if limit_hit {
            too_large()
        } else {
            ConnectorError::bad_request(format!("could not read the request body: {error}"))
        }
    })
}

/// JSON into `T`, with the path of the field that does not fit in the 400.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConnectorError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
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
    Ok(value)
}

/// `application/json`, or any `application/*+json`.
fn is_json(parts: &Parts) -> bool {
    let Some(content_type) = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::block_on;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        amount: String,
        nested: Nested,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Nested {
        count: u32,
    }

    fn parts(content_type: Option<&str>, length: Option<usize>) -> Parts {
        let mut builder = axum::http::Request::builder();
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(length) = length {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn json_content_types_are_recognised() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            assert!(is_json(&parts(Some(json), None)), "{json}");
        }
        for other in ["text/plain", "application/jsonx", "json"] {
            assert!(!is_json(&parts(Some(other), None)), "{other}");
        }
        assert!(!is_json(&parts(None, None)));
    }

    #[test]
    fn a_field_that_does_not_fit_is_named_in_the_400() {
        let error = parse_json::<Body>(br#"{"amount": "1", "nested": {"count": -1}}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(
            error
                .detail
                .starts_with("invalid request body: nested.count: "),
            "{}",
            error.detail
        );
        let error = parse_json::<Body>(br#"{"nested": {"count": 1}}"#).unwrap_err();
        assert!(
            error.detail.contains("missing field `amount`"),
            "{}",
            error.detail
        );
        let error =
            parse_json::<Body>(br#"{"amount": "1", "nested": {"count": 1}} x"#).unwrap_err();
        assert!(
            error.detail.contains("trailing characters"),
            "{}",
            error.detail
        );
    }

    #[test]
    fn bodies_over_the_limit_are_413_declared_or_streamed() {
        block_on(async {
            let declared = read_body(&parts(None, Some(11)), "x".repeat(11).into(), 10).await;
            assert_eq!(declared.unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
            let streamed = read_body(&parts(None, None), "x".repeat(11).into(), 10).await;
            assert_eq!(streamed.unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
            let at_limit = read_body(&parts(None, None), "x".repeat(10).into(), 10).await;
            assert_eq!(at_limit.unwrap().len(), 10);
        });
    }
}
