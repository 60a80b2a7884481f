//! Provider documents -> JSON values. OpenAPI 3.0, 3.1 and Swagger 2.0, in JSON or YAML, are
//! read as plain values (`openapiv3` reads 3.0 only); the typed view is `model`'s. Nothing here
//! follows a `$ref`: the view resolves local ones on demand, with a guard against cycles.

use serde_json::Value;

use crate::diagnostics::{Diagnostic, SourceFile};

/// Which description language a document speaks; it decides where things are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Swagger2,
    OpenApi30,
    OpenApi31,
}

/// One provider document, parsed and checked at the places every later stage relies on.
#[derive(Debug, Clone)]
pub struct Document {
    pub name: String,
    pub dialect: Dialect,
    pub root: Value,
}

/// Deeper documents are refused: no real description nests this far, and walking one would
/// recurse as deep.
const MAX_DEPTH: usize = 256;

pub fn load(source: &SourceFile) -> Result<Document, Diagnostic> {
    let root = parse(source)?;
    if depth_exceeds(&root, MAX_DEPTH) {
        return Err(at_pointer(
            source,
            "#",
            format!("the document nests more than {MAX_DEPTH} levels deep"),
        ));
    }
    let Some(object) = root.as_object() else {
        return Err(at_pointer(
            source,
            "#",
            "an OpenAPI document must be an object at its top",
        ));
    };
    let dialect = dialect(source, object)?;
    match object.get("paths") {
        Some(Value::Object(paths)) => {
            for (path, item) in paths {
                if !item.is_object() {
                    let pointer = format!("#/paths/{}", escape(path));
                    return Err(at_pointer(
                        source,
                        &pointer,
                        format!("the path item `{path}` must be an object"),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(at_pointer(source, "#/paths", "`paths` must be an object"));
        }
        None => {
            return Err(at_pointer(
                source,
                "#",
                "the document has no `paths`: there is no endpoint to draft from",
            ));
        }
    }
    Ok(Document {
        name: source.name.clone(),
        dialect,
        root,
    })
}

fn parse(source: &SourceFile) -> Result<Value, Diagnostic> {
    let text = source.text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|error| {
            let offset = source.offset(error.line(), error.column());
            Diagnostic::error(format!("invalid JSON: {error}"))
                .at(&source.name, offset..offset)
                .with_label("the JSON parser stopped here")
        });
    }
    serde_yaml::from_str::<Value>(text).map_err(|error| {
        let offset = error
            .location()
            .map_or(0, |l| source.offset(l.line(), l.column()));
        Diagnostic::error(format!("invalid YAML: {error}"))
            .at(&source.name, offset..offset)
            .with_label("the YAML parser stopped here")
    })
}

fn dialect(
    source: &SourceFile,
    object: &serde_json::Map<String, Value>,
) -> Result<Dialect, Diagnostic> {
    let version = |key: &str| match object.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    if let Some(version) = version("openapi") {
        return match version.as_str() {
            v if v.starts_with("3.0") => Ok(Dialect::OpenApi30),
            v if v.starts_with("3.1") => Ok(Dialect::OpenApi31),
            v => Err(at_pointer(
                source,
                "#/openapi",
                format!("OpenAPI {v} is not read here: 3.0, 3.1 and Swagger 2.0 are"),
            )),
        };
    }
    match version("swagger") {
        Some(v) if v.starts_with('2') => Ok(Dialect::Swagger2),
        Some(v) => Err(at_pointer(
            source,
            "#/swagger",
            format!("Swagger {v} is not read here: 2.0 is"),
        )),
        None => Err(at_pointer(
            source,
            "#",
            "not an OpenAPI document: it has neither `openapi` nor `swagger`",
        )),
    }
}

fn depth_exceeds(value: &Value, limit: usize) -> bool {
    // An explicit stack: the check itself must not recurse as deep as the input.
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    false
}

/// An error in `source` at the JSON pointer, placed on its line when the text shows where.
pub fn at_pointer(source: &SourceFile, pointer: &str, message: impl Into<String>) -> Diagnostic {
    let diagnostic = Diagnostic::error(message).with_pointer(pointer);
    match locate(source, pointer) {
        Some(span) => diagnostic.at(&source.name, span),
        None => diagnostic.at(&source.name, 0..0),
    }
}

/// Where the last key of a pointer is written, by a textual search: good enough to show the
/// line, and never wrong about the pointer, which the diagnostic names as well.
fn locate(source: &SourceFile, pointer: &str) -> Option<std::ops::Range<usize>> {
    let mut from = 0;
    let mut span = None;
    for token in pointer.trim_start_matches('#').split('/').skip(1) {
        let key = token.replace("~1", "/").replace("~0", "~");
        let found = [format!("\"{key}\""), format!("{key}:"), format!("'{key}'")]
            .iter()
            .filter_map(|needle| source.text[from..].find(needle.as_str()))
            .min()?;
        let start = from + found;
        span = Some(start..start + key.len() + 1);
        from = start + 1;
    }
    span
}

/// One JSON pointer token.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Document, Diagnostic> {
        load(&SourceFile::new("p.yaml", text))
    }

    #[test]
    fn every_dialect_is_recognised() {
        let doc = load_text("swagger: '2.0'\npaths: {}\n").unwrap();
        assert_eq!(doc.dialect, Dialect::Swagger2);
        let doc = load_text("{\"openapi\": \"3.1.0\", \"paths\": {}}").unwrap();
        assert_eq!(doc.dialect, Dialect::OpenApi31);
        let doc = load_text("openapi: 3.0.3\npaths: {}\n").unwrap();
        assert_eq!(doc.dialect, Dialect::OpenApi30);
    }

    #[test]
    fn malformed_documents_name_the_pointer() {
        let error = load_text("openapi: 3.0.0\npaths:\n  /a: 3\n").unwrap_err();
        assert_eq!(
            error.location.unwrap().pointer.as_deref(),
            Some("#/paths/~1a")
        );
        let error = load_text("openapi: 4.0.0\npaths: {}\n").unwrap_err();
        assert!(error.message.contains("4.0.0"), "{}", error.message);
        let error = load_text("{\"openapi\": \"3.0.0\", \"paths\": [}").unwrap_err();
        assert!(
            error.message.starts_with("invalid JSON"),
            "{}",
            error.message
        );
    }
}
