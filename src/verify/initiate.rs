//! `--initiate`: payouts and transfers as Formance sends them, then again with the same key,
//! then with another body under that key; and whether the payment's transaction comes back
//! in the transactions list linked to the key. It moves money: sandboxes only.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::decode;
use super::http::is_retryable;
use super::listing::{body_json, error_finding};
use super::poller::{PollError, Poller};
use super::progress::Progress;
use super::report::{Check, Effect, Finding, Report};
use super::wire::{InitiationOp, Kind};

#[derive(Clone, Debug)]
pub struct InitiateOptions {
    pub source: Option<String>,
    pub destination: Option<String>,
    /// Minor units, a positive integer.
    pub amount: u128,
    /// UMN; by default the source account's first balance currency, else `EUR/2`.
    pub currency: Option<String>,
    /// How long to wait for a payment's transaction to be listed.
    pub link_wait: Duration,
}

/// How a POST ended after Formance's retries.
enum Posted {
    Answer(u16, Value),
    /// Retryable answers (or I/O failures) on every attempt.
    RetriedOut(String),
}

const ATTEMPTS: usize = 4;
const BACKOFF: Duration = Duration::from_millis(200);
const LINK_POLL_EVERY: Duration = Duration::from_millis(300);

pub fn check(
    poller: &mut Poller,
    options: &InitiateOptions,
    report: &mut Report,
    progress: &mut Progress,
) {
    let initiations = poller.wire().initiations.clone();
    if initiations.is_empty() {
        report
            .notes
            .push("--initiate: the protocol has no payment initiations".to_owned());
    }
    for op in &initiations {
        progress.phase(&format!("{}: initiating, replaying, linking", op.operation));
        if let Err(error) = check_one(poller, op, options, report) {
            let endpoint = format!("POST {}", op.path);
            report.add(error_finding(endpoint, &error));
        }
    }
}

fn check_one(
    poller: &mut Poller,
    op: &InitiationOp,
    options: &InitiateOptions,
    report: &mut Report,
) -> Result<(), PollError> {
    let endpoint = format!("POST {}", op.path);
    let Some((source, destination)) = parties(poller, op, options) else {
        report.notes.push(format!(
            "{}: no source and destination to use (pass --source and --destination)",
            op.operation
        ));
        return Ok(());
    };
    let currency = match &options.currency {
        Some(currency) => currency.clone(),
        None => source_currency(poller, &source),
    };
    let key = format!("verify-{}-{}", unix_nanos(), op.operation);
    let body = request_body(op, &key, options.amount, &currency, &source, &destination);
    poller.sync(Kind::Transactions)?;
    let before: BTreeSet<String> = poller.ids(Kind::Transactions).into_iter().collect();

    let Some(first) = created(poller, op, &body, &key, report)? else {
        return Ok(());
    };
    report.initiations_checked += 1;
    let id = first
        .get(&op.id_field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    check_replay(poller, op, &body, &id, report)?;
    let mut other = body.clone();
    other["amount"] = json!((options.amount + 1).to_string());
    check_key_reuse(poller, op, &other, &id, report)?;
    let wanted = Payment {
        key,
        amount: options.amount.to_string(),
        currency,
        kind: op.transaction_type.clone(),
    };
    check_link(
        poller,
        &endpoint,
        &wanted,
        &before,
        options.link_wait,
        report,
    )
}

/// `--source`/`--destination`, or accounts and beneficiaries from what was listed: a payout
/// goes to a beneficiary, a transfer to another account.
fn parties(
    poller: &Poller,
    op: &InitiationOp,
    options: &InitiateOptions,
) -> Option<(String, String)> {
    let accounts = poller.ids(Kind::Accounts);
    let source = options
        .source
        .clone()
        .or_else(|| accounts.first().cloned())?;
    let to_beneficiary = op.transaction_type.as_deref() == Some("PAYOUT");
    let other_account = accounts.iter().find(|a| **a != source).cloned();
    let destination = options.destination.clone().or_else(|| {
        if to_beneficiary {
            poller
                .ids(Kind::Beneficiaries)
                .first()
                .cloned()
                .or(other_account)
        } else {
            other_account
        }
    })?;
    Some((source, destination))
}

fn source_currency(poller: &mut Poller, source: &str) -> String {
    poller
        .balances(source)
        .ok()
        .and_then(|b| b.balances.first().map(|(_, currency)| currency.clone()))
        .unwrap_or_else(|| "EUR/2".to_owned())
}

/// The request as Formance builds it, from the fields the spec gives the request.
fn request_body(
    op: &InitiationOp,
    key: &str,
    amount: u128,
    currency: &str,
    source: &str,
    destination: &str,
) -> Value {
    let mut body = Map::new();
    for field in &op.request_fields {
        let lower = field.to_ascii_lowercase();
        let value = if *field == op.key_field {
            json!(key)
        } else if lower == "amount" {
            json!(amount.to_string())
        } else if lower == "currency" {
            json!(currency)
        } else if lower.starts_with("source") {
            json!(source)
        } else if lower.starts_with("destination") {
            json!(destination)
        } else if lower == "description" {
            json!("connector-gen verify")
        } else {
            continue;
        };
        body.insert(field.clone(), value);
    }
    Value::Object(body)
}

/// POST with Formance's retries on the statuses it retries.
fn post(poller: &mut Poller, op: &InitiationOp, body: &Value) -> Result<Posted, PollError> {
    let url = format!("{}{}", poller.base(), op.path);
    let bytes = body.to_string().into_bytes();
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            thread::sleep(BACKOFF * attempt as u32);
        }
        match poller.send("POST", &url, Some(&bytes)) {
            Ok(reply) if reply.status == 501 || !is_retryable(reply.status) => {
                return Ok(Posted::Answer(reply.status, body_json(&reply.text())));
            }
            Ok(reply) => last = format!("{} {}", reply.status, reply.text()),
            Err(PollError::Exhausted { last: why, .. }) => last = why,
            Err(other) => return Err(other),
        }
    }
    Ok(Posted::RetriedOut(last))
}

/// The first request: its answer decoded as Formance decodes it. None when the check cannot
/// go on (not implemented, refused).
fn created(
    poller: &mut Poller,
    op: &InitiationOp,
    body: &Value,
    key: &str,
    report: &mut Report,
) -> Result<Option<Value>, PollError> {
    let endpoint = format!("POST {}", op.path);
    match post(poller, op, body)? {
        Posted::Answer(501, _) => {
            report
                .notes
                .push(format!("{}: not implemented (501), skipped", op.operation));
            Ok(None)
        }
        Posted::Answer(status, answer) if !(200..300).contains(&status) => {
            report.add(
                Finding::new(
                    Check::Refused,
                    endpoint,
                    format!("a new {} was refused with {status}", op.operation),
                )
                .effect(Effect::PaymentFailed)
                .example(json!({"request": body, "answer": answer})),
            );
            Ok(None)
        }
        Posted::Answer(_, answer) => {
            let protocol = &poller.wire().protocol;
            if let Err(error) = decode::check(protocol, &op.created, &answer, "") {
                report.add(
                    Finding::new(
                        Check::InitiationAnswer,
                        endpoint,
                        format!("the answer does not decode: {error}"),
                    )
                    .example(answer),
                );
                return Ok(None);
            }
            if answer.get(&op.key_field).and_then(Value::as_str) != Some(key) {
                report.add(
                    Finding::new(
                        Check::InitiationAnswer,
                        endpoint,
                        format!("the answer does not echo {} exactly", op.key_field),
                    )
                    .example(json!({"sent": key, "answer": answer})),
                );
            }
            Ok(Some(answer))
        }
        Posted::RetriedOut(last) => {
            report.add(Finding::new(
                Check::Unavailable,
                endpoint,
                format!("a new {} kept failing: {last}", op.operation),
            ));
            Ok(None)
        }
    }
}

/// The same key and body again: the same payment, nothing moved.
fn check_replay(
    poller: &mut Poller,
    op: &InitiationOp,
    body: &Value,
    id: &str,
    report: &mut Report,
) -> Result<(), PollError> {
    let endpoint = format!("POST {}", op.path);
    match post(poller, op, body)? {
        Posted::Answer(status, answer) if (200..300).contains(&status) => {
            let again = answer
                .get(&op.id_field)
                .and_then(Value::as_str)
                .unwrap_or_default();
            if again != id {
                report.add(
                    Finding::new(
                        Check::PaidTwice,
                        endpoint,
                        format!(
                            "a replay with the same {} made another payment ({again}, first {id})",
                            op.key_field
                        ),
                    )
                    .example(json!({"request": body, "replayAnswer": answer})),
                );
            }
        }
        Posted::Answer(status, answer) => report.add(
            Finding::new(
                Check::Refused,
                endpoint,
                format!(
                    "a replay of a successful {} was answered {status}",
                    op.operation
                ),
            )
            .effect(Effect::PaymentFailed)
            .example(json!({"request": body, "replayAnswer": answer})),
        ),
        Posted::RetriedOut(last) => report.add(Finding::new(
            Check::Unavailable,
            endpoint,
            format!("a replay kept failing: {last}"),
        )),
    }
    Ok(())
}

/// Another body under a used key: a plain 4xx (409), never a payment.
fn check_key_reuse(
    poller: &mut Poller,
    op: &InitiationOp,
    body: &Value,
    id: &str,
    report: &mut Report,
) -> Result<(), PollError> {
    let endpoint = format!("POST {}", op.path);
    match post(poller, op, body)? {
        Posted::Answer(status, answer) if (200..300).contains(&status) => {
            let got = answer
                .get(&op.id_field)
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (check, summary) = if got == id {
                (
                    Check::KeyReuseAccepted,
                    format!(
                        "another amount under a used {} was answered {status} with the first payment",
                        op.key_field
                    ),
                )
            } else {
                (
                    Check::PaidTwice,
                    format!(
                        "another amount under a used {} made a second payment ({got})",
                        op.key_field
                    ),
                )
            };
            report.add(
                Finding::new(check, endpoint, summary)
                    .example(json!({"request": body, "answer": answer})),
            );
        }
        Posted::Answer(..) => {}
        Posted::RetriedOut(last) => report.add(Finding::new(
            Check::Unavailable,
            endpoint,
            format!(
                "another body under a used key must be a plain 4xx (409), it kept answering: {last}"
            ),
        )),
    }
    Ok(())
}

struct Payment {
    key: String,
    amount: String,
    currency: String,
    kind: Option<String>,
}

/// Polls transactions until the payment's shows up: linked to the key, with the type.
fn check_link(
    poller: &mut Poller,
    endpoint: &str,
    wanted: &Payment,
    before: &BTreeSet<String>,
    wait: Duration,
    report: &mut Report,
) -> Result<(), PollError> {
    let deadline = Instant::now() + wait;
    let (linked, unlinked) = loop {
        poller.sync(Kind::Transactions)?;
        let found = new_transactions(poller, wanted, before);
        if !found.0.is_empty() || !found.1.is_empty() || Instant::now() >= deadline {
            break found;
        }
        thread::sleep(LINK_POLL_EVERY);
    };
    let endpoint = endpoint.to_owned();
    if linked.len() + unlinked.len() > 1 {
        report.add(
            Finding::new(
                Check::PaidTwice,
                endpoint.clone(),
                format!(
                    "{} transactions of this amount appeared for one key",
                    linked.len() + unlinked.len()
                ),
            )
            .example(json!(linked.iter().chain(&unlinked).collect::<Vec<_>>())),
        );
    }
    match (linked.first(), unlinked.first()) {
        (Some(transaction), _) => {
            let kind = transaction.get("type").and_then(Value::as_str);
            if let Some(want) = &wanted.kind
                && kind != Some(want.as_str())
            {
                report.add(
                    Finding::new(
                        Check::WrongType,
                        "GET /transactions",
                        format!(
                            "the transaction linked to {} has type {kind:?}, not {want}",
                            wanted.key
                        ),
                    )
                    .example(transaction.clone()),
                );
            }
        }
        (None, Some(transaction)) => report.add(
            Finding::new(
                Check::Unlinked,
                "GET /transactions",
                format!(
                    "the payment's transaction does not carry relatedTransactionID = {}",
                    wanted.key
                ),
            )
            .example(transaction.clone()),
        ),
        (None, None) => report.notes.push(format!(
            "{endpoint}: no transaction for key {} appeared within {:?}; linking not checked",
            wanted.key, wait
        )),
    }
    Ok(())
}

/// Transactions that appeared since `before`: linked to the key, and others of the same
/// amount and currency (the payment, unlinked).
fn new_transactions(
    poller: &Poller,
    wanted: &Payment,
    before: &BTreeSet<String>,
) -> (Vec<Value>, Vec<Value>) {
    let related = poller
        .wire()
        .link
        .as_ref()
        .map_or("relatedTransactionID", |l| l.related_field.as_str())
        .to_owned();
    let mut linked = Vec::new();
    let mut unlinked = Vec::new();
    for (id, record) in poller.records(Kind::Transactions) {
        if before.contains(id) {
            continue;
        }
        let json = &record.json;
        let text = |name: &str| json.get(name).and_then(Value::as_str).unwrap_or_default();
        if text(&related) == wanted.key {
            linked.push(json.clone());
        } else if text("amount").trim_start_matches(['-', '+']) == wanted.amount
            && text("currency") == wanted.currency
        {
            unlinked.push(json.clone());
        }
    }
    (linked, unlinked)
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
