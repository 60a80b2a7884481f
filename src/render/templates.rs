//! Non-Rust files, rendered from the askama templates under `templates/`.

use askama::Template;

use crate::diagnostics::Diagnostic;
use crate::ir::Protocol;
use crate::plan::{Crate, Plan};

const HEADER: &str = super::GENERATED_HEADER;

#[derive(Template)]
#[template(path = "crate/Cargo.toml", escape = "none")]
struct CargoToml<'a> {
    header: &'a str,
    krate: &'a Crate,
}

#[derive(Template)]
#[template(path = "crate/Dockerfile", escape = "none")]
struct Dockerfile<'a> {
    header: &'a str,
    krate: &'a Crate,
}

#[derive(Template)]
#[template(path = "crate/dockerignore", escape = "none")]
struct Dockerignore<'a> {
    header: &'a str,
    krate: &'a Crate,
}

#[derive(Template)]
#[template(path = "crate/gitignore", escape = "none")]
struct Gitignore<'a> {
    krate: &'a Crate,
}

#[derive(Template)]
#[template(path = "crate/kubernetes.yaml", escape = "none")]
struct Kubernetes<'a> {
    krate: &'a Crate,
    /// Environment variables of secret settings, for the Secret.
    secrets: Vec<&'a str>,
    /// The other settings read from the environment, set in the Deployment.
    plain: Vec<&'a str>,
}

/// `deploy/kubernetes.yaml`: a Secret, a Deployment of two replicas and a Service.
pub fn kubernetes(krate: &Crate) -> Result<String, Diagnostic> {
    let env = |secret: bool| {
        krate
            .settings
            .iter()
            .filter(|setting| setting.secret == secret)
            .flat_map(|setting| setting.source.variables())
            .fold(Vec::new(), |mut names, name| {
                if !names.contains(&name) {
                    names.push(name);
                }
                names
            })
    };
    finish(
        Kubernetes {
            krate,
            secrets: env(true),
            plain: env(false),
        }
        .render(),
    )
}

struct OperationRow {
    id: String,
    method: &'static str,
    path: String,
    status: u16,
    mapped: bool,
}

#[derive(Template)]
#[template(path = "crate/README.md", escape = "none")]
struct Readme<'a> {
    header: &'a str,
    krate: &'a Crate,
    protocol_title: &'a str,
    protocol_version: &'a str,
    required_env: Vec<&'a str>,
    operations: Vec<OperationRow>,
}

#[derive(Template)]
#[template(path = "connector.yaml", escape = "none")]
pub struct NewMapping<'a> {
    pub name: &'a str,
    pub base_url_env: &'a str,
}

/// The skeleton `connector-gen new --template` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skeleton {
    /// `base_url` only.
    Minimal,
    /// Every operation, commented out, for a provider shaped like a card processor.
    Card,
    /// Every operation, commented out, for a provider shaped like a bank.
    Bank,
}

#[derive(Template)]
#[template(path = "new/card.yaml", escape = "none")]
struct CardSkeleton<'a> {
    name: &'a str,
    base_url_env: &'a str,
    /// The variables' prefix: `ACME` in `ACME_API_KEY`.
    prefix: &'a str,
    /// Whether the commented parts are written live (to check that they pass).
    live: bool,
}

#[derive(Template)]
#[template(path = "new/bank.yaml", escape = "none")]
struct BankSkeleton<'a> {
    name: &'a str,
    base_url_env: &'a str,
    prefix: &'a str,
    live: bool,
}

mod filters {
    /// `{% filter commented(live) %}`: the block commented out, `# ` at its left edge (its
    /// least indented line's column) on every line, so that removing that `# ` brings the
    /// block back as it was; unchanged when `live`.
    pub fn commented(
        text: impl std::fmt::Display,
        _: &dyn askama::Values,
        live: &bool,
    ) -> askama::Result<String> {
        // The block starts after its tag's line; its text from the next line on.
        let text = text.to_string();
        let text = text.strip_prefix('\n').unwrap_or(&text);
        if *live {
            return Ok(text.to_owned());
        }
        let indent = |line: &str| line.len() - line.trim_start().len();
        let edge = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(indent)
            .min()
            .unwrap_or(0);
        let lines: Vec<String> = text
            .lines()
            .map(|line| match line.trim().is_empty() {
                true => String::new(),
                false => format!("{}# {}", &line[..edge], &line[edge..]),
            })
            .collect();
        Ok(lines.join("\n"))
    }
}

fn finish(rendered: askama::Result<String>) -> Result<String, Diagnostic> {
    rendered
        .map(|mut text| {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        })
        .map_err(|error| {
            Diagnostic::error(format!(
                "internal error: a template failed to render: {error}"
            ))
        })
}

pub fn cargo_toml(krate: &Crate) -> Result<String, Diagnostic> {
    finish(
        CargoToml {
            header: HEADER,
            krate,
        }
        .render(),
    )
}

pub fn dockerfile(krate: &Crate) -> Result<String, Diagnostic> {
    finish(
        Dockerfile {
            header: HEADER,
            krate,
        }
        .render(),
    )
}

pub fn dockerignore(krate: &Crate) -> Result<String, Diagnostic> {
    finish(
        Dockerignore {
            header: HEADER,
            krate,
        }
        .render(),
    )
}

/// Yours once written: what git leaves out of the connector's repository.
pub fn gitignore(krate: &Crate) -> Result<String, Diagnostic> {
    finish(Gitignore { krate }.render())
}

pub fn readme(protocol: &Protocol, plan: &Plan) -> Result<String, Diagnostic> {
    let krate = &plan.krate;
    let required_env = krate.variables.iter().map(|v| v.name.as_str()).collect();
    let operations = protocol
        .operations
        .iter()
        .map(|op| OperationRow {
            id: op.id.clone(),
            method: op.method.as_str(),
            path: op.path.clone(),
            status: op.success.status,
            mapped: plan.maps(&op.id),
        })
        .collect();
    finish(
        Readme {
            header: HEADER,
            krate,
            protocol_title: &protocol.title,
            protocol_version: &protocol.version,
            required_env,
            operations,
        }
        .render(),
    )
}

pub fn new_mapping(
    skeleton: Skeleton,
    name: &str,
    base_url_env: &str,
    prefix: &str,
) -> Result<String, Diagnostic> {
    skeleton_text(skeleton, name, base_url_env, prefix, false)
}

fn skeleton_text(
    skeleton: Skeleton,
    name: &str,
    base_url_env: &str,
    prefix: &str,
    live: bool,
) -> Result<String, Diagnostic> {
    finish(match skeleton {
        Skeleton::Minimal => NewMapping { name, base_url_env }.render(),
        Skeleton::Card => CardSkeleton {
            name,
            base_url_env,
            prefix,
            live,
        }
        .render(),
        Skeleton::Bank => BankSkeleton {
            name,
            base_url_env,
            prefix,
            live,
        }
        .render(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::SourceFile;

    fn generate(text: &str) -> crate::Generated {
        let spec = SourceFile::new(crate::spec::BUNDLED_NAME, crate::spec::BUNDLED);
        let mapping = SourceFile::new("connector.yaml", text);
        crate::generate(&spec, &mapping).unwrap_or_else(|diagnostics| {
            let rendered =
                crate::diagnostics::Renderer::new(&[mapping]).to_plain_string(&diagnostics);
            panic!("{rendered}\n{text}")
        })
    }

    /// Both skeletons pass as written, and with every part uncommented: then they map all
    /// six operations, without a warning.
    #[test]
    fn skeletons_pass_as_written_and_uncommented() {
        for skeleton in [Skeleton::Card, Skeleton::Bank] {
            let written = skeleton_text(skeleton, "acme", "ACME_BASE_URL", "ACME", false).unwrap();
            let live = skeleton_text(skeleton, "acme", "ACME_BASE_URL", "ACME", true).unwrap();
            assert!(generate(&written).warnings.is_empty(), "{written}");
            let generated = generate(&live);
            assert!(generated.warnings.is_empty(), "{:?}", generated.warnings);
            let mapping =
                crate::mapping::load(&SourceFile::new("connector.yaml", live.as_str())).unwrap();
            let mapped: Vec<&str> = mapping.operations.keys().map(String::as_str).collect();
            let mut all: Vec<&str> = generated
                .protocol
                .operations
                .iter()
                .map(|op| op.id.as_str())
                .collect();
            all.sort_unstable();
            assert_eq!(mapped, all, "{skeleton:?}");
            // Line for line, the file is the live one with `# ` added at some block's edge.
            assert_eq!(written.lines().count(), live.lines().count());
            for (written, live) in written.lines().zip(live.lines()) {
                let edge = live.len() - live.trim_start().len();
                let uncommented = written
                    .find("# ")
                    .filter(|at| *at <= edge && written[..*at].trim().is_empty())
                    .map(|at| format!("{}{}", &written[..at], &written[at + 2..]));
                assert!(
                    written == live || uncommented.as_deref() == Some(live),
                    "{skeleton:?}: {written:?} is not {live:?} commented out"
                );
            }
            assert_eq!(
                mapping.upstream.base_url,
                crate::mapping::Setting::Env("ACME_BASE_URL".into())
            );
        }
    }
}
