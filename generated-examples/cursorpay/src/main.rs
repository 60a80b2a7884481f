//! Starts the connector. Created once by connector-gen; yours to change.

use std::process::ExitCode;

fn main() -> ExitCode {
    cursorpay::generated::runtime::run(cursorpay::handlers::Handlers::new)
}
