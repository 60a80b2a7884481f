use std::process::ExitCode;

fn main() -> ExitCode {
    connector_gen::cli::main()
}
