//! initiation.rs of a generated crate: payment initiations happen at most once per idempotency
//! key, whatever retries, crashes and replicas do; and the provider's transactions they result
//! in are linked back to the key.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ir::{Protocol, Shape};
use crate::names;

/// `finds_payments`: the mapping can look a payment up (`lookup`), so that transactions of a
/// payment whose initiation died half-way can be linked before it is retried.
pub fn render(protocol: &Protocol, mapped: bool, finds_payments: bool) -> TokenStream {
    let currencies = if mapped {
        quote!(super::mapped::CURRENCIES)
    } else {
        quote!(&[])
    };
    let link = link(protocol, finds_payments);
    quote! {
        //! Payment initiations (payouts, transfers) run at most once per idempotency key. The
        //! key is recorded in the store before the provider is called; a retry with the same
        //! key and request gets the stored answer, one with a different request a 409, one
        //! arriving while the first is still at work waits for it (then 425, which Formance
        //! retries). An attempt that ended without a final answer (the provider failed or
        //! timed out, or the connector died) is taken over by the next retry, which the
        //! handler sees as `Initiation::recovering` so that it can forward the same key to the
        //! provider or look the payment up before paying.
        #![allow(dead_code)]

        use std::future::Future;
        use std::time::{Duration, Instant};

        use axum::http::StatusCode;
        use serde::Serialize;
        use serde_json::Value;
        use tracing::Instrument;

        use super::convert;
        use super::error::ConnectorError;
        use super::runtime::{self, Context};
        use super::store::{Answer, Claim, Link, StoreError};

        /// The longest a request waits for another one with its key before answering 425.
        const MAX_WAIT: Duration = Duration::from_secs(5);

        /// How much longer than the attempt's time-out its key stays taken: the replicas'
        /// clocks may disagree by this much before two attempts could overlap.
        const LEASE_GRACE: Duration = Duration::from_secs(2);

        /// Longest amount accepted, in digits: 38 fits every provider's and database's integers.
        const MAX_AMOUNT_DIGITS: usize = 38;

        /// One attempt at an initiation, as its handler sees it through `Context::initiation`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Initiation {
            key: String,
            attempt: u32,
            recovering: bool,
        }

        impl Initiation {
            /// Formance's idempotency key: forward it to the provider when it takes one.
            pub fn key(&self) -> &str {
                &self.key
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
        }

        /// Runs `call` at most once for `key` and `request` (the request's JSON, compared on
        /// retries), storing its answer; replays the stored answer for a retry.
        ///
        /// It runs on a task of its own: a caller that hangs up does not stop it half-way, and
        /// the answer is stored for its retry.
        pub async fn run<T, F, Fut>(ctx: Context, operation: &'static Operation, key: String, request: Value, id_of: fn(&T) -> String, call: F) -> Result<Answer, ConnectorError>
        where
            T: Serialize + Send + 'static,
            F: FnOnce(Context) -> Fut + Send + 'static,
            Fut: Future<Output = Result<T, ConnectorError>> + Send + 'static,
        {
            runtime::call_connector(operation.id, attempt(ctx, operation, key, request, id_of, call)).await
        }

        async fn attempt<T, F, Fut>(ctx: Context, operation: &'static Operation, key: String, request: Value, id_of: fn(&T) -> String, call: F) -> Result<Answer, ConnectorError>
        where
            T: Serialize + Send + 'static,
            F: FnOnce(Context) -> Fut,
            Fut: Future<Output = Result<T, ConnectorError>> + Send + 'static,
        {
            let (key, request) = (key.as_str(), &request);
            let services = ctx.services().clone();
            let store = services.store();
            let timeout = ctx.config().store.attempt_timeout;
            let owner = format!("{}:{}", services.instance(), ctx.request_id());
            let request_text = request.to_string();
            let claimed = Instant::now();
            let mut pause = Duration::from_millis(2);
            let attempt = loop {
                let claim = store.claim(operation.id, key, &request_text, operation.transaction_type, &owner, timeout + LEASE_GRACE).await.map_err(store_failed)?;
                let metrics = ctx.metrics();
                match claim {
                    Claim::First => {
                        metrics.initiation(operation.id, "first");
                        break 1;
                    }
                    Claim::Recover { attempt } => {
                        metrics.initiation(operation.id, "recovered");
                        tracing::warn!(operation = operation.id, key, attempt, "an earlier attempt with this key ended without an answer; recovering it");
                        break attempt;
                    }
                    Claim::Answered(answer) => {
                        metrics.initiation(operation.id, "replayed");
                        return Ok(answer);
                    }
                    Claim::Conflict { request: stored } => {
                        metrics.initiation(operation.id, "conflict");
                        return Err(conflict(operation.id, key, &stored, request));
                    }
                    Claim::Busy if claimed.elapsed() < MAX_WAIT.min(timeout) => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    Claim::Busy => {
                        metrics.initiation(operation.id, "busy");
                        let detail = format!("a {} with idempotency key {key:?} is in progress; retry later", operation.id);
                        return Err(ConnectorError { retry_after: Some(1), ..ConnectorError::new(StatusCode::TOO_EARLY, detail) });
                    }
                }
            };
            let initiation = Initiation { key: key.to_owned(), attempt, recovering: attempt > 1 };
            // The handler is stopped at the time-out: past it, another request may take the key
            // over, and two attempts must never run at once.
            let mut handler = tokio::spawn(call(ctx.with_initiation(initiation)).in_current_span());
            let outcome = tokio::time::timeout(timeout, &mut handler).await;
            let result = match outcome {
                Ok(joined) => runtime::finished(operation.id, joined).and_then(|created| {
                    serde_json::to_string(&created)
                        .map(|body| (Answer { status: operation.status, body }, Some(id_of(&created))))
                        .map_err(|error| ConnectorError::internal(format!("cannot encode the response: {error}")))
                }),
                Err(_) => {
                    handler.abort();
                    Err(ConnectorError::unavailable(format!("{} did not finish within {:?}; retry with the same key", operation.id, timeout), Some(1)))
                }
            };
            match result {
                Ok((answer, provider_id)) => store.finish(operation.id, key, &owner, answer, provider_id.as_deref()).await.map_err(store_failed),
                Err(error) if is_final(&error) => {
                    let answer = Answer { status: error.status.as_u16(), body: error.body() };
                    store.finish(operation.id, key, &owner, answer, None).await.map_err(store_failed)
                }
                Err(error) => {
                    if let Err(failure) = store.release(operation.id, key, &owner).await {
                        tracing::warn!(operation = operation.id, key, %failure, "cannot release the key; the next retry takes it over after CONNECTOR_INITIATION_TIMEOUT");
                    }
                    Err(error)
                }
            }
        }

        /// A 4xx that Formance does not retry: the request itself was refused, and the same
        /// request would be refused again.
        fn is_final(error: &ConnectorError) -> bool {
            error.status.is_client_error() && ![408, 421, 423, 425, 429].contains(&error.status.as_u16())
        }

        fn store_failed(error: StoreError) -> ConnectorError {
            tracing::error!(%error, "the initiation store failed");
            ConnectorError::unavailable(format!("the initiation store is unavailable: {error}"), Some(1))
        }

        /// 409 naming the fields in which the two requests differ.
        fn conflict(operation: &str, key: &str, stored: &str, request: &Value) -> ConnectorError {
            let stored: Value = serde_json::from_str(stored).unwrap_or(Value::Null);
            let empty = serde_json::Map::new();
            let (old, new) = (stored.as_object().unwrap_or(&empty), request.as_object().unwrap_or(&empty));
            let mut fields: Vec<&str> = old.keys().chain(new.keys()).map(String::as_str).filter(|field| old.get(*field) != new.get(*field)).collect();
            fields.sort_unstable();
            fields.dedup();
            ConnectorError::conflict(format!("idempotency key {key:?} was already used for a different {operation} request; these fields differ: {}", fields.join(", ")))
        }

        /// Checks protocol money before anything else happens: an integer amount in minor units
        /// above zero, and a known UMN currency (`EUR/2`, or `EUR`).
        pub fn check_money(amount_field: &str, amount: &str, currency_field: &str, currency: &str) -> Result<(), ConnectorError> {
            if !convert::is_minor_units(amount) || amount.starts_with(['-', '0']) {
                return Err(ConnectorError::bad_request(format!("{amount_field} must be a positive integer in minor units, like \"1234\" for 12.34 EUR; got {amount:?}")));
            }
            if amount.len() > MAX_AMOUNT_DIGITS {
                return Err(ConnectorError::bad_request(format!("{amount_field} has {} digits; at most {MAX_AMOUNT_DIGITS} are accepted", amount.len())));
            }
            let (code, _) = currency.split_once('/').unwrap_or((currency, ""));
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
                return Err(ConnectorError::bad_request(format!("{currency_field} must be a currency in UMN form, an upper-case code with an optional precision like \"EUR/2\"; got {currency:?}")));
            }
            convert::currency(currency, #currencies).map(drop).map_err(|error| ConnectorError::bad_request(format!("{currency_field}: {}", error.message())))
        }

        #link
    }
}

/// `link`: the list items' `relatedTransactionID` becomes the idempotency key of the initiation
/// they resulted from, and `type` that initiation's type.
fn link(protocol: &Protocol, finds_payments: bool) -> TokenStream {
    let Some(target) = &protocol.link else {
        return TokenStream::new();
    };
    let Some(op) = protocol.operation(&target.operation) else {
        return TokenStream::new();
    };
    let Some(Shape::Array(array)) = &op.success.shape else {
        return TokenStream::new();
    };
    let Some((item_name, item_object)) = protocol.object(&array.items) else {
        return TokenStream::new();
    };
    let item = names::pascal_ident(item_name);
    let binding = if finds_payments {
        quote!(let mut links)
    } else {
        quote!(let links)
    };
    let (refresh, finder) = if finds_payments {
        (
            quote! {
                let unknown = candidates.iter().any(|candidate| link_for(&links, candidate).is_none());
                if clear_unknown && unknown && find_unanswered_payments(ctx).await? {
                    links = store.links(&candidates).await.map_err(store_failed)?;
                }
            },
            quote! {
            /// Looks up, at the provider, the payments of initiations left without an answer (the
            /// connector died, or the provider failed, after it may have paid), and records those
            /// found: their transactions must carry the key even before Formance retries them.
            /// Whether any was found.
            async fn find_unanswered_payments(ctx: &Context) -> Result<bool, ConnectorError> {
                let store = ctx.services().store();
                let mut found = false;
                for (operation, key, request) in store.unanswered().await.map_err(store_failed)? {
                    match super::mapped::find_payment(ctx, &operation, &request).await {
                        Ok(Some(provider_id)) => {
                            tracing::info!(operation, key, %provider_id, "found the payment of an unanswered initiation");
                            store.found_payment(&operation, &key, &provider_id).await.map_err(store_failed)?;
                            found = true;
                        }
                        Ok(None) => {}
                        Err(error) => tracing::warn!(operation, key, detail = %error.detail, "cannot look up an unanswered initiation"),
                    }
                }
                Ok(found)
            }
                },
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    let related = names::snake_ident(&target.related_field);
    let kind = names::snake_ident(&target.type_field);
    let kind_type = names::pascal_ident(&target.type_enum);
    let optional_kind = item_object
        .fields
        .iter()
        .any(|f| f.name == target.type_field && (!f.required || f.nullable));
    let set_kind = if optional_kind {
        quote!(item.#kind = Some(kind);)
    } else {
        quote!(item.#kind = kind;)
    };
    quote! {
        /// Replaces each item's `relatedTransactionID`, when it names an initiation made here (by
        /// the provider's id of the payment or by its key), with that initiation's idempotency
        /// key, and sets its type. Unknown values are kept, or cleared when `clear_unknown` (the
        /// value was the provider's reference, which means nothing to Formance).
        pub async fn link(ctx: &Context, items: &mut [super::models::#item], clear_unknown: bool) -> Result<(), ConnectorError> {
            let candidates: Vec<&str> = items.iter().filter_map(|item| item.#related.as_deref()).collect();
            if candidates.is_empty() {
                return Ok(());
            }
            let store = ctx.services().store();
            #binding = store.links(&candidates).await.map_err(store_failed)?;
            #refresh
            for item in items.iter_mut() {
                let Some(related) = item.#related.as_deref() else {
                    continue;
                };
                match link_for(&links, related) {
                    Some(link) => {
                        let key = link.key.clone();
                        if let Ok(kind) = link.transaction_type.parse::<super::models::#kind_type>() {
                            #set_kind
                        }
                        item.#related = Some(key);
                    }
                    None if clear_unknown => item.#related = None,
                    None => {}
                }
            }
            Ok(())
        }

        /// The initiation a `relatedTransactionID` names: by the provider's id of its payment
        /// first, else by its key.
        fn link_for<'l>(links: &'l [Link], related: &str) -> Option<&'l Link> {
            links.iter().find(|link| link.provider_id.as_deref() == Some(related)).or_else(|| links.iter().find(|link| link.key == related))
        }

        #finder
    }
}
