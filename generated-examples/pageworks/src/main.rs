//! Starts the connector. Created once by connector-gen; yours to change.

use std::process::ExitCode;

fn main() -> ExitCode {
    pageworks::generated::runtime::run(pageworks::handlers::Handlers::new)
}
