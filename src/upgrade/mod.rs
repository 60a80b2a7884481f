//! `connector-gen upgrade`: what a new protocol version changes for one connector, for CI and
//! for whoever reviews the pull request that regenerates it.
//!
//! The stages: both specs lowered to protocol models -> [`diff`] (what changed) -> [`impact`]
//! (what that means for the mapping and the user's methods) -> a report, as Markdown or JSON.

pub mod diff;
pub mod impact;

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::usercode;
pub use impact::{Change, Item, Severity};

#[derive(Debug, Serialize)]
pub struct Version {
    pub file: String,
    pub title: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub blocking: usize,
    pub look: usize,
    pub info: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub from: Version,
    pub to: Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    pub summary: Summary,
    pub items: Vec<Item>,
}

/// Everything `upgrade` reads.
pub struct Inputs<'a> {
    pub old_spec: &'a SourceFile,
    pub new_spec: &'a SourceFile,
    pub mapping: Option<&'a SourceFile>,
    /// The connector crate, where src/handlers.rs is.
    pub crate_dir: &'a Path,
}

pub fn run(inputs: &Inputs) -> Result<Report, Vec<Diagnostic>> {
    let old = crate::load_protocol(inputs.old_spec)?;
    let new = crate::load_protocol(inputs.new_spec)?;
    let mapping = match inputs.mapping {
        Some(source) => Some(crate::mapping::load(source)?),
        None => None,
    };
    let (methods, _) = usercode::connector_methods(inputs.crate_dir);
    let connector = impact::Connector {
        mapping: mapping.as_ref(),
        mapping_source: inputs.mapping,
        methods: &methods,
    };
    let changes = diff::diff(&old, &new);
    let items = impact::assess(&old, &new, &changes, &connector);
    let count = |severity| items.iter().filter(|i| i.severity == severity).count();
    let version = |source: &SourceFile, protocol: &crate::ir::Protocol| Version {
        file: source.name.clone(),
        title: protocol.title.clone(),
        version: protocol.version.clone(),
    };
    Ok(Report {
        from: version(inputs.old_spec, &old),
        to: version(inputs.new_spec, &new),
        mapping: inputs.mapping.map(|m| m.name.clone()),
        summary: Summary {
            blocking: count(Severity::Blocking),
            look: count(Severity::Look),
            info: count(Severity::Info),
        },
        items,
    })
}

impl Report {
    /// 0 nothing to do, 1 blocking, 3 needs a look.
    pub fn exit_code(&self) -> u8 {
        if self.summary.blocking > 0 {
            1
        } else if self.summary.look > 0 {
            3
        } else {
            0
        }
    }

    /// For a pull-request comment.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let name = |v: &Version| {
            let file = Path::new(&v.file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            format!("{} ({})", v.version, file.unwrap_or_default())
        };
        let _ = writeln!(
            out,
            "## Protocol upgrade: {} {} → {}\n",
            self.to.title,
            name(&self.from),
            name(&self.to)
        );
        let _ = writeln!(
            out,
            "From `{}` to `{}`{}.\n",
            self.from.file,
            self.to.file,
            self.mapping
                .as_ref()
                .map(|m| format!(", for `{m}`"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "**{} blocking, {} to look at, {} for information.**",
            self.summary.blocking, self.summary.look, self.summary.info
        );
        let sections = [
            (
                Severity::Blocking,
                "Blocking: regeneration fails or the crate stops compiling",
            ),
            (Severity::Look, "Needs a look"),
            (Severity::Info, "For information"),
        ];
        for (severity, title) in sections {
            let items: Vec<&Item> = self
                .items
                .iter()
                .filter(|i| i.severity == severity)
                .collect();
            if items.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n### {title}\n");
            for item in items {
                let places = if item.locations.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        item.locations
                            .iter()
                            .map(|l| format!("`{l}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let _ = writeln!(out, "- {}{places}", item.message);
            }
        }
        if self.items.is_empty() {
            let _ = writeln!(
                out,
                "\nNothing in this protocol version concerns this connector."
            );
        }
        out
    }
}
