//! Everything a connector reads from its environment at start-up. Every missing or
//! malformed setting is reported, all at once, before anything starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;

/// How settings are looked up: `std::env::var` in production, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Everything the connector reads from its environment at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CONNECTOR_LISTEN`: the address to serve on (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `CONNECTOR_API_KEY`: the key Formance sends as `Authorization: Bearer <key>`; several
    /// separated by commas while a key is rotated.
    pub api_key: ApiKey,
    /// `CONNECTOR_LOG`: error, warn, info (default), debug or trace.
    pub log_level: tracing::Level,
    /// `CONNECTOR_LOG_FORMAT`: `text` (default) or `json`.
    pub log_json: bool,
    /// `CONNECTOR_BODY_LIMIT`: the largest request body accepted, in bytes (default 1 MiB).
    pub body_limit: usize,
    /// `CONNECTOR_TLS_CERT`, `CONNECTOR_TLS_KEY`, `CONNECTOR_TLS_CLIENT_CA`: HTTPS only, when set.
    pub tls: Option<TlsSettings>,
    /// `CONNECTOR_DRAIN_TIMEOUT`: after SIGTERM, the longest in-flight requests may take to
    /// finish before the process exits anyway (default `20s`).
    pub drain_timeout: Duration,
    /// `CONNECTOR_WINDOW_MEMORY`: the estimated bytes of records a list window holds in
    /// memory before it writes them to a temporary file (default 16 MB): a bytes count, or
    /// one with a `KB`, `MB` or `GB` suffix (powers of 1024).
    pub window_memory: u64,
    /// The provider settings declared in connector.yaml.
    pub upstream: UpstreamSettings,
    /// Where initiations are recorded: `DATABASE_URL` or `CONNECTOR_STORE`.
    #[cfg(feature = "store")]
    pub store: StoreSettings,
}

impl Config {
    /// Reads every setting from the process environment; `upstream` reads the provider
    /// settings connector.yaml declares.
    pub fn from_env(
        upstream: impl FnOnce(Env, &mut Vec<String>) -> UpstreamSettings,
    ) -> Result<Self, Vec<String>> {
        Self::from_lookup(&|name| std::env::var(name).ok(), upstream)
    }

    /// Reads every setting through `env`, reporting all problems at once.
    pub fn from_lookup(
        env: Env,
        upstream: impl FnOnce(Env, &mut Vec<String>) -> UpstreamSettings,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let api_key = required_env(
            env,
            "CONNECTOR_API_KEY",
            "the API key Formance sends as `Authorization: Bearer <key>`",
            &mut problems,
        );
        let listen = parse_env(
            env,
            "CONNECTOR_LISTEN",
            "127.0.0.1:8080",
            "an address such as 127.0.0.1:8080",
            &mut problems,
        );
        let log_level = parse_env(
            env,
            "CONNECTOR_LOG",
            "info",
            "one of error, warn, info, debug, trace",
            &mut problems,
        );
        let log_json = match env("CONNECTOR_LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                problems.push(format!(
                    "CONNECTOR_LOG_FORMAT must be text or json, got {other:?}"
                ));
                false
            }
        };
        let body_limit = parse_env(
            env,
            "CONNECTOR_BODY_LIMIT",
            "1048576",
            "a size in bytes",
            &mut problems,
        );
        let tls = TlsSettings::from_lookup(env, &mut problems);
        let raw_drain = env("CONNECTOR_DRAIN_TIMEOUT").unwrap_or_else(|| "20s".to_owned());
        let drain_timeout = parse_duration(&raw_drain).unwrap_or_else(|| {
            problems.push(format!(
                "CONNECTOR_DRAIN_TIMEOUT must be a duration such as 20s or 1500ms, got {raw_drain:?}"
            ));
            DEFAULT_DRAIN_TIMEOUT
        });
        let raw_window = env("CONNECTOR_WINDOW_MEMORY");
        let window_memory = match raw_window.as_deref() {
            None => DEFAULT_WINDOW_MEMORY,
            Some(raw) => parse_size(raw).unwrap_or_else(|| {
                problems.push(format!(
                    "CONNECTOR_WINDOW_MEMORY must be a size such as 32MB, 500KB or 1048576, got {raw:?}"
                ));
                DEFAULT_WINDOW_MEMORY
            }),
        };
        let upstream = upstream(env, &mut problems);
        #[cfg(feature = "store")]
        let store = StoreSettings::from_lookup(env, &mut problems);
        let api_key_given = !api_key.trim().is_empty();
        let api_key = ApiKey::new(api_key);
        if api_key_given {
            problems.extend(api_key.problem());
        }
        match (listen, log_level, body_limit) {
            (Some(listen), Some(log_level), Some(body_limit)) if problems.is_empty() => Ok(Self {
                listen,
                api_key,
                log_level,
                log_json,
                body_limit,
                tls,
                drain_timeout,
                window_memory,
                upstream,
                #[cfg(feature = "store")]
                store,
            }),
            _ => Err(problems),
        }
    }
}

/// The memory budget of a list window, by default (`CONNECTOR_WINDOW_MEMORY`).
/// A window's resident set is about twice its estimate: a 16 MB budget keeps a newest-first
/// sync of 100,000 records near 44 MB.
pub const DEFAULT_WINDOW_MEMORY: u64 = 16 * 1024 * 1024;

/// `1048576`, `500KB`, `32MB`, `1GB` (powers of 1024, the unit in any case, `B` optional
/// after a prefix: `32M`); at least one byte.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).filter(|&bytes| bytes > 0)
}

/// How long in-flight requests may take to finish after SIGTERM, by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The server's certificate and key, and the authorities whose client certificates it
/// accepts (mutual TLS), as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub client_ca: Option<std::path::PathBuf>,
}

impl TlsSettings {
    /// `CONNECTOR_TLS_CERT` and `CONNECTOR_TLS_KEY` (both or neither), and
    /// `CONNECTOR_TLS_CLIENT_CA` (only with them).
    pub fn from_lookup(env: Env, problems: &mut Vec<String>) -> Option<Self> {
        let path = |name: &str| {
            env(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .map(std::path::PathBuf::from)
        };
        let (cert, key, client_ca) = (
            path("CONNECTOR_TLS_CERT"),
            path("CONNECTOR_TLS_KEY"),
            path("CONNECTOR_TLS_CLIENT_CA"),
        );
        let settings = match (cert, key) {
            (Some(cert), Some(key)) => Self {
                cert,
                key,
                client_ca,
            },
            (None, None) => {
                if client_ca.is_some() {
                    problems.push(
                        "CONNECTOR_TLS_CLIENT_CA is set without CONNECTOR_TLS_CERT and CONNECTOR_TLS_KEY: \
                         mutual TLS needs the server's own certificate and key"
                            .to_owned(),
                    );
                }
                return None;
            }
            (Some(_), None) => {
                problems.push(
                    "CONNECTOR_TLS_CERT is set but CONNECTOR_TLS_KEY is not: HTTPS needs both PEM files"
                        .to_owned(),
                );
                return None;
            }
            (None, Some(_)) => {
                problems.push(
                    "CONNECTOR_TLS_KEY is set but CONNECTOR_TLS_CERT is not: HTTPS needs both PEM files"
                        .to_owned(),
                );
                return None;
            }
        };
        if !cfg!(feature = "tls") {
            problems.push(
                "CONNECTOR_TLS_CERT is set, but this connector was built without TLS support: \
                 build it with the `tls` feature (on by default)"
                    .to_owned(),
            );
        }
        Some(settings)
    }
}

/// A required, non-empty environment variable; a missing one is recorded in `problems`.
pub fn required_env(env: Env, name: &str, what: &str, problems: &mut Vec<String>) -> String {
    match env(name) {
        Some(value) if !value.trim().is_empty() => value,
        _ => {
            problems.push(format!("{name} is not set: {what}"));
            String::new()
        }
    }
}

/// A piece of a provider setting as connector.yaml writes it: text, or the value of an
/// environment variable (`${env:NAME}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Text(&'static str),
    Var(&'static str),
}

/// The environment variables connector.yaml's settings read, each read once: a missing one
/// is one problem however many settings use it, and the settings that use it are left to
/// that problem instead of adding their own.
pub struct Variables {
    found: Vec<(&'static str, String)>,
}

impl Variables {
    /// Reads every `(NAME, what it is for)`; a missing or blank one goes to `problems`.
    pub fn read(env: Env, wanted: &[(&'static str, &str)], problems: &mut Vec<String>) -> Self {
        let mut found = Vec::new();
        for (index, (name, what)) in wanted.iter().enumerate() {
            if wanted[..index].iter().any(|(known, _)| known == name) {
                continue;
            }
            let value = required_env(env, name, what, problems);
            if !value.trim().is_empty() {
                found.push((*name, value));
            }
        }
        Self { found }
    }

    /// The setting's text, or `None` when a variable it needs is missing.
    pub fn compose(&self, pieces: &[Piece]) -> Option<String> {
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(part) => text.push_str(part),
                Piece::Var(name) => {
                    let (_, value) = self.found.iter().find(|(known, _)| known == name)?;
                    text.push_str(value);
                }
            }
        }
        Some(text)
    }

    /// A setting taken as it is (empty when a variable is missing).
    pub fn text(&self, pieces: &[Piece]) -> String {
        self.compose(pieces).unwrap_or_default()
    }

    /// A URL setting, which must be an absolute http(s) URL: a bad one is a problem naming
    /// the variables it came from, rather than a failure of every request later.
    pub fn url(&self, what: &str, pieces: &[Piece], problems: &mut Vec<String>) -> String {
        let Some(url) = self.compose(pieces) else {
            return String::new();
        };
        if !is_http_url(&url) {
            problems.push(format!(
                "{}{what} is {url:?}, which is not an absolute http(s) URL such as https://api.example.com",
                origin(pieces)
            ));
        }
        url
    }

    /// The OAuth2 token endpoint: an absolute URL, or a path (starting with `/`) appended to
    /// `base_url` as request paths are.
    pub fn token_url(
        &self,
        base_url: &str,
        pieces: &[Piece],
        problems: &mut Vec<String>,
    ) -> String {
        self.endpoint(
            "`upstream.auth.oauth2.token_url`",
            base_url,
            pieces,
            problems,
        )
    }

    /// An endpoint of the provider's (`what`, for messages): an absolute URL, or a path
    /// (starting with `/`) appended to `base_url` as request paths are.
    pub fn endpoint(
        &self,
        what: &str,
        base_url: &str,
        pieces: &[Piece],
        problems: &mut Vec<String>,
    ) -> String {
        let Some(url) = self.compose(pieces) else {
            return String::new();
        };
        if !url.starts_with('/') {
            return self.url(what, pieces, problems);
        }
        // A base URL that is missing or bad was reported already.
        if !is_http_url(base_url) {
            return url;
        }
        format!("{}{url}", base_url.trim_end_matches('/'))
    }

    /// A header value sent with every request; never printed, it may hold a credential.
    pub fn header(&self, name: &str, pieces: &[Piece], problems: &mut Vec<String>) -> String {
        let Some(value) = self.compose(pieces) else {
            return String::new();
        };
        if axum::http::HeaderValue::from_str(&value).is_err() {
            problems.push(format!(
                "{}the `{name}` header (`upstream.headers`) has characters a header value cannot hold",
                origin(pieces)
            ));
        }
        value
    }
}

/// `NAME: ` (or `A and B: `) for a problem with a setting made from variables.
fn origin(pieces: &[Piece]) -> String {
    let names: Vec<&str> = pieces
        .iter()
        .filter_map(|piece| match piece {
            Piece::Var(name) => Some(*name),
            Piece::Text(_) => None,
        })
        .collect();
    match names.as_slice() {
        [] => String::new(),
        [name] => format!("{name}: "),
        [rest @ .., last] => format!("{} and {last}: ", rest.join(", ")),
    }
}

/// `http://host...` or `https://host...`, with a host, as one URL.
fn is_http_url(text: &str) -> bool {
    let Ok(uri) = text.parse::<axum::http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|host| !host.is_empty())
}

/// An optional setting parsed from its text, `default` when unset; a value that does not
/// parse is recorded in `problems`.
pub fn parse_env<T: std::str::FromStr>(
    env: Env,
    name: &str,
    default: &str,
    expected: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    let raw = env(name).unwrap_or_else(|| default.to_owned());
    let parsed = raw.trim().parse().ok();
    if parsed.is_none() {
        problems.push(format!("{name} must be {expected}, got {raw:?}"));
    }
    parsed
}

/// `30s`, `1500ms`, `2m`; at least one millisecond.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: u64 = number.parse().ok()?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        _ => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

/// The API keys Formance may send, compared in constant time and never printed.
/// `CONNECTOR_API_KEY` holds one key, or several separated by commas so that a new key can
/// be rolled out before the old one is removed.
#[derive(Clone)]
pub struct ApiKey(Arc<[Box<str>]>);

impl ApiKey {
    /// The keys of `CONNECTOR_API_KEY`'s value: comma-separated, each trimmed.
    pub fn new(keys: String) -> Self {
        Self(keys.split(',').map(|key| Box::from(key.trim())).collect())
    }

    /// The problem with the keys, if any: an empty key between commas.
    fn problem(&self) -> Option<String> {
        let empty = self.0.iter().position(|key| key.is_empty())?;
        Some(format!(
            "CONNECTOR_API_KEY holds {} comma-separated keys and key {empty} (counting from 0) is empty",
            self.0.len()
        ))
    }

    /// How many keys there are.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Whether `candidate` is one of the keys.
    pub fn matches(&self, candidate: &str) -> bool {
        self.index_of(candidate).is_some()
    }

    /// The position of `candidate` among the keys (from 0), for the logs. Every key is
    /// compared, each in constant time, so the time taken says nothing about which matched.
    pub fn index_of(&self, candidate: &str) -> Option<usize> {
        use subtle::ConditionallySelectable;
        let mut found = 0u64;
        let mut any = subtle::Choice::from(0);
        for (index, key) in self.0.iter().enumerate() {
            let equal = key.as_bytes().ct_eq(candidate.as_bytes());
            found = u64::conditional_select(&found, &(index as u64), equal);
            any |= equal;
        }
        bool::from(any).then_some(found as usize)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How to reach the provider (`upstream` in connector.yaml), with the values read from the
/// environment. Credentials are never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// Base URL of the provider's API (`upstream.base_url`).
    pub base_url: String,
    /// How requests prove who we are (`upstream.auth`).
    pub auth: Auth,
    /// Headers sent with every request (`upstream.headers`).
    pub headers: Vec<(String, String)>,
    /// The longest one request may take (`upstream.timeout`).
    pub timeout: Duration,
    /// Attempts per GET, the first one included (`upstream.retry.attempts`).
    pub attempts: u32,
    /// The longest a GET with its retries may take (`upstream.retry.deadline`).
    pub deadline: Duration,
    /// The provider's request rate, shared by every operation (`upstream.rate_limit`).
    pub rate_limit: Option<RateLimit>,
}

/// At most `requests` per `per` on average and `burst` at once: a token bucket holding
/// `burst` tokens, refilled at `requests / per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
}

impl UpstreamSettings {
    /// A provider reached at `base_url` without authentication, with connector.yaml's
    /// default timeout (10 s) and retries (3 attempts within 15 s).
    pub fn new(base_url: String) -> Self {
        Self {
            base_url,
            auth: Auth::None,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            attempts: 3,
            deadline: Duration::from_secs(15),
            rate_limit: None,
        }
    }
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, _)| (name.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("UpstreamSettings")
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("deadline", &self.deadline)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// How requests prove who we are to the provider.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Bearer(String),
    Header {
        name: String,
        value: String,
    },
    Query {
        name: String,
        value: String,
    },
    Basic {
        username: String,
        password: String,
    },
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
    /// A token from the provider's own login call.
    Login(Box<Login>),
}

/// How a request body is written: JSON, or form-encoded with bracket nesting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyEncoding {
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, nested objects as `a[b]=`, arrays as `a[0]=`.
    Form,
}

/// `upstream.auth.login`: the provider's login call, and how its token is read and sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub method: String,
    /// Absolute; a path in connector.yaml was appended to the base URL at start-up.
    pub url: String,
    /// Dotted names and their values; no body when empty.
    pub body: Vec<(String, String)>,
    pub encoding: BodyEncoding,
    /// HTTP basic credentials sent with the login call.
    pub basic: Option<(String, String)>,
    /// Where the token is in the answer, dotted (`data.accessToken`).
    pub token: String,
    /// Where the answer says how many seconds the token lives, dotted.
    pub expires_in: Option<String>,
    /// How long a token lives when the answer does not say; without either, until refused.
    pub expires_after: Option<Duration>,
    /// The header the token is sent in, and the text before it (`Bearer `).
    pub header: String,
    pub prefix: String,
}

impl Auth {
    /// The connector.yaml setting this authentication comes from, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Auth::None => "no `upstream.auth`",
            Auth::Bearer(_) => "`upstream.auth.bearer`",
            Auth::Header { .. } | Auth::Query { .. } => "`upstream.auth.api_key`",
            Auth::Basic { .. } => "`upstream.auth.basic`",
            Auth::OAuth2 { .. } => "`upstream.auth.oauth2`",
            Auth::Login(_) => "`upstream.auth.login`",
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Header { name, .. } => write!(f, "Header({name}: <redacted>)"),
            Auth::Query { name, .. } => write!(f, "Query({name}=<redacted>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}:<redacted>)"),
            Auth::OAuth2 {
                token_url,
                client_id,
                scope,
                ..
            } => f
                .debug_struct("OAuth2")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("scope", scope)
                .finish_non_exhaustive(),
            Auth::Login(login) => f
                .debug_struct("Login")
                .field("method", &login.method)
                .field("url", &login.url)
                .field(
                    "body",
                    &login.body.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                )
                .field("encoding", &login.encoding)
                .field("basic", &login.basic.as_ref().map(|(user, _)| user))
                .field("token", &login.token)
                .field("header", &login.header)
                .finish_non_exhaustive(),
        }
    }
}

/// Where the initiation store lives.
#[cfg(feature = "store")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A `postgres://` URL; its password is never printed.
    Postgres(String),
    /// A SQLite database file.
    Sqlite(std::path::PathBuf),
}

#[cfg(feature = "store")]
impl StoreLocation {
    /// For logs and errors: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => {
                let without_credentials = url.split_once("://").and_then(|(scheme, rest)| {
                    rest.rsplit_once('@').map(|(_, host)| (scheme, host))
                });
                match without_credentials {
                    Some((scheme, host)) => format!("{scheme}://…@{host}"),
                    None => url.clone(),
                }
            }
        }
    }
}

/// The initiation store's settings.
#[cfg(feature = "store")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    pub location: StoreLocation,
    /// `CONNECTOR_INITIATION_TIMEOUT`: how long one attempt to initiate a payment may
    /// take (default 30s). A key whose attempt is older than this is taken over by the
    /// next retry, on any replica.
    pub attempt_timeout: Duration,
}

#[cfg(feature = "store")]
impl StoreSettings {
    /// `DATABASE_URL` (`postgres://...`, or `sqlite:PATH`) or `CONNECTOR_STORE` (a SQLite
    /// file, default `connector-store.sqlite3`), and `CONNECTOR_INITIATION_TIMEOUT`.
    pub fn from_lookup(env: Env, problems: &mut Vec<String>) -> Self {
        let sqlite = |path: &str| StoreLocation::Sqlite(std::path::PathBuf::from(path));
        let database_url = env("DATABASE_URL")
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty());
        let location = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                if !cfg!(feature = "postgres") {
                    problems.push(
                        "DATABASE_URL names a PostgreSQL database, but this connector was built \
                         without PostgreSQL support: build it with `--features postgres`"
                            .to_owned(),
                    );
                }
                StoreLocation::Postgres(url)
            }
            Some(url) if url.starts_with("sqlite:") => {
                sqlite(url.trim_start_matches("sqlite:").trim_start_matches("//"))
            }
            Some(url) => {
                problems.push(format!(
                    "DATABASE_URL must be a postgres:// or sqlite: URL, got {:?}",
                    StoreLocation::Postgres(url).describe()
                ));
                sqlite("")
            }
            None => sqlite(
                env("CONNECTOR_STORE")
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .unwrap_or("connector-store.sqlite3"),
            ),
        };
        let raw = env("CONNECTOR_INITIATION_TIMEOUT").unwrap_or_else(|| "30s".to_owned());
        let attempt_timeout = parse_duration(&raw).unwrap_or_else(|| {
            problems.push(format!(
                "CONNECTOR_INITIATION_TIMEOUT must be a duration such as 30s or 1500ms, got {raw:?}"
            ));
            Duration::from_secs(30)
        });
        Self {
            location,
            attempt_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_provider(_: Env, _: &mut Vec<String>) -> UpstreamSettings {
        UpstreamSettings::new("http://provider.test".to_owned())
    }

    #[test]
    fn defaults_apply_when_only_the_api_key_is_set() {
        let config = Config::from_lookup(&lookup(&[("CONNECTOR_API_KEY", "k")]), no_provider)
            .expect("valid");
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.log_level, tracing::Level::INFO);
        assert!(!config.log_json);
        assert_eq!(config.body_limit, 1_048_576);
        assert_eq!(config.window_memory, DEFAULT_WINDOW_MEMORY);
        assert!(config.api_key.matches("k"));
        assert!(!config.api_key.matches("K"));
    }

    #[test]
    fn window_memory_is_bytes_or_a_size_in_kb_mb_or_gb() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size(" 500KB "), Some(500 << 10));
        assert_eq!(parse_size("64mb"), Some(64 << 20));
        assert_eq!(parse_size("32 M"), Some(32 << 20));
        assert_eq!(parse_size("2GB"), Some(2 << 30));
        for bad in ["", "0", "0MB", "MB", "1.5GB", "12TB", "-1"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        let config = Config::from_lookup(
            &lookup(&[
                ("CONNECTOR_API_KEY", "k"),
                ("CONNECTOR_WINDOW_MEMORY", "8MB"),
            ]),
            no_provider,
        )
        .expect("valid");
        assert_eq!(config.window_memory, 8 << 20);
        let problems = Config::from_lookup(
            &lookup(&[
                ("CONNECTOR_API_KEY", "k"),
                ("CONNECTOR_WINDOW_MEMORY", "lots"),
            ]),
            no_provider,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            ["CONNECTOR_WINDOW_MEMORY must be a size such as 32MB, 500KB or 1048576, got \"lots\""]
        );
    }

    #[test]
    fn several_comma_separated_api_keys_are_each_accepted_by_position() {
        let config = Config::from_lookup(
            &lookup(&[("CONNECTOR_API_KEY", " old-key , new-key")]),
            no_provider,
        )
        .expect("valid");
        let keys = &config.api_key;
        assert_eq!(keys.count(), 2);
        assert_eq!(keys.index_of("old-key"), Some(0));
        assert_eq!(keys.index_of("new-key"), Some(1));
        assert_eq!(keys.index_of("old-key,new-key"), None);
        assert_eq!(keys.index_of(""), None);
        assert_eq!(keys.index_of("new-ke"), None);
        let printed = format!("{keys:?}");
        assert!(
            !printed.contains("old-key") && !printed.contains("new-key"),
            "{printed}"
        );
        let problems = Config::from_lookup(&lookup(&[("CONNECTOR_API_KEY", "a,,b")]), no_provider)
            .unwrap_err();
        assert_eq!(
            problems,
            ["CONNECTOR_API_KEY holds 3 comma-separated keys and key 1 (counting from 0) is empty"]
        );
    }

    #[test]
    fn tls_needs_both_files_and_mutual_tls_needs_them_too() {
        let tls = |pairs: &[(&str, &str)]| {
            let mut problems = Vec::new();
            (
                TlsSettings::from_lookup(&lookup(pairs), &mut problems),
                problems,
            )
        };
        assert_eq!(tls(&[]), (None, vec![]));
        let (settings, problems) = tls(&[
            ("CONNECTOR_TLS_CERT", "/etc/c.pem"),
            ("CONNECTOR_TLS_KEY", "/etc/k.pem"),
            ("CONNECTOR_TLS_CLIENT_CA", "/etc/ca.pem"),
        ]);
        let settings = settings.expect("set");
        assert_eq!(settings.cert, std::path::Path::new("/etc/c.pem"));
        assert_eq!(
            settings.client_ca.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(problems.is_empty(), cfg!(feature = "tls"), "{problems:?}");
        let (_, problems) = tls(&[("CONNECTOR_TLS_CERT", "/etc/c.pem")]);
        assert!(
            problems[0].contains("CONNECTOR_TLS_KEY is not"),
            "{problems:?}"
        );
        let (_, problems) = tls(&[("CONNECTOR_TLS_CLIENT_CA", "/etc/ca.pem")]);
        assert!(
            problems[0].starts_with("CONNECTOR_TLS_CLIENT_CA is set without"),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let env = lookup(&[
            ("CONNECTOR_LISTEN", "nowhere"),
            ("CONNECTOR_LOG", "loud"),
            ("CONNECTOR_LOG_FORMAT", "xml"),
            ("CONNECTOR_BODY_LIMIT", "1 MB"),
        ]);
        let problems = Config::from_lookup(&env, |env, problems| {
            required_env(env, "ACME_BASE_URL", "the provider", problems);
            UpstreamSettings::new(String::new())
        })
        .unwrap_err();
        let joined = problems.join("\n");
        for name in [
            "CONNECTOR_API_KEY is not set",
            "CONNECTOR_LISTEN must be",
            "CONNECTOR_LOG must be",
            "CONNECTOR_LOG_FORMAT must be text or json, got \"xml\"",
            "CONNECTOR_BODY_LIMIT must be a size in bytes, got \"1 MB\"",
            "ACME_BASE_URL is not set: the provider",
        ] {
            assert!(joined.contains(name), "{name} missing from:\n{joined}");
        }
    }

    #[test]
    fn each_variable_is_read_once_and_composed_urls_are_checked_at_start_up() {
        let reads = std::cell::Cell::new(0);
        let env = lookup(&[("BANK_URL", "https://bank.test/"), ("TENANT", "t1")]);
        let counting = |name: &str| {
            reads.set(reads.get() + 1);
            env(name)
        };
        let mut problems = Vec::new();
        let vars = Variables::read(
            &counting,
            &[
                ("BANK_URL", "the base URL"),
                ("TENANT", "a header"),
                ("BANK_URL", "the token endpoint"),
                ("MISSING", "the client id"),
                ("MISSING", "the secret"),
            ],
            &mut problems,
        );
        assert_eq!(reads.get(), 3);
        assert_eq!(problems, ["MISSING is not set: the client id"]);
        let base = vars.url(
            "`upstream.base_url`",
            &[Piece::Var("BANK_URL"), Piece::Text("api")],
            &mut problems,
        );
        assert_eq!(base, "https://bank.test/api");
        let relative = [Piece::Text("/oauth/token")];
        assert_eq!(
            vars.token_url("https://bank.test/api/", &relative, &mut problems),
            "https://bank.test/api/oauth/token"
        );
        let absolute = [Piece::Var("BANK_URL"), Piece::Text("oauth/token")];
        assert_eq!(
            vars.token_url(&base, &absolute, &mut problems),
            "https://bank.test/oauth/token"
        );
        let header = [Piece::Text("tenant-"), Piece::Var("TENANT")];
        assert_eq!(vars.header("X-Tenant", &header, &mut problems), "tenant-t1");
        // A setting that needs a missing variable adds nothing to its problem.
        let needs_missing = [Piece::Var("MISSING"), Piece::Text("/x")];
        assert_eq!(vars.url("`x`", &needs_missing, &mut problems), "");
        assert_eq!(vars.token_url(&base, &needs_missing, &mut problems), "");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn a_bad_url_or_header_names_its_variables() {
        let env = lookup(&[("HOST", "bank.test"), ("KEY", "a\nb")]);
        let mut problems = Vec::new();
        let vars = Variables::read(&env, &[("HOST", "h"), ("KEY", "k")], &mut problems);
        let base = [Piece::Var("HOST"), Piece::Text("/api")];
        vars.url("`upstream.base_url`", &base, &mut problems);
        let token = [
            Piece::Text("http://"),
            Piece::Var("HOST"),
            Piece::Var("KEY"),
        ];
        vars.token_url("", &token, &mut problems);
        vars.header("Authorization", &[Piece::Var("KEY")], &mut problems);
        // The relative token endpoint of a bad base URL is not reported twice.
        vars.token_url("bank.test/api", &[Piece::Text("/token")], &mut problems);
        assert_eq!(
            problems,
            [
                "HOST: `upstream.base_url` is \"bank.test/api\", which is not an absolute http(s) URL such as https://api.example.com",
                "HOST and KEY: `upstream.auth.oauth2.token_url` is \"http://bank.testa\\nb\", which is not an absolute http(s) URL such as https://api.example.com",
                "KEY: the `Authorization` header (`upstream.headers`) has characters a header value cannot hold",
            ]
        );
        for good in ["http://127.0.0.1:9", "https://bank.test/api/v2?x=1"] {
            assert!(is_http_url(good), "{good}");
        }
        for bad in ["", "/api", "ftp://x", "https://", "bank.test", "http://a b"] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn durations_take_milliseconds_seconds_and_minutes() {
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 30s "), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        for bad in ["", "0s", "10", "s", "1h", "-1s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let mut settings = UpstreamSettings::new("https://api.test".to_owned());
        settings.auth = Auth::OAuth2 {
            token_url: "https://api.test/token".to_owned(),
            client_id: "client".to_owned(),
            client_secret: "hunter2".to_owned(),
            scope: None,
        };
        settings.headers = vec![("X-Tenant".to_owned(), "tenant-secret".to_owned())];
        let printed = format!("{settings:?} {:?}", ApiKey::new("hunter3".to_owned()));
        assert!(printed.contains("https://api.test/token"), "{printed}");
        for secret in ["hunter2", "hunter3", "tenant-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[cfg(feature = "store")]
    #[test]
    fn the_store_is_sqlite_unless_database_url_names_postgres() {
        let mut problems = Vec::new();
        let default = StoreSettings::from_lookup(&lookup(&[]), &mut problems);
        assert_eq!(
            default.location,
            StoreLocation::Sqlite("connector-store.sqlite3".into())
        );
        assert_eq!(default.attempt_timeout, Duration::from_secs(30));
        let postgres = StoreSettings::from_lookup(
            &lookup(&[("DATABASE_URL", "postgres://user:pw@db:5432/connector")]),
            &mut problems,
        );
        assert_eq!(
            postgres.location.describe(),
            "postgres://…@db:5432/connector"
        );
        if cfg!(feature = "postgres") {
            assert!(problems.is_empty(), "{problems:?}");
        } else {
            let refused = problems
                .pop()
                .expect("PostgreSQL needs the postgres feature");
            assert!(refused.contains("--features postgres"), "{refused}");
        }
        let sqlite = StoreSettings::from_lookup(
            &lookup(&[("DATABASE_URL", "sqlite:///data/store.db")]),
            &mut problems,
        );
        assert_eq!(
            sqlite.location,
            StoreLocation::Sqlite("/data/store.db".into())
        );
        assert!(problems.is_empty(), "{problems:?}");
        StoreSettings::from_lookup(
            &lookup(&[
                ("DATABASE_URL", "mysql://x@y/z"),
                ("CONNECTOR_INITIATION_TIMEOUT", "soon"),
            ]),
            &mut problems,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("\"mysql://…@y/z\""), "{problems:?}");
    }
}
