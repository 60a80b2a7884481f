//! `connector-gen verify`: checks a running Generic connector the way Formance's client uses
//! it, and says what Formance would do with each problem found.

pub mod decode;
pub mod http;
pub mod poller;
pub mod time;
pub mod wire;
