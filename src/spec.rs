//! Loading the wire-protocol spec: the bundled copy or any OpenAPI 3.0 file, parsed into
//! `openapiv3` types. Errors come back as diagnostics with file, line and column.

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::yaml;

/// The Generic connector protocol this binary was built with.
pub const BUNDLED: &str = include_str!("../spec/generic-connector.yaml");
pub const BUNDLED_NAME: &str = "spec/generic-connector.yaml (bundled)";

/// Parses a spec document. YAML and JSON are both accepted (JSON is YAML).
pub fn parse(source: &SourceFile) -> Result<openapiv3::OpenAPI, Diagnostic> {
    serde_yaml::from_str(&source.text).map_err(|error| {
        let offset = error.location().map_or(0, |l| l.index());
        let message = error.to_string();
        // serde_yaml appends " at line L column C"; the snippet shows that already.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        Diagnostic::error(format!("not a valid OpenAPI 3.0 document: {message}"))
            .at(&source.name, offset..offset)
    })
}

/// Gives pointer-only diagnostics (from lowering) a file position, by finding the node the
/// pointer names in the spec's YAML tree.
pub fn locate(source: &SourceFile, diagnostics: &mut [Diagnostic]) {
    let Ok(root) = yaml::parse(source) else {
        return;
    };
    for diagnostic in diagnostics {
        let Some(location) = &mut diagnostic.location else {
            continue;
        };
        if !location.file.is_empty() {
            continue;
        }
        location.file = source.name.clone();
        if let Some(pointer) = &location.pointer {
            let node = root.find_nearest(pointer);
            location.span = node.span.start..node.span.start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_spec_lowers_cleanly() {
        let source = SourceFile::new(BUNDLED_NAME, BUNDLED);
        let doc = parse(&source).expect("bundled spec parses");
        let protocol = crate::ir::lower(&doc).expect("bundled spec is supported");
        let ids: Vec<_> = protocol
            .operations
            .iter()
            .map(|op| op.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "getAccounts",
                "getAccountBalances",
                "getBeneficiaries",
                "getTransactions",
                "createPayout",
                "createTransfer"
            ]
        );
    }

    #[test]
    fn type_errors_point_at_the_offending_line() {
        let source = SourceFile::new(
            "s.yaml",
            "openapi: 3.0.3\ninfo:\n  title: t\n  version: v\npaths: [1]\n",
        );
        let error = parse(&source).unwrap_err();
        let location = error.location.unwrap();
        assert_eq!(
            source.line_col(location.span.start).0,
            5,
            "{}",
            error.message
        );
    }
}
