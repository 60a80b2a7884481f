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

pub fn new_mapping(name: &str, base_url_env: &str) -> Result<String, Diagnostic> {
    finish(NewMapping { name, base_url_env }.render())
}
