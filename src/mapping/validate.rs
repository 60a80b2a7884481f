//! The mapping checked against what it refers to: the protocol model and the generated crate.

use super::Mapping;
use crate::diagnostics::Diagnostic;
use crate::ir::Protocol;
use crate::plan::SERVER_DEPENDENCIES;

/// Every problem the mapping has beyond its own syntax; empty when it is sound.
pub fn validate(mapping: &Mapping, _protocol: &Protocol, file: &str) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for (name, dependency) in &mapping.dependencies {
        if SERVER_DEPENDENCIES.iter().any(|(server, _)| server == name) {
            problems.push(
                Diagnostic::error(format!(
                    "`{name}` is already a dependency of every generated connector"
                ))
                .at(file, dependency.span.clone())
                .with_help(format!(
                    "remove it from `dependencies`; the generated server's `{name}` is yours to use"
                )),
            );
        }
    }
    problems
}
