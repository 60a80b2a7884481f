//! The command line: `new`, `generate`, `check`, `verify`, `upgrade`, `draft`, `preview`.
//! Exit codes: 0 ok, 1 diagnostics, drift, findings or records that fail to convert, 2 usage
//! or I/O error (or an unreachable connector); `upgrade` also exits 3 for changes that need a
//! look.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};

use crate::diagnostics::{Diagnostic, Renderer, SourceFile};
use crate::output::{self, Change, Mode, OutputError};
use crate::render::{Skeleton, new_mapping};
use crate::{generate, names, spec, usercode};

const EXAMPLES: &str = "\
Examples:
  connector-gen new acme                       scaffold ./acme with connector.yaml and its crate
  connector-gen new acme --template bank       ... with every operation sketched, commented out
  connector-gen generate                       regenerate from ./connector.yaml
  connector-gen generate --check               CI: fail if the committed code is stale
  connector-gen generate --spec next.yaml      regenerate against another protocol version
  connector-gen check --mapping connector.yaml validate only, print every problem
  connector-gen check --coverage               also print which provider values become each enum value
  connector-gen verify http://127.0.0.1:8080 --api-key dev-secret
                                               poll a running connector as Formance does
  connector-gen upgrade --spec next.yaml       what a new protocol version changes for this connector
  connector-gen draft --from-openapi provider.yaml --out acme
                                               a first connector.yaml from the provider's OpenAPI
  connector-gen check --against-spec provider.yaml
                                               check the mapping against the provider's API
  connector-gen preview --operation getTransactions --sample response.json
                                               what the mapping makes of a saved provider answer";

const PREVIEW_EXAMPLES: &str = "\
Examples:
  connector-gen preview --operation getTransactions --sample response.json
  connector-gen preview --operation getAccounts --sample accounts.json --format table
  connector-gen preview --operation getTransactions --sample page.json --parent account.json
  CURSORPAY_BASE_URL=https://sandbox.example.com CURSORPAY_API_KEY=sk_test_... \\
    connector-gen preview --operation getTransactions --live

The sample is one provider answer as saved from the API (one page of a list). Records are
converted by the same runtime code the generated connector runs, and printed in the order it
serves them; every record that fails is reported with its field, the provider value and the
connector.yaml line that maps it. For an operation listed once per parent record (for_each),
--parent FILE gives the parent's provider record for `{parent.x}`; without it they are empty.
--live sends the operation's first request (GET only) with the credentials connector.yaml
reads from the environment.

Exit codes: 0 every record converted, 1 some records failed, 2 usage or unreadable input.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  connector-gen verify http://127.0.0.1:8080 --api-key dev-secret
  connector-gen verify https://connector.example.com --api-key \"$KEY\" --page-size 100,7 --report verify.json
  connector-gen verify http://127.0.0.1:8080 --api-key dev-secret --initiate --source acct_1 --destination rcp_1

Exit codes: 0 no findings, 1 findings (or the budget ran out), 2 unreachable connector, refused key or usage.";

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
    #[command(
        after_help = "Examples:\n  connector-gen new acme-bank --name acme-bank\n  connector-gen new acme-bank --template bank\n\nTemplates:\n  minimal  only `upstream.base_url`; every operation answers 501 until src/handlers.rs implements it\n  card     a card processor: bearer token, cursor paging, Unix times, decimal amounts, idempotency keys\n  bank     a bank: OAuth2, page numbers, RFC 3339 times, minor units, balances on the account, look-ups by reference\n\ncard and bank sketch all six operations, each part commented out: the file passes `check` as\nwritten and with any part uncommented, once the paths and field names are the provider's."
    )]
    New {
        /// The directory to create (must not exist, or be empty).
        dir: PathBuf,
        /// The connector's name: crate and binary name [default: DIR's name].
        #[arg(long)]
        name: Option<String>,
        /// The connector.yaml to start from.
        #[arg(long, value_enum, default_value = "minimal")]
        template: Template,
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
    #[command(
        after_help = "Examples:\n  connector-gen check --mapping connector.yaml\n  connector-gen check --coverage"
    )]
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
        /// Also print, for every enum mapping, each protocol value and the provider values
        /// that become it.
        #[arg(long)]
        coverage: bool,
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
    /// Poll a running Generic connector exactly as Formance does and report what it would lose,
    /// reject, retry forever or pay twice.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(Box<VerifyArgs>),
    /// Report what a new protocol version changes for this connector, before regenerating.
    #[command(after_help = UPGRADE_EXAMPLES)]
    Upgrade {
        /// The new protocol spec (OpenAPI 3.0).
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// The protocol the connector is generated from now [default: the bundled spec].
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The mapping file; its directory is the crate whose src/ is read.
        #[arg(long, value_name = "FILE", default_value = "connector.yaml")]
        mapping: PathBuf,
        /// `markdown` (for a pull-request comment) or `json`.
        #[arg(long, value_enum, default_value = "markdown")]
        format: UpgradeFormat,
    },
    /// Show the protocol records the mapping makes of a provider answer, and why any fail.
    #[command(after_help = PREVIEW_EXAMPLES)]
    Preview(Box<PreviewArgs>),
}

#[derive(Debug, clap::Args)]
struct PreviewArgs {
    /// The protocol operation to preview (its operationId: getTransactions, getAccounts...).
    #[arg(long, value_name = "ID")]
    operation: String,
    /// A saved provider answer (JSON) to convert.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "live",
        conflicts_with = "live"
    )]
    sample: Option<PathBuf>,
    /// Send the operation's first request to the provider instead (GET operations only).
    #[arg(long)]
    live: bool,
    /// For an operation listed per parent record (`for_each`): the parent's provider record.
    #[arg(long, value_name = "FILE")]
    parent: Option<PathBuf>,
    /// The mapping file.
    #[arg(long, value_name = "FILE", default_value = "connector.yaml")]
    mapping: PathBuf,
    /// The protocol spec (OpenAPI 3.0) [default: the bundled Generic connector spec].
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// `json` (the records, the failures and notes) or `table` (one row per record).
    #[arg(long, value_enum, default_value = "json")]
    format: PreviewFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PreviewFormat {
    Json,
    Table,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Template {
    Minimal,
    Card,
    Bank,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum UpgradeFormat {
    Markdown,
    Json,
}

const UPGRADE_EXAMPLES: &str = "\
Examples:
  connector-gen upgrade --spec next.yaml
  connector-gen upgrade --spec next.yaml --mapping acme/connector.yaml --format json > upgrade.json
  connector-gen upgrade --from old.yaml --spec next.yaml --mapping connector.yaml

Exit codes: 0 nothing to do, 1 blocking changes (generate fails or the crate stops compiling),
2 usage or unreadable input, 3 changes that need a look.";

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The connector's base URL (Formance's `endpoint`), e.g. http://127.0.0.1:8080.
    url: String,
    /// The key Formance sends as `Authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY")]
    api_key: String,
    /// Page sizes to poll at, each from an empty state (Formance's default is 100).
    #[arg(
        long,
        value_name = "N,N",
        value_delimiter = ',',
        default_value = "100,7"
    )]
    page_size: Vec<usize>,
    /// Incremental poll cycles after each full sync.
    #[arg(long, value_name = "N", default_value_t = 2)]
    cycles: usize,
    /// The protocol spec (OpenAPI 3.0) [default: the bundled Generic connector spec].
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Requests in all, retries included.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    max_requests: usize,
    /// Time for the whole run (`90s`, `5m`).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    max_time: std::time::Duration,
    /// Time-out of one request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    timeout: std::time::Duration,
    /// Initiate payouts and transfers (it moves money: sandboxes only).
    #[arg(long)]
    initiate: bool,
    /// The account payments are sent from [default: the first account listed].
    #[arg(long, value_name = "ID", requires = "initiate")]
    source: Option<String>,
    /// Where payments go [default: the first beneficiary for payouts, another account for transfers].
    #[arg(long, value_name = "ID", requires = "initiate")]
    destination: Option<String>,
    /// Amount of each payment, in minor units.
    #[arg(
        long,
        value_name = "MINOR",
        default_value_t = 100,
        requires = "initiate"
    )]
    amount: u128,
    /// UMN currency of each payment [default: the source account's first balance, else EUR/2].
    #[arg(long, value_name = "UMN", requires = "initiate")]
    currency: Option<String>,
    /// How long to wait for a payment's transaction to be listed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "initiate")]
    link_wait: std::time::Duration,
    /// No progress line on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// `500ms`, `10s`, `2m`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 10s or 2m"))?;
    let millis = match unit {
        "ms" => number,
        "s" => number.saturating_mul(1000),
        "m" => number.saturating_mul(60_000),
        _ => {
            return Err(format!(
                "`{text}` is not a duration such as 500ms, 10s or 2m"
            ));
        }
    };
    Ok(std::time::Duration::from_millis(millis))
}

/// Why a command stopped: problems in the inputs (exit 1) or something around them (exit 2).
pub(crate) enum Failure {
    Diagnostics,
    Drift,
    /// `verify` found problems.
    Findings,
    /// A command's own exit code (`upgrade`'s 1 and 3).
    Exit(u8),
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
        Command::New {
            dir,
            name,
            spec,
            template,
        } => {
            let skeleton = match template {
                Template::Minimal => Skeleton::Minimal,
                Template::Card => Skeleton::Card,
                Template::Bank => Skeleton::Bank,
            };
            new(&dir, name, spec.as_deref(), skeleton)
        }
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
            coverage,
        } => check(&mapping, spec.as_deref(), &against_spec, coverage),
        Command::Draft {
            from_openapi,
            name,
            out,
            hints,
            force,
        } => crate::draft::cli::draft(&from_openapi, name, &out, hints.as_deref(), force),
        Command::Verify(args) => verify_command(&args),
        Command::Upgrade {
            spec,
            from,
            mapping,
            format,
        } => upgrade_command(&spec, from.as_deref(), &mapping, format),
        Command::Preview(args) => preview_command(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Diagnostics | Failure::Drift | Failure::Findings) => ExitCode::from(1),
        Err(Failure::Exit(code)) => ExitCode::from(code),
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
    coverage: bool,
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
            if coverage && let Ok(loaded) = crate::mapping::load(&mapping) {
                let table = crate::mapping::coverage::coverage(&loaded, &generated.protocol);
                print!("\n{}", crate::mapping::coverage::render(&table, &mapping));
            }
            Ok(())
        }
        Err(diagnostics) => {
            report(&diagnostics, &[spec, mapping]);
            Err(Failure::Diagnostics)
        }
    }
}

fn new(
    dir: &Path,
    name: Option<String>,
    spec_path: Option<&Path>,
    skeleton: Skeleton,
) -> Result<(), Failure> {
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
    let prefix = names::shouty(&name);
    let base_url_env = format!("{prefix}_BASE_URL");
    let mapping_text = new_mapping(skeleton, &name, &base_url_env, &prefix).map_err(|d| {
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

fn verify_command(args: &VerifyArgs) -> Result<(), Failure> {
    if args.page_size.is_empty() || args.page_size.contains(&0) {
        return Err(Failure::Usage(
            "--page-size takes positive numbers, e.g. 100,7".to_owned(),
        ));
    }
    if args.initiate && args.amount == 0 {
        return Err(Failure::Usage("--amount must be above zero".to_owned()));
    }
    let spec = spec_source(args.spec.as_deref())?;
    let protocol = crate::load_protocol(&spec).map_err(|diagnostics| {
        report(&diagnostics, std::slice::from_ref(&spec));
        Failure::Usage(format!("cannot use {} as the protocol", spec.name))
    })?;
    let wire = crate::verify::wire::Wire::new(protocol)
        .map_err(|why| Failure::Usage(format!("{}: {why}", spec.name)))?;
    let options = crate::verify::Options {
        url: args.url.trim_end_matches('/').to_owned(),
        api_key: args.api_key.clone(),
        page_sizes: args.page_size.clone(),
        cycles: args.cycles,
        max_requests: args.max_requests,
        max_time: args.max_time,
        request_timeout: args.timeout,
        initiate: args.initiate.then(|| crate::verify::InitiateOptions {
            source: args.source.clone(),
            destination: args.destination.clone(),
            amount: args.amount,
            currency: args.currency.clone(),
            link_wait: args.link_wait,
        }),
        progress: !args.quiet,
    };
    let outcome = crate::verify::run(std::sync::Arc::new(wire), &options)
        .map_err(|unreachable| Failure::Usage(unreachable.0))?;
    print!("{}", outcome.human());
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&outcome).unwrap_or_default();
        fs::write(path, json + "\n")
            .map_err(|error| Failure::Usage(format!("cannot write {}: {error}", path.display())))?;
    }
    if outcome.findings.is_empty() {
        Ok(())
    } else {
        Err(Failure::Findings)
    }
}

fn upgrade_command(
    spec_path: &Path,
    from: Option<&Path>,
    mapping_path: &Path,
    format: UpgradeFormat,
) -> Result<(), Failure> {
    let new_spec = read_source(spec_path)?;
    let old_spec = spec_source(from)?;
    let mapping = read_source(mapping_path)?;
    let crate_dir = parent_dir(mapping_path);
    let inputs = crate::upgrade::Inputs {
        old_spec: &old_spec,
        new_spec: &new_spec,
        mapping: Some(&mapping),
        crate_dir: &crate_dir,
    };
    let outcome = crate::upgrade::run(&inputs).map_err(|diagnostics| {
        report(
            &diagnostics,
            &[old_spec.clone(), new_spec.clone(), mapping.clone()],
        );
        Failure::Usage("cannot compare the protocol versions".to_owned())
    })?;
    match format {
        UpgradeFormat::Markdown => print!("{}", outcome.markdown()),
        UpgradeFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&outcome).unwrap_or_default()
        ),
    }
    match outcome.exit_code() {
        0 => Ok(()),
        code => Err(Failure::Exit(code)),
    }
}

fn preview_command(args: &PreviewArgs) -> Result<(), Failure> {
    use crate::preview::{self, Input, Stop};
    let spec = spec_source(args.spec.as_deref())?;
    let mapping = read_source(&args.mapping)?;
    let stop = |stop: Stop, sources: &[SourceFile]| match stop {
        Stop::Usage(message) => Failure::Usage(message),
        Stop::Diagnostics(diagnostics) => {
            report(&diagnostics, sources);
            Failure::Usage(format!(
                "{} cannot be previewed until `connector-gen check` passes",
                mapping.name
            ))
        }
    };
    let sources = [spec.clone(), mapping.clone()];
    let (protocol, loaded) = preview::load(&spec, &mapping).map_err(|s| stop(s, &sources))?;
    let operation = preview::operation(&loaded, &args.operation).map_err(|s| stop(s, &sources))?;
    let Some(op) = protocol.operation(&args.operation) else {
        return Err(Failure::Usage(format!(
            "{} has no operation `{}`",
            spec.name, args.operation
        )));
    };
    let parent = match &args.parent {
        Some(path) => Some(preview::read_sample(path).map_err(|s| stop(s, &sources))?),
        None => None,
    };
    let input = match &args.sample {
        Some(path) => Input::Sample(path.clone()),
        None => Input::Live,
    };
    let run = preview::Preview {
        protocol: &protocol,
        mapping: &loaded,
        mapping_source: &mapping,
        op,
        operation,
        parent: parent.as_ref(),
    };
    let body = match input {
        Input::Sample(path) => preview::read_sample(&path).map_err(|s| stop(s, &sources))?,
        Input::Live => preview::fetch(&run).map_err(|s| stop(s, &sources))?,
    };
    let outcome = run.run(&body);
    let format = match args.format {
        PreviewFormat::Json => preview::Format::Json,
        PreviewFormat::Table => preview::Format::Table,
    };
    print!("{}", outcome.render(format));
    for note in &outcome.notes {
        eprintln!("note: {note}");
    }
    eprint!(
        "{}",
        preview::format::failures(&outcome.failures, outcome.total)
    );
    eprintln!(
        "{}: {} record{} converted, {} failed",
        outcome.operation,
        outcome.records.len(),
        if outcome.records.len() == 1 { "" } else { "s" },
        outcome.failures.len()
    );
    if outcome.failures.is_empty() {
        Ok(())
    } else {
        Err(Failure::Exit(1))
    }
}
