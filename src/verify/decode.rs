//! Strict decoding, as Formance's client decodes a connector's answers: every value checked
//! against its shape in the protocol model (required properties, types, enums, RFC 3339 times
//! with a zone, metadata of strings), plus what the client does to two fields by name:
//! `amount` is parsed as a base-10 integer in minor units, `currency` as UMN.

use serde_json::Value;

use super::time::parse_rfc3339;
use crate::ir::{Protocol, Shape, StringFormat, TypeDef};

/// Why a value does not decode, and where (a JSON pointer into the body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

impl DecodeError {
    fn at(pointer: &str, message: String) -> DecodeError {
        DecodeError {
            pointer: pointer.to_owned(),
            message,
        }
    }

    /// The index of the list item the error is in (`/3/status` -> 3).
    pub fn item(&self) -> Option<usize> {
        self.pointer.split('/').nth(1)?.parse().ok()
    }

    /// The field the error is about, the last step of the pointer.
    pub fn field(&self) -> &str {
        self.pointer.rsplit('/').next().unwrap_or_default()
    }
}

/// A base-10 integer string, as Go's `big.Int.SetString(s, 10)` accepts: an optional sign and
/// at least one digit; no point, exponent, spaces or underscores.
pub fn check_amount(amount: &str) -> Result<(), String> {
    let digits = amount.strip_prefix(['+', '-']).unwrap_or(amount);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("amount {amount:?} is not a base-10 integer string"));
    }
    Ok(())
}

/// UMN: `CODE` or `CODE/PRECISION`, the code upper-case (letters, then letters or digits).
pub fn check_currency(currency: &str) -> Result<(), String> {
    let (code, precision) = match currency.split_once('/') {
        Some((code, precision)) => (code, Some(precision)),
        None => (currency, None),
    };
    let code_ok = code.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let precision_ok = precision
        .is_none_or(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()));
    if code_ok && precision_ok {
        Ok(())
    } else {
        Err(format!(
            "currency {currency:?} is not UMN (CODE or CODE/PRECISION, upper case)"
        ))
    }
}

/// Checks `value` against `shape`; `pointer` is where it sits in the body.
pub fn check(
    protocol: &Protocol,
    shape: &Shape,
    value: &Value,
    pointer: &str,
) -> Result<(), DecodeError> {
    let fail = |message: String| Err(DecodeError::at(pointer, message));
    match shape {
        Shape::Any => Ok(()),
        Shape::Named(name) => check_named(protocol, name, value, pointer),
        Shape::String(string) => match value {
            Value::String(text) => check_text(string.format, text, pointer),
            other => fail(format!("must be a string, got {other}")),
        },
        Shape::Integer(_) if value.as_i64().is_some() => Ok(()),
        Shape::Integer(_) => fail(format!("must be an integer, got {value}")),
        Shape::Number(_) if value.is_number() => Ok(()),
        Shape::Number(_) => fail(format!("must be a number, got {value}")),
        Shape::Boolean if value.is_boolean() => Ok(()),
        Shape::Boolean => fail(format!("must be true or false, got {value}")),
        Shape::Array(array) => match value {
            Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                check(protocol, &array.items, item, &format!("{pointer}/{i}"))
            }),
            other => fail(format!("must be an array, got {other}")),
        },
        Shape::Map(inner) => match value {
            Value::Object(map) => map.iter().try_for_each(|(key, item)| {
                check(protocol, inner, item, &format!("{pointer}/{}", escape(key)))
            }),
            other => fail(format!("must be an object, got {other}")),
        },
    }
}

fn check_text(format: StringFormat, text: &str, pointer: &str) -> Result<(), DecodeError> {
    let ok = match format {
        StringFormat::Plain => true,
        StringFormat::DateTime => parse_rfc3339(text).is_some(),
        StringFormat::Date => parse_rfc3339(&format!("{text}T00:00:00Z")).is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::at(
            pointer,
            format!("{text:?} is not an RFC 3339 date-time with a zone"),
        ))
    }
}

fn check_named(
    protocol: &Protocol,
    name: &str,
    value: &Value,
    pointer: &str,
) -> Result<(), DecodeError> {
    match protocol.types.get(name) {
        None => Ok(()),
        Some(TypeDef::Alias(alias)) if alias.nullable && value.is_null() => Ok(()),
        Some(TypeDef::Alias(alias)) => check(protocol, &alias.shape, value, pointer),
        Some(TypeDef::Enum(def)) => match value {
            Value::String(text) if def.values.contains(text) => Ok(()),
            other => Err(DecodeError::at(
                pointer,
                format!(
                    "{other} is not a valid {name} (allowed: {})",
                    def.values.join(", ")
                ),
            )),
        },
        Some(TypeDef::Object(object)) => {
            let Value::Object(map) = value else {
                return Err(DecodeError::at(
                    pointer,
                    format!("{name} must be an object, got {value}"),
                ));
            };
            for field in &object.fields {
                let here = format!("{pointer}/{}", escape(&field.name));
                match map.get(&field.name) {
                    None if field.required => {
                        return Err(DecodeError::at(
                            &here,
                            format!("no value given for required property {}", field.name),
                        ));
                    }
                    None => {}
                    Some(Value::Null) if field.nullable || !field.required => {}
                    Some(Value::Null) if nullable(protocol, &field.shape) => {}
                    Some(Value::Null) => {
                        return Err(DecodeError::at(&here, format!("{} is null", field.name)));
                    }
                    Some(item) => {
                        check(protocol, &field.shape, item, &here)?;
                        check_by_name(&field.name, item, &here)?;
                    }
                }
            }
            Ok(())
        }
    }
}

fn nullable(protocol: &Protocol, shape: &Shape) -> bool {
    match shape {
        Shape::Named(name) => {
            matches!(protocol.types.get(name), Some(TypeDef::Alias(a)) if a.nullable)
        }
        _ => false,
    }
}

/// What the client does to `amount` and `currency` beyond their declared string type.
fn check_by_name(name: &str, value: &Value, pointer: &str) -> Result<(), DecodeError> {
    let Value::String(text) = value else {
        return Ok(());
    };
    let checked = match name {
        "amount" => check_amount(text),
        "currency" => check_currency(text),
        _ => Ok(()),
    };
    checked.map_err(|message| DecodeError::at(pointer, message))
}

/// JSON pointer escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
