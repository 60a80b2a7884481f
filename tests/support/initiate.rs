//! Payment initiation as Formance drives it: a POST repeated with the same body until an
//! answer that is not retryable comes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::formance::{http_request, is_retryable};
use super::{API_KEY, Server};

/// Formance keeps retrying a payment it has not got an answer for; tests give up after this.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// POSTs once; `None` when the connection failed (the connector died).
pub fn post_once(server_addr: SocketAddr, path: &str, body: &Value) -> Option<(u16, Value)> {
    let url = format!("http://{server_addr}{path}");
    let auth = format!("Bearer {API_KEY}");
    let text = body.to_string();
    let reply = http_request(
        "POST",
        &url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(text.as_bytes()),
        Duration::from_secs(30),
    )
    .ok()?;
    let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Some((reply.status, json))
}

/// POSTs as Formance does: again with the same body after 425, 423, 429, 408 and 5xx or a
/// broken connection, until another answer comes.
pub fn initiate(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    initiate_at(&[server.addr], path, body, 0)
}

/// Like `initiate`, spreading the attempts over several replicas, starting at `first`.
pub fn initiate_at(
    replicas: &[SocketAddr],
    path: &str,
    body: &Value,
    first: usize,
) -> (u16, Value) {
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    for attempt in first.. {
        let addr = replicas[attempt % replicas.len()];
        match post_once(addr, path, body) {
            Some((status, json)) if !is_retryable(status) => {
                return (status, json);
            }
            _ if started.elapsed() > RETRY_FOR => break,
            _ => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
    panic!("POST {path} {body}: no final answer within {RETRY_FOR:?}");
}

pub fn created_id(status: u16, body: &Value) -> String {
    assert_eq!(status, 201, "{body}");
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {body}"))
        .to_owned()
}
