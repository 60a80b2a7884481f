//! Starts the connector. Created once by connector-gen; yours to change.

use std::process::ExitCode;

fn main() -> ExitCode {
    walletpay::generated::runtime::run(walletpay::handlers::Handlers::new)
}
