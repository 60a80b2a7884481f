//! Which provider endpoint answers each protocol operation: a score from the path's nouns,
//! the method, tags and operationId, the response's shape and negative signals.

use super::lexicon::{LIST_VERBS, NEGATIVE, contains_any, path_params, squash, static_segments};
use super::{Candidate, Decision, OpGuess};
use crate::draft::hints::{Hints, Pin};
use crate::draft::model::{Api, Endpoint, Schema, Type};

pub const PROTOCOL_OPERATIONS: [&str; 6] = [
    "getAccounts",
    "getAccountBalances",
    "getBeneficiaries",
    "getTransactions",
    "createPayout",
    "createTransfer",
];

/// Mapped at or above; a stub at or above `STUB`; below, the provider probably lacks it.
const MAPPED: f64 = 0.55;
const STUB: f64 = 0.3;

struct Want {
    nouns: &'static [(&'static str, f64)],
    /// Words in tags, operationId or summary that favour (positive) or disfavour it.
    signals: &'static [(&'static str, f64)],
}

fn want(id: &str) -> Want {
    match id {
        "getAccounts" => Want {
            nouns: &[
                ("accounts", 0.6),
                ("financial_accounts", 0.65),
                ("balance_accounts", 0.6),
                ("wallets", 0.55),
                ("merchants", 0.45),
                ("virtual_accounts", 0.5),
                ("balances", 0.3),
                ("locations", 0.3),
                ("ledger_accounts", 0.5),
            ],
            signals: &[
                ("recipient", -0.3),
                ("beneficiar", -0.3),
                ("counterpart", -0.3),
                ("payee", -0.3),
                ("external", -0.3),
                ("holder", -0.3),
                ("list", 0.05),
            ],
        },
        "getBeneficiaries" => Want {
            nouns: &[
                ("beneficiaries", 0.65),
                ("recipients", 0.6),
                ("counterparties", 0.6),
                ("payees", 0.6),
                ("external_accounts", 0.6),
                ("external_bank_accounts", 0.65),
                ("bank_accounts", 0.5),
                ("bankaccounts", 0.5),
                ("accounts", 0.15),
            ],
            signals: &[
                ("recipient", 0.3),
                ("beneficiar", 0.3),
                ("counterpart", 0.3),
                ("payee", 0.3),
                ("list", 0.05),
            ],
        },
        "getTransactions" => Want {
            nouns: &[
                ("transactions", 0.6),
                ("balance_transactions", 0.7),
                ("account_activity", 0.65),
                ("activities", 0.4),
                ("activity", 0.4),
                ("financial_transactions", 0.6),
                ("entries", 0.35),
                ("movements", 0.5),
                ("statements", 0.3),
                ("payments", 0.35),
                ("transfers", 0.3),
                ("ledger_entries", 0.45),
                ("bookings", 0.45),
            ],
            signals: &[("list", 0.05), ("search", 0.03), ("sync", 0.1)],
        },
        "getAccountBalances" => Want {
            nouns: &[("balances", 0.6), ("balance", 0.6)],
            signals: &[("history", -0.3)],
        },
        "createPayout" => Want {
            nouns: &[
                ("payouts", 0.65),
                ("payout", 0.65),
                ("payments", 0.45),
                ("withdrawals", 0.5),
                ("bankwire", 0.5),
                ("transfers", 0.4),
                ("bank_transfers", 0.45),
                ("ach_transfers", 0.4),
                ("wire_transfers", 0.4),
                ("credit_transfers", 0.45),
            ],
            signals: &[
                ("payout", 0.1),
                ("create", 0.05),
                ("internal", -0.2),
                ("book", -0.2),
            ],
        },
        _ => Want {
            nouns: &[
                ("transfers", 0.6),
                ("book_transfers", 0.7),
                ("internal_transfers", 0.7),
                ("payments", 0.35),
            ],
            signals: &[
                ("internal", 0.1),
                ("book", 0.1),
                ("create", 0.05),
                ("payout", -0.1),
            ],
        },
    }
}

/// Server URLs per document, and the prefix that makes each document's paths relative to
/// one base URL when the documents share an origin.
#[derive(Debug)]
pub struct ServerPrefixes {
    servers: Vec<Option<String>>,
}

impl ServerPrefixes {
    pub fn new(api: &Api) -> Self {
        ServerPrefixes {
            servers: api.servers.clone(),
        }
    }

    pub fn servers(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for server in self.servers.iter().flatten() {
            if !seen.contains(server) {
                seen.push(server.clone());
            }
        }
        seen
    }

    /// (origin, path) of a document's server.
    fn split(&self, document: usize) -> (String, String) {
        let Some(url) = self.servers.get(document).cloned().flatten() else {
            return (String::new(), String::new());
        };
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        match url[after_scheme..].find('/') {
            Some(i) => (
                url[..after_scheme + i].to_owned(),
                url[after_scheme + i..].to_owned(),
            ),
            None => (url, String::new()),
        }
    }

    /// The origin most chosen endpoints live on, and whether documents disagree on paths.
    pub fn base(&self, documents: &[usize]) -> Base<'_> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for d in documents {
            let (origin, _) = self.split(*d);
            match counts.iter_mut().find(|(o, _)| *o == origin) {
                Some((_, c)) => *c += 1,
                None => counts.push((origin, 1)),
            }
        }
        counts.sort_by_key(|(o, c)| (std::cmp::Reverse(*c), o.clone()));
        let origin = counts.first().map(|(o, _)| o.clone()).unwrap_or_default();
        let paths: Vec<String> = documents
            .iter()
            .filter(|d| self.split(**d).0 == origin)
            .map(|d| self.split(*d).1)
            .collect();
        let same_path = paths.windows(2).all(|w| w[0] == w[1]);
        let common = if same_path {
            paths.first().cloned().unwrap_or_default()
        } else {
            String::new()
        };
        Base {
            origin,
            common,
            prefixes: self.servers.len(),
            owner: self,
        }
    }
}

pub struct Base<'a> {
    pub origin: String,
    /// The server path shared by every chosen document (part of the base URL).
    pub common: String,
    prefixes: usize,
    owner: &'a ServerPrefixes,
}

impl Base<'_> {
    /// The path prefix a document's paths need, or `None` when it lives on another origin.
    pub fn prefix(&self, document: usize) -> Option<String> {
        if self.prefixes == 0 {
            return Some(String::new());
        }
        let (origin, path) = self.owner.split(document);
        if origin != self.origin && !origin.is_empty() {
            return None;
        }
        Some(path.strip_prefix(&self.common).unwrap_or(&path).to_owned())
    }

    pub fn url(&self) -> String {
        format!("{}{}", self.origin, self.common)
    }
}

pub fn choose(api: &Api, id: &'static str, hints: &Hints, taken: &[(String, String)]) -> OpGuess {
    let mut guess = OpGuess::new(id);
    let want = want(id);
    let mut scored: Vec<(f64, &Endpoint)> = api
        .endpoints
        .iter()
        .filter_map(|e| score(e, id, &want).map(|s| (s, e)))
        .filter(|(_, e)| {
            id.starts_with("create") || !taken.iter().any(|(m, p)| *m == e.method && *p == e.path)
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.path.cmp(&b.1.path))
            .then_with(|| a.1.method.cmp(&b.1.method))
    });
    guess.candidates = scored
        .iter()
        .take(3)
        .filter(|(s, _)| *s >= 0.2)
        .map(|(s, e)| Candidate {
            method: e.method.clone(),
            path: e.path.clone(),
            score: round(*s),
        })
        .collect();
    let pinned = match hints.get(id) {
        Some(Pin::None) => {
            guess
                .evidence
                .insert("endpoint".into(), "pinned by the hints file: none".into());
            return guess;
        }
        Some(Pin::Endpoint { method, path }) => {
            let found = api
                .endpoints
                .iter()
                .find(|e| e.method == *method && e.path == *path);
            match found {
                Some(e) => Some((1.0, e)),
                None => {
                    guess.todo.push(format!(
                        "the hints file pins {method} {path}, which the document does not have"
                    ));
                    None
                }
            }
        }
        None => None,
    };
    let hinted = pinned.is_some();
    let Some((score, endpoint)) = pinned.or_else(|| scored.first().copied()) else {
        return guess;
    };
    if score < STUB {
        return guess;
    }
    guess.decision = if score >= MAPPED {
        Decision::Mapped
    } else {
        Decision::Stub
    };
    if guess.decision == Decision::Stub {
        guess.todo.push(format!(
            "no endpoint is a clear match (best {score:.2}): confirm one of the candidates"
        ));
    }
    guess.method = Some(endpoint.method.clone());
    guess.path = Some(endpoint.path.clone());
    guess.confidence = round(score);
    let evidence = if hinted {
        "pinned by the hints file".to_owned()
    } else {
        endpoint.pointer.clone()
    };
    guess.evidence.insert("endpoint".into(), evidence);
    guess
}

/// The mapping's request path: the document's server prefix, and the protocol's parameter
/// names where the provider's stand for them. Unfillable parameters block the operation.
pub fn request_path(api: &Api, guess: &mut OpGuess, base: &Base) {
    let (Some(method), Some(path)) = (guess.method.clone(), guess.path.clone()) else {
        return;
    };
    let Some(endpoint) = api
        .endpoints
        .iter()
        .find(|e| e.method == method && e.path == path)
    else {
        return;
    };
    let Some(prefix) = base.prefix(endpoint.document) else {
        guess.block("HOST", format!("{method} {path} is served from another host than the other operations; one mapping has one base URL"));
        return;
    };
    let params = path_params(&path);
    let mut out = format!("{prefix}{path}");
    match (guess.id, params.as_slice()) {
        (_, []) => {}
        ("getAccountBalances", [.., last]) => {
            out = out.replace(&format!("{{{last}}}"), "{accountId}");
            if params.len() > 1 {
                guess.block(
                    "FAN",
                    format!(
                        "{path} needs {} besides the account: a per-parent list",
                        params[..params.len() - 1].join(", ")
                    ),
                );
            }
        }
        (id, [only])
            if id.starts_with("create")
                && contains_any(
                    &only.to_lowercase(),
                    &["account", "wallet", "source", "balance", "profile"],
                ) =>
        {
            out = out.replace(&format!("{{{only}}}"), "{sourceAccountId}");
            guess.todo.push(format!(
                "`{{{only}}}` is taken to be the source account: confirm"
            ));
        }
        (id, [only])
            if matches!(id, "getTransactions" | "getBeneficiaries")
                && names_account(&path, only) =>
        {
            out = out.replace(&format!("{{{only}}}"), "{parent.id}");
            guess.for_each = Some("getAccounts");
            guess.todo.push(format!(
                "{path} lists per account: walked once per record of `getAccounts`, `{{{only}}}` taken to be its id: confirm"
            ));
        }
        _ => {
            guess.block("FAN", format!("{path} lists per {}: the protocol's operation has no such parameter (a fan-out over a parent list)", params.join(", ")));
        }
    }
    guess.request_path = Some(out);
}

/// Whether the path's one parameter names an account: `{accountId}`, or any parameter right
/// after an `accounts` or `wallets` segment.
fn names_account(path: &str, param: &str) -> bool {
    let lower = param.to_lowercase();
    let before = path
        .split('/')
        .take_while(|segment| *segment != format!("{{{param}}}"))
        .last()
        .unwrap_or_default()
        .to_lowercase();
    contains_any(&lower, &["account", "wallet"])
        || matches!(before.as_str(), "accounts" | "wallets")
}

fn round(score: f64) -> f64 {
    (score.clamp(0.0, 1.0) * 100.0).round() / 100.0
}

/// The endpoint's score for the operation, or `None` when it cannot be the one.
fn score(e: &Endpoint, id: &str, want: &Want) -> Option<f64> {
    let initiation = id.starts_with("create");
    let segments = static_segments(&e.path);
    let ends_with_param = e.path.trim_end_matches('/').ends_with('}');
    let mut resource: Vec<&String> = segments.iter().collect();
    let mut verb = None;
    while let Some(last) = resource.last() {
        if LIST_VERBS.contains(&last.as_str()) || (initiation && last.as_str() == "create") {
            verb = resource.pop().map(|s| s.as_str());
        } else {
            break;
        }
    }
    let noun = resource.last()?.as_str();
    let mut s = match (initiation, e.method.as_str()) {
        (true, "POST") => 0.0,
        (false, "GET") => 0.0,
        (false, "POST") if verb.is_some() => -0.05,
        _ => return None,
    };
    if ends_with_param && verb.is_none() && id != "getAccountBalances" {
        return None;
    }
    if ends_with_param && initiation {
        return None;
    }
    let noun_score = want
        .nouns
        .iter()
        .filter(|(n, _)| *n == noun)
        .map(|(_, w)| *w)
        .next()
        .or_else(|| {
            resource.iter().rev().skip(1).find_map(|seg| {
                want.nouns
                    .iter()
                    .find(|(n, _)| n == seg)
                    .map(|(_, w)| w * 0.5)
            })
        })
        .or_else(|| single_account_balance(e, id, noun, ends_with_param))?;
    s += noun_score;
    let parent = resource.iter().rev().nth(1).map(|p| p.as_str());
    if ACCOUNT_NOUNS.iter().any(|n| Some(*n) == parent)
        && matches!(id, "getAccountBalances" | "getTransactions")
    {
        s += 0.05;
    }
    let signals = format!(
        "{} {} {}",
        squash(&e.operation_id),
        e.tags.join(" ").to_lowercase(),
        e.text.chars().take(200).collect::<String>()
    );
    for (word, weight) in want.signals {
        if signals.contains(word) {
            s += weight;
        }
    }
    let negative_text = format!("{} {}", segments.join("/"), squash(&e.operation_id));
    if NEGATIVE
        .iter()
        .any(|w| negative_text.contains(&w.replace('_', "")))
        || NEGATIVE
            .iter()
            .any(|w| segments.iter().any(|seg| seg.contains(w)))
    {
        s *= 0.35;
    }
    if e.deprecated {
        s *= 0.5;
    }
    if initiation && contains_any(&e.text.chars().take(120).collect::<String>(), &["card"]) {
        s *= 0.5;
    }
    let params = path_params(&e.path).len();
    s += match (id, params) {
        ("getAccountBalances", 0) => -0.15,
        ("getAccountBalances", _)
            if ends_with_param && !account_like(path_params(&e.path).last()) =>
        {
            -0.2
        }
        ("getAccountBalances", 1) => 0.05,
        ("getAccountBalances", n) => -0.08 * (n - 1) as f64,
        (_, n) if initiation => -0.1 * n.saturating_sub(1) as f64,
        (_, n) => -0.08 * n as f64,
    };
    s += shape_bonus(e, id);
    s -= 0.01 * segments.len() as f64;
    s += 0.004 * version(&segments);
    Some(s)
}

const ACCOUNT_NOUNS: &[&str] = &[
    "accounts",
    "wallets",
    "financial_accounts",
    "balance_accounts",
    "balanceaccounts",
];

fn account_like(param: Option<&String>) -> bool {
    param.is_some_and(|p| {
        contains_any(
            &p.to_lowercase(),
            &["id", "account", "wallet", "token", "balance"],
        ) && !p.to_lowercase().contains("currency")
    })
}

/// One account's own endpoint (`GET /accounts/{id}`) whose answer holds its balance.
fn single_account_balance(
    e: &Endpoint,
    id: &str,
    noun: &str,
    ends_with_param: bool,
) -> Option<f64> {
    if id != "getAccountBalances" || !ends_with_param || !ACCOUNT_NOUNS.contains(&noun) {
        return None;
    }
    let response = e.response?;
    let has_balance = response
        .properties()
        .iter()
        .any(|(n, _)| squash(n).contains("balance"));
    has_balance.then_some(0.4)
}

fn version(segments: &[String]) -> f64 {
    segments
        .iter()
        .filter_map(|s| s.strip_prefix('v').and_then(|n| n.parse::<f64>().ok()))
        .next()
        .unwrap_or(0.0)
}

/// What the response (or the body, for payments) holds, as evidence for the operation.
fn shape_bonus(e: &Endpoint, id: &str) -> f64 {
    if id.starts_with("create") {
        let Some(body) = &e.body else { return -0.2 };
        let names: Vec<String> = body
            .properties()
            .iter()
            .map(|(n, _, _)| squash(n))
            .collect();
        let amount = names
            .iter()
            .any(|n| n.contains("amount") || n == "value" || n == "money");
        let currency = names.iter().any(|n| n.contains("currency"));
        return if amount { 0.15 } else { -0.1 } + if currency { 0.05 } else { 0.0 };
    }
    let Some(response) = e.response else {
        return -0.1;
    };
    if id == "getAccountBalances" {
        return balance_shape(response);
    }
    let Some(record) = super::list::records(response).map(|(_, r, _)| r) else {
        return -0.2;
    };
    let names: Vec<String> = record.properties().iter().map(|(n, _)| squash(n)).collect();
    let has = |words: &[&str]| names.iter().any(|n| words.iter().any(|w| n.contains(w)));
    let mut bonus = 0.1;
    match id {
        "getTransactions" => {
            if has(&["amount", "value", "money"]) {
                bonus += 0.1;
            } else {
                bonus -= 0.15;
            }
            if has(&["currency"]) {
                bonus += 0.05;
            }
        }
        "getAccounts" => {
            if has(&["name", "currency", "nickname", "label"]) {
                bonus += 0.05;
            }
        }
        _ => {
            if has(&["name", "holder", "iban", "accountnumber", "routing"]) {
                bonus += 0.1;
            }
        }
    }
    bonus
}

fn balance_shape(response: Schema) -> f64 {
    let names: Vec<String> = response
        .properties()
        .iter()
        .map(|(n, _)| squash(n))
        .collect();
    if names
        .iter()
        .any(|n| n.contains("balance") || n == "available")
    {
        0.1
    } else if response.ty() == Type::Array {
        0.05
    } else {
        0.0
    }
}
