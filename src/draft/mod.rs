//! `connector-gen draft`: a first connector.yaml from a provider's own OpenAPI documents.
//!
//! The pipeline, one module per stage with plain data between them:
//! [`load`] (JSON or YAML -> values, per file) -> [`model`] (the typed view: endpoints,
//! parameters, bodies, responses, security) -> [`detect`] (every guess with its confidence and
//! evidence) -> [`emit`] (connector.yaml) and [`report`] (draft-report.json).
//! [`against`] checks any mapping against the provider's documents.

pub mod against;
pub(crate) mod cli;
pub mod detect;
pub mod emit;
pub mod hints;
pub mod load;
pub mod model;
pub mod report;

use crate::diagnostics::{Diagnostic, SourceFile};

/// A draft, in memory: the two files `draft` writes.
#[derive(Debug, Clone)]
pub struct Draft {
    pub mapping: String,
    pub report: String,
}

/// Drafts from every document (a provider that splits its API gives several); `hints` pins
/// endpoints. Documents that cannot be read are reported, all of them, with their place.
pub fn draft(
    sources: &[SourceFile],
    name: &str,
    hints: Option<&SourceFile>,
) -> Result<Draft, Vec<Diagnostic>> {
    let documents = load_all(sources)?;
    let hints = match hints {
        Some(source) => hints::load(source)?,
        None => hints::Hints::default(),
    };
    let api = model::build(&documents);
    let drafted = detect::detect(&api, &hints);
    let files: Vec<String> = sources.iter().map(|s| file_name(&s.name)).collect();
    Ok(Draft {
        mapping: emit::mapping(&drafted, name, &files),
        report: report::report(&drafted),
    })
}

pub fn load_all(sources: &[SourceFile]) -> Result<Vec<load::Document>, Vec<Diagnostic>> {
    let mut documents = Vec::new();
    let mut problems = Vec::new();
    for source in sources {
        match load::load(source) {
            Ok(document) => documents.push(document),
            Err(diagnostic) => problems.push(diagnostic),
        }
    }
    if problems.is_empty() {
        Ok(documents)
    } else {
        Err(problems)
    }
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The connector's name from the first document's file name: `stripe.spec3.yaml` -> `stripe`.
pub fn default_name(path: &str) -> String {
    let base = file_name(path);
    let stem = base.split('.').next().unwrap_or_default();
    crate::names::package(stem)
}
