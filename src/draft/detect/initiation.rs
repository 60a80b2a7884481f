//! Payouts and transfers: the provider's body from the protocol request, the idempotency key
//! (a header or a body field) or, when none is declared, a look-up and a todo, and the
//! answer's id, status and time.

use super::lexicon::*;
use super::{
    BodyAmount, BodyGuess, BodyValue, FieldGuess, FieldValue, Idempotency, Lookup, OpGuess,
};
use crate::draft::model::{Api, Body, Endpoint, Location, Schema, Type};

const IDEMPOTENCY_HEADERS: &[&str] = &[
    "Idempotency-Key",
    "X-Idempotency-Key",
    "Idempotency-Token",
    "X-Request-Id",
    "PayPal-Request-Id",
    "x-mod-nonce",
    "Request-Id",
    "X-Client-Request-Id",
    "X-idempotence-uuid",
    "X-Idempotency-Token",
];
const IDEMPOTENCY_FIELDS: &[&str] = &[
    "idempotency_key",
    "idempotencyKey",
    "unique_request_id",
    "uniqueRequestId",
    "customerTransactionId",
    "customer_transaction_id",
    "client_request_id",
    "clientRequestId",
    "request_id",
    "requestId",
    "idempotency_token",
    "sender_batch_id",
];
const SOURCE_FIELDS: &[&str] = &[
    "source_account_id",
    "sourceAccountId",
    "source_account",
    "sourceAccount",
    "source",
    "from_account_id",
    "from_account",
    "fromAccountId",
    "account_id",
    "accountId",
    "balance_account_id",
    "balanceAccountId",
    "financial_account_token",
    "from_financial_account_token",
    "debtor_account_id",
    "DebitedWalletId",
    "sourceId",
    "source_id",
    "originating_account_id",
];
const DESTINATION_FIELDS: &[&str] = &[
    "destination_account_id",
    "destinationAccountId",
    "destination_account",
    "destinationAccount",
    "destination",
    "beneficiary_id",
    "beneficiaryId",
    "recipient_id",
    "recipientId",
    "recipient",
    "to_account_id",
    "to_account",
    "toAccountId",
    "counterparty_id",
    "counterpartyId",
    "external_bank_account_token",
    "to_financial_account_token",
    "target_account",
    "targetAccount",
    "CreditedWalletId",
    "BankAccountId",
    "destinationId",
    "destination_id",
    "payee_id",
    "receiver",
];
const DESCRIPTION_FIELDS: &[&str] = &[
    "description",
    "reference",
    "memo",
    "statement_descriptor",
    "reason",
    "note",
    "remittance_information",
    "message",
    "Tag",
    "narrative",
    "payment_reference",
];

pub fn detect(api: &Api, endpoint: &Endpoint, guess: &mut OpGuess) {
    let Some(body) = &endpoint.body else {
        guess.block("BODY", "the endpoint declares no request body");
        return;
    };
    if body.is_form() {
        guess.block(
            "FORM",
            format!(
                "{} takes a form-encoded body; the mapping sends JSON only",
                endpoint.path
            ),
        );
    }
    guess.evidence.insert("body".into(), body.pointer.clone());
    body_fields(body, guess);
    if body.is_form() {
        // A form sends text: numbers are written as their digits.
        for entry in &mut guess.body {
            if let BodyValue::Amount { format } = &mut entry.value {
                *format = match *format {
                    BodyAmount::MinorUnitsNumber => BodyAmount::MinorUnits,
                    BodyAmount::DecimalNumber => BodyAmount::Decimal,
                    other => other,
                };
            }
        }
    }
    guess.idempotency = Some(idempotency(endpoint, body, guess));
    if let Some(Idempotency::Body { field, .. }) = &guess.idempotency {
        guess.lookup = lookup(api, endpoint, field);
        if !guess.body.iter().any(|b| b.key == *field) {
            guess.body.push(BodyGuess {
                key: field.clone(),
                value: BodyValue::Field("idempotencyKey"),
                confidence: 0.9,
                evidence: "Formance's key deduplicates at the provider".into(),
            });
        }
    }
    if matches!(guess.idempotency, Some(Idempotency::Undeclared)) {
        reference_lookup(api, endpoint, guess);
        guess.todo.push("idempotency: the document declares no idempotency key; a crash after the provider accepted a payment may pay twice on retry: add `idempotency_key` if the provider takes one, or a `lookup`".into());
    }
    answer(endpoint, guess);
}

fn find<'a>(props: &[(String, Schema<'a>, bool)], names: &[&str]) -> Option<(String, Schema<'a>)> {
    names.iter().find_map(|name| {
        props
            .iter()
            .find(|(n, _, _)| {
                squash(n) == squash(name)
                    && n.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            })
            .map(|(n, s, _)| (n.clone(), *s))
    })
}

fn body_fields(body: &Body, guess: &mut OpGuess) {
    let props = body.properties();
    let mut out = Vec::new();
    let amount = find(
        &props,
        &[
            "amount",
            "value",
            "Amount",
            "amount_money",
            "DebitedFunds",
            "sourceAmount",
            "targetAmount",
            "money",
        ],
    );
    match amount {
        Some((key, schema)) if schema.ty() == Type::Object || !schema.properties().is_empty() => {
            let inner: Vec<(String, Schema, bool)> = schema
                .properties()
                .into_iter()
                .map(|(n, s)| (n.to_owned(), s, false))
                .collect();
            if let Some((value, value_schema)) = find(&inner, &["value", "amount", "Amount"]) {
                out.push(amount_guess(format!("{key}.{value}"), value_schema));
            }
            if let Some((currency, currency_schema)) = find(&inner, CURRENCY_FIELDS) {
                out.push(currency_guess(format!("{key}.{currency}"), currency_schema));
            }
        }
        Some((key, schema)) => out.push(amount_guess(key, schema)),
        None => {}
    }
    if !out
        .iter()
        .any(|b| matches!(b.value, BodyValue::Currency { .. }))
        && let Some((key, schema)) = find(&props, CURRENCY_FIELDS)
    {
        out.push(currency_guess(key, schema));
    }
    for (names, field, confidence) in [
        (SOURCE_FIELDS, "sourceAccountId", 0.7),
        (DESTINATION_FIELDS, "destinationAccountId", 0.7),
        (DESCRIPTION_FIELDS, "description", 0.6),
    ] {
        let already = guess
            .request_path
            .as_deref()
            .is_some_and(|p| p.contains(&format!("{{{field}}}")));
        if already {
            continue;
        }
        if let Some((key, schema)) = find(&props, names)
            && !out.iter().any(|b| b.key == key)
            && matches!(schema.ty(), Type::String | Type::Integer | Type::Unknown)
        {
            out.push(BodyGuess {
                key: key.clone(),
                value: BodyValue::Field(field),
                confidence,
                evidence: format!("the body's `{key}`"),
            });
        }
    }
    if let Some((key, schema)) = find(&props, &["metadata"])
        && schema.is_string_map()
    {
        out.push(BodyGuess {
            key,
            value: BodyValue::Field("metadata"),
            confidence: 0.8,
            evidence: "`metadata` is a string map".into(),
        });
    }
    if !out
        .iter()
        .any(|b| matches!(b.value, BodyValue::Amount { .. }))
    {
        guess.block("FIELDS", "no field of the body is the amount");
    }
    let unfilled: Vec<String> = props
        .iter()
        .filter(|(n, _, required)| {
            *required
                && !out
                    .iter()
                    .any(|b| b.key.split('.').next() == Some(n.as_str()))
        })
        .map(|(n, _, _)| format!("`{n}`"))
        .collect();
    if !unfilled.is_empty() {
        guess.todo.push(format!(
            "body: the provider also requires {}",
            unfilled.join(", ")
        ));
    }
    guess.body = out;
}

fn amount_guess(key: String, schema: Schema) -> BodyGuess {
    let (read, confidence, why) = super::fields::amount_format(schema);
    let format = match (schema.ty(), read) {
        (Type::Integer, _) => BodyAmount::MinorUnitsNumber,
        (Type::Number, super::AmountFormat::MinorUnits) => BodyAmount::MinorUnitsNumber,
        (Type::Number, _) => BodyAmount::DecimalNumber,
        (_, super::AmountFormat::MinorUnits) => BodyAmount::MinorUnits,
        _ => BodyAmount::Decimal,
    };
    BodyGuess {
        key: key.clone(),
        value: BodyValue::Amount { format },
        confidence,
        evidence: format!("the body's `{key}`: {why}"),
    }
}

fn currency_guess(key: String, schema: Schema) -> BodyGuess {
    let text = schema.text();
    let example_lower = schema
        .example()
        .and_then(|e| e.as_str())
        .is_some_and(|e| e.chars().any(|c| c.is_ascii_lowercase()));
    let enum_lower = schema
        .enum_values()
        .iter()
        .any(|v| v.chars().all(|c| c.is_ascii_lowercase()));
    let lower = contains_any(&text, &["lowercase", "lower case", "lower-case"])
        || example_lower
        || enum_lower;
    let confidence = if lower
        || contains_any(
            &text,
            &[
                "iso 4217",
                "iso-4217",
                "uppercase",
                "three-letter",
                "3-letter",
                "three letter",
            ],
        )
        || !schema.enum_values().is_empty()
    {
        0.9
    } else {
        0.75
    };
    BodyGuess {
        key: key.clone(),
        value: BodyValue::Currency { lower },
        confidence,
        evidence: format!(
            "the body's `{key}` ({} case)",
            if lower { "lower" } else { "upper" }
        ),
    }
}

/// A declared idempotency header or body field; never a guess from nothing.
fn idempotency(endpoint: &Endpoint, body: &Body, guess: &mut OpGuess) -> Idempotency {
    let header = endpoint.params.iter().find(|p| {
        p.location == Location::Header
            && (is_one_of(&p.name, IDEMPOTENCY_HEADERS)
                || contains_any(&squash(&p.name), &["idempot", "nonce"]))
    });
    if let Some(p) = header {
        let confidence = if contains_any(&squash(&p.name), &["idempot"])
            || contains_any(&p.text, &["idempot"])
        {
            0.95
        } else {
            0.8
        };
        guess
            .evidence
            .insert("idempotency".into(), p.pointer.clone());
        return Idempotency::Header {
            name: p.name.clone(),
            confidence,
            evidence: p.pointer.clone(),
        };
    }
    let props = body.properties();
    let mut nested: Vec<(String, Schema, bool)> = Vec::new();
    for (name, schema, _) in &props {
        for (inner, s) in schema.properties() {
            nested.push((format!("{name}.{inner}"), s, false));
        }
    }
    let direct = find(&props, IDEMPOTENCY_FIELDS);
    let deep = || {
        IDEMPOTENCY_FIELDS.iter().find_map(|f| {
            nested
                .iter()
                .find(|(n, _, _)| squash(n.rsplit('.').next().unwrap_or(n)) == squash(f))
                .map(|(n, s, _)| (n.clone(), *s))
        })
    };
    if let Some((field, schema)) = direct.or_else(deep) {
        let format = schema.format().map(str::to_owned);
        if format.as_deref() == Some("uuid") || contains_any(&schema.text(), &["uuid"]) {
            guess.todo.push(format!("idempotency: the provider wants a UUID in `{field}`; Formance's key may not be one (KEY)"));
        }
        let pointer = format!("{}/properties/{field}", body.pointer);
        guess.evidence.insert("idempotency".into(), pointer.clone());
        return Idempotency::Body {
            field,
            format,
            confidence: 0.85,
            evidence: pointer,
        };
    }
    Idempotency::Undeclared
}

/// Without a declared key: a reference field the provider also filters its payments by
/// carries Formance's key, so that a retry can look the payment up before paying again.
fn reference_lookup(api: &Api, endpoint: &Endpoint, guess: &mut OpGuess) {
    let references = [
        "reference",
        "external_id",
        "externalId",
        "client_reference",
        "your_reference",
        "merchant_reference",
        "custom_id",
        "externalReference",
        "external_reference",
    ];
    let Some(body) = &endpoint.body else { return };
    let props = body.properties();
    for name in references {
        let Some((field, _)) = find(&props, &[name]) else {
            continue;
        };
        let Some(found) = lookup(api, endpoint, &field) else {
            continue;
        };
        guess.body.retain(|b| b.key != field);
        guess.body.push(BodyGuess {
            key: field.clone(),
            value: BodyValue::Field("idempotencyKey"),
            confidence: 0.7,
            evidence: format!("`{field}` also finds payments: {} {}", "GET", found.path),
        });
        guess.lookup = Some(found);
        return;
    }
}

/// A GET that finds payments by the field the key is sent in.
fn lookup(api: &Api, endpoint: &Endpoint, field: &str) -> Option<Lookup> {
    let collection = endpoint.path.trim_end_matches("/create").to_owned();
    let found = api.endpoints.iter().find(|e| {
        e.method == "GET"
            && e.document == endpoint.document
            && (e.path == collection
                || e.path == format!("{collection}/find")
                || e.path == format!("{collection}/search"))
            && e.params
                .iter()
                .any(|p| p.location == Location::Query && squash(&p.name) == squash(field))
    })?;
    let records = found
        .response
        .and_then(super::list::records)
        .map(|(p, _, _)| p);
    Some(Lookup {
        path: found.path.clone(),
        query: field.to_owned(),
        records,
    })
}

/// The created payment in the answer: id, status and time.
fn answer(endpoint: &Endpoint, guess: &mut OpGuess) {
    let Some(response) = endpoint.response else {
        guess.todo.push(
            "the document gives no answer schema: `id`, `status` and `createdAt` are guesses"
                .into(),
        );
        guess.fields = vec![
            FieldGuess {
                field: "id",
                value: FieldValue::Path("id".into()),
                confidence: 0.3,
                evidence: "no answer schema".into(),
            },
            FieldGuess {
                field: "status",
                value: FieldValue::Const("PENDING".into()),
                confidence: 0.3,
                evidence: "no answer schema".into(),
            },
            FieldGuess {
                field: "createdAt",
                value: FieldValue::Now,
                confidence: 0.5,
                evidence: "no answer schema".into(),
            },
        ];
        return;
    };
    let record = match response.property("data").filter(|d| d.ty() == Type::Object) {
        Some(data) if response.property("id").is_none() => {
            guess.record = Some("data".into());
            data
        }
        _ => response,
    };
    let props: Vec<(String, Schema, bool)> = record
        .properties()
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s, false))
        .collect();
    let mut fields = Vec::new();
    match find(&props, ID_FIELDS) {
        Some((id, _)) => fields.push(FieldGuess {
            field: "id",
            value: FieldValue::Path(id.clone()),
            confidence: 0.9,
            evidence: format!("the answer's `{id}`"),
        }),
        None => {
            guess.block("FIELDS", "the answer has no id field");
        }
    }
    let status = match find(&props, STATUS_FIELDS) {
        Some((path, schema)) => {
            let map: Vec<(String, &'static str)> = schema
                .enum_values()
                .iter()
                .filter_map(|v| protocol_value(STATUS_WORDS, v).map(|p| (v.clone(), p)))
                .collect();
            let confidence = if map.is_empty() { 0.4 } else { 0.8 };
            FieldGuess {
                field: "status",
                value: FieldValue::Enum {
                    path: path.clone(),
                    map,
                },
                confidence,
                evidence: format!("the answer's `{path}`"),
            }
        }
        None => FieldGuess {
            field: "status",
            value: FieldValue::Const("PENDING".into()),
            confidence: 0.4,
            evidence: "the answer has no status: PENDING until the transaction shows".into(),
        },
    };
    fields.push(status);
    let created = find(&props, CREATED_FIELDS).and_then(|(path, schema)| {
        super::fields::time_format(schema, &path).map(|(format, confidence)| FieldGuess {
            field: "createdAt",
            value: FieldValue::Time {
                path: path.clone(),
                format,
            },
            confidence,
            evidence: format!("the answer's `{path}`"),
        })
    });
    fields.push(created.unwrap_or(FieldGuess {
        field: "createdAt",
        value: FieldValue::Now,
        confidence: 0.7,
        evidence: "the answer has no creation time: the time of the answer".into(),
    }));
    for field in &fields {
        if field.confidence < 0.5 {
            guess
                .todo
                .push(format!("`{}`: {}", field.field, field.evidence));
        }
    }
    guess.fields = fields;
}
