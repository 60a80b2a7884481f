//! Typed reads from the positioned YAML tree. Every read that fails records a diagnostic at
//! the node and returns `None`, so loading goes on and one run reports every problem.

use super::{Setting, Span};
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::yaml::{Node, Value};

pub(super) struct Reader<'a> {
    pub file: &'a str,
    /// The file's text, to keep every diagnostic on one line.
    pub text: &'a str,
    pub diagnostics: Vec<Diagnostic>,
}

/// The entries of one YAML mapping, after unknown and duplicate keys were reported.
pub(super) struct Entries<'n> {
    pub node: &'n Node,
    entries: Vec<(&'n Node, &'n Node)>,
}

impl<'n> Entries<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| *v)
    }

    pub fn key_span(&self, key: &str) -> Span {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map_or(self.node.span.clone(), |(k, _)| k.span.clone())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = &'n str> + '_ {
        self.entries.iter().filter_map(|(k, _)| k.as_str())
    }

    /// The keys among `choices` that are given, in the file's order.
    pub fn among(&self, choices: &[&str]) -> Vec<&'n str> {
        self.keys().filter(|k| choices.contains(k)).collect()
    }
}

impl Reader<'_> {
    /// An error at `span`, cut to its first line: a block mapping's span runs to the next key
    /// of its parent, and underlining all of it hides what the message is about.
    pub fn at(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message).at(self.file, first_line(self.text, span))
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn fail(&mut self, node: &Node, message: impl Into<String>) {
        let diagnostic = self.at(node.span.clone(), message);
        self.push(diagnostic);
    }

    /// `found` holds keys that exclude each other: an error at the second one.
    /// The one key of `kinds` a mapping like `auth` or `paging` must have; none or several is
    /// reported (a misspelt kind was already reported as an unknown key with a did-you-mean).
    pub fn one_kind<'n>(
        &mut self,
        entries: &Entries<'n>,
        kinds: &[&str],
        what: &str,
        conflict_help: &str,
    ) -> Option<&'n str> {
        let found = entries.among(kinds);
        match found.as_slice() {
            [kind] => Some(*kind),
            [] if has_unknown_keys(entries.node, kinds) => None,
            [] => {
                let diagnostic = self
                    .at(entries.node.span.clone(), format!("{what} needs a kind"))
                    .with_help(format!("write one of: {}", kinds.join(", ")));
                self.push(diagnostic);
                None
            }
            _ => {
                let message = format!(
                    "{what} takes one kind, found {}",
                    super::load::quoted_list(&found)
                );
                self.conflict(entries, &found, message, conflict_help);
                None
            }
        }
    }

    pub fn conflict(&mut self, entries: &Entries, found: &[&str], message: String, help: &str) {
        let second = found.get(1).copied().unwrap_or_default();
        let diagnostic = self
            .at(entries.key_span(second), message)
            .with_label(format!("conflicts with `{}`", found[0]))
            .with_help(help);
        self.push(diagnostic);
    }

    /// A mapping whose keys must be among `allowed`; unknown keys get a did-you-mean.
    pub fn entries<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Entries<'n>> {
        let pairs = self.pairs(node, what)?;
        let mut entries: Vec<(&Node, &Node)> = Vec::new();
        for (key, value) in pairs {
            let name = key.as_str().unwrap_or_default();
            if !allowed.contains(&name) {
                let mut diagnostic = self
                    .at(key.span.clone(), format!("unknown key `{name}` in {what}"))
                    .with_label(format!("expected one of: {}", allowed.join(", ")));
                if let Some(help) = did_you_mean(name, allowed.iter().copied()) {
                    diagnostic = diagnostic.with_help(help);
                }
                self.push(diagnostic);
            } else if entries.iter().any(|(k, _)| k.as_str() == Some(name)) {
                self.fail(key, format!("key `{name}` is given twice in {what}"));
            } else {
                entries.push((key, value));
            }
        }
        Some(Entries { node, entries })
    }

    /// A mapping with any keys (names of headers, fields, ...), each a plain scalar.
    pub fn pairs<'n>(&mut self, node: &'n Node, what: &str) -> Option<Vec<(&'n Node, &'n Node)>> {
        let Value::Mapping(pairs) = &node.value else {
            self.fail(
                node,
                format!(
                    "{what} must be a mapping of keys to values, found {}",
                    node.kind()
                ),
            );
            return None;
        };
        let mut found = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            if key.as_str().is_none() {
                self.fail(key, format!("keys in {what} must be plain words"));
            } else if found
                .iter()
                .any(|(k, _): &(&Node, &Node)| k.as_str() == key.as_str())
            {
                self.fail(
                    key,
                    format!(
                        "key `{}` is given twice in {what}",
                        key.as_str().unwrap_or_default()
                    ),
                );
            } else {
                found.push((key, value));
            }
        }
        Some(found)
    }

    pub fn required<'n>(
        &mut self,
        entries: &Entries<'n>,
        key: &str,
        what: &str,
    ) -> Option<&'n Node> {
        let found = entries.get(key);
        if found.is_none() {
            let diagnostic = self
                .at(
                    entries.node.span.clone(),
                    format!("missing key `{key}`: {what}"),
                )
                .with_label(format!("`{key}` belongs here"));
            self.push(diagnostic);
        }
        found
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.fail(
                    node,
                    format!("{what} must be a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                self.fail(node, format!("{what} must be true or false"));
                None
            }
        }
    }

    pub fn integer(
        &mut self,
        node: &Node,
        what: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        match node.as_str().and_then(|t| t.parse::<u64>().ok()) {
            Some(value) if range.contains(&value) => Some(value),
            _ => {
                let (min, max) = (range.start(), range.end());
                self.fail(
                    node,
                    format!("{what} must be a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    /// `90s`, `30m`, `12h`, `31d`: a span of time in seconds.
    pub fn span_secs(&mut self, node: &Node, what: &str) -> Option<i64> {
        let text = node.as_str().unwrap_or_default().trim();
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let factor = match unit.trim() {
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3_600),
            "d" => Some(86_400),
            _ => None,
        };
        match (number.parse::<i64>(), factor) {
            (Ok(n), Some(factor)) if n > 0 && n <= 100_000 => Some(n * factor),
            _ => {
                let diagnostic = self
                    .at(
                        node.span.clone(),
                        format!("{what} must be a span of time such as `31d`, `12h` or `90s`"),
                    )
                    .with_help("days `d`, hours `h`, minutes `m` or seconds `s`");
                self.push(diagnostic);
                None
            }
        }
    }

    /// `500ms`, `10s`, `2m`.
    pub fn duration_ms(&mut self, node: &Node, what: &str) -> Option<u64> {
        let text = node.as_str().unwrap_or_default().trim();
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let factor = match unit.trim() {
            "ms" => Some(1),
            "s" => Some(1_000),
            "m" => Some(60_000),
            _ => None,
        };
        match (number.parse::<u64>(), factor) {
            (Ok(n), Some(factor)) if n > 0 => Some(n.saturating_mul(factor)),
            _ => {
                let diagnostic = self.at(
                    node.span.clone(),
                    format!("{what} must be a duration such as `500ms`, `10s` or `2m`"),
                );
                self.push(diagnostic);
                None
            }
        }
    }

    /// `${env:NAME}` or a literal.
    pub fn setting(&mut self, node: &Node, what: &str) -> Option<Setting> {
        let text = self.string(node, what)?;
        let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return Some(Setting::Literal(text));
        };
        let name = inner.strip_prefix("env:").unwrap_or_default();
        let valid = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            let diagnostic = self
                .at(
                    node.span.clone(),
                    format!("`{text}` is not a valid reference"),
                )
                .with_help("write `${env:NAME}` with NAME in upper case, digits and `_`");
            self.push(diagnostic);
            return None;
        }
        Some(Setting::Env(name.to_owned()))
    }

    /// A credential: only ever read from the environment, so that no secret is committed.
    pub fn secret(&mut self, node: &Node, what: &str) -> Option<Setting> {
        match self.setting(node, what)? {
            Setting::Env(name) => Some(Setting::Env(name)),
            Setting::Literal(_) => {
                let diagnostic = self
                    .at(
                        node.span.clone(),
                        format!("{what} is a secret and cannot be written in the file"),
                    )
                    .with_help("write `${env:NAME}` and set NAME where the connector runs");
                self.push(diagnostic);
                None
            }
        }
    }

    /// A header or query parameter whose name says it carries a credential must not have its
    /// value written in the file.
    pub fn literal_secret(&mut self, name: &str, value: &Node, help: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        let secret_like = [
            "auth",
            "key",
            "token",
            "secret",
            "password",
            "signature",
            "credential",
        ]
        .iter()
        .any(|word| lower.contains(word));
        let literal = value.as_str().is_some_and(|text| !text.contains('{'));
        if secret_like && literal {
            let diagnostic = self
                .at(
                    value.span.clone(),
                    format!("`{name}` looks like a credential and cannot be written in the file"),
                )
                .with_help(help.to_owned());
            self.push(diagnostic);
        }
        secret_like && literal
    }

    pub fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Sequence(items) => Some(items),
            _ => {
                self.fail(
                    node,
                    format!("{what} must be a list, found {}", node.kind()),
                );
                None
            }
        }
    }
}

/// Whether a mapping has keys outside `allowed` (reported by `Reader::entries`).
pub(super) fn has_unknown_keys(node: &Node, allowed: &[&str]) -> bool {
    match &node.value {
        Value::Mapping(pairs) => pairs
            .iter()
            .any(|(key, _)| !key.as_str().is_some_and(|k| allowed.contains(&k))),
        _ => false,
    }
}

/// `span` up to the end of its first line, trailing blanks left out.
fn first_line(text: &str, span: Span) -> Span {
    let Some(spanned) = text.get(span.clone()) else {
        return span;
    };
    let line = spanned.find('\n').map_or(spanned, |end| &spanned[..end]);
    let end = span.start + line.trim_end().len();
    if end > span.start {
        span.start..end
    } else {
        span
    }
}

/// A YAML value as JSON: quoted scalars are strings, plain ones are typed as YAML does.
pub(super) fn json(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Scalar { text, quoted: true } => serde_json::Value::String(text.clone()),
        Value::Scalar { .. } if node.is_null() => serde_json::Value::Null,
        Value::Scalar { text, .. } => match text.as_str() {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            _ => text
                .parse::<i64>()
                .map(serde_json::Value::from)
                .ok()
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(serde_json::Value::Number)
                })
                .unwrap_or_else(|| serde_json::Value::String(text.clone())),
        },
        Value::Sequence(items) => serde_json::Value::Array(items.iter().map(json).collect()),
        Value::Mapping(pairs) => serde_json::Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), json(v)))
                .collect(),
        ),
    }
}
