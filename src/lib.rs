//! connector-gen turns the Formance Generic connector protocol (an OpenAPI 3.0 spec) and a
//! provider mapping file into a runnable Rust connector server.
//!
//! The pipeline, one module per stage with plain data between them:
//! [`spec`] (load) -> [`ir`] (protocol model) -> [`mapping`] (load and check the mapping)
//! -> [`plan`] (which files) -> [`render`] (their contents) -> [`output`] (write or check).

pub mod cli;
pub mod diagnostics;
pub mod draft;
pub mod ir;
pub mod mapping;
pub mod names;
pub mod output;
pub mod plan;
pub mod preview;
pub mod render;
pub mod runtime;
pub mod spec;
pub mod upgrade;
pub mod usercode;
pub mod verify;
pub mod yaml;

use diagnostics::{Diagnostic, SourceFile};
use ir::Protocol;
use render::RenderedFile;

/// A connector crate, rendered in memory.
#[derive(Debug)]
pub struct Generated {
    pub protocol: Protocol,
    pub files: Vec<RenderedFile>,
    /// Problems that do not stop generation (an enum without `fallback`, a `todo`, ...).
    pub warnings: Vec<Diagnostic>,
}

/// Runs every stage up to rendering. Nothing touches the disk; both inputs are checked
/// fully, so one run reports the problems of the spec and of the mapping together.
pub fn generate(
    spec_source: &SourceFile,
    mapping_source: &SourceFile,
) -> Result<Generated, Vec<Diagnostic>> {
    let protocol = load_protocol(spec_source);
    let (mapping, mut problems) = mapping::load_partial(mapping_source);
    if let (Ok(protocol), Some(mapping)) = (&protocol, &mapping) {
        problems.extend(mapping::validate(mapping, protocol, &mapping_source.name));
        problems.sort_by_key(|d| (!d.is_error(), d.location.as_ref().map(|l| l.span.start)));
        // A YAML alias checked in each place that uses it would report its mistake each time.
        let mut seen = Vec::new();
        problems.retain(|d| {
            let first = !seen.contains(d);
            if first {
                seen.push(d.clone());
            }
            first
        });
    }
    let (protocol, mapping) = match (protocol, mapping) {
        (Ok(protocol), Some(mapping)) if !problems.iter().any(Diagnostic::is_error) => {
            (protocol, mapping)
        }
        (protocol, _) => {
            let mut diagnostics = protocol.err().unwrap_or_default();
            diagnostics.extend(problems);
            return Err(diagnostics);
        }
    };
    let mut plan = plan::plan(&protocol, &mapping);
    plan.field_lines = plan::field_lines(&mapping, mapping_source);
    let files = render::render(&protocol, &plan).map_err(|d| vec![d])?;
    Ok(Generated {
        protocol,
        files,
        warnings: problems,
    })
}

/// Spec text -> protocol model, with every diagnostic placed in the spec file.
pub fn load_protocol(source: &SourceFile) -> Result<Protocol, Vec<Diagnostic>> {
    let document = spec::parse(source).map_err(|d| vec![d])?;
    ir::lower(&document).map_err(|mut diagnostics| {
        spec::locate(source, &mut diagnostics);
        diagnostics
    })
}
