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
pub mod metrics;
pub mod request;
pub mod response;
pub mod server;
pub mod validate;

#[cfg(feature = "provider")]
pub mod fields;
#[cfg(feature = "provider")]
pub mod listing;
#[cfg(feature = "provider")]
pub mod upstream;

#[cfg(feature = "store")]
pub mod initiation;
#[cfg(feature = "store")]
pub mod store;

pub use config::Config;
pub use context::{Context, Services};
pub use error::ConnectorError;
pub use request::Json;
pub use response::Reply;
pub use server::{App, AppState, run, serve};

#[cfg(test)]
mod testing {
    /// Runs an async test to its end on a runtime of its own (the tests compile in every
    /// generated crate too, where tokio's macros are not enabled).
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a test runtime")
            .block_on(future)
    }
}
