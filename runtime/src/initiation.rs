//! Payment initiations (payouts, transfers) run at most once per idempotency key. The
//! key is recorded in the store before the provider is called; a retry with the same
//! key and request gets the stored answer, one with a different request a 409, one
//! arriving while the first is still at work waits for it (then 425, which Formance
//! retries). An attempt that ended without a final answer (the provider failed or
//! timed out, or the connector died) is taken over by the next retry, which the
//! handler sees as [`Initiation::recovering`] so that it can forward the same key to the
//! provider or look the payment up before paying.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use super::context::Context;
use super::convert;
use super::error::ConnectorError;
use super::server::{BoxFuture, call_connector, finished};
use super::store::{Claim, Link, StoreError};

pub use super::store::Answer;

/// The longest a request waits for another one with its key before answering 425.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// How much longer than the attempt's time-out its key stays taken: the replicas'
/// clocks may disagree by this much before two attempts could overlap.
const LEASE_GRACE: Duration = Duration::from_secs(2);

/// Longest amount accepted, in digits: 38 fits every provider's and database's integers.
const MAX_AMOUNT_DIGITS: usize = 38;

/// One attempt at an initiation, as its handler sees it through [`Context::initiation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    key: String,
    provider_key: String,
    attempt: u32,
    recovering: bool,
}

impl Initiation {
    /// Formance's idempotency key: forward it to the provider when it takes one.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key as the provider takes it (a reference of at most 18 characters, a UUID):
    /// the key itself unless the operation reshapes it.
    pub fn provider_key(&self) -> &str {
        &self.provider_key
    }

    /// 1 for the first attempt with this key.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// An earlier attempt ended without a final answer and may have reached the
    /// provider: forward the same key, or look the payment up before paying again.
    pub fn recovering(&self) -> bool {
        self.recovering
    }
}

/// What the server knows of an initiation operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub id: &'static str,
    /// The success status, e.g. 201.
    pub status: u16,
    /// The type its provider transaction has in `/transactions` (`PAYOUT`).
    pub transaction_type: &'static str,
    /// Currency precisions on top of ISO 4217 (connector.yaml's `currencies`).
    pub currencies: &'static [(&'static str, u32)],
    /// The key as the provider takes it, when it cannot take Formance's as it is; recorded
    /// with the key, so that transactions carrying it link.
    pub provider_key: Option<fn(&str) -> String>,
}

/// A protocol request that initiates a payment.
pub trait PaymentRequest: Serialize + Send + 'static {
    /// Formance's idempotency key.
    fn idempotency_key(&self) -> &str;

    /// The money it moves, checked before anything else happens.
    fn money(&self) -> Option<Money<'_>> {
        None
    }
}

/// An amount and its currency, with their fields' names for messages.
#[derive(Debug, Clone, Copy)]
pub struct Money<'a> {
    pub amount_field: &'static str,
    pub amount: &'a str,
    pub currency_field: &'static str,
    pub currency: &'a str,
}

/// What a payment initiation answers with.
pub trait CreatedPayment: Serialize + Send + 'static {
    /// The provider's id of the payment.
    fn payment_id(&self) -> &str;
}

/// A transaction of the list whose `relatedTransactionID` names the payment it came from.
pub trait LinkedTransaction {
    /// Its `relatedTransactionID`.
    fn related_transaction(&mut self) -> &mut Option<String>;

    /// Sets its `type` to the initiation's (`PAYOUT`, `TRANSFER`).
    fn set_transaction_type(&mut self, transaction_type: &str);
}

/// Runs `call` at most once for the request's idempotency key, storing its answer, and
/// replays the stored answer for a retry.
///
/// It runs on a task of its own: a caller that hangs up does not stop it half-way, and
/// the answer is stored for its retry.
pub async fn run<B, T, F, Fut>(
    ctx: Context,
    operation: &'static Operation,
    body: B,
    call: F,
) -> Result<Answer, ConnectorError>
where
    B: PaymentRequest,
    T: CreatedPayment,
    F: FnOnce(Context, B) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ConnectorError>> + Send + 'static,
{
    check_idempotency_key(body.idempotency_key())?;
    if let Some(money) = body.money() {
        check_money(&money, operation.currencies)?;
    }
    let request = serde_json::to_value(&body)
        .map_err(|error| ConnectorError::internal(format!("cannot encode the request: {error}")))?;
    call_connector(operation.id, attempt(ctx, operation, body, request, call)).await
}

async fn attempt<B, T, F, Fut>(
    ctx: Context,
    operation: &'static Operation,
    body: B,
    request: Value,
    call: F,
) -> Result<Answer, ConnectorError>
where
    B: PaymentRequest,
    T: CreatedPayment,
    F: FnOnce(Context, B) -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>> + Send + 'static,
{
    let key = body.idempotency_key().to_owned();
    let provider_key = operation.provider_key.map(|shape| shape(&key));
    let services = ctx.services().clone();
    let store = services.store();
    let timeout = ctx.config().store.attempt_timeout;
    let owner = format!("{}:{}", services.instance(), ctx.request_id());
    let request_text = request.to_string();
    let claimed = Instant::now();
    let mut pause = Duration::from_millis(2);
    let attempt = loop {
        let claim = store
            .claim(
                operation.id,
                &key,
                provider_key.as_deref(),
                &request_text,
                operation.transaction_type,
                &owner,
                timeout + LEASE_GRACE,
            )
            .await
            .map_err(store_failed)?;
        let metrics = ctx.metrics();
        match claim {
            Claim::First => {
                metrics.initiation(operation.id, "first");
                break 1;
            }
            Claim::Recover { attempt } => {
                metrics.initiation(operation.id, "recovered");
                tracing::warn!(
                    operation = operation.id,
                    key,
                    attempt,
                    "an earlier attempt with this key ended without an answer; recovering it"
                );
                break attempt;
            }
            Claim::Answered(answer) => {
                metrics.initiation(operation.id, "replayed");
                return Ok(answer);
            }
            Claim::Conflict { request: stored } => {
                metrics.initiation(operation.id, "conflict");
                return Err(conflict(operation.id, &key, &stored, &request));
            }
            Claim::Busy if claimed.elapsed() < MAX_WAIT.min(timeout) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Claim::Busy => {
                metrics.initiation(operation.id, "busy");
                let detail = format!(
                    "a {} with idempotency key {key:?} is in progress; retry later",
                    operation.id
                );
                return Err(ConnectorError {
                    retry_after: Some(1),
                    ..ConnectorError::new(StatusCode::TOO_EARLY, detail)
                });
            }
        }
    };
    let initiation = Initiation {
        provider_key: provider_key.unwrap_or_else(|| key.clone()),
        key: key.clone(),
        attempt,
        recovering: attempt > 1,
    };
    // The handler is stopped at the time-out: past it, another request may take the key
    // over, and two attempts must never run at once.
    let mut handler = tokio::spawn(call(ctx.with_initiation(initiation), body).in_current_span());
    let result = match tokio::time::timeout(timeout, &mut handler).await {
        Ok(joined) => {
            finished(operation.id, joined).and_then(|created| encode(operation, &created))
        }
        Err(_) => {
            handler.abort();
            Err(ConnectorError::unavailable(
                format!(
                    "{} did not finish within {timeout:?}; retry with the same key",
                    operation.id
                ),
                Some(1),
            ))
        }
    };
    match result {
        Ok((answer, provider_id)) => store
            .finish(operation.id, &key, &owner, answer, Some(&provider_id))
            .await
            .map_err(store_failed),
        Err(error) if is_final(&error) => {
            let answer = Answer {
                status: error.status.as_u16(),
                body: error.body(),
            };
            store
                .finish(operation.id, &key, &owner, answer, None)
                .await
                .map_err(store_failed)
        }
        Err(error) => {
            if let Err(failure) = store.release(operation.id, &key, &owner).await {
                tracing::warn!(
                    operation = operation.id,
                    key,
                    %failure,
                    "cannot release the key; the next retry takes it over after CONNECTOR_INITIATION_TIMEOUT"
                );
            }
            Err(error)
        }
    }
}

/// The answer to store for a created payment, and the provider's id of it.
fn encode<T: CreatedPayment>(
    operation: &Operation,
    created: &T,
) -> Result<(Answer, String), ConnectorError> {
    let body = serde_json::to_string(created).map_err(|error| {
        ConnectorError::internal(format!("cannot encode the response: {error}"))
    })?;
    let answer = Answer {
        status: operation.status,
        body,
    };
    Ok((answer, created.payment_id().to_owned()))
}

/// A 4xx that Formance does not retry: the request itself was refused, and the same
/// request would be refused again.
fn is_final(error: &ConnectorError) -> bool {
    error.status.is_client_error() && ![408, 421, 423, 425, 429].contains(&error.status.as_u16())
}

fn store_failed(error: StoreError) -> ConnectorError {
    tracing::error!(%error, "the initiation store failed");
    ConnectorError::unavailable(
        format!("the initiation store is unavailable: {error}"),
        Some(1),
    )
}

/// 409 naming the fields in which the two requests differ.
fn conflict(operation: &str, key: &str, stored: &str, request: &Value) -> ConnectorError {
    let stored: Value = serde_json::from_str(stored).unwrap_or(Value::Null);
    let empty = serde_json::Map::new();
    let (old, new) = (
        stored.as_object().unwrap_or(&empty),
        request.as_object().unwrap_or(&empty),
    );
    let mut fields: Vec<&str> = old
        .keys()
        .chain(new.keys())
        .map(String::as_str)
        .filter(|field| old.get(*field) != new.get(*field))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    ConnectorError::conflict(format!(
        "idempotency key {key:?} was already used for a different {operation} request; these fields differ: {}",
        fields.join(", ")
    ))
}

/// The longest idempotency key accepted, in bytes: longer ones are refused before the store
/// or the provider sees them (providers' own limits are often 255 or less).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Checks Formance's idempotency key before anything else happens: an empty key would be
/// stored and forwarded as an empty `Idempotency-Key` header, and a very long one is more
/// than a provider takes.
pub fn check_idempotency_key(key: &str) -> Result<(), ConnectorError> {
    if key.is_empty() {
        return Err(ConnectorError::bad_request(
            "idempotencyKey must not be empty: Formance sends a key unique to each payment",
        ));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ConnectorError::bad_request(format!(
            "idempotencyKey has {} bytes; at most {MAX_IDEMPOTENCY_KEY_BYTES} are accepted",
            key.len()
        )));
    }
    Ok(())
}

/// Checks protocol money before anything else happens: an integer amount in minor units
/// above zero, and a known UMN currency (`EUR/2`, or `EUR`).
pub fn check_money(money: &Money<'_>, currencies: &[(&str, u32)]) -> Result<(), ConnectorError> {
    let Money {
        amount_field,
        amount,
        currency_field,
        currency,
    } = *money;
    if !convert::is_minor_units(amount) || amount.starts_with(['-', '0']) {
        return Err(ConnectorError::bad_request(format!(
            "{amount_field} must be a positive integer in minor units, like \"1234\" for 12.34 EUR; got {amount:?}"
        )));
    }
    if amount.len() > MAX_AMOUNT_DIGITS {
        return Err(ConnectorError::bad_request(format!(
            "{amount_field} has {} digits; at most {MAX_AMOUNT_DIGITS} are accepted",
            amount.len()
        )));
    }
    let (code, _) = currency.split_once('/').unwrap_or((currency, ""));
    if code.is_empty()
        || !code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(ConnectorError::bad_request(format!(
            "{currency_field} must be a currency in UMN form, an upper-case code with an optional precision like \"EUR/2\"; got {currency:?}"
        )));
    }
    convert::currency(currency, currencies)
        .map(drop)
        .map_err(|error| {
            ConnectorError::bad_request(format!("{currency_field}: {}", error.message()))
        })
}

/// Looks a payment up at the provider from the operation and the request stored with its key
/// (connector.yaml's `lookup`).
pub type FindPayment = for<'a> fn(&'a Context, &'a str, &'a str) -> Found<'a>;

/// The provider's id of the payment a look-up found, if it exists.
pub type Found<'a> = BoxFuture<'a, Result<Option<String>, ConnectorError>>;

/// What becomes of a `relatedTransactionID` that names no initiation made here.
#[derive(Debug, Clone, Copy)]
pub enum Unknown {
    /// Kept: a handler written by hand put it there.
    Keep,
    /// Cleared: it is the provider's reference of a payment made elsewhere, which means
    /// nothing to Formance.
    Clear,
    /// Cleared, after the payments of initiations left without an answer were looked up
    /// at the provider (one of them may be what it names).
    ClearAfterLookup(FindPayment),
}

/// Replaces each item's `relatedTransactionID`, when it names an initiation made here (by
/// the provider's id of the payment or by its key), with that initiation's idempotency
/// key, and sets its type. What becomes of the others, `unknown` says.
pub async fn link<T: LinkedTransaction>(
    ctx: &Context,
    items: &mut [T],
    unknown: Unknown,
) -> Result<(), ConnectorError> {
    let candidates: Vec<String> = items
        .iter_mut()
        .filter_map(|item| item.related_transaction().clone())
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let store = ctx.services().store();
    let mut links = store.links(&candidates).await.map_err(store_failed)?;
    if let Unknown::ClearAfterLookup(find_payment) = unknown {
        let any_unknown = candidates
            .iter()
            .any(|candidate| link_for(&links, candidate).is_none());
        if any_unknown && find_unanswered_payments(ctx, find_payment).await? {
            links = store.links(&candidates).await.map_err(store_failed)?;
        }
    }
    let clear_unknown = !matches!(unknown, Unknown::Keep);
    for item in items.iter_mut() {
        let Some(related) = item.related_transaction().clone() else {
            continue;
        };
        match link_for(&links, &related) {
            Some(link) => {
                item.set_transaction_type(&link.transaction_type);
                *item.related_transaction() = Some(link.key.clone());
            }
            None if clear_unknown => *item.related_transaction() = None,
            None => {}
        }
    }
    Ok(())
}

/// The initiation a `relatedTransactionID` names: by the provider's id of its payment
/// first, then by the key the provider was given, else by Formance's key.
fn link_for<'l>(links: &'l [Link], related: &str) -> Option<&'l Link> {
    links
        .iter()
        .find(|link| link.provider_id.as_deref() == Some(related))
        .or_else(|| {
            links
                .iter()
                .find(|link| link.provider_key.as_deref() == Some(related))
        })
        .or_else(|| links.iter().find(|link| link.key == related))
}

/// Looks up, at the provider, the payments of initiations left without an answer (the
/// connector died, or the provider failed, after it may have paid), and records those
/// found: their transactions must carry the key even before Formance retries them.
/// Whether any was found.
async fn find_unanswered_payments(
    ctx: &Context,
    find_payment: FindPayment,
) -> Result<bool, ConnectorError> {
    let store = ctx.services().store();
    let mut found = false;
    for (operation, key, request) in store.unanswered().await.map_err(store_failed)? {
        match find_payment(ctx, &operation, &request).await {
            Ok(Some(provider_id)) => {
                tracing::info!(operation, key, %provider_id, "found the payment of an unanswered initiation");
                store
                    .found_payment(&operation, &key, &provider_id)
                    .await
                    .map_err(store_failed)?;
                found = true;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(
                operation,
                key,
                detail = %error.detail,
                "cannot look up an unanswered initiation"
            ),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money<'a>(amount: &'a str, currency: &'a str) -> Money<'a> {
        Money {
            amount_field: "amount",
            amount,
            currency_field: "currency",
            currency,
        }
    }

    #[test]
    fn idempotency_keys_must_be_non_empty_and_at_most_255_bytes() {
        check_idempotency_key("k").unwrap();
        check_idempotency_key(&"é".repeat(127)).unwrap();
        let empty = check_idempotency_key("").unwrap_err();
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
        assert!(empty.detail.starts_with("idempotencyKey must not be empty"));
        let long = check_idempotency_key(&"é".repeat(128)).unwrap_err();
        assert_eq!(long.status, StatusCode::BAD_REQUEST);
        assert!(long.detail.contains("256 bytes"), "{}", long.detail);
    }

    #[test]
    fn money_must_be_positive_minor_units_in_a_known_umn_currency() {
        for (amount, currency) in [
            ("1", "EUR/2"),
            ("1500", "EUR"),
            ("7", "JPY/0"),
            ("1", "USDC/6"),
        ] {
            check_money(&money(amount, currency), &[("USDC", 6)]).expect(amount);
        }
        let refused = |amount: &str, currency: &str| {
            let error = check_money(&money(amount, currency), &[]).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            error.detail
        };
        for amount in ["0", "-1", "12.5", "", "1e3", "01"] {
            assert!(
                refused(amount, "EUR/2").starts_with("amount must be a positive integer"),
                "{amount:?}"
            );
        }
        assert!(refused(&"9".repeat(39), "EUR/2").contains("39 digits"));
        assert!(refused("1", "eur").starts_with("currency must be a currency in UMN form"));
        assert!(refused("1", "EUR/3").starts_with("currency: "));
        assert!(refused("1", "XXQ/2").starts_with("currency: "));
    }

    #[test]
    fn only_refusals_formance_does_not_retry_are_final() {
        for (status, final_answer) in [
            (400, true),
            (402, true),
            (404, true),
            (409, true),
            (422, true),
            (408, false),
            (425, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            let error = ConnectorError::new(StatusCode::from_u16(status).unwrap(), "x");
            assert_eq!(is_final(&error), final_answer, "{status}");
        }
    }

    #[test]
    fn a_conflict_names_the_fields_that_differ() {
        let stored = r#"{"amount":"100","currency":"EUR/2","key":"k"}"#;
        let request = serde_json::json!({"amount": "200", "currency": "EUR/2", "key": "k", "description": "x"});
        let error = conflict("createPayout", "k", stored, &request);
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert!(
            error
                .detail
                .ends_with("these fields differ: amount, description"),
            "{}",
            error.detail
        );
    }

    #[test]
    fn a_related_id_names_an_initiation_by_payment_id_before_key() {
        let links = [
            Link {
                key: "key-a".to_owned(),
                provider_id: Some("po_1".to_owned()),
                provider_key: None,
                transaction_type: "PAYOUT".to_owned(),
            },
            Link {
                key: "po_1".to_owned(),
                provider_id: Some("po_2".to_owned()),
                provider_key: Some("REF-B".to_owned()),
                transaction_type: "TRANSFER".to_owned(),
            },
        ];
        assert_eq!(link_for(&links, "po_1").unwrap().key, "key-a");
        assert_eq!(link_for(&links, "key-a").unwrap().key, "key-a");
        assert_eq!(link_for(&links, "REF-B").unwrap().key, "po_1");
        assert!(link_for(&links, "po_9").is_none());
    }
}
