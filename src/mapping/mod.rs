//! The mapping file (`connector.yaml`): what the user says about their connector and provider,
//! as plain values. Loading checks the file on its own; later stages never read YAML again.

pub mod coverage;
mod load;
mod operations;
mod reader;
mod validate;

use std::collections::BTreeMap;
use std::ops::Range;

pub use load::{load, load_partial};
pub use validate::validate;

/// The newest mapping format this generator understands.
pub const FORMAT_VERSION: u32 = 1;

/// A byte range in the mapping file, kept so that later stages can point at what they check.
pub type Span = Range<usize>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub version: u32,
    /// The crate and binary name, e.g. `acme-bank`.
    pub name: String,
    pub upstream: Upstream,
    /// Extra or overridden currency precisions (`BTC: 8`), on top of ISO 4217.
    pub currencies: BTreeMap<String, u32>,
    /// Protocol operations answered from the provider's API, keyed by operationId.
    pub operations: BTreeMap<String, OperationMapping>,
    /// Extra crates the user's own code needs, added to the generated `Cargo.toml`.
    pub dependencies: BTreeMap<String, Dependency>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub base_url: Setting,
    pub auth: Option<Auth>,
    /// Sent with every upstream request.
    pub headers: Vec<(String, Setting)>,
    /// Per upstream request.
    pub timeout_ms: u64,
    pub retry: Retry,
    /// The provider's documented request rate, never exceeded by one process.
    pub rate_limit: Option<RateLimit>,
}

/// `upstream.rate_limit`: at most `requests` per `per_ms` on average, `burst` at once, for
/// every operation of one connector process together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per_ms: u64,
    pub burst: u32,
}

/// Retries of idempotent upstream requests (GETs) after 429, 5xx, time-outs and broken
/// connections, with exponential backoff and jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub deadline_ms: u64,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            deadline_ms: 15_000,
        }
    }
}

/// A value given in the file, read from the environment when the connector starts, or text
/// with `${env:NAME}` references composed then (`"${env:BANK_URL}/oauth/token"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Literal(String),
    Env(String),
    /// Text and references, at least one reference and one piece of text.
    Template(Vec<SettingPart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingPart {
    Text(String),
    Env(String),
}

impl Setting {
    /// The setting as text and references, in order.
    pub fn parts(&self) -> Vec<SettingPart> {
        match self {
            Setting::Literal(text) => vec![SettingPart::Text(text.clone())],
            Setting::Env(name) => vec![SettingPart::Env(name.clone())],
            Setting::Template(parts) => parts.clone(),
        }
    }

    /// The environment variables it reads, in order (a name used twice is listed twice).
    pub fn variables(&self) -> Vec<&str> {
        match self {
            Setting::Literal(_) => Vec::new(),
            Setting::Env(name) => vec![name.as_str()],
            Setting::Template(parts) => parts
                .iter()
                .filter_map(|part| match part {
                    SettingPart::Env(name) => Some(name.as_str()),
                    SettingPart::Text(_) => None,
                })
                .collect(),
        }
    }

    /// The text the file fixes before any reference (all of it for a literal).
    pub fn leading_text(&self) -> &str {
        match self {
            Setting::Literal(text) => text,
            Setting::Template(parts) => match parts.first() {
                Some(SettingPart::Text(text)) => text,
                _ => "",
            },
            Setting::Env(_) => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer {
        token: Setting,
    },
    ApiKey {
        location: KeyLocation,
        name: String,
        value: Setting,
    },
    Basic {
        username: Setting,
        password: Setting,
    },
    OAuth2 {
        token_url: Setting,
        client_id: Setting,
        client_secret: Setting,
        scope: Option<String>,
    },
    /// A token from the provider's own login call.
    Login(Box<Login>),
}

/// `auth.login`: the call that gets a token, where the token is in its answer, how long it
/// lives, and how it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub method: String,
    /// An http(s) URL, or a path appended to `upstream.base_url`.
    pub url: Setting,
    /// Dotted names and their settings, written as `encoding` says; no body when empty.
    pub body: Vec<(String, Setting)>,
    pub encoding: BodyEncoding,
    /// HTTP basic credentials: user name, password.
    pub basic: Option<(Setting, Setting)>,
    /// Where the token is in the answer, dotted (`data.accessToken`).
    pub token: String,
    /// Where the answer gives the token's lifetime in seconds, dotted.
    pub expires_in: Option<String>,
    /// The token's lifetime when the answer does not give one.
    pub expires_after_ms: Option<u64>,
    /// The header the token goes in, and the text before it.
    pub header: String,
    pub prefix: String,
}

/// How a request body is written to the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyEncoding {
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, nested objects as `a[b]=`, arrays as `a[0]=`.
    Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    Header,
    Query,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Where the crate is named in the file, for diagnostics of later stages.
    pub span: Span,
    pub version: String,
    pub default_features: bool,
    pub features: Vec<String>,
}

/// How one protocol operation is answered from the provider's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationMapping {
    /// The operationId's key in the file.
    pub span: Span,
    /// Work left, as the author (or `draft`) wrote it: each one a warning of `check`.
    pub todo: Vec<(String, Span)>,
    /// The provider request; for an operation answered `from_list`, none is sent of its own
    /// and this is left empty.
    pub request: RequestTemplate,
    /// For a list served from several provider requests: every request (the first is also
    /// `request`) with the constants its records get. Empty for one request.
    pub union: Vec<UnionMember>,
    /// For a list fanned out over another: the parent list whose every record the request
    /// is sent for (`{parent.id}` in it).
    pub for_each: Option<ForEach>,
    /// For a single-object operation answered from a list's records: which list, and
    /// which record.
    pub from_list: Option<FromList>,
    /// For list operations: where the records are, how to page, order and filter.
    pub list: Option<ListMapping>,
    /// For single-object operations: where the object is in the response (the body itself
    /// when empty).
    pub record: Path,
    pub fields: Vec<FieldMapping>,
    /// For payment initiations: the provider request's body, the key, the look-up.
    pub initiation: Option<InitiationMapping>,
}

/// One provider request of a `union`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnionMember {
    /// Its `request` key.
    pub span: Span,
    pub request: RequestTemplate,
    /// Provider keys set in each of its records, with their text: `status: PENDING`.
    pub constants: Vec<(String, String)>,
}

/// `for_each`: the list whose records an operation's request is sent for, one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForEach {
    /// The `for_each` key.
    pub span: Span,
    pub parent: ParentList,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentList {
    /// Another mapped list operation (its provider records, not the protocol's).
    Operation { id: String, span: Span },
    /// A provider list of its own, which Formance never asks for (users, profiles).
    Inline(Box<InlineList>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineList {
    pub request: RequestTemplate,
    pub list: ListMapping,
}

/// `from_list`: the answer is the record of a mapped list whose fields match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromList {
    /// The `from_list` key.
    pub span: Span,
    pub list: String,
    pub list_span: Span,
    /// Record path = text, with the protocol request's parameters in the text.
    pub matches: Vec<(Path, Template)>,
}

/// How a payout or transfer is sent to the provider, and found again after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiationMapping {
    /// The `body` key.
    pub span: Span,
    /// The provider's body, one entry per (dotted) key, computed from the protocol request.
    pub body: Vec<BodyField>,
    /// `body_encoding`: JSON, or a form.
    pub encoding: BodyEncoding,
    /// Where the provider takes an idempotency key, if it does.
    pub idempotency_key: Option<KeyForwarding>,
    /// How to find a payment an earlier attempt may have made.
    pub lookup: Option<Lookup>,
    /// How the provider takes Formance's key, when it cannot take it as it is: the body,
    /// lookups and the idempotency header read it as `providerKey`.
    pub provider_key: Option<KeyShape>,
    /// Provider calls made first, in order (a wallet's owner, a quote).
    pub steps: Vec<PaymentStep>,
}

/// A provider call an initiation makes before its own. Its answer's `record` is added to the
/// protocol request under `name`, so later steps, the request, `body` and `lookup` read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentStep {
    pub span: Span,
    pub name: String,
    pub name_span: Span,
    pub request: RequestTemplate,
    pub record: Path,
}

/// A provider's constraints on a key (a reference, an `Idempotency-Key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyShape {
    pub min_length: usize,
    pub max_length: usize,
    pub charset: KeyCharset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCharset {
    Any,
    Alphanumeric,
    Hex,
    Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyField {
    /// `amount.value` -> `["amount", "value"]`.
    pub key: Vec<String>,
    pub span: Span,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyForwarding {
    /// `Idempotency-Key: <key>`.
    Header(String),
    /// A field of the provider's body (dotted).
    Body(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub span: Span,
    pub request: RequestTemplate,
    /// A list whose first record is the payment (none found when empty).
    pub records: Option<Path>,
    /// Otherwise, where the payment is in the answer; a 404 means none.
    pub record: Path,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTemplate {
    pub method: String,
    /// Relative to the base URL; `{accountId}` takes the protocol's path parameter.
    pub path: Template,
    pub query: Vec<(String, Template)>,
    pub headers: Vec<(String, Template)>,
}

impl RequestTemplate {
    /// Its path, query values and header values, in that order.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.path)
            .chain(self.query.iter().map(|(_, t)| t))
            .chain(self.headers.iter().map(|(_, t)| t))
    }

    /// [`RequestTemplate::templates`], to change them.
    pub fn templates_mut(&mut self) -> impl Iterator<Item = &mut Template> {
        std::iter::once(&mut self.path)
            .chain(self.query.iter_mut().map(|(_, t)| t))
            .chain(self.headers.iter_mut().map(|(_, t)| t))
    }

    /// No request: an operation answered from another list's records sends none.
    pub fn none() -> Self {
        Self {
            method: "GET".to_owned(),
            path: Template {
                span: 0..0,
                text: String::new(),
                parts: Vec::new(),
            },
            query: Vec::new(),
            headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMapping {
    pub span: Span,
    /// Where the records are; `[]` steps flatten nested arrays (`data[].entries`).
    pub records: Path,
    pub paging: Paging,
    pub page_size: Option<PageSize>,
    /// Pages walked at most in one request; more is an error, never an endless sync.
    pub max_pages: u32,
    pub order: Order,
    pub since: Option<Since>,
    /// Records left out by their values.
    pub filter: RecordFilter,
    /// Provider calls made for each record, each answer set in the record under its name.
    pub joins: Vec<PaymentStep>,
}

/// `filter: { exclude: { PATH: [values] }, only: { PATH: [values] } }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    pub exclude: Vec<(Path, Vec<String>)>,
    pub only: Vec<(Path, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSize {
    pub param: String,
    pub value: u32,
}

/// The closed set of pagination styles, each with its stop rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// One request returns everything.
    None,
    /// `param=<cursor>`; the cursor is the last record's field or a body field; stops when
    /// `has_more` is false, or (without it) when the cursor is missing or the page empty.
    Cursor {
        param: String,
        next: CursorSource,
        has_more: Option<Path>,
    },
    /// The body names the next page's URL; stops when it is missing or null.
    NextUrl { path: Path },
    /// The `Link: <...>; rel="next"` response header; stops when absent.
    LinkHeader,
    /// `param=1, 2, ...`; stops at a short page, or at `total_pages`.
    PageNumber {
        param: String,
        first: u64,
        total_pages: Option<Path>,
    },
    /// `param=0, n, 2n, ...`; stops at a short page, or at `total`.
    Offset { param: String, total: Option<Path> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorSource {
    LastRecord(Path),
    Body(Path),
}

/// The provider's order of records by the protocol's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
    Unordered,
}

/// How the protocol's `createdAtFrom`/`updatedAtFrom` becomes the provider's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The `since` key, for diagnostics.
    pub span: Span,
    pub param: String,
    pub format: TimeFormat,
    /// `false`: the provider's filter is `>`; the connector then asks from one second earlier.
    pub inclusive: bool,
    /// A provider filter that needs both ends and caps the span: the parameter of the end,
    /// the longest span in seconds, and where the first walk starts.
    pub window: Option<TimeWindow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    pub to: String,
    pub max_span_secs: i64,
    pub start: WindowStart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStart {
    /// Unix seconds.
    At(i64),
    /// Seconds before now.
    Ago(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    Rfc3339,
    UnixSeconds,
    UnixMillis,
    /// A chrono pattern; without `%z` in it, `utc_offset_seconds` says the zone.
    Pattern {
        pattern: String,
        utc_offset_seconds: Option<i32>,
    },
    /// A chrono pattern without a zone, for local times of a named IANA zone.
    Zoned {
        pattern: String,
        zone: String,
    },
}

/// One protocol field and how it is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    pub field: String,
    pub span: Span,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// The whole expression as written.
    pub span: Span,
    /// The source's key (`each`, `param`, ...); in the short form (`createdAt: created`), the
    /// path itself.
    pub source_span: Span,
    /// The source's value (`accountId` in `param: accountId`); in the short form, the path.
    pub value_span: Span,
    /// The conversion's key (`time`, `amount`, `currency`, `enum`), when there is one.
    pub conversion_span: Option<Span>,
    pub source: Source,
    /// Used when the source is missing or null.
    pub default: Option<serde_json::Value>,
    /// `empty: missing`: an empty string counts as missing.
    pub empty_is_missing: bool,
    pub conversion: Option<Conversion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A value in the record (or, for `each`, in the element).
    Path(Path),
    Const(serde_json::Value),
    /// Text with `{path}` and `{param.name}` placeholders.
    Template(Template),
    /// The first of these that is present and not null.
    FirstOf(Vec<Expr>),
    /// One of the protocol request's parameters (`accountId`).
    Param(String),
    /// The time the connector answers.
    Now,
    /// An array of objects, each mapped with its own fields; an object is one element.
    Each {
        path: Path,
        fields: Vec<FieldMapping>,
    },
    /// A list written out in the file, each element mapped from the record with its own
    /// fields (`items: [{ amount: ..., currency: ... }, ...]`).
    Items(Vec<ListItem>),
    Metadata {
        fields: Vec<(String, Path)>,
        flatten: Vec<(String, Path)>,
    },
    /// A Rust function of the user's: `fn(&serde_json::Value) -> Result<T, ConversionError>`.
    Rust(String),
    /// The provider's reference (at this path) of the payment a transaction resulted from;
    /// the server turns it into the initiation's idempotency key.
    Initiation(Path),
    /// A value of the `for_each` list's record this one was listed for.
    Parent(Path),
    /// The value of the first case whose text `on` has, or of `default` (else none).
    Switch {
        on: Box<Expr>,
        /// `by: sign`: the cases are `negative`, `zero` and `positive`, the sign of `on`'s
        /// number, not its text.
        by_sign: bool,
        cases: Vec<(String, Expr)>,
        default: Option<Box<Expr>>,
    },
    /// No value: the field is left out.
    Absent,
}

/// One element of an `items` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub span: Span,
    pub fields: Vec<FieldMapping>,
}

impl Source {
    /// The field lists of the elements this source builds (`each`, `items`), for walks over
    /// every mapped field.
    pub fn element_fields(&self) -> Vec<&[FieldMapping]> {
        match self {
            Source::Each { fields, .. } => vec![fields.as_slice()],
            Source::Items(items) => items.iter().map(|item| item.fields.as_slice()).collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    Time(TimeFormat),
    Amount {
        currency: Box<Expr>,
        format: AmountFormat,
        sign: Sign,
    },
    /// Provider code <-> UMN; `lower` writes lower-case codes to the provider.
    Currency {
        lower: bool,
    },
    Enum {
        map: Vec<(String, String)>,
        fallback: Option<String>,
        /// The `enum` key.
        span: Span,
        /// Where each protocol value is written: `map`'s values in order, then `fallback`'s.
        target_spans: Vec<Span>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountFormat {
    Decimal,
    MinorUnits,
    /// Like `Decimal`, written to the provider as a JSON number.
    DecimalNumber,
    /// Like `MinorUnits`, written to the provider as a JSON number.
    MinorUnitsNumber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    Keep,
    Absolute,
    Negate,
}

/// A dotted path into JSON, as written (`data[].entries`, `balances[0].amount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub text: String,
    pub steps: Vec<Step>,
}

impl Path {
    /// `.`: the whole value.
    pub fn whole() -> Self {
        Path {
            text: ".".into(),
            steps: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// `[]`: every element of an array.
    Each,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Where the template is written, for diagnostics.
    pub span: Span,
    pub text: String,
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Text(String),
    Value(Path),
    Param(String),
    /// `{parent.PATH}`: a value of the `for_each` list's record.
    Parent(Path),
}
