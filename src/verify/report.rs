//! What `verify` found, as plain data: each finding with the endpoint, an example, and what
//! Formance does about it; printed for a person or written as JSON.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// The problems `verify` knows, each named once for the report's readers and scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Answers without the API key.
    NoAuth,
    /// A body Formance's decoder rejects.
    Undecodable,
    /// A plain 4xx to a request Formance makes.
    Refused,
    /// Retryable failures that did not stop.
    Unavailable,
    /// An error body that is not `{Title, Detail}`.
    ErrorBody,
    /// Full pages that never end, or a full batch that leaves the state where it was.
    NoProgress,
    /// Not sorted ascending by the poll timestamp.
    Unsorted,
    /// Records lost where a batch ended inside a run of equal timestamps.
    TiesLost,
    /// The time filter leaves out the second that was sent.
    ExclusiveFilter,
    /// A short page before the end of the list.
    ShortPage,
    /// Records the connector serves that polling never ingested.
    NeverIngested,
    /// One record served twice in one walk, or received again unchanged.
    Duplicate,
    /// A record changed while its `updatedAt` stayed (or went back).
    SilentChange,
    /// Balances naming another account than the one asked for.
    BalancesAccount,
    /// A payment initiation answered with a wrong or unusable body.
    InitiationAnswer,
    /// A replay under a used key made a second payment.
    PaidTwice,
    /// Another body under a used key was taken as a success.
    KeyReuseAccepted,
    /// The payment's transaction does not name the key.
    Unlinked,
    /// The payment's transaction carries another type.
    WrongType,
    /// The run's request or time budget ran out before every check was made.
    Incomplete,
}

/// What Formance does with the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Exposed,
    PageRejected,
    SyncStopped,
    RetriedForever,
    ReasonLost,
    RecordLostForever,
    CycleCutShort,
    IngestedTwice,
    ChangeNeverSeen,
    WrongAccount,
    PaymentUnmatched,
    PaymentFailed,
    PaidTwice,
    RecordedTwice,
    NotChecked,
}

impl Effect {
    pub fn describe(self) -> &'static str {
        match self {
            Effect::Exposed => "anyone who reaches the connector reads its data without the key",
            Effect::PageRejected => {
                "page rejected: Formance fails the whole page and retries it at every poll, so nothing after it is ever ingested"
            }
            Effect::SyncStopped => {
                "the request is taken as invalid: not retried, the sync of this list stops with an error"
            }
            Effect::RetriedForever => "retried forever: the list never gets past this request",
            Effect::ReasonLost => "the error reaches Formance without its Title and Detail",
            Effect::RecordLostForever => "record lost forever: Formance never ingests it",
            Effect::CycleCutShort => {
                "Formance ends the cycle at the short page: what follows waits for a later poll, and records tied with that page's last are lost"
            }
            Effect::IngestedTwice => "ingested twice: the same record reaches Formance again",
            Effect::ChangeNeverSeen => "the change never reaches Formance",
            Effect::WrongAccount => "balances are stored under another account",
            Effect::PaymentUnmatched => {
                "Formance cannot match the answer with the payment it asked for"
            }
            Effect::PaymentFailed => "Formance marks the payment as failed and does not retry it",
            Effect::PaidTwice => "paid twice: the provider moved the money a second time",
            Effect::RecordedTwice => {
                "Formance records a second payment: the money appears to move twice"
            }
            Effect::NotChecked => "not checked: raise --max-requests or --max-time",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: Check,
    /// `GET /transactions` or the exact URL that showed it.
    pub endpoint: String,
    pub summary: String,
    pub effect: Effect,
    pub effect_text: &'static str,
    /// The records, page or answer that show it.
    pub example: Value,
    /// Page size of the polling that showed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<usize>,
    /// How many records or answers are affected, when counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

impl Finding {
    pub fn new(check: Check, endpoint: impl Into<String>, summary: impl Into<String>) -> Finding {
        let effect = default_effect(check);
        Finding {
            check,
            endpoint: endpoint.into(),
            summary: summary.into(),
            effect,
            effect_text: effect.describe(),
            example: Value::Null,
            page_size: None,
            count: None,
        }
    }

    pub fn effect(mut self, effect: Effect) -> Finding {
        self.effect = effect;
        self.effect_text = effect.describe();
        self
    }

    pub fn example(mut self, example: Value) -> Finding {
        self.example = example;
        self
    }

    pub fn page_size(mut self, page_size: usize) -> Finding {
        self.page_size = Some(page_size);
        self
    }

    pub fn count(mut self, count: usize) -> Finding {
        self.count = Some(count);
        self
    }
}

fn default_effect(check: Check) -> Effect {
    match check {
        Check::NoAuth => Effect::Exposed,
        Check::Undecodable => Effect::PageRejected,
        Check::Refused => Effect::SyncStopped,
        Check::Unavailable | Check::NoProgress => Effect::RetriedForever,
        Check::ErrorBody => Effect::ReasonLost,
        Check::Unsorted | Check::TiesLost | Check::ExclusiveFilter | Check::NeverIngested => {
            Effect::RecordLostForever
        }
        Check::ShortPage => Effect::CycleCutShort,
        Check::Duplicate => Effect::IngestedTwice,
        Check::SilentChange => Effect::ChangeNeverSeen,
        Check::BalancesAccount => Effect::WrongAccount,
        Check::InitiationAnswer => Effect::PaymentUnmatched,
        Check::PaidTwice => Effect::PaidTwice,
        Check::KeyReuseAccepted => Effect::PaymentUnmatched,
        Check::Unlinked | Check::WrongType => Effect::RecordedTwice,
        Check::Incomplete => Effect::NotChecked,
    }
}

/// Per list and page size: what polling did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListStats {
    pub list: String,
    pub page_size: usize,
    pub served: usize,
    pub ingested: usize,
    pub cycles: usize,
    pub requests: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub url: String,
    pub protocol_version: String,
    pub page_sizes: Vec<usize>,
    pub findings: Vec<Finding>,
    pub lists: Vec<ListStats>,
    pub balances_checked: usize,
    pub initiations_checked: usize,
    /// What was skipped and why (not problems of the connector).
    pub notes: Vec<String>,
    pub requests: usize,
    pub wall_ms: u128,
}

impl Report {
    /// Findings once each: the same check at the same endpoint is reported once, with the
    /// first example, across page sizes.
    pub fn add(&mut self, finding: Finding) {
        let seen = self
            .findings
            .iter()
            .any(|f| f.check == finding.check && f.endpoint == finding.endpoint);
        if !seen {
            self.findings.push(finding);
        }
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "verify {} (protocol {}), page sizes {}",
            self.url,
            self.protocol_version,
            join(&self.page_sizes)
        );
        for list in &self.lists {
            let _ = writeln!(
                out,
                "  {:<14} page size {:>4}: {} served, {} ingested, {} cycles, {} requests",
                list.list, list.page_size, list.served, list.ingested, list.cycles, list.requests
            );
        }
        let _ = writeln!(
            out,
            "  balances of {} accounts, {} payment initiations; {} requests in {:.1} s",
            self.balances_checked,
            self.initiations_checked,
            self.requests,
            self.wall_ms as f64 / 1000.0
        );
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        for (i, finding) in self.findings.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n{}. [{:?}] {}",
                i + 1,
                finding.check,
                finding.summary
            );
            let _ = writeln!(out, "   endpoint: {}", finding.endpoint);
            if let Some(page_size) = finding.page_size {
                let _ = writeln!(out, "   page size: {page_size}");
            }
            if let Some(count) = finding.count {
                let _ = writeln!(out, "   affected: {count}");
            }
            let _ = writeln!(out, "   Formance: {}", finding.effect_text);
            if !finding.example.is_null() {
                let example = serde_json::to_string_pretty(&finding.example).unwrap_or_default();
                for line in example.lines().take(40) {
                    let _ = writeln!(out, "   | {line}");
                }
            }
        }
        let _ = match self.findings.len() {
            0 => writeln!(
                out,
                "\nno findings: Formance would ingest everything served"
            ),
            n => writeln!(out, "\n{n} finding{}", if n == 1 { "" } else { "s" }),
        };
        out
    }
}

fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
