//! Loading the wire-protocol spec: the bundled copy or any OpenAPI 3.0 file, parsed into
//! `openapiv3` types. Errors come back as diagnostics with file, line and column.

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::yaml;

/// The Generic connector protocol this binary was built with.
pub const BUNDLED: &str = include_str!("../spec/generic-connector.yaml");
pub const BUNDLED_NAME: &str = "spec/generic-connector.yaml (bundled)";

/// Parses a spec document. YAML and JSON are both accepted (JSON is YAML).
pub fn parse(source: &SourceFile) -> Result<openapiv3::OpenAPI, Diagnostic> {
    // Plain YAML first, so that openapiv3 only sees well-formed documents without duplicate
    // keys: serde_yaml hands it the entries before a syntax error, and openapiv3 panics on a
    // field given twice ("somehow this parsed successfully the second time").
    let value = match serde_yaml::from_str::<serde_yaml::Value>(&source.text) {
        Ok(value) => value,
        Err(error) => {
            if let Ok(root) = yaml::parse(source)
                && let Some(diagnostic) = duplicate_key(source, &root, "#")
            {
                return Err(diagnostic);
            }
            return Err(serde_error(source, &error, "invalid YAML")
                .with_label("the YAML parser stopped here"));
        }
    };
    // Diagnostics are placed by looking their pointers up in this parser's tree (`locate`), and
    // the mapping file is read with it too: a document it rejects is rejected here, with its
    // position, rather than yielding diagnostics without one. The bundled spec is known to
    // pass (a test says so).
    if !(source.name == BUNDLED_NAME && source.text == BUNDLED) {
        yaml::parse(source)?;
    }
    // From the tree already parsed; a document that does not fit is read again from its
    // text, for an error with its position.
    serde_yaml::from_value(value).or_else(|_| {
        serde_yaml::from_str(&source.text)
            .map_err(|error| serde_error(source, &error, "not a valid OpenAPI 3.0 document"))
    })
}

fn serde_error(source: &SourceFile, error: &serde_yaml::Error, what: &str) -> Diagnostic {
    let offset = error.location().map_or(0, |l| l.index());
    let message = without_position(&error.to_string());
    Diagnostic::error(format!("{what}: {message}")).at(&source.name, offset..offset)
}

/// The first key given twice in one mapping, anywhere under `node` (at `pointer`).
fn duplicate_key(source: &SourceFile, node: &yaml::Node, pointer: &str) -> Option<Diagnostic> {
    let children: Vec<(String, &yaml::Node)> = match &node.value {
        yaml::Value::Scalar { .. } => return None,
        yaml::Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (i.to_string(), item))
            .collect(),
        yaml::Value::Mapping(entries) => {
            for (i, (key, _)) in entries.iter().enumerate() {
                let Some(first) = entries[..i]
                    .iter()
                    .find(|(k, _)| match (&k.value, &key.value) {
                        (
                            yaml::Value::Scalar { text: a, .. },
                            yaml::Value::Scalar { text: b, .. },
                        ) => a == b,
                        (a, b) => a == b,
                    })
                else {
                    continue;
                };
                let (line, _) = source.line_col(first.0.span.start);
                let name = key.as_str().unwrap_or("(a collection)");
                return Some(
                    Diagnostic::error(format!(
                        "key `{name}` is given twice (first on line {line})"
                    ))
                    .with_pointer(format!("{pointer}/{}", escape(name)))
                    .at(&source.name, key.span.clone()),
                );
            }
            entries
                .iter()
                .map(|(key, value)| (key.as_str().unwrap_or_default().to_owned(), value))
                .collect()
        }
    };
    children.into_iter().find_map(|(token, child)| {
        duplicate_key(source, child, &format!("{pointer}/{}", escape(&token)))
    })
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// serde_yaml appends " at line L column C", which the snippet shows already. Syntax errors go
/// on with where the unfinished construct began (", while parsing a flow sequence at line 3
/// column 9"): often the real mistake, so that part stays.
fn without_position(message: &str) -> String {
    const AT: &str = " at line ";
    let Some(start) = message.find(AT) else {
        return message.to_owned();
    };
    fn skip_number(text: &str) -> &str {
        text.trim_start_matches(|c: char| c.is_ascii_digit())
    }
    let mut tail = skip_number(&message[start + AT.len()..]);
    if let Some(after) = tail.strip_prefix(" column ") {
        tail = skip_number(after);
    }
    format!("{}{tail}", &message[..start])
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
    fn the_bundled_spec_reads_in_the_positioned_parser_too() {
        let bundled = SourceFile::new(BUNDLED_NAME, BUNDLED);
        assert!(crate::yaml::parse(&bundled).is_ok());
        assert!(parse(&bundled).is_ok());
    }

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
