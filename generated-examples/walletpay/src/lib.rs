//! The walletpay connector: a Formance Generic connector server.
//!
//! `src/generated/` is rewritten by `connector-gen generate`; your code lives in
//! `src/handlers.rs` and in any module you add here.

#[rustfmt::skip]
pub mod generated;
pub mod handlers;
