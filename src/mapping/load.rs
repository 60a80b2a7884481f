//! `connector.yaml` -> `Mapping`, reporting every problem in the file in one run, each with its
//! line and column and, for misspelt keys, the key that was probably meant.

use std::collections::BTreeMap;

use super::{Dependency, FORMAT_VERSION, Mapping, Setting, Upstream};
use crate::diagnostics::{Diagnostic, SourceFile, did_you_mean};
use crate::yaml::{self, Node, Value};

const TOP_KEYS: &[&str] = &["version", "name", "upstream", "dependencies"];
const UPSTREAM_KEYS: &[&str] = &["base_url"];
const DEPENDENCY_KEYS: &[&str] = &["version", "default-features", "features"];

pub fn load(source: &SourceFile) -> Result<Mapping, Vec<Diagnostic>> {
    let root = yaml::parse(source).map_err(|d| vec![d])?;
    let mut reader = Reader {
        source,
        diagnostics: Vec::new(),
    };
    let mapping = reader.mapping(&root);
    reader
        .diagnostics
        .sort_by_key(|d| d.location.as_ref().map(|l| l.span.start));
    match mapping {
        Some(mapping) if reader.diagnostics.is_empty() => Ok(mapping),
        _ => Err(reader.diagnostics),
    }
}

struct Reader<'a> {
    source: &'a SourceFile,
    diagnostics: Vec<Diagnostic>,
}

/// The entries of one YAML mapping, after unknown and duplicate keys were reported.
struct Entries<'n> {
    node: &'n Node,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Entries<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

impl Reader<'_> {
    fn error(&mut self, node: &Node, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message).at(&self.source.name, node.span.clone())
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn mapping(&mut self, root: &Node) -> Option<Mapping> {
        let top = self.entries(root, "the mapping file", TOP_KEYS)?;
        let version = self.version(&top);
        let name = self
            .required(&top, "name", "the connector's name")
            .and_then(|n| self.name(n));
        let upstream = self
            .required(&top, "upstream", "the provider's connection settings")
            .and_then(|n| self.upstream(n));
        let dependencies = top
            .get("dependencies")
            .map(|n| self.dependencies(n))
            .unwrap_or_default();
        Some(Mapping {
            version: version?,
            name: name?,
            upstream: upstream?,
            dependencies,
        })
    }

    fn entries<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Entries<'n>> {
        let Value::Mapping(pairs) = &node.value else {
            let diagnostic = self.error(
                node,
                format!(
                    "{what} must be a mapping of keys to values, found {}",
                    node.kind()
                ),
            );
            self.report(diagnostic);
            return None;
        };
        let mut entries: Vec<(&str, &Node)> = Vec::new();
        for (key, value) in pairs {
            let Some(name) = key.as_str() else {
                let diagnostic = self.error(key, "keys must be plain words");
                self.report(diagnostic);
                continue;
            };
            if !allowed.contains(&name) {
                let mut diagnostic = self
                    .error(key, format!("unknown key `{name}` in {what}"))
                    .with_label(format!("expected one of: {}", allowed.join(", ")));
                if let Some(help) = did_you_mean(name, allowed.iter().copied()) {
                    diagnostic = diagnostic.with_help(help);
                }
                self.report(diagnostic);
            } else if entries.iter().any(|(k, _)| *k == name) {
                let diagnostic = self.error(key, format!("key `{name}` is given twice in {what}"));
                self.report(diagnostic);
            } else {
                entries.push((name, value));
            }
        }
        Some(Entries { node, entries })
    }

    fn required<'n>(&mut self, entries: &Entries<'n>, key: &str, what: &str) -> Option<&'n Node> {
        let found = entries.get(key);
        if found.is_none() {
            let node = entries.node;
            let diagnostic = self
                .error(node, format!("missing key `{key}`: {what}"))
                .with_label(format!("`{key}` belongs here"));
            self.report(diagnostic);
        }
        found
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                let diagnostic = self.error(
                    node,
                    format!("{what} must be a string, found {}", node.kind()),
                );
                self.report(diagnostic);
                None
            }
        }
    }

    fn version(&mut self, top: &Entries) -> Option<u32> {
        let node = self.required(top, "version", "the mapping format version, `1`")?;
        match node.as_str().map(str::parse::<u32>) {
            Some(Ok(version)) if version == FORMAT_VERSION => Some(version),
            Some(Ok(version)) if version > FORMAT_VERSION => {
                let diagnostic = self
                    .error(node, format!("mapping format version {version} is newer than this connector-gen understands"))
                    .with_help(format!("this connector-gen reads version {FORMAT_VERSION}; upgrade connector-gen"));
                self.report(diagnostic);
                None
            }
            _ => {
                let diagnostic = self.error(node, format!("`version` must be {FORMAT_VERSION}"));
                self.report(diagnostic);
                None
            }
        }
    }

    fn name(&mut self, node: &Node) -> Option<String> {
        let name = self.string(node, "`name`")?;
        let valid = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            let diagnostic = self
                .error(node, format!("`{name}` cannot name a crate"))
                .with_help("use lower-case letters, digits, `-` and `_`, starting with a letter (at most 64)");
            self.report(diagnostic);
            return None;
        }
        Some(name)
    }

    fn upstream(&mut self, node: &Node) -> Option<Upstream> {
        let entries = self.entries(node, "`upstream`", UPSTREAM_KEYS)?;
        let base_url = self.required(
            &entries,
            "base_url",
            "the provider's API base URL, e.g. `${env:ACME_BASE_URL}`",
        )?;
        let base_url = self.setting(base_url, "`upstream.base_url`")?;
        if let Setting::Literal(url) = &base_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                let diagnostic = self
                    .error(node_of(&entries, "base_url"), format!("`{url}` is not an http(s) URL"))
                    .with_help("write `https://...`, or `${env:NAME}` to read it from the environment at start-up");
                self.report(diagnostic);
                return None;
            }
        }
        Some(Upstream { base_url })
    }

    /// `${env:NAME}` or a literal.
    fn setting(&mut self, node: &Node, what: &str) -> Option<Setting> {
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
                .error(node, format!("`{text}` is not a valid reference"))
                .with_help("write `${env:NAME}` with NAME in upper case, digits and `_`");
            self.report(diagnostic);
            return None;
        }
        Some(Setting::Env(name.to_owned()))
    }

    fn dependencies(&mut self, node: &Node) -> BTreeMap<String, Dependency> {
        let Value::Mapping(pairs) = &node.value else {
            let diagnostic = self.error(
                node,
                format!(
                    "`dependencies` must map crate names to versions, found {}",
                    node.kind()
                ),
            );
            self.report(diagnostic);
            return BTreeMap::new();
        };
        let mut dependencies = BTreeMap::new();
        for (key, value) in pairs {
            let Some(name) = self.string(key, "a crate name") else {
                continue;
            };
            let dependency = match &value.value {
                Value::Scalar { .. } => {
                    self.string(value, "a crate version")
                        .map(|version| Dependency {
                            span: key.span.clone(),
                            version,
                            default_features: true,
                            features: Vec::new(),
                        })
                }
                _ => self.dependency(value).map(|d| Dependency {
                    span: key.span.clone(),
                    ..d
                }),
            };
            if let Some(dependency) = dependency {
                dependencies.insert(name, dependency);
            }
        }
        dependencies
    }

    fn dependency(&mut self, node: &Node) -> Option<Dependency> {
        let entries = self.entries(node, "a dependency", DEPENDENCY_KEYS)?;
        let version = self.required(&entries, "version", "the crate's version requirement")?;
        let version = self.string(version, "`version`")?;
        let mut features = Vec::new();
        if let Some(list) = entries.get("features") {
            match &list.value {
                Value::Sequence(items) => {
                    for item in items {
                        features.extend(self.string(item, "a feature name"));
                    }
                }
                _ => {
                    let diagnostic = self.error(list, "`features` must be a list of feature names");
                    self.report(diagnostic);
                }
            }
        }
        let default_features = match entries.get("default-features") {
            None => true,
            Some(node) => match node.as_str() {
                Some("true") => true,
                Some("false") => false,
                _ => {
                    let diagnostic = self.error(node, "`default-features` must be true or false");
                    self.report(diagnostic);
                    true
                }
            },
        };
        Some(Dependency {
            span: node.span.clone(),
            version,
            default_features,
            features,
        })
    }
}

fn node_of<'n>(entries: &Entries<'n>, key: &str) -> &'n Node {
    entries.get(key).unwrap_or(entries.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        let source = SourceFile::new("connector.yaml", text);
        load(&source)
            .unwrap_err()
            .into_iter()
            .map(|d| {
                let (line, col) = source.line_col(d.location.unwrap().span.start);
                format!(
                    "{line}:{col} {}{}",
                    d.message,
                    d.help.map(|h| format!(" ({h})")).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn a_minimal_file_loads() {
        let source = SourceFile::new(
            "c.yaml",
            "version: 1\nname: acme\nupstream:\n  base_url: ${env:ACME_URL}\n",
        );
        let mapping = load(&source).unwrap();
        assert_eq!(mapping.name, "acme");
        assert_eq!(mapping.upstream.base_url, Setting::Env("ACME_URL".into()));
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let found = errors("version: 1\nnmae: acme\nupstream:\n  base_ulr: x\n");
        assert_eq!(
            found,
            [
                "1:1 missing key `name`: the connector's name",
                "2:1 unknown key `nmae` in the mapping file (did you mean `name`?)",
                "4:3 unknown key `base_ulr` in `upstream` (did you mean `base_url`?)",
                "4:3 missing key `base_url`: the provider's API base URL, e.g. `${env:ACME_BASE_URL}`",
            ]
        );
    }

    #[test]
    fn bad_values_are_named() {
        let found = errors("version: 2\nname: Acme!\nupstream:\n  base_url: ${ACME}\n");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with("1:10 mapping format version 2 is newer"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("2:7 `Acme!` cannot name a crate"),
            "{found:?}"
        );
        assert!(
            found[2].starts_with("4:13 `${ACME}` is not a valid reference"),
            "{found:?}"
        );
    }
}
