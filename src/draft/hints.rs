//! `--hints FILE`: choices the author already made, kept across re-drafts.
//! `getTransactions: GET /v1/account_activity`, or `none` for an operation to leave out.

use std::collections::BTreeMap;

use super::detect::PROTOCOL_OPERATIONS;
use crate::diagnostics::{Diagnostic, SourceFile, did_you_mean};
use crate::yaml::{self, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    Endpoint { method: String, path: String },
    None,
}

#[derive(Debug, Clone, Default)]
pub struct Hints {
    pins: BTreeMap<String, Pin>,
}

impl Hints {
    pub fn get(&self, id: &str) -> Option<&Pin> {
        self.pins.get(id)
    }
}

pub fn load(source: &SourceFile) -> Result<Hints, Vec<Diagnostic>> {
    let root = yaml::parse(source).map_err(|d| vec![d])?;
    let mut hints = Hints::default();
    let mut problems = Vec::new();
    let Value::Mapping(entries) = &root.value else {
        return Err(vec![
            Diagnostic::error("the hints file must map operationIds to `METHOD /path` or `none`")
                .at(&source.name, root.span.clone()),
        ]);
    };
    for (key, value) in entries {
        let id = key.as_str().unwrap_or_default();
        if !PROTOCOL_OPERATIONS.contains(&id) {
            let mut d = Diagnostic::error(format!("the protocol has no operation `{id}`"))
                .at(&source.name, key.span.clone());
            if let Some(help) = did_you_mean(id, PROTOCOL_OPERATIONS) {
                d = d.with_help(help);
            }
            problems.push(d);
            continue;
        }
        match value.as_str().map(parse_pin) {
            Some(Some(pin)) => {
                hints.pins.insert(id.to_owned(), pin);
            }
            _ => problems.push(
                Diagnostic::error(format!("`{id}` must be pinned to `METHOD /path` or `none`"))
                    .at(&source.name, value.span.clone())
                    .with_help("e.g. `getTransactions: GET /v1/account_activity`"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(hints)
    } else {
        Err(problems)
    }
}

fn parse_pin(text: &str) -> Option<Pin> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Some(Pin::None);
    }
    let (method, path) = text.split_once(char::is_whitespace)?;
    let method = method.to_ascii_uppercase();
    let path = path.trim();
    let known = ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str());
    (known && path.starts_with('/')).then(|| Pin::Endpoint {
        method,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_and_mistakes() {
        let hints = load(&SourceFile::new(
            "h.yaml",
            "getTransactions: get /v1/account_activity\ncreatePayout: none\n",
        ))
        .unwrap();
        assert_eq!(
            hints.get("getTransactions"),
            Some(&Pin::Endpoint {
                method: "GET".into(),
                path: "/v1/account_activity".into()
            })
        );
        assert_eq!(hints.get("createPayout"), Some(&Pin::None));
        let errors = load(&SourceFile::new(
            "h.yaml",
            "getTransaction: GET /x\ngetAccounts: /x\n",
        ))
        .unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].help.as_deref(),
            Some("did you mean `getTransactions`?")
        );
    }
}
