//! Starts the connector. Created once by connector-gen; yours to change.

use std::process::ExitCode;

fn main() -> ExitCode {
    nordbank::generated::runtime::run(nordbank::handlers::Handlers::new)
}
