//! The command line: `new`, `generate`, `check`. Exit codes: 0 ok, 1 diagnostics or drift,
//! 2 usage or I/O error.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};

use crate::diagnostics::{Diagnostic, Renderer, SourceFile};
use crate::output::{self, Change, Mode, OutputError};
use crate::render::new_mapping;
use crate::{generate, names, spec, usercode};

const EXAMPLES: &str = "\
Examples:
  connector-gen new acme                       scaffold ./acme with connector.yaml and its crate
  connector-gen generate                       regenerate from ./connector.yaml
  connector-gen generate --check               CI: fail if the committed code is stale
  connector-gen generate --spec next.yaml      regenerate against another protocol version
  connector-gen check --mapping connector.yaml validate only, print every problem
  connector-gen draft --from-openapi provider.yaml --out acme
                                               a first connector.yaml from the provider's OpenAPI
  connector-gen check --against-spec provider.yaml
                                               check the mapping against the provider's API";

const DRAFT_EXAMPLES: &str = "\
Examples:
  connector-gen draft --from-openapi stripe.yaml --name stripe --out stripe
  connector-gen draft --from-openapi transfers.json --from-openapi management.json --out adyen
  connector-gen draft --from-openapi lithic.yml --hints hints.yaml --out lithic --force

A hints file pins endpoints the author chose, one per operation (or `none`):
  getTransactions: GET /v1/account_activity
  createTransfer: none

Writes DIR/connector.yaml and DIR/draft-report.json; then `connector-gen check` lists every
todo left, and `connector-gen check --against-spec FILE` compares the mapping with the API.";

#[derive(Debug, Parser)]
#[command(
    name = "connector-gen",
    version,
    about = "Generates Formance Generic connector servers in Rust from the protocol spec and a mapping file",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold a connector in DIR: a commented connector.yaml and the crate generated from it.
    #[command(after_help = "Example:\n  connector-gen new acme-bank --name acme-bank")]
    New {
        /// The directory to create (must not exist, or be empty).
        dir: PathBuf,
        /// The connector's name: crate and binary name [default: DIR's name].
        #[arg(long)]
        name: Option<String>,
        /// The protocol spec (OpenAPI 3.0) [default: the bundled Generic connector spec].
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
    /// Generate (or regenerate) the connector crate from a mapping file.
    #[command(
        after_help = "Examples:\n  connector-gen generate\n  connector-gen generate --mapping acme/connector.yaml --check"
    )]
    Generate {
        /// The mapping file.
        #[arg(long, value_name = "FILE", default_value = "connector.yaml")]
        mapping: PathBuf,
        /// Where the crate goes [default: the mapping file's directory].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The protocol spec (OpenAPI 3.0) [default: the bundled Generic connector spec].
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// Write nothing; exit 1 listing every file that would change.
        #[arg(long, conflicts_with = "force")]
        check: bool,
        /// Overwrite generated files even if they were edited by hand.
        #[arg(long)]
        force: bool,
    },
    /// Validate the mapping file and the spec; print every problem.
    #[command(after_help = "Example:\n  connector-gen check --mapping connector.yaml")]
    Check {
        /// The mapping file.
        #[arg(long, value_name = "FILE", default_value = "connector.yaml")]
        mapping: PathBuf,
        /// The protocol spec (OpenAPI 3.0) [default: the bundled Generic connector spec].
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// Also check the mapping against the provider's OpenAPI document (repeat for several).
        #[arg(long = "against-spec", value_name = "PROVIDER_SPEC")]
        against_spec: Vec<PathBuf>,
    },
    /// Draft connector.yaml from the provider's OpenAPI documents (3.0, 3.1, Swagger 2.0).
    #[command(after_help = DRAFT_EXAMPLES)]
    Draft {
        /// A provider's OpenAPI document, JSON or YAML (repeat for a provider that splits its API).
        #[arg(long = "from-openapi", value_name = "FILE", required = true)]
        from_openapi: Vec<PathBuf>,
        /// The connector's name [default: from the first document's file name].
        #[arg(long)]
        name: Option<String>,
        /// Where connector.yaml and draft-report.json go.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Endpoints already chosen: `getTransactions: GET /v1/account_activity`, or `none`.
        #[arg(long, value_name = "FILE")]
        hints: Option<PathBuf>,
        /// Replace an existing DIR/connector.yaml.
        #[arg(long)]
        force: bool,
    },
}

/// Why a command stopped: problems in the inputs (exit 1) or something around them (exit 2).
pub(crate) enum Failure {
    Diagnostics,
    Drift,
    Usage(String),
}

impl From<OutputError> for Failure {
    fn from(error: OutputError) -> Self {
        match error {
            OutputError::HandEdited(paths) => {
                eprintln!(
                    "error: generated files were changed by hand (or were not written by connector-gen):"
                );
                for path in paths {
                    eprintln!("  {path}");
                }
                eprintln!(
                    "help: move your changes into src/handlers.rs or connector.yaml, or pass --force to overwrite them"
                );
                Failure::Diagnostics
            }
            OutputError::BadManifest {
                path,
                line,
                message,
            } => Failure::Usage(format!(
                "{}:{line}: malformed manifest: {message}",
                path.display()
            )),
            OutputError::Io { path, error } => {
                Failure::Usage(format!("{}: {error}", path.display()))
            }
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New { dir, name, spec } => new(&dir, name, spec.as_deref()),
        Command::Generate {
            mapping,
            out,
            spec,
            check,
            force,
        } => {
            let out = out.unwrap_or_else(|| parent_dir(&mapping));
            let mode = if check {
                Mode::Check
            } else {
                Mode::Write { force }
            };
            generate_command(&mapping, &out, spec.as_deref(), mode)
        }
        Command::Check {
            mapping,
            spec,
            against_spec,
        } => check(&mapping, spec.as_deref(), &against_spec),
        Command::Draft {
            from_openapi,
            name,
            out,
            hints,
            force,
        } => crate::draft::cli::draft(&from_openapi, name, &out, hints.as_deref(), force),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Diagnostics | Failure::Drift) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) fn read_source(path: &Path) -> Result<SourceFile, Failure> {
    fs::read_to_string(path)
        .map(|text| SourceFile::new(path.display().to_string(), text))
        .map_err(|error| Failure::Usage(format!("cannot read {}: {error}", path.display())))
}

fn spec_source(path: Option<&Path>) -> Result<SourceFile, Failure> {
    match path {
        Some(path) => read_source(path),
        None => Ok(SourceFile::new(spec::BUNDLED_NAME, spec::BUNDLED)),
    }
}

pub(crate) fn report(diagnostics: &[Diagnostic], sources: &[SourceFile]) {
    let renderer = Renderer::new(sources);
    // termcolor's `Auto` only looks at TERM and NO_COLOR: keep escape codes out of pipes and logs.
    let color = if std::io::stderr().is_terminal() {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    let mut stderr = StandardStream::stderr(color);
    for diagnostic in diagnostics {
        let _ = renderer.emit(&mut stderr, diagnostic);
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let _ = writeln!(
            stderr,
            "error: stopped with {errors} error{}",
            if errors == 1 { "" } else { "s" }
        );
    }
}

fn generate_command(
    mapping_path: &Path,
    out: &Path,
    spec_path: Option<&Path>,
    mode: Mode,
) -> Result<(), Failure> {
    let spec = spec_source(spec_path)?;
    let mapping = read_source(mapping_path)?;
    let generated = generate(&spec, &mapping).map_err(|diagnostics| {
        report(&diagnostics, &[spec.clone(), mapping.clone()]);
        Failure::Diagnostics
    })?;
    report(&generated.warnings, &[spec.clone(), mapping.clone()]);
    let (warnings, sources) = usercode::stale_methods(out, &generated.protocol);
    report(&warnings, &sources);
    let outcome = output::apply(out, &generated.files, mode)?;
    match mode {
        Mode::Check if outcome.changes.is_empty() => {
            println!(
                "{} is up to date ({} files)",
                out.display(),
                outcome.unchanged
            );
            Ok(())
        }
        Mode::Check => {
            eprintln!(
                "error: {} is out of date; `connector-gen generate` would change:",
                out.display()
            );
            for change in &outcome.changes {
                eprintln!("  {}", describe_change(change));
            }
            Err(Failure::Drift)
        }
        Mode::Write { .. } => {
            for change in &outcome.changes {
                println!("  {}", describe_change(change));
            }
            println!(
                "{}: {} files changed, {} unchanged",
                out.display(),
                outcome.changes.len(),
                outcome.unchanged
            );
            Ok(())
        }
    }
}

fn describe_change(change: &Change) -> String {
    match change {
        Change::Create(path) => format!("create {path}"),
        Change::Update(path) => format!("update {path}"),
        Change::Delete(path) => format!("delete {path}"),
    }
}

fn check(
    mapping_path: &Path,
    spec_path: Option<&Path>,
    against: &[PathBuf],
) -> Result<(), Failure> {
    let spec = spec_source(spec_path)?;
    let mapping = read_source(mapping_path)?;
    match generate(&spec, &mapping) {
        Ok(mut generated) => {
            if !against.is_empty() {
                let providers = against
                    .iter()
                    .map(|p| read_source(p))
                    .collect::<Result<Vec<_>, _>>()?;
                match crate::draft::against::check(&mapping, &providers) {
                    Ok(found) => generated.warnings.extend(found),
                    Err(diagnostics) => {
                        report(&diagnostics, &providers);
                        return Err(Failure::Diagnostics);
                    }
                }
                if generated.warnings.iter().any(Diagnostic::is_error) {
                    report(&generated.warnings, &[spec, mapping]);
                    return Err(Failure::Diagnostics);
                }
            }
            report(&generated.warnings, &[spec.clone(), mapping.clone()]);
            match generated.warnings.len() {
                0 => println!("{}: no problems found", mapping.name),
                n => println!(
                    "{}: no errors, {n} warning{}",
                    mapping.name,
                    if n == 1 { "" } else { "s" }
                ),
            }
            Ok(())
        }
        Err(diagnostics) => {
            report(&diagnostics, &[spec, mapping]);
            Err(Failure::Diagnostics)
        }
    }
}

fn new(dir: &Path, name: Option<String>, spec_path: Option<&Path>) -> Result<(), Failure> {
    let name = match name {
        Some(name) => name,
        None => default_name(dir)?,
    };
    if dir.exists()
        && fs::read_dir(dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::Usage(format!(
            "{} already exists and is not empty; run `connector-gen generate` inside an existing connector",
            dir.display()
        )));
    }
    let base_url_env = format!("{}_BASE_URL", names::shouty(&name));
    let mapping_text = new_mapping(&name, &base_url_env).map_err(|d| {
        report(&[d], &[]);
        Failure::Diagnostics
    })?;
    let mapping = SourceFile::new(
        dir.join("connector.yaml").display().to_string(),
        mapping_text.clone(),
    );
    let spec = spec_source(spec_path)?;
    let generated = generate(&spec, &mapping).map_err(|diagnostics| {
        report(&diagnostics, &[spec.clone(), mapping.clone()]);
        Failure::Diagnostics
    })?;
    let created = !dir.exists();
    let written = fs::create_dir_all(dir)
        .and_then(|()| fs::write(dir.join("connector.yaml"), &mapping_text))
        .map_err(|error| OutputError::Io {
            path: dir.to_path_buf(),
            error,
        })
        .and_then(|()| output::apply(dir, &generated.files, Mode::Write { force: false }));
    if let Err(error) = written {
        if created {
            let _ = fs::remove_dir_all(dir);
        }
        return Err(error.into());
    }
    println!(
        "Created the {name} connector in {} ({} files).",
        dir.display(),
        generated.files.len() + 2
    );
    println!();
    println!("Next:");
    println!("  cd {}", dir.display());
    println!("  {base_url_env}=https://api.example.com CONNECTOR_API_KEY=dev-secret cargo run");
    Ok(())
}

/// A crate name from the directory's name, when `--name` is not given.
fn default_name(dir: &Path) -> Result<String, Failure> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = names::package(&base);
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(name)
    } else {
        Err(Failure::Usage(format!(
            "cannot make a crate name from `{}`; pass --name",
            dir.display()
        )))
    }
}
