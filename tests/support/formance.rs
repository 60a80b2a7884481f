//! Formance's poller, strict decoding and HTTP client, as the library's `verify` uses them:
//! the tests poll connectors with the very code that `connector-gen verify` runs.

#![allow(unused_imports)]

pub use connector_gen::verify::decode::{check_amount, check_currency};
pub use connector_gen::verify::http::{
    HttpReply, http_request, is_retryable, path_escape, query_escape,
};
pub use connector_gen::verify::poller::{
    Balances, Cycle, Exchange, PollError, Poller, Received, decode_balances, decode_page,
};
pub use connector_gen::verify::time::{
    format_rfc3339_nanos, format_rfc3339_utc_seconds, parse_rfc3339,
};
pub use connector_gen::verify::wire::Kind;
