//! Typed reads from the positioned YAML tree. Every read that fails records a diagnostic at
//! the node and returns `None`, so loading goes on and one run reports every problem.

use super::{Setting, SettingPart, Span};
use crate::diagnostics::{Diagnostic, closest};
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
    /// The keys that unknown keys were probably meant as (`recrods` -> `records`).
    meant: Vec<String>,
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

    /// Whether an unknown key was reported as a misspelling of `key`: what follows from
    /// `key` missing is that same mistake, and is not reported again.
    pub fn misspelt(&self, key: &str) -> bool {
        self.meant.iter().any(|meant| meant == key)
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
        let mut meant = Vec::new();
        for (key, value) in pairs {
            let name = key.as_str().unwrap_or_default();
            if !allowed.contains(&name) {
                let mut diagnostic = self
                    .at(key.span.clone(), format!("unknown key `{name}` in {what}"))
                    .with_label(format!("expected one of: {}", allowed.join(", ")));
                if let Some(key) = closest(name, allowed.iter().copied()) {
                    diagnostic = diagnostic.with_help(format!("did you mean `{key}`?"));
                    meant.push(key.to_owned());
                }
                self.push(diagnostic);
            } else if entries.iter().any(|(k, _)| k.as_str() == Some(name)) {
                self.fail(key, format!("key `{name}` is given twice in {what}"));
            } else {
                entries.push((key, value));
            }
        }
        Some(Entries {
            node,
            entries,
            meant,
        })
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
        if found.is_none() && !entries.misspelt(key) {
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

    /// `${env:NAME}`, a literal, or text with references (`"${env:BANK_URL}/oauth/token"`).
    /// Every `${` starts a reference; one that is not `${env:NAME}` is reported where it is.
    pub fn setting(&mut self, node: &Node, what: &str) -> Option<Setting> {
        let text = self.string(node, what)?;
        let mut parts = Vec::new();
        let mut valid = true;
        let mut rest = 0;
        while let Some(found) = text[rest..].find("${") {
            let open = rest + found;
            if open > rest {
                parts.push(SettingPart::Text(text[rest..open].to_owned()));
            }
            let close = text[open..].find('}').map(|i| open + i);
            match close.and_then(|close| env_name(&text[open + 2..close])) {
                Some(name) => {
                    parts.push(SettingPart::Env(name.to_owned()));
                    rest = close.unwrap_or(open) + 1;
                }
                None => {
                    let end = close.map_or(text.len(), |close| close + 1);
                    let diagnostic = self
                        .at(
                            self.within(node, &text, open..end),
                            format!("`{}` is not a valid reference", &text[open..end]),
                        )
                        .with_help("write `${env:NAME}` with NAME in upper case, digits and `_`");
                    self.push(diagnostic);
                    valid = false;
                    rest = end;
                }
            }
        }
        if rest < text.len() {
            parts.push(SettingPart::Text(text[rest..].to_owned()));
        }
        if !valid {
            return None;
        }
        Some(match parts.as_slice() {
            [] => Setting::Literal(String::new()),
            [SettingPart::Text(text)] => Setting::Literal(text.clone()),
            [SettingPart::Env(name)] => Setting::Env(name.clone()),
            _ => Setting::Template(parts),
        })
    }

    /// A credential: read from the environment (whole, or inside a template such as
    /// `"Token ${env:KEY}"`), so that no secret is committed.
    pub fn secret(&mut self, node: &Node, what: &str) -> Option<Setting> {
        match self.setting(node, what)? {
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
            setting => Some(setting),
        }
    }

    /// Text taken as written (a request template, a constant, a header name): a `${` in it
    /// is a reference that would be sent as it is, so it is reported. True when there is one.
    pub fn unread_reference(&mut self, node: &Node, text: &str, what: &str) -> bool {
        let Some(open) = text.find("${") else {
            return false;
        };
        let end = text[open..]
            .find('}')
            .map_or(text.len(), |close| open + close + 1);
        let diagnostic = self
            .at(
                self.within(node, text, open..end),
                format!(
                    "{what} does not read the environment: `{}` would be sent as written",
                    &text[open..end]
                ),
            )
            .with_help(
                "`${env:NAME}` works in `upstream.base_url`, `upstream.headers` values and `upstream.auth` values",
            );
        self.push(diagnostic);
        true
    }

    /// Where bytes `range` of a scalar's `text` are in the file: exact for plain scalars and
    /// for quoted ones without escapes, else the whole scalar.
    pub fn within(&self, node: &Node, text: &str, range: Span) -> Span {
        let span = node.span.clone();
        let offset = match span.len() {
            n if n == text.len() => 0,
            n if n == text.len() + 2 => 1,
            _ => return span,
        };
        let start = span.start + offset;
        if self.text.get(start..start + text.len()) != Some(text) {
            return span;
        }
        start + range.start..start + range.end
    }

    /// A header or query parameter whose name says it carries a credential must not have its
    /// value written in the file.
    pub fn literal_secret(&mut self, name: &str, value: &Node, help: &str) -> bool {
        let literal = value.as_str().is_some_and(|text| !text.contains('{'));
        if literal {
            self.credential_written(name, value, help);
        }
        literal && credential_name(name)
    }

    /// Reports a value written in the file under a name that says it is a credential; true
    /// when it is one.
    pub fn credential_written(&mut self, name: &str, value: &Node, help: &str) -> bool {
        if credential_name(name) {
            let diagnostic = self
                .at(
                    value.span.clone(),
                    format!("`{name}` looks like a credential and cannot be written in the file"),
                )
                .with_help(help.to_owned());
            self.push(diagnostic);
        }
        credential_name(name)
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

/// Whether a header or query parameter's name says it carries a credential.
fn credential_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "auth",
        "key",
        "token",
        "secret",
        "password",
        "signature",
        "credential",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

/// `NAME` of `env:NAME`, when it is a valid variable name (upper case, digits, `_`).
fn env_name(inner: &str) -> Option<&str> {
    let name = inner.strip_prefix("env:")?;
    let valid = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid.then_some(name)
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
pub(super) fn first_line(text: &str, span: Span) -> Span {
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
