//! `connector.yaml` -> `Mapping`, reporting every problem in the file in one run, each with its
//! line and column and, for misspelt keys, the key that was probably meant.

use std::collections::BTreeMap;

use super::reader::{Entries, Reader};
use super::{
    Auth, BodyEncoding, Dependency, FORMAT_VERSION, KeyLocation, Login, Mapping, RateLimit, Retry,
    Setting, Upstream, operations,
};
use crate::diagnostics::{Diagnostic, SourceFile};
use crate::yaml::{self, Node, Value};

const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "upstream",
    "currencies",
    "operations",
    "dependencies",
];
const UPSTREAM_KEYS: &[&str] = &[
    "base_url",
    "auth",
    "headers",
    "timeout",
    "retry",
    "rate_limit",
];
const AUTH_KINDS: &[&str] = &["bearer", "api_key", "basic", "oauth2", "login"];
const API_KEY_KEYS: &[&str] = &["header", "query", "value"];
const BASIC_KEYS: &[&str] = &["username", "password"];
const OAUTH2_KEYS: &[&str] = &["token_url", "client_id", "client_secret", "scope"];
const LOGIN_KEYS: &[&str] = &[
    "method",
    "url",
    "body",
    "body_encoding",
    "basic",
    "token",
    "expires_in",
    "expires_after",
    "header",
    "prefix",
];
const RETRY_KEYS: &[&str] = &["attempts", "deadline"];
const RATE_LIMIT_KEYS: &[&str] = &["requests", "per", "burst"];
const DEPENDENCY_KEYS: &[&str] = &["version", "default-features", "features"];
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

pub fn load(source: &SourceFile) -> Result<Mapping, Vec<Diagnostic>> {
    match load_partial(source) {
        (Some(mapping), diagnostics) if diagnostics.is_empty() => Ok(mapping),
        (_, diagnostics) => Err(diagnostics),
    }
}

/// Everything that could be read, even from a file with errors (the operations that loaded
/// can still be checked against the protocol in the same run), and every problem found.
pub fn load_partial(source: &SourceFile) -> (Option<Mapping>, Vec<Diagnostic>) {
    let root = match yaml::parse(source) {
        Ok(root) => root,
        Err(diagnostic) => return (None, vec![diagnostic]),
    };
    let mut reader = Reader {
        file: &source.name,
        text: &source.text,
        diagnostics: Vec::new(),
    };
    let mapping = read_mapping(&mut reader, &root);
    let mut diagnostics = reader.diagnostics;
    diagnostics.sort_by_key(|d| d.location.as_ref().map(|l| l.span.start));
    (mapping, diagnostics)
}

fn read_mapping(reader: &mut Reader, root: &Node) -> Option<Mapping> {
    let top = reader.entries(root, "the mapping file", TOP_KEYS)?;
    let version = version(reader, &top);
    let name = reader
        .required(&top, "name", "the connector's name")
        .and_then(|n| name(reader, n));
    let upstream = reader
        .required(&top, "upstream", "the provider's connection settings")
        .and_then(|n| upstream(reader, n));
    let currencies = top
        .get("currencies")
        .map(|n| currencies(reader, n))
        .unwrap_or_default();
    let operations = top
        .get("operations")
        .map(|n| operations::operations(reader, n))
        .unwrap_or_default();
    let dependencies = top
        .get("dependencies")
        .map(|n| dependencies(reader, n))
        .unwrap_or_default();
    Some(Mapping {
        version: version?,
        name: name?,
        upstream: upstream?,
        currencies,
        operations,
        dependencies,
    })
}

fn version(reader: &mut Reader, top: &Entries) -> Option<u32> {
    let node = reader.required(top, "version", "the mapping format version, `1`")?;
    match node.as_str().map(str::parse::<u32>) {
        Some(Ok(version)) if version == FORMAT_VERSION => Some(version),
        Some(Ok(version)) if version > FORMAT_VERSION => {
            let diagnostic = reader
                .at(node.span.clone(), format!("mapping format version {version} is newer than this connector-gen understands"))
                .with_help(format!("this connector-gen reads version {FORMAT_VERSION}; upgrade connector-gen"));
            reader.push(diagnostic);
            None
        }
        _ => {
            reader.fail(node, format!("`version` must be {FORMAT_VERSION}"));
            None
        }
    }
}

fn name(reader: &mut Reader, node: &Node) -> Option<String> {
    let name = reader.string(node, "`name`")?;
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        let diagnostic = reader
            .at(node.span.clone(), format!("`{name}` cannot name a crate"))
            .with_help(
                "use lower-case letters, digits, `-` and `_`, starting with a letter (at most 64)",
            );
        reader.push(diagnostic);
        return None;
    }
    Some(name)
}

fn upstream(reader: &mut Reader, node: &Node) -> Option<Upstream> {
    let entries = reader.entries(node, "`upstream`", UPSTREAM_KEYS)?;
    let base_url_node = reader.required(
        &entries,
        "base_url",
        "the provider's API base URL, e.g. `${env:ACME_BASE_URL}`",
    );
    let base_url = base_url_node.and_then(|node| {
        let setting = reader.setting(node, "`upstream.base_url`")?;
        url_setting(reader, node, setting, false)
    });
    // Every setting is read before giving up on any, so that one run reports them all.
    let auth = entries.get("auth").and_then(|n| auth(reader, n));
    let headers = entries
        .get("headers")
        .map(|n| headers(reader, n))
        .unwrap_or_default();
    let timeout_ms = match entries.get("timeout") {
        Some(node) => reader.duration_ms(node, "`upstream.timeout`"),
        None => Some(DEFAULT_TIMEOUT_MS),
    };
    let retry = match entries.get("retry") {
        Some(node) => retry(reader, node),
        None => Some(Retry::default()),
    };
    let rate_limit = match entries.get("rate_limit") {
        Some(node) => Some(rate_limit(reader, node)?),
        None => None,
    };
    Some(Upstream {
        base_url: base_url?,
        auth,
        headers,
        timeout_ms: timeout_ms?,
        retry: retry?,
        rate_limit,
    })
}

fn auth(reader: &mut Reader, node: &Node) -> Option<Auth> {
    let entries = reader.entries(node, "`upstream.auth`", AUTH_KINDS)?;
    let kind = reader.one_kind(
        &entries,
        AUTH_KINDS,
        "`upstream.auth`",
        "keep the one the provider expects",
    )?;
    let value = entries.get(kind)?;
    match kind {
        "bearer" => Some(Auth::Bearer {
            token: reader.secret(value, "`auth.bearer`")?,
        }),
        "api_key" => {
            let fields = reader.entries(value, "`auth.api_key`", API_KEY_KEYS)?;
            let secret = reader
                .required(&fields, "value", "the key, as `${env:NAME}`")
                .and_then(|n| reader.secret(n, "`auth.api_key.value`"));
            let (location, name) = match (fields.get("header"), fields.get("query")) {
                (Some(header), None) => (
                    KeyLocation::Header,
                    key_name(reader, header, "`auth.api_key.header`")?,
                ),
                (None, Some(query)) => (
                    KeyLocation::Query,
                    key_name(reader, query, "`auth.api_key.query`")?,
                ),
                (None, None) if fields.misspelt("header") || fields.misspelt("query") => {
                    return None;
                }
                (None, None) => {
                    let diagnostic = reader
                        .at(entries.key_span(kind), "`auth.api_key` needs `header: NAME` or `query: NAME`: where the key is sent")
                        .with_help("e.g. `header: X-Api-Key`");
                    reader.push(diagnostic);
                    return None;
                }
                (Some(_), Some(_)) => {
                    reader.conflict(
                        &fields,
                        &fields.among(&["header", "query"]),
                        "`auth.api_key` takes `header` or `query`, not both".to_owned(),
                        "keep the one the provider reads the key from",
                    );
                    return None;
                }
            };
            Some(Auth::ApiKey {
                location,
                name,
                value: secret?,
            })
        }
        "basic" => {
            let fields = reader.entries(value, "`auth.basic`", BASIC_KEYS)?;
            let username = reader
                .required(&fields, "username", "the user name")
                .and_then(|n| reader.setting(n, "`auth.basic.username`"));
            let password = reader
                .required(&fields, "password", "the password, as `${env:NAME}`")
                .and_then(|n| reader.secret(n, "`auth.basic.password`"));
            Some(Auth::Basic {
                username: username?,
                password: password?,
            })
        }
        "login" => login(reader, value).map(|login| Auth::Login(Box::new(login))),
        _ => {
            let fields = reader.entries(value, "`auth.oauth2`", OAUTH2_KEYS)?;
            let token_url = reader
                .required(&fields, "token_url", "the token endpoint")
                .and_then(|node| {
                    let setting = reader.setting(node, "`auth.oauth2.token_url`")?;
                    url_setting(reader, node, setting, true)
                });
            let client_id = reader
                .required(&fields, "client_id", "the client id")
                .and_then(|n| reader.setting(n, "`auth.oauth2.client_id`"));
            let client_secret = reader
                .required(
                    &fields,
                    "client_secret",
                    "the client secret, as `${env:NAME}`",
                )
                .and_then(|n| reader.secret(n, "`auth.oauth2.client_secret`"));
            let scope = fields.get("scope").and_then(|node| {
                let scope = reader.string(node, "`auth.oauth2.scope`")?;
                (!reader.unread_reference(node, &scope, "`auth.oauth2.scope`")).then_some(scope)
            });
            Some(Auth::OAuth2 {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                scope,
            })
        }
    }
}

/// `auth.login`: the provider's login call and how its token is used.
fn login(reader: &mut Reader, node: &Node) -> Option<Login> {
    let fields = reader.entries(node, "`auth.login`", LOGIN_KEYS)?;
    let method = match fields.get("method") {
        Some(n) => {
            let method = reader
                .string(n, "`auth.login.method`")?
                .to_ascii_uppercase();
            if !["GET", "POST", "PUT"].contains(&method.as_str()) {
                reader.fail(n, "`auth.login.method` must be GET, POST or PUT");
                return None;
            }
            Some(method)
        }
        None => Some("POST".to_owned()),
    };
    let url = reader
        .required(
            &fields,
            "url",
            "the login endpoint, e.g. `/v2/authenticate/api` (on the base URL) or `https://...`",
        )
        .and_then(|node| {
            let setting = reader.setting(node, "`auth.login.url`")?;
            url_setting(reader, node, setting, true)
        });
    let encoding = match fields.get("body_encoding") {
        Some(_) if !fields.has("body") => {
            let diagnostic = reader
                .at(
                    fields.key_span("body_encoding"),
                    "`body_encoding` says how `body` is written, and `auth.login` has no `body`",
                )
                .with_help("add `body:` with the login fields, or remove `body_encoding`");
            reader.push(diagnostic);
            None
        }
        Some(n) => operations::body_encoding(reader, n),
        None => Some(BodyEncoding::Json),
    };
    let body = match fields.get("body") {
        Some(n) => login_body(reader, n, encoding),
        None => Some(Vec::new()),
    };
    let basic = match fields.get("basic") {
        Some(value) => {
            let fields = reader.entries(value, "`auth.login.basic`", BASIC_KEYS)?;
            let username = reader
                .required(&fields, "username", "the user name")
                .and_then(|n| reader.setting(n, "`auth.login.basic.username`"));
            let password = reader
                .required(&fields, "password", "the password, as `${env:NAME}`")
                .and_then(|n| reader.secret(n, "`auth.login.basic.password`"));
            Some(Some((username?, password?)))
        }
        None => Some(None),
    };
    let token = reader
        .required(
            &fields,
            "token",
            "where the token is in the login answer, e.g. `token: data.accessToken`",
        )
        .and_then(|n| answer_path(reader, n, "`auth.login.token`"));
    let expires_in = match fields.get("expires_in") {
        Some(n) => answer_path(reader, n, "`auth.login.expires_in`").map(Some),
        None => Some(None),
    };
    let expires_after_ms = match fields.get("expires_after") {
        Some(n) => reader
            .duration_ms(n, "`auth.login.expires_after`")
            .map(Some),
        None => Some(None),
    };
    let header = match fields.get("header") {
        Some(n) => {
            let name = key_name(reader, n, "`auth.login.header`")?;
            if !header_name(&name) {
                let diagnostic = reader
                    .at(
                        n.span.clone(),
                        format!("`{name}` is not a valid HTTP header name"),
                    )
                    .with_help(
                        "write the header the provider reads the token from, e.g. `X-Auth-Token`",
                    );
                reader.push(diagnostic);
                None
            } else {
                Some(name)
            }
        }
        None => Some("Authorization".to_owned()),
    };
    let prefix = match fields.get("prefix") {
        Some(n) => reader.string(n, "`auth.login.prefix`").and_then(|prefix| {
            if reader.unread_reference(n, &prefix, "`auth.login.prefix`") {
                return None;
            }
            if prefix.chars().any(|c| c.is_control() || !c.is_ascii()) {
                reader.fail(
                    n,
                    "`auth.login.prefix` has characters a header value cannot hold",
                );
                return None;
            }
            Some(prefix)
        }),
        // `Authorization` takes a scheme; another header takes the token alone.
        None if header
            .as_deref()
            .is_some_and(|name| name.eq_ignore_ascii_case("authorization")) =>
        {
            Some("Bearer ".to_owned())
        }
        None => Some(String::new()),
    };
    Some(Login {
        method: method?,
        url: url?,
        body: body?,
        encoding: encoding?,
        basic: basic?,
        token: token?,
        expires_in: expires_in?,
        expires_after_ms: expires_after_ms?,
        header: header?,
        prefix: prefix?,
    })
}

/// The login call's body: dotted names to settings; a name that says it is a credential
/// must read its value from the environment.
fn login_body(
    reader: &mut Reader,
    node: &Node,
    encoding: Option<BodyEncoding>,
) -> Option<Vec<(String, Setting)>> {
    let pairs = reader.pairs(node, "`auth.login.body`")?;
    let before = reader.diagnostics.len();
    let mut found = Vec::new();
    let mut keys = Vec::new();
    for (key, value) in pairs {
        let Some(name) = key.as_str() else { continue };
        if operations::dotted_key(reader, key, name).is_none() {
            continue;
        }
        keys.push((name.to_owned(), key.span.clone()));
        let Some(setting) = reader.setting(value, "a login body value") else {
            continue;
        };
        if matches!(setting, Setting::Literal(_))
            && reader.credential_written(
                name,
                value,
                "write `${env:NAME}` and set NAME where the connector runs",
            )
        {
            continue;
        }
        found.push((name.to_owned(), setting));
    }
    if encoding == Some(BodyEncoding::Form) {
        operations::form_keys(reader, &keys);
    }
    (reader.diagnostics.len() == before).then_some(found)
}

/// A dotted path of object keys into the login answer (`data.accessToken`).
fn answer_path(reader: &mut Reader, node: &Node, what: &str) -> Option<String> {
    let path = reader.string(node, what)?;
    let valid = !path.is_empty()
        && path
            .split('.')
            .all(|key| !key.is_empty() && !key.contains(['[', ']', ' ', '{', '}', '$']));
    if !valid {
        let diagnostic = reader
            .at(
                node.span.clone(),
                format!("{what}: `{path}` is not a path into the login answer"),
            )
            .with_help("write object keys separated by dots, e.g. `data.accessToken`");
        reader.push(diagnostic);
        return None;
    }
    Some(path)
}

/// An HTTP header name: letters, digits and `-`, `_`.
fn header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// A URL setting's fixed start: an http(s) URL, or (`token_url`) a path on the base URL.
/// What a reference supplies is checked when the connector starts.
fn url_setting(
    reader: &mut Reader,
    node: &Node,
    setting: Setting,
    relative: bool,
) -> Option<Setting> {
    let start = setting.leading_text();
    let absolute = start.starts_with("https://") || start.starts_with("http://");
    let fixed = !matches!(setting, Setting::Env(_)) && !start.is_empty();
    if !fixed || absolute || (relative && start.starts_with('/')) {
        return Some(setting);
    }
    let text = node.as_str().unwrap_or_default();
    let (message, help) = if relative {
        (
            format!("`{text}` is not an http(s) URL or a path on the base URL"),
            "write `https://...`, `/path` (appended to `upstream.base_url`), or start with `${env:NAME}`",
        )
    } else {
        (
            format!("`{text}` is not an http(s) URL"),
            "write `https://...`, or `${env:NAME}` to read it from the environment at start-up",
        )
    };
    let diagnostic = reader.at(node.span.clone(), message).with_help(help);
    reader.push(diagnostic);
    None
}

/// The name of the header or query parameter an API key goes in: written as it is sent.
fn key_name(reader: &mut Reader, node: &Node, what: &str) -> Option<String> {
    let name = reader.string(node, what)?;
    (!reader.unread_reference(node, &name, what)).then_some(name)
}

/// `` `a` and `b` ``, `` `a`, `b` and `c` ``.
pub(super) fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

fn headers(reader: &mut Reader, node: &Node) -> Vec<(String, Setting)> {
    let Some(pairs) = reader.pairs(node, "`upstream.headers`") else {
        return Vec::new();
    };
    pairs
        .into_iter()
        .filter_map(|(key, value)| {
            let name = key.as_str()?.to_owned();
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid {
                reader.fail(key, format!("`{name}` is not a valid HTTP header name"));
                return None;
            }
            let setting = reader.setting(value, "a header value")?;
            if matches!(setting, Setting::Literal(_))
                && reader.credential_written(
                    &name,
                    value,
                    "write `${env:NAME}` (alone or in a template such as `\"Token ${env:NAME}\"`) and set NAME where the connector runs",
                )
            {
                return None;
            }
            Some((name, setting))
        })
        .collect()
}

fn retry(reader: &mut Reader, node: &Node) -> Option<Retry> {
    let entries = reader.entries(node, "`upstream.retry`", RETRY_KEYS)?;
    let defaults = Retry::default();
    let attempts = match entries.get("attempts") {
        Some(n) => reader.integer(n, "`retry.attempts`", 1..=20)? as u32,
        None => defaults.attempts,
    };
    let deadline_ms = match entries.get("deadline") {
        Some(n) => reader.duration_ms(n, "`retry.deadline`")?,
        None => defaults.deadline_ms,
    };
    Some(Retry {
        attempts,
        deadline_ms,
    })
}

fn rate_limit(reader: &mut Reader, node: &Node) -> Option<RateLimit> {
    let entries = reader.entries(node, "`upstream.rate_limit`", RATE_LIMIT_KEYS)?;
    let requests = reader
        .required(
            &entries,
            "requests",
            "how many requests the provider allows per `per`",
        )
        .and_then(|n| reader.integer(n, "`rate_limit.requests`", 1..=1_000_000));
    let per_ms = reader
        .required(&entries, "per", "the provider's window, e.g. `1s` or `1m`")
        .and_then(|n| reader.duration_ms(n, "`rate_limit.per`"));
    let burst = match entries.get("burst") {
        Some(n) => reader.integer(n, "`rate_limit.burst`", 1..=1_000_000),
        None => Some(1),
    };
    Some(RateLimit {
        requests: requests? as u32,
        per_ms: per_ms?,
        burst: burst? as u32,
    })
}

fn currencies(reader: &mut Reader, node: &Node) -> BTreeMap<String, u32> {
    let Some(pairs) = reader.pairs(node, "`currencies`") else {
        return BTreeMap::new();
    };
    let mut found = BTreeMap::new();
    for (key, value) in pairs {
        let code = key.as_str().unwrap_or_default();
        if code.is_empty()
            || !code
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            let upper = code.to_ascii_uppercase();
            let help = if !code.is_empty() && upper.chars().all(|c| c.is_ascii_alphanumeric()) {
                format!("write the code in upper case: `{upper}`")
            } else {
                "write the code in upper case, e.g. `BTC: 8`".to_owned()
            };
            let diagnostic = reader
                .at(key.span.clone(), format!("`{code}` is not a currency code"))
                .with_help(help);
            reader.push(diagnostic);
            continue;
        }
        if let Some(precision) = reader.integer(value, "a currency precision", 0..=36) {
            found.insert(code.to_owned(), precision as u32);
        }
    }
    found
}

fn dependencies(reader: &mut Reader, node: &Node) -> BTreeMap<String, Dependency> {
    let Some(pairs) = reader.pairs(node, "`dependencies`") else {
        return BTreeMap::new();
    };
    let mut found = BTreeMap::new();
    for (key, value) in pairs {
        let name = key.as_str().unwrap_or_default().to_owned();
        let dependency = match &value.value {
            Value::Scalar { .. } => {
                reader
                    .string(value, "a crate version")
                    .map(|version| Dependency {
                        span: key.span.clone(),
                        version,
                        default_features: true,
                        features: Vec::new(),
                    })
            }
            _ => dependency(reader, value).map(|d| Dependency {
                span: key.span.clone(),
                ..d
            }),
        };
        if let Some(dependency) = dependency {
            found.insert(name, dependency);
        }
    }
    found
}

fn dependency(reader: &mut Reader, node: &Node) -> Option<Dependency> {
    let entries = reader.entries(node, "a dependency", DEPENDENCY_KEYS)?;
    let version = reader.required(&entries, "version", "the crate's version requirement")?;
    let version = reader.string(version, "`version`")?;
    let mut features = Vec::new();
    if let Some(list) = entries.get("features") {
        for item in reader.list(list, "`features`").unwrap_or_default() {
            features.extend(reader.string(item, "a feature name"));
        }
    }
    let default_features = match entries.get("default-features") {
        Some(node) => reader.boolean(node, "`default-features`").unwrap_or(true),
        None => true,
    };
    Some(Dependency {
        span: node.span.clone(),
        version,
        default_features,
        features,
    })
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
        // A misspelt key is one mistake: its key is not reported missing too.
        let found = errors("version: 1\nnmae: acme\nupstream:\n  base_ulr: x\n");
        assert_eq!(
            found,
            [
                "2:1 unknown key `nmae` in the mapping file (did you mean `name`?)",
                "4:3 unknown key `base_ulr` in `upstream` (did you mean `base_url`?)",
            ]
        );
        // A key that is simply not there still is.
        let found = errors("version: 1\nupstream:\n  timeout: 5s\n");
        assert_eq!(
            found,
            [
                "1:1 missing key `name`: the connector's name",
                "3:3 missing key `base_url`: the provider's API base URL, e.g. `${env:ACME_BASE_URL}`",
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
