//! Starts the connector. Created once by connector-gen; yours to change.

use std::process::ExitCode;

fn main() -> ExitCode {
    minimal::generated::runtime::run(minimal::handlers::Handlers::new)
}
