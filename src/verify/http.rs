//! The HTTP client `verify` speaks to a connector with: ureq (blocking, rustls with ring), so
//! that a connector served over HTTPS is checked like one on plain HTTP, with keep-alive
//! connections and no async runtime in the generator.

use std::io;
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

/// Bodies larger than this are refused rather than read into memory.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A connection pool with one per-request time-out.
#[derive(Clone)]
pub struct Client {
    agent: Agent,
}

impl Client {
    pub fn new(timeout: Duration) -> Client {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent("connector-gen-verify/1")
            .build()
            .into();
        Client { agent }
    }

    /// One exchange; any status is a reply, only transport failures are errors.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<HttpReply> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let sent = match body {
            Some(body) => builder
                .body(body.to_vec())
                .map_err(invalid)
                .and_then(|r| self.agent.run(r).map_err(transport)),
            None => builder
                .body(())
                .map_err(invalid)
                .and_then(|r| self.agent.run(r).map_err(transport)),
        };
        let mut response = sent?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_ascii_lowercase(), value)
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(transport)?;
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
}

fn transport(error: ureq::Error) -> io::Error {
    match error {
        ureq::Error::Io(error) => error,
        ureq::Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, error.to_string()),
        other => io::Error::other(other.to_string()),
    }
}

/// One exchange on a connection of its own.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<HttpReply> {
    Client::new(timeout).send(method, url, headers, body)
}

/// Go's `url.QueryEscape`: unreserved characters kept, space as `+`, the rest `%XX`.
pub fn query_escape(text: &str) -> String {
    escape(text, b"-_.~", true)
}

/// Go's `url.PathEscape` (what Formance's client does to path parameters).
pub fn path_escape(text: &str) -> String {
    escape(text, b"-_.~$&+=:@", false)
}

fn escape(text: &str, keep: &[u8], space_as_plus: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else if b == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether Formance retries a response with this status.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 421 | 423 | 425 | 429) || (500..600).contains(&status)
}

/// Reads `Title` and `Detail` of an error body, keys compared case-insensitively as
/// Formance's client does; None when the body is not such an object.
pub fn error_body(body: &[u8]) -> Option<(String, String)> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let object = json.as_object()?;
    let key = |name: &str| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    Some((key("title")?, key("detail")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(query_escape("updatedAt:asc"), "updatedAt%3Aasc");
        assert_eq!(query_escape("a b"), "a+b");
        assert_eq!(path_escape("acct 1/x"), "acct%201%2Fx");
    }

    #[test]
    fn error_bodies_are_read_case_insensitively() {
        let body = br#"{"title":"Nope","DETAIL":"why"}"#;
        assert_eq!(error_body(body), Some(("Nope".into(), "why".into())));
        assert_eq!(error_body(br#"{"Title":"x"}"#), None);
        assert_eq!(error_body(b"oops"), None);
    }
}
