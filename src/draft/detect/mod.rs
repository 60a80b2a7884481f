//! Guesses, stage by stage: auth, then per protocol operation the endpoint, the list's
//! records, paging, time filter and order, the fields, and for payments the body and the
//! idempotency key. Each guess carries its confidence and evidence; nothing here writes text.

mod auth;
mod endpoint;
mod fields;
mod initiation;
pub mod lexicon;
mod list;

use std::collections::BTreeMap;

use super::hints::Hints;
use super::model::Api;

pub use endpoint::PROTOCOL_OPERATIONS;

/// Below this a guess gets a comment with its confidence and evidence.
pub const HIGH: f64 = 0.9;

#[derive(Debug, Clone)]
pub struct Drafted {
    pub auth: AuthGuess,
    /// The documented server the mapped paths are relative to.
    pub base_url: String,
    /// The documented servers, for the base URL's comment.
    pub servers: Vec<String>,
    pub operations: Vec<OpGuess>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthKind {
    Bearer,
    ApiKey {
        header: bool,
        name: String,
    },
    Basic,
    OAuth2 {
        token_url: Option<String>,
    },
    /// A login operation issues the token sent in `header`.
    Login {
        header: String,
        path: String,
    },
    Unknown,
}

#[derive(Debug, Clone)]
pub struct AuthGuess {
    pub kind: AuthKind,
    /// Further API-key headers the provider wants with every request.
    pub extra_headers: Vec<String>,
    pub confidence: f64,
    pub evidence: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Mapped,
    Stub,
    None,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub method: String,
    pub path: String,
    pub score: f64,
}

#[derive(Debug, Clone)]
pub struct OpGuess {
    pub id: &'static str,
    pub decision: Decision,
    /// The chosen endpoint (for a stub, the best candidate).
    pub method: Option<String>,
    pub path: Option<String>,
    /// The path as the mapping writes it: server prefix added, parameters renamed.
    pub request_path: Option<String>,
    pub query: Vec<(String, String)>,
    pub confidence: f64,
    pub candidates: Vec<Candidate>,
    pub list: Option<ListGuess>,
    pub fields: Vec<FieldGuess>,
    pub body: Vec<BodyGuess>,
    pub idempotency: Option<Idempotency>,
    pub lookup: Option<Lookup>,
    pub blocked_by: Vec<String>,
    pub todo: Vec<String>,
    pub evidence: BTreeMap<String, String>,
    /// Record of a single-object answer (`record:`), when not the body itself.
    pub record: Option<String>,
    /// The list this one is walked once per record of (`for_each:`), its `{parent.id}`.
    pub for_each: Option<&'static str>,
}

impl OpGuess {
    pub fn new(id: &'static str) -> Self {
        OpGuess {
            id,
            decision: Decision::None,
            for_each: None,
            method: None,
            path: None,
            request_path: None,
            query: Vec::new(),
            confidence: 0.0,
            candidates: Vec::new(),
            list: None,
            fields: Vec::new(),
            body: Vec::new(),
            idempotency: None,
            lookup: None,
            blocked_by: Vec::new(),
            todo: Vec::new(),
            evidence: BTreeMap::new(),
            record: None,
        }
    }

    pub fn block(&mut self, code: &str, why: impl Into<String>) {
        if !self.blocked_by.iter().any(|c| c == code) {
            self.blocked_by.push(code.to_owned());
        }
        self.todo.push(why.into());
    }
}

#[derive(Debug, Clone)]
pub struct ListGuess {
    pub records: String,
    pub records_confidence: f64,
    pub paging: PagingGuess,
    pub page_size: Option<(String, u32)>,
    pub since: Option<SinceGuess>,
    /// A filter seen but not used, with the reason: written as a comment.
    pub since_candidate: Option<(SinceGuess, String)>,
    pub order: Order,
    pub order_confidence: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingKind {
    CursorRecord,
    CursorBody,
    NextUrl,
    LinkHeader,
    PageNumber,
    Offset,
    HeaderCursor,
    BodyCursorPost,
    None,
}

impl PagingKind {
    pub fn name(self) -> &'static str {
        match self {
            PagingKind::CursorRecord => "cursor_record",
            PagingKind::CursorBody => "cursor_body",
            PagingKind::NextUrl => "next_url",
            PagingKind::LinkHeader => "link_header",
            PagingKind::PageNumber => "page_number",
            PagingKind::Offset => "offset",
            PagingKind::HeaderCursor => "header_cursor",
            PagingKind::BodyCursorPost => "body_cursor_post",
            PagingKind::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PagingGuess {
    pub kind: PagingKind,
    pub param: Option<String>,
    /// cursor_record: the record's field; cursor_body: the body's field.
    pub from: Option<String>,
    pub has_more: Option<String>,
    pub first: Option<u64>,
    /// next_url: the body's field; page_number/offset: the total.
    pub path: Option<String>,
    pub confidence: f64,
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    UnixSeconds,
    UnixMillis,
    Rfc3339,
    Date,
}

impl TimeFormat {
    pub fn name(self) -> &'static str {
        match self {
            TimeFormat::UnixSeconds => "unix_seconds",
            TimeFormat::UnixMillis => "unix_millis",
            TimeFormat::Rfc3339 => "rfc3339",
            TimeFormat::Date => "date",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SinceGuess {
    pub param: String,
    pub format: TimeFormat,
    pub inclusive: bool,
    pub confidence: f64,
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
    Unordered,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::NewestFirst => "newest_first",
            Order::OldestFirst => "oldest_first",
            Order::Unordered => "unordered",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountFormat {
    MinorUnits,
    Decimal,
    /// A JSON number in major units.
    DecimalNumber,
}

impl AmountFormat {
    pub fn name(self) -> &'static str {
        match self {
            AmountFormat::MinorUnits => "minor_units",
            AmountFormat::Decimal => "decimal",
            AmountFormat::DecimalNumber => "decimal_number",
        }
    }
}

#[derive(Debug, Clone)]
pub enum FieldValue {
    Path(String),
    Time {
        path: String,
        format: TimeFormat,
    },
    Amount {
        path: String,
        currency: String,
        format: AmountFormat,
    },
    Currency {
        path: String,
        lower: bool,
    },
    Enum {
        path: String,
        map: Vec<(String, &'static str)>,
    },
    Const(String),
    Now,
    Template(String),
    Each {
        path: String,
        fields: Vec<FieldGuess>,
    },
}

#[derive(Debug, Clone)]
pub struct FieldGuess {
    pub field: &'static str,
    pub value: FieldValue,
    pub confidence: f64,
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyAmount {
    MinorUnits,
    MinorUnitsNumber,
    Decimal,
    DecimalNumber,
}

impl BodyAmount {
    pub fn name(self) -> &'static str {
        match self {
            BodyAmount::MinorUnits => "minor_units",
            BodyAmount::MinorUnitsNumber => "minor_units_number",
            BodyAmount::Decimal => "decimal",
            BodyAmount::DecimalNumber => "decimal_number",
        }
    }
}

#[derive(Debug, Clone)]
pub enum BodyValue {
    /// A field of the protocol request.
    Field(&'static str),
    Amount {
        format: BodyAmount,
    },
    Currency {
        lower: bool,
    },
}

#[derive(Debug, Clone)]
pub struct BodyGuess {
    pub key: String,
    pub value: BodyValue,
    pub confidence: f64,
    pub evidence: String,
}

#[derive(Debug, Clone)]
pub enum Idempotency {
    Header {
        name: String,
        confidence: f64,
        evidence: String,
    },
    Body {
        field: String,
        format: Option<String>,
        confidence: f64,
        evidence: String,
    },
    /// The document declares none.
    Undeclared,
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub path: String,
    pub query: String,
    pub records: Option<String>,
}

pub fn detect(api: &Api, hints: &Hints) -> Drafted {
    let auth = auth::detect(api);
    let mut taken = Vec::new();
    let mut operations = Vec::new();
    // A one-account balance endpoint is chosen first: lists must not take it.
    let mut order: Vec<&'static str> = PROTOCOL_OPERATIONS.to_vec();
    order.sort_by_key(|id| *id != "getAccountBalances");
    for id in order {
        let guess = endpoint::choose(api, id, hints, &taken);
        if let (Some(method), Some(path)) = (&guess.method, &guess.path)
            && !guess.is_initiation()
        {
            taken.push((method.clone(), path.clone()));
        }
        operations.push(guess);
    }
    operations.sort_by_key(|g| PROTOCOL_OPERATIONS.iter().position(|id| *id == g.id));
    let prefixes = endpoint::ServerPrefixes::new(api);
    let documents: Vec<usize> = operations
        .iter()
        .filter_map(|g| g.chosen_endpoint(api).map(|e| e.document))
        .collect();
    let base = prefixes.base(&documents);
    for guess in &mut operations {
        let Some(chosen) = guess.chosen_endpoint(api) else {
            continue;
        };
        endpoint::request_path(api, guess, &base);
        if guess.is_initiation() {
            initiation::detect(api, chosen, guess);
        } else {
            list::detect(chosen, guess);
            fields::detect(chosen, guess);
        }
        if let AuthKind::Login { .. } = &auth.kind {
            guess.todo.push("authenticate: the provider issues its token from a login call (LOGIN), which `upstream.auth` cannot do yet".to_owned());
        }
        guess.settle();
    }
    // Once every list is settled: a fan-out needs its parent list mapped.
    fan_out(&mut operations);
    for guess in &mut operations {
        guess.settle();
    }
    Drafted {
        auth,
        base_url: base.url(),
        servers: prefixes.servers(),
        operations,
    }
}

/// A list walked per account reads the account's id from the drafted accounts list: with
/// that list mapped, `{parent.id}` becomes its id path; without it the fan-out cannot be.
fn fan_out(operations: &mut [OpGuess]) {
    let parents: Vec<(&'static str, Option<String>)> = operations
        .iter()
        .map(|g| {
            let mapped = g.decision == Decision::Mapped;
            let id = g
                .fields
                .iter()
                .find(|f| f.field == "id")
                .and_then(|f| match &f.value {
                    FieldValue::Path(path) => Some(path.clone()),
                    _ => None,
                });
            (g.id, id.filter(|_| mapped))
        })
        .collect();
    for guess in operations.iter_mut() {
        let Some(parent) = guess.for_each else {
            continue;
        };
        match parents.iter().find(|(id, _)| *id == parent) {
            Some((_, Some(id_path))) => {
                if let Some(path) = &mut guess.request_path {
                    *path = path.replace("{parent.id}", &format!("{{parent.{id_path}}}"));
                }
            }
            _ => guess.block(
                "FAN",
                format!("walked once per record of `{parent}`, which is not mapped: map it first"),
            ),
        }
    }
}

impl OpGuess {
    pub fn is_initiation(&self) -> bool {
        self.id.starts_with("create")
    }

    fn chosen_endpoint<'a>(&self, api: &'a Api) -> Option<&'a super::model::Endpoint<'a>> {
        let (method, path) = (self.method.as_deref()?, self.path.as_deref()?);
        api.endpoints
            .iter()
            .find(|e| e.method == method && e.path == path)
    }

    /// The decision, once everything about the operation is known: a mapped operation must
    /// be complete and unblocked, or it becomes a stub.
    fn settle(&mut self) {
        if self.decision != Decision::Mapped {
            return;
        }
        let unsure_paging = self.list.as_ref().is_some_and(|l| {
            l.paging.confidence < 0.4
                || (l.paging.kind == PagingKind::CursorBody && l.paging.from.is_none())
        });
        if unsure_paging && !self.blocked_by.iter().any(|c| c == "PAGING") {
            self.blocked_by.push("PAGING".into());
        }
        let secret_placeholder = self.query.iter().any(|(name, value)| {
            value == "REPLACE_ME"
                && lexicon::contains_any(
                    &name.to_lowercase(),
                    &[
                        "auth",
                        "key",
                        "token",
                        "secret",
                        "password",
                        "signature",
                        "credential",
                    ],
                )
        });
        if !self.blocked_by.is_empty() || secret_placeholder {
            self.decision = Decision::Stub;
        }
    }
}
