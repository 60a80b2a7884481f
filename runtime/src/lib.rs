//! The runtime every generated Formance Generic connector shares: start-up and HTTP plumbing
//! (configuration, authentication, request ids, body limits, panics, shutdown), `{Title,
//! Detail}` errors, parameter parsing, conversions from provider formats to the protocol's,
//! metrics, and behind features the provider client with the declarative mapping's list
//! walking (`provider`) and the store that makes payment initiations idempotent (`store`,
//! with `postgres` for replicas).
//!
//! connector-gen copies these sources byte for byte into each generated crate under
//! `src/generated/runtime/`; what depends on the protocol spec or the mapping (models, the
//! `Connector` trait, routes, provider settings) is generated beside it and reaches the
//! runtime through [`App`]. Nothing here knows which spec or mapping its caller came from,
//! so modules refer to each other through `super::`, which means the same in both places.

pub mod config;
pub mod context;
pub mod convert;
pub mod error;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod request;
pub mod response;
pub mod server;
pub mod validate;

#[cfg(feature = "provider")]
pub mod fields;
#[cfg(feature = "provider")]
pub mod form;
#[cfg(feature = "provider")]
pub mod join;
#[cfg(feature = "provider")]
pub mod listing;
#[cfg(feature = "provider")]
pub mod ratelimit;
#[cfg(feature = "provider")]
pub mod upstream;

#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "otel")]
pub mod otel;

#[cfg(feature = "store")]
pub mod initiation;
#[cfg(feature = "store")]
pub mod store;

/// The allocator of the connector's process (feature `mimalloc`, on by default).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use config::Config;
pub use context::{Context, Services};
pub use error::ConnectorError;
pub use request::Json;
pub use response::Reply;
pub use server::{App, AppState, run, serve};

#[cfg(test)]
mod testing {
    #[cfg(feature = "provider")]
    pub use provider::{Received, serve};

    /// Runs an async test to its end on a runtime of its own (the tests compile in every
    /// generated crate too, where tokio's macros are not enabled).
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a test runtime")
            .block_on(future)
    }

    /// A scripted provider for the provider client's tests.
    #[cfg(feature = "provider")]
    mod provider {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::TcpListener;
        use std::sync::{Arc, Mutex};

        /// A request a [`serve`]d test server received: its request line and headers, lower-case.
        #[derive(Debug, Clone)]
        pub struct Received {
            pub line: String,
            pub headers: Vec<(String, String)>,
            pub body: String,
        }

        impl Received {
            pub fn header(&self, name: &str) -> Option<&str> {
                self.headers
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.as_str())
            }
        }

        /// An HTTP/1.1 server on a loopback port answering each request with `answer(request)`:
        /// a status, extra header lines and a body. Returns its URL and what it received.
        pub fn serve(
            answer: impl Fn(&Received) -> (u16, Vec<String>, String) + Send + 'static,
        ) -> (String, Arc<Mutex<Vec<Received>>>) {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let url = format!("http://{}", listener.local_addr().expect("its address"));
            let received = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&received);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let Ok(reading) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(reading);
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let mut headers = Vec::new();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                            break;
                        }
                        if let Some((name, value)) = header.trim_end().split_once(':') {
                            let (name, value) =
                                (name.to_ascii_lowercase(), value.trim().to_owned());
                            if name == "content-length" {
                                length = value.parse().unwrap_or(0);
                            }
                            headers.push((name, value));
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let request = Received {
                        line: line.trim_end().to_owned(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let (status, extra, body) = answer(&request);
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(request);
                    let mut head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for line in extra {
                        head.push_str(&line);
                        head.push_str("\r\n");
                    }
                    let _ = write!(stream, "{head}\r\n{body}");
                }
            });
            (url, received)
        }
    }
}
