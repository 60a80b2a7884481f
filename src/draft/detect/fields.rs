//! Protocol fields from the provider's record schema: id, times, amount (its format from the
//! type and description), currency, status and type enums through the lexicon.

use super::lexicon::*;
use super::{AmountFormat, FieldGuess, FieldValue, OpGuess, TimeFormat};
use crate::draft::model::{Endpoint, Schema, Type};

pub fn detect(endpoint: &Endpoint, guess: &mut OpGuess) {
    let Some(response) = endpoint.response else {
        return;
    };
    if guess.id == "getAccountBalances" {
        balances(response, guess);
        return;
    }
    let Some((_, record, _)) = super::list::records(response) else {
        return;
    };
    let id = guess.id;
    let mut fields = Vec::new();
    let mut missing = Vec::new();
    let mut need =
        |name: &'static str, found: Option<FieldGuess>, fields: &mut Vec<FieldGuess>| match found {
            Some(f) => fields.push(f),
            None => missing.push(name),
        };
    need(
        "id",
        path_field("id", record, ID_FIELDS, &[Type::String, Type::Integer]),
        &mut fields,
    );
    let created = time_field("createdAt", record, CREATED_FIELDS);
    match id {
        "getAccounts" => {
            let name = path_field("accountName", record, NAME_FIELDS, &[Type::String]);
            let name = name.or_else(|| {
                fields.first().map(|f| FieldGuess {
                    field: "accountName",
                    confidence: 0.3,
                    evidence: "no name field: the id stands in".into(),
                    ..f.clone()
                })
            });
            need("accountName", name, &mut fields);
            need("createdAt", created, &mut fields);
        }
        "getBeneficiaries" => {
            let owner = path_field("ownerName", record, OWNER_FIELDS, &[Type::String]);
            need("ownerName", owner, &mut fields);
            need("createdAt", created, &mut fields);
        }
        _ => {
            let updated = time_field("updatedAt", record, UPDATED_FIELDS).or_else(|| {
                created.clone().map(|c| FieldGuess { field: "updatedAt", confidence: 0.4, evidence: "no update time: the creation time stands in, so later changes are not seen again".into(), ..c })
            });
            need("createdAt", created, &mut fields);
            need("updatedAt", updated, &mut fields);
            let money = amount(record);
            match money {
                Some((amount, currency)) => {
                    fields.push(amount);
                    fields.push(currency);
                }
                None => missing.push("amount"),
            }
            fields.push(enum_field("type", record, TYPE_FIELDS, TYPE_WORDS));
            fields.push(enum_field("status", record, STATUS_FIELDS, STATUS_WORDS));
        }
    }
    if record
        .property("metadata")
        .is_some_and(|m| m.is_string_map())
    {
        fields.push(FieldGuess {
            field: "metadata",
            value: FieldValue::Path("metadata".into()),
            confidence: 0.8,
            evidence: "`metadata` is a string map".into(),
        });
    }
    for field in &fields {
        if field.confidence < 0.5 {
            guess
                .todo
                .push(format!("`{}`: {}", field.field, field.evidence));
        }
    }
    if !missing.is_empty() {
        guess.block(
            "FIELDS",
            format!(
                "no field of the record is {}: map them by hand",
                missing.join(", ")
            ),
        );
    }
    guess.fields = fields;
}

/// A balance held in an account object itself, most telling first.
const BALANCE_FIELDS: &[&str] = &[
    "balance",
    "availableBalance",
    "available_balance",
    "current_balance",
    "currentBalance",
    "Balance",
];

fn find<'a>(
    record: Schema<'a>,
    names: &[&str],
    types: &[Type],
) -> Option<(String, Schema<'a>, usize)> {
    let props = record.properties();
    for (rank, name) in names.iter().enumerate() {
        if let Some((found, schema)) = props.iter().find(|(n, _)| squash(n) == squash(name))
            && (types.is_empty() || types.contains(&schema.ty()) || schema.ty() == Type::Unknown)
            && is_path_key(found)
        {
            return Some(((*found).to_owned(), *schema, rank));
        }
    }
    None
}

/// Keys the mapping's paths can name.
fn is_path_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || "_-$@:".contains(c))
}

fn path_field(
    field: &'static str,
    record: Schema,
    names: &[&str],
    types: &[Type],
) -> Option<FieldGuess> {
    let (path, _, rank) = find(record, names, types)?;
    let confidence = if rank == 0 {
        0.95
    } else {
        (0.9 - 0.03 * rank as f64).max(0.6)
    };
    Some(FieldGuess {
        field,
        value: FieldValue::Path(path.clone()),
        confidence,
        evidence: format!("the record's `{path}`"),
    })
}

fn time_field(field: &'static str, record: Schema, names: &[&str]) -> Option<FieldGuess> {
    let (path, schema, rank) = find(record, names, &[Type::String, Type::Integer, Type::Number])?;
    let (format, confidence) = time_format(schema, &path)?;
    let confidence = if rank < 6 {
        confidence
    } else {
        confidence * 0.85
    };
    Some(FieldGuess {
        field,
        value: FieldValue::Time {
            path: path.clone(),
            format,
        },
        confidence: round(confidence),
        evidence: format!("the record's `{path}` ({})", format.name()),
    })
}

pub fn time_format(schema: Schema, name: &str) -> Option<(TimeFormat, f64)> {
    let text = schema.text();
    Some(match (schema.ty(), schema.format()) {
        (Type::Integer | Type::Number, _)
            if contains_any(&text, &["millisecond"]) || squash(name).ends_with("ms") =>
        {
            (TimeFormat::UnixMillis, 0.8)
        }
        (Type::Integer | Type::Number, _) => (
            TimeFormat::UnixSeconds,
            if contains_any(&text, &["unix", "epoch", "seconds"]) {
                0.95
            } else {
                0.8
            },
        ),
        (_, Some("date-time")) => (TimeFormat::Rfc3339, 0.95),
        (_, Some("date")) => (TimeFormat::Date, 0.8),
        (_, _)
            if contains_any(
                &text,
                &[
                    "iso 8601",
                    "rfc 3339",
                    "rfc3339",
                    "iso8601",
                    "date-time",
                    "yyyy-mm-ddt",
                ],
            ) =>
        {
            (TimeFormat::Rfc3339, 0.75)
        }
        (_, _) => match schema.example().and_then(|e| e.as_str()) {
            Some(example) if example.len() >= 20 && example.as_bytes().get(10) == Some(&b'T') => {
                (TimeFormat::Rfc3339, 0.7)
            }
            Some(example) if example.len() == 10 && example.as_bytes().get(4) == Some(&b'-') => {
                (TimeFormat::Date, 0.6)
            }
            _ => (TimeFormat::Rfc3339, 0.45),
        },
    })
}

/// The amount and its currency: a number beside a currency code, or an object holding both,
/// in the record or in one of its objects (`transaction_info.transaction_amount.value`).
fn amount(record: Schema) -> Option<(FieldGuess, FieldGuess)> {
    amount_here(record).or_else(|| {
        record
            .properties()
            .into_iter()
            .filter(|(n, s)| s.ty() == Type::Object && is_path_key(n))
            .find_map(|(name, inner)| {
                let (mut amount, mut currency) = amount_here(inner)?;
                if let FieldValue::Amount {
                    path, currency: c, ..
                } = &mut amount.value
                {
                    *path = format!("{name}.{path}");
                    *c = format!("{name}.{c}");
                }
                if let FieldValue::Currency { path, .. } = &mut currency.value {
                    *path = format!("{name}.{path}");
                }
                Some((amount, currency))
            })
    })
}

fn amount_here(record: Schema) -> Option<(FieldGuess, FieldGuess)> {
    if let Some((path, schema, _)) = find(record, AMOUNT_FIELDS, &[]) {
        if schema.ty() == Type::Object || !schema.properties().is_empty() {
            let (inner, inner_schema, _) = find(
                schema,
                &["value", "amount", "Amount", "minor_units", "units"],
                &[Type::String, Type::Integer, Type::Number],
            )?;
            let (currency, _, _) =
                find(schema, CURRENCY_FIELDS, &[Type::String]).or_else(|| {
                    find(record, CURRENCY_FIELDS, &[Type::String])
                        .map(|(c, s, r)| (format!("..{c}"), s, r))
                })?;
            let currency = match currency.strip_prefix("..") {
                Some(top) => top.to_owned(),
                None => format!("{path}.{currency}"),
            };
            return Some(money(&format!("{path}.{inner}"), inner_schema, &currency));
        }
        let (currency, _, _) = find(record, CURRENCY_FIELDS, &[Type::String])?;
        return Some(money(&path, schema, &currency));
    }
    None
}

fn money(path: &str, schema: Schema, currency: &str) -> (FieldGuess, FieldGuess) {
    let (format, confidence, why) = amount_format(schema);
    let amount = FieldGuess {
        field: "amount",
        value: FieldValue::Amount {
            path: path.to_owned(),
            currency: currency.to_owned(),
            format,
        },
        confidence,
        evidence: format!("the record's `{path}`: {why}"),
    };
    let currency = FieldGuess {
        field: "currency",
        value: FieldValue::Currency {
            path: currency.to_owned(),
            lower: false,
        },
        confidence: 0.9,
        evidence: format!("the record's `{currency}`"),
    };
    (amount, currency)
}

/// Minor units or major units, from the type first and the description second. A string
/// that says neither is a low-confidence guess: never a confident wrong amount.
pub fn amount_format(schema: Schema) -> (AmountFormat, f64, &'static str) {
    let text = schema.text();
    let minor = contains_any(
        &text,
        &[
            "minor unit",
            "smallest unit",
            "smallest currency unit",
            "cents",
            "lowest denomination",
            "smallest denomination",
            "in pence",
            "minor currency unit",
            "minor_units",
        ],
    );
    let major = contains_any(
        &text,
        &[
            "decimal",
            "major unit",
            "e.g. 10.",
            "for example, 10.",
            "two decimal",
            "decimal places",
            "fractional",
        ],
    );
    let example_has_point = schema.example().is_some_and(|e| match e {
        serde_json::Value::String(s) => s.contains('.'),
        serde_json::Value::Number(n) => n.is_f64(),
        _ => false,
    });
    match schema.ty() {
        Type::Integer if major && !minor => (
            AmountFormat::MinorUnits,
            0.5,
            "an integer, though its description speaks of decimals",
        ),
        Type::Integer if minor => (
            AmountFormat::MinorUnits,
            0.95,
            "an integer in minor units, as its description says",
        ),
        Type::Integer => (AmountFormat::MinorUnits, 0.8, "an integer, so minor units"),
        Type::Number if minor => (
            AmountFormat::MinorUnits,
            0.6,
            "a number, described in minor units",
        ),
        Type::Number => (
            AmountFormat::DecimalNumber,
            if major || example_has_point {
                0.9
            } else {
                0.75
            },
            "a JSON number in major units",
        ),
        _ if minor && !major => (
            AmountFormat::MinorUnits,
            0.8,
            "a string in minor units, as its description says",
        ),
        _ if major
            || example_has_point
            || matches!(
                schema.format(),
                Some("decimal" | "double" | "float" | "number")
            ) =>
        {
            (AmountFormat::Decimal, 0.85, "a decimal string")
        }
        _ => (
            AmountFormat::Decimal,
            0.4,
            "a string whose unit the document does not say; decimal is assumed",
        ),
    }
}

fn enum_field(
    field: &'static str,
    record: Schema,
    names: &[&str],
    table: &[(&'static str, &[&str])],
) -> FieldGuess {
    let Some((path, schema, _)) = find(record, names, &[Type::String]) else {
        return FieldGuess {
            field,
            value: FieldValue::Const("OTHER".into()),
            confidence: 0.3,
            evidence: format!("no {field} field: every record is OTHER"),
        };
    };
    let values = schema.enum_values();
    let map: Vec<(String, &'static str)> = values
        .iter()
        .filter_map(|v| protocol_value(table, v).map(|p| (v.clone(), p)))
        .collect();
    let confidence = match (values.len(), map.len()) {
        (0, _) => 0.3,
        (n, m) if m * 2 >= n => 0.8,
        _ => 0.6,
    };
    let evidence = if values.is_empty() {
        format!("the record's `{path}` declares no values: map them by hand")
    } else {
        format!(
            "the record's `{path}`: {} of {} declared values known",
            map.len(),
            values.len()
        )
    };
    FieldGuess {
        field,
        value: FieldValue::Enum { path, map },
        confidence,
        evidence,
    }
}

/// One account's balances: a list of amounts with currencies, in the body or under a key, or
/// one amount in the account object itself (`each: .` over an object is a list of one).
fn balances(response: Schema, guess: &mut OpGuess) {
    // A list whose entries hold money; else the object itself (an account with its balance).
    let listed = super::list::records(response)
        .and_then(|(path, entry, _)| amount(entry).map(|money| (path, money)));
    let (list_path, amount, currency, confidence, evidence, in_object) = match listed {
        Some((path, (amount, currency))) => {
            let evidence = format!("the answer's `{path}`");
            (path, amount, currency, 0.8, evidence, false)
        }
        None => {
            let balance = find(response, BALANCE_FIELDS, &[]);
            let (Some((path, schema, _)), Some((currency, _, _))) =
                (balance, find(response, CURRENCY_FIELDS, &[Type::String]))
            else {
                guess.block(
                    "FIELDS",
                    "the answer holds no list of amounts with currencies, nor a balance and a currency",
                );
                return;
            };
            let (amount, currency) = money(&path, schema, &currency);
            let evidence = format!("one balance in the object itself (`{path}`)");
            (".".to_owned(), amount, currency, 0.6, evidence, true)
        }
    };
    let account = find(
        response,
        &[
            "account",
            "account_id",
            "accountId",
            "balance_account_id",
            "balanceAccountId",
            "id",
        ],
        &[Type::String],
    );
    let at = find(
        response,
        &[
            "at",
            "as_of",
            "asOf",
            "timestamp",
            "updated_at",
            "updatedAt",
            "created_at",
            "time",
        ],
        &[Type::String, Type::Integer],
    )
    .and_then(|(path, schema, _)| time_format(schema, &path).map(|(f, c)| (path, f, c)))
    // An account's own times say when the account changed, not when its balance was read.
    .filter(|_| !in_object);
    let mut fields = Vec::new();
    let account_value = match &account {
        Some((path, _, _)) => FieldValue::Path(path.clone()),
        None => FieldValue::Template("{param.accountId}".into()),
    };
    fields.push(FieldGuess {
        field: "id",
        value: FieldValue::Template("{param.accountId}-balances".into()),
        confidence: 0.9,
        evidence: "one snapshot per account".into(),
    });
    fields.push(FieldGuess {
        field: "accountID",
        value: account_value,
        confidence: if account.is_some() { 0.7 } else { 0.9 },
        evidence: "the account asked for".into(),
    });
    fields.push(match at {
        Some((path, format, confidence)) => FieldGuess {
            field: "at",
            value: FieldValue::Time {
                path: path.clone(),
                format,
            },
            confidence,
            evidence: format!("the answer's `{path}`"),
        },
        None => FieldGuess {
            field: "at",
            value: FieldValue::Now,
            confidence: 0.9,
            evidence: "the answer has no time: the time it is read".into(),
        },
    });
    fields.push(FieldGuess {
        field: "balances",
        value: FieldValue::Each {
            path: list_path,
            fields: vec![amount, currency],
        },
        confidence,
        evidence,
    });
    guess.fields = fields;
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
