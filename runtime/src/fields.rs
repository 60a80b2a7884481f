//! From provider values to protocol fields. A value that cannot be converted fails the
//! request with a 502 naming the operation, the field and the value: a connector must
//! never round an amount or invent a time.

use super::convert::{self, AmountFormat, ConversionError, Sign, TimeFormat};
use super::error::ConnectorError;
use super::metrics::Metrics;
use super::upstream::{Upstream, UpstreamRequest};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A provider value as a generated record type reads it: text borrowed from the provider's
/// answer (copied only when it has escapes), any other JSON value as it is. `null` is no
/// value: the field holding it is `None`, as for [`convert::lookup`].
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Text(Cow<'a, str>),
    Json(Value),
}

impl Raw<'_> {
    /// Text the connector made (a template's, a parameter's).
    pub fn from_text(text: String) -> Raw<'static> {
        Raw::Text(Cow::Owned(text))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for RawVisitor<'a> {
            type Value = Raw<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Raw<'a>, E> {
                Ok(Raw::Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Raw<'a>, E> {
                Ok(Raw::Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Raw<'a>, E> {
                Ok(Raw::Text(Cow::Owned(text)))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Raw<'a>, E> {
                Ok(Raw::Json(Value::Bool(value)))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Raw<'a>, E> {
                Ok(Raw::Json(Value::from(value)))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Raw<'a>, E> {
                Ok(Raw::Json(Value::from(value)))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Raw<'a>, E> {
                Ok(Raw::Json(Value::from(value)))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Raw<'a>, E> {
                Ok(Raw::Json(Value::Null))
            }

            // Objects, and numbers too with `arbitrary_precision`: serde_json's own value
            // reads them exactly.
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Raw<'a>, M::Error> {
                Value::deserialize(MapAccessDeserializer::new(map)).map(Raw::Json)
            }

            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Raw<'a>, S::Error> {
                Value::deserialize(SeqAccessDeserializer::new(seq)).map(Raw::Json)
            }
        }

        deserializer.deserialize_any(RawVisitor(PhantomData))
    }
}

/// What the conversions take: a JSON value walked from the record, or a [`Raw`] value a
/// generated record type read.
pub trait Provided {
    /// The value as protocol text ([`convert::to_text`]); `None` for `null`.
    fn text(&self) -> Option<Cow<'_, str>>;
    /// The same, owned, without a copy where the value already is owned text.
    fn into_text(self) -> Option<String>;
    /// The value as JSON.
    fn json(&self) -> Cow<'_, Value>;
    /// The text of a JSON string, `None` for any other value.
    fn as_str(&self) -> Option<&str>;
}

impl Provided for Value {
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::String(text) => Some(Cow::Borrowed(text)),
            other => convert::to_text(other).map(Cow::Owned),
        }
    }

    fn into_text(self) -> Option<String> {
        match self {
            Value::String(text) => Some(text),
            other => convert::to_text(&other),
        }
    }

    fn json(&self) -> Cow<'_, Value> {
        Cow::Borrowed(self)
    }

    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
}

impl Provided for Raw<'_> {
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Raw::Text(text) => Some(Cow::Borrowed(text)),
            Raw::Json(value) => value.text(),
        }
    }

    fn into_text(self) -> Option<String> {
        match self {
            Raw::Text(text) => Some(text.into_owned()),
            Raw::Json(value) => value.into_text(),
        }
    }

    fn json(&self) -> Cow<'_, Value> {
        match self {
            Raw::Text(text) => Cow::Owned(Value::String(text.clone().into_owned())),
            Raw::Json(value) => Cow::Borrowed(value),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Raw::Text(text) => Some(text),
            Raw::Json(value) => value.as_str(),
        }
    }
}

impl<P: Provided> Provided for &P {
    fn text(&self) -> Option<Cow<'_, str>> {
        (**self).text()
    }

    fn into_text(self) -> Option<String> {
        self.text().map(Cow::into_owned)
    }

    fn json(&self) -> Cow<'_, Value> {
        (**self).json()
    }

    fn as_str(&self) -> Option<&str> {
        (**self).as_str()
    }
}

/// A value as owned JSON, for the protocol fields that take one as it is.
pub fn json<P: Provided>(value: Option<P>) -> Option<Value> {
    value.map(|value| value.json().into_owned())
}

/// An object a generated record type reads into `T`; any other value (or none) reads as
/// `None`, as a path through it does for [`convert::lookup`].
#[derive(Debug)]
pub struct Object<T>(pub Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Self {
        Object(None)
    }
}

impl<T> Object<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

/// The records at one level of a list's `records` path: every element of an array (one
/// that is not an object reads as a record without fields), or, with `ONE` (the last
/// level), an object as the only record. Anything else holds no records.
#[derive(Debug)]
pub struct Listed<T, const ONE: bool>(pub Vec<T>);

impl<T, const ONE: bool> Default for Listed<T, ONE> {
    fn default() -> Self {
        Listed(Vec::new())
    }
}

/// Skips whatever `seq` holds: a value of the wrong kind is read past, not refused.
fn skip_seq<'de, S: SeqAccess<'de>>(mut seq: S) -> Result<(), S::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, M: MapAccess<'de>>(mut map: M) -> Result<(), M::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

macro_rules! read_as_none {
    ($($visit:ident: $ty:ty),*) => {
        $(fn $visit<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        })*
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::default())
        }
    };
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            read_as_none!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Object<T>, M::Error> {
                // A number with `arbitrary_precision` comes as a map too: its one key is no
                // field of `T`, so it reads as an object without the fields, like a lookup.
                T::deserialize(MapAccessDeserializer::new(map)).map(|value| Object(Some(value)))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Object<T>, S::Error> {
                skip_seq(seq).map(|()| Object(None))
            }
        }

        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de> + Default, const ONE: bool> Deserialize<'de> for Listed<T, ONE> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListedVisitor<T, const ONE: bool>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Default, const ONE: bool> Visitor<'de> for ListedVisitor<T, ONE> {
            type Value = Listed<T, ONE>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            read_as_none!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Listed<T, ONE>, S::Error> {
                let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Object(record)) = seq.next_element::<Object<T>>()? {
                    records.push(record.unwrap_or_default());
                }
                Ok(Listed(records))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Listed<T, ONE>, M::Error> {
                if !ONE {
                    return skip_map(map).map(|()| Listed(Vec::new()));
                }
                let record = T::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Listed(vec![record]))
            }
        }

        deserializer.deserialize_any(ListedVisitor::<T, ONE>(PhantomData))
    }
}

/// Protocol metadata from the values a generated record type read: as
/// [`convert::metadata`] makes it from a record's paths.
pub fn metadata(
    fields: &[(&str, Option<&Raw<'_>>)],
    flatten: &[(&str, Option<&Raw<'_>>)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (prefix, value) in flatten {
        if let Some(value) = value {
            convert::flatten_into(&mut out, prefix, &value.json());
        }
    }
    for (key, value) in fields {
        if let Some(text) = value.and_then(Provided::into_text) {
            out.insert((*key).to_owned(), text);
        }
    }
    out
}

/// Where a value goes: `operation.field`, for messages and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub operation: &'static str,
    pub field: &'static str,
    pub metrics: &'a Metrics,
}

impl Target<'_> {
    fn fail(&self, error: impl std::fmt::Display) -> ConnectorError {
        let name = format!("{}.{}", self.operation, self.field);
        self.metrics.conversion_failure(&name);
        super::health::note_conversion_failure(self.operation, self.field, error.to_string());
        tracing::warn!(
            field = % name, % error, "a provider value could not be converted"
        );
        ConnectorError::bad_gateway(format!("{}: field {}: {error}", self.operation, self.field))
    }

    fn missing(&self) -> ConnectorError {
        self.fail("the provider's record has no value for it")
    }

    pub fn required<T>(&self, value: Option<T>) -> Result<T, ConnectorError> {
        value.ok_or_else(|| self.missing())
    }

    /// Text as [`convert::to_text`] makes it, taking a string without copying it.
    pub fn text(&self, value: Option<impl Provided>) -> Option<String> {
        value?.into_text()
    }

    pub fn time(
        &self,
        value: Option<impl Provided>,
        format: &TimeFormat,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let Some(value) = value else { return Ok(None) };
        let time = match (format, value.as_str()) {
            (TimeFormat::Rfc3339, Some(text)) => convert::parse_rfc3339(text),
            _ => convert::parse_time(&value.json(), format),
        };
        time.map(Some).map_err(|e| self.fail(e))
    }

    /// A JSON integer that fits the protocol field's type.
    pub fn integer<T: TryFrom<i64>>(
        &self,
        value: Option<impl Provided>,
    ) -> Result<Option<T>, ConnectorError> {
        let Some(value) = value else { return Ok(None) };
        let value = value.json();
        value
            .as_i64()
            .and_then(|number| T::try_from(number).ok())
            .map(Some)
            .ok_or_else(|| self.fail(format!("expected an integer in range, got {value}")))
    }

    pub fn currency(
        &self,
        value: Option<impl Provided>,
        extra: &[(&str, u32)],
    ) -> Result<Option<String>, ConnectorError> {
        let Some(code) = value.as_ref().and_then(Provided::text) else {
            return Ok(None);
        };
        convert::umn(&code, extra)
            .map(Some)
            .map_err(|e| self.fail(e))
    }

    pub fn amount(
        &self,
        value: Option<impl Provided>,
        currency: Option<impl Provided>,
        format: AmountFormat,
        sign: Sign,
        extra: &[(&str, u32)],
    ) -> Result<Option<String>, ConnectorError> {
        let Some(value) = value else { return Ok(None) };
        let Some(code) = currency.as_ref().and_then(Provided::text) else {
            return Err(self.fail("the amount has no currency, so its precision is unknown"));
        };
        let currency = convert::currency(&code, extra).map_err(|e| self.fail(e))?;
        currency
            .minor_units(&value.json(), format, sign)
            .map(Some)
            .map_err(|e| self.fail(e))
    }

    pub fn enumeration<T: Copy>(
        &self,
        value: Option<impl Provided>,
        table: &[(&str, T)],
        fallback: Option<T>,
    ) -> Result<Option<T>, ConnectorError> {
        let Some(text) = value.as_ref().and_then(Provided::text) else {
            return Ok(None);
        };
        let (mapped, fell_back) =
            convert::map_enum(&text, table, fallback).map_err(|e| self.fail(e))?;
        if fell_back {
            let name = format!("{}.{}", self.operation, self.field);
            self.metrics.enum_fallback(&name);
            tracing::info!(
                field = % name, value = % text,
                "an unknown provider value went to the fallback"
            );
        }
        Ok(Some(mapped))
    }

    pub fn each<T>(
        &self,
        value: Option<&Value>,
        item: impl Fn(&Value) -> Result<T, ConnectorError>,
    ) -> Result<Vec<T>, ConnectorError> {
        match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(item).collect(),
            // One object (`each: .` on an account with its balances) is one element.
            Some(object @ Value::Object(_)) => Ok(vec![item(object)?]),
            Some(other) => Err(self.fail(format!("expected a list or an object, got {other}"))),
        }
    }

    /// A user function's result, with its error put in context.
    pub fn custom<T>(&self, result: Result<T, ConversionError>) -> Result<T, ConnectorError> {
        result.map_err(|e| self.fail(e))
    }
}

/// The record of `records` whose fields have the wanted texts (`from_list`'s `where`).
pub fn find_record<'r>(
    records: &'r [Arc<Value>],
    wanted: &[(&[convert::Step], String)],
) -> Option<&'r Value> {
    records
        .iter()
        .find(|record| {
            wanted.iter().all(|(path, text)| {
                convert::lookup(record, path)
                    .and_then(convert::to_text)
                    .is_some_and(|found| found == *text)
            })
        })
        .map(|record| record.as_ref())
}

/// `id "acc-1"`, for the 404 of a record [`find_record`] did not find.
pub fn describe_match(wanted: &[(&[convert::Step], String)]) -> String {
    let parts: Vec<String> = wanted
        .iter()
        .map(|(path, text)| {
            let keys: Vec<String> = path
                .iter()
                .map(|step| match step {
                    convert::Step::Key(key) => (*key).to_owned(),
                    convert::Step::Index(index) => format!("[{index}]"),
                })
                .collect();
            format!("{} {text:?}", keys.join("."))
        })
        .collect();
    parts.join(" and ")
}

/// A value, unless it is an empty string (`empty: missing`).
pub fn non_empty<P: Provided>(value: Option<P>) -> Option<P> {
    value.filter(|value| value.as_str() != Some(""))
}

/// The text a `switch` compares with its cases: a string as it is, `true`, `12`.
pub fn case_text(value: Option<impl Provided>) -> Option<String> {
    value?.into_text()
}

/// The case of `switch: { by: sign }` for a provider number (or numeric text): `negative`,
/// `zero` or `positive`; none for a value that is not a number.
pub fn sign_case(value: Option<impl Provided>) -> Option<String> {
    let text = case_text(value)?;
    let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let numeric = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !numeric {
        return None;
    }
    let case = if digits.bytes().all(|b| b == b'0' || b == b'.') {
        "zero"
    } else if text.starts_with('-') {
        "negative"
    } else {
        "positive"
    };
    Some(case.to_owned())
}

/// How a provider takes Formance's idempotency key (a payment's reference, an
/// `Idempotency-Key`): `min_length` to `max_length` characters of `charset`. A key that
/// fits is sent as it is; another is replaced by a digest of it that fits, the same every
/// time, so that a retry sends the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyShape {
    pub min_length: usize,
    pub max_length: usize,
    pub charset: KeyCharset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCharset {
    /// Any characters.
    Any,
    /// ASCII letters and digits.
    Alphanumeric,
    /// Lower-case hexadecimal digits.
    Hex,
    /// A UUID, `8-4-4-4-12` hexadecimal digits (the digest is a version 8 UUID).
    Uuid,
}

/// The key as the provider takes it: see [`KeyShape`].
pub fn provider_key(key: &str, shape: &KeyShape) -> String {
    if fits(key, shape) {
        return key.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let bytes = digest.as_ref();
    match shape.charset {
        KeyCharset::Uuid => {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&bytes[..16]);
            uuid[6] = (uuid[6] & 0x0f) | 0x80;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        }
        KeyCharset::Hex => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            hex.chars().take(shape.max_length.min(64)).collect()
        }
        KeyCharset::Any | KeyCharset::Alphanumeric => {
            const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            let mut bits = 0u32;
            let mut pending = 0u32;
            let mut out = String::new();
            for byte in bytes {
                pending = (pending << 8) | u32::from(*byte);
                bits += 8;
                while bits >= 5 && out.len() < shape.max_length {
                    bits -= 5;
                    out.push(char::from(ALPHABET[((pending >> bits) & 31) as usize]));
                }
            }
            out
        }
    }
}

fn fits(key: &str, shape: &KeyShape) -> bool {
    let length = key.chars().count();
    if length < shape.min_length || length > shape.max_length {
        return false;
    }
    match shape.charset {
        KeyCharset::Any => true,
        KeyCharset::Alphanumeric => key.bytes().all(|b| b.is_ascii_alphanumeric()),
        KeyCharset::Hex => key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        KeyCharset::Uuid => {
            let groups: Vec<&str> = key.split('-').collect();
            groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
                && groups
                    .iter()
                    .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
        }
    }
}

/// A path parameter's text, percent-encoded for a URL path segment.
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }

    encoded
}

/// The first present value.
pub fn first_of<P: Provided>(values: impl IntoIterator<Item = Option<P>>) -> Option<P> {
    values
        .into_iter()
        .flatten()
        .find(|value| !value.json().is_null())
}

/// The object at `path` in a provider's answer (`text` is the path as connector.yaml
/// writes it); a 502 naming the operation when there is none.
pub fn record_at<'a>(
    operation: &str,
    body: &'a Value,
    path: &[convert::Step],
    text: &str,
) -> Result<&'a Value, ConnectorError> {
    convert::lookup(body, path).ok_or_else(|| {
        ConnectorError::bad_gateway(format!(
            "{operation}: the provider's answer has nothing at `{text}`"
        ))
    })
}

/// One of a payment's `steps`: `request` sent for `operation`, and the object at `record` in
/// the answer. A 404 says the payment names something the provider does not have (a wallet,
/// an account): a final 400 for Formance, not a fault it would retry forever.
pub async fn step(
    upstream: &Upstream,
    operation: &'static str,
    step: &str,
    request: &UpstreamRequest,
    record: &[convert::Step],
    record_text: &str,
) -> Result<Value, ConnectorError> {
    let response = upstream
        .send(operation, request)
        .await
        .map_err(|error| match error.status {
            axum::http::StatusCode::NOT_FOUND => ConnectorError::bad_request(format!(
                "{operation}: step `{step}` found nothing at the provider: {}",
                error.detail
            )),
            _ => error,
        })?;
    record_at(operation, &response.body, record, record_text).cloned()
}

/// Sets `value` at the dotted `keys` of a provider request body, making the objects on
/// the way. A null or missing value leaves the key out.
pub fn put(body: &mut Value, keys: &[&str], value: Option<Value>) {
    let (Some(value), Some((last, parents))) = (value.filter(|v| !v.is_null()), keys.split_last())
    else {
        return;
    };
    let mut object = body;
    for key in parents {
        if !object.get(*key).is_some_and(Value::is_object) {
            object[*key] = Value::Object(serde_json::Map::new());
        }
        object = &mut object[*key];
    }

    object[*last] = value;
}

/// The provider's request field `field`, for a 400 that names it.
pub fn request_field<T>(
    field: &str,
    value: Result<T, ConversionError>,
) -> Result<T, ConnectorError> {
    value.map_err(|error| ConnectorError::bad_request(format!("{field}: {error}")))
}

/// A protocol amount (minor units) as the provider writes it, at the precision of
/// `currency` (UMN `EUR/2` or a code): `"1234"` EUR -> `"12.34"`, or `12.34` as a
/// number, or `1234` in minor units.
pub fn provider_amount(
    amount: Option<Value>,
    currency: Option<Value>,
    format: AmountFormat,
    as_number: bool,
    extra: &[(&str, u32)],
) -> Result<Option<Value>, ConversionError> {
    let Some(amount) = amount.as_ref().and_then(convert::to_text) else {
        return Ok(None);
    };
    let code = currency
        .as_ref()
        .and_then(convert::to_text)
        .ok_or_else(|| ConversionError::new("the amount has no currency"))?;
    let precision = convert::currency(&code, extra)?.precision();
    let text = match format {
        AmountFormat::Decimal => convert::decimal_from_minor(&amount, precision)?,
        AmountFormat::MinorUnits if convert::is_minor_units(&amount) => amount,
        AmountFormat::MinorUnits => {
            return Err(ConversionError::new(format!(
                "expected an amount in minor units, got {amount:?}"
            )));
        }
    };
    if !as_number {
        return Ok(Some(Value::String(text)));
    }

    serde_json::from_str::<serde_json::Number>(&text)
        .map(|number| Some(Value::Number(number)))
        .map_err(|_| ConversionError::new(format!("{text} cannot be written as a JSON number")))
}

/// A protocol time (RFC 3339, as Formance sends it and `now` gives it) as the provider
/// writes it: RFC 3339, Unix seconds or milliseconds (JSON integers), or a pattern in the
/// provider's zone (`%Y-%m-%d` for a date alone).
pub fn provider_time(
    value: Option<Value>,
    format: &TimeFormat,
) -> Result<Option<Value>, ConversionError> {
    let Some(text) = value.as_ref().and_then(convert::to_text) else {
        return Ok(None);
    };
    let time = convert::parse_time(&Value::String(text), &TimeFormat::Rfc3339)?;
    let written = convert::format_time(time, format)?;
    let number = matches!(format, TimeFormat::UnixSeconds | TimeFormat::UnixMillis);
    Ok(Some(match written.parse::<i64>() {
        Ok(n) if number => Value::from(n),
        _ => Value::String(written),
    }))
}

/// A protocol currency (UMN `EUR/2`) as the provider's code: `EUR`, or `eur`.
pub fn provider_currency(
    currency: Option<Value>,
    lower: bool,
    extra: &[(&str, u32)],
) -> Result<Option<Value>, ConversionError> {
    let Some(code) = currency.as_ref().and_then(convert::to_text) else {
        return Ok(None);
    };
    let currency = convert::currency(&code, extra)?;
    let code = if lower {
        currency.code().to_ascii_lowercase()
    } else {
        currency.code().to_owned()
    };
    Ok(Some(Value::String(code)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::config::UpstreamSettings;
    use super::super::testing::{block_on, serve};
    use super::*;

    #[test]
    fn signs_pick_cases_of_numbers_and_numeric_texts() {
        let cases = [
            (json!(-12.5), Some("negative")),
            (json!("-0.01"), Some("negative")),
            (json!(0), Some("zero")),
            (json!("-0.00"), Some("zero")),
            (json!(7), Some("positive")),
            (json!("+3"), Some("positive")),
            (json!("12abc"), None),
            (json!("-"), None),
            (json!(true), None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                sign_case(Some(value.clone())).as_deref(),
                expected,
                "{value}"
            );
        }
        assert_eq!(sign_case(None::<Value>), None);
    }

    #[test]
    fn protocol_times_are_written_in_the_providers_format() {
        let at = Some(Value::String("2026-03-29T23:30:05.25Z".to_owned()));
        let cases = [
            (TimeFormat::Rfc3339, Value::from("2026-03-29T23:30:05Z")),
            (TimeFormat::UnixSeconds, Value::from(1_774_827_005_i64)),
            (TimeFormat::UnixMillis, Value::from(1_774_827_005_250_i64)),
            (
                TimeFormat::Custom {
                    pattern: "%Y-%m-%d",
                    utc_offset_seconds: Some(3_600),
                },
                // Already the next day one hour east of UTC.
                Value::from("2026-03-30"),
            ),
        ];
        for (format, expected) in cases {
            assert_eq!(
                provider_time(at.clone(), &format).unwrap(),
                Some(expected),
                "{format:?}"
            );
        }
        assert_eq!(provider_time(None, &TimeFormat::Rfc3339).unwrap(), None);
        let not_a_time = Some(Value::String("yesterday".to_owned()));
        assert!(provider_time(not_a_time, &TimeFormat::UnixSeconds).is_err());
    }

    #[test]
    fn a_step_gives_its_record_and_a_404_is_a_final_400() {
        let (url, received) = serve(|request| {
            if request.line.contains("/wallets/w1 ") {
                (200, Vec::new(), r#"{"data":{"owner":"u7"}}"#.to_owned())
            } else {
                (
                    404,
                    Vec::new(),
                    r#"{"message":"no such wallet"}"#.to_owned(),
                )
            }
        });
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let wallet = |id: &str| UpstreamRequest {
            method: "GET".to_owned(),
            path: format!("/wallets/{id}"),
            ..Default::default()
        };
        let data = [convert::Step::Key("data")];
        let found = block_on(step(
            &upstream,
            "createPayout",
            "wallet",
            &wallet("w1"),
            &data,
            "data",
        ));
        assert_eq!(found.unwrap(), serde_json::json!({"owner": "u7"}));
        let missing = block_on(step(
            &upstream,
            "createPayout",
            "wallet",
            &wallet("w2"),
            &data,
            "data",
        ))
        .unwrap_err();
        assert_eq!(
            missing.status,
            axum::http::StatusCode::BAD_REQUEST,
            "{missing:?}"
        );
        assert!(
            missing.detail.contains("step `wallet`"),
            "{}",
            missing.detail
        );
        assert_eq!(received.lock().unwrap().len(), 2, "a 404 is not retried");
    }

    #[test]
    fn a_key_that_fits_is_sent_as_it_is_and_another_becomes_a_stable_digest() {
        let short = KeyShape {
            min_length: 6,
            max_length: 18,
            charset: KeyCharset::Alphanumeric,
        };
        assert_eq!(provider_key("payout42", &short), "payout42");
        let formance = "3f2b8c1e-9d4a-4e8b-b7c2-5a1d0e9f8c7b";
        let reshaped = provider_key(formance, &short);
        assert_eq!(reshaped.len(), 18);
        assert!(
            reshaped.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{reshaped}"
        );
        assert_eq!(
            reshaped,
            provider_key(formance, &short),
            "the same every time"
        );
        assert_ne!(
            reshaped,
            provider_key("3f2b8c1e-9d4a-4e8b-b7c2-5a1d0e9f8c7c", &short)
        );
        let uuid = KeyShape {
            min_length: 16,
            max_length: 36,
            charset: KeyCharset::Uuid,
        };
        assert_eq!(provider_key(formance, &uuid), formance);
        let made = provider_key("payout/2026/000042", &uuid);
        assert!(fits(&made, &uuid), "{made}");
        assert_eq!(&made[14..15], "8", "a version 8 UUID: {made}");
        let hex = KeyShape {
            min_length: 1,
            max_length: 10,
            charset: KeyCharset::Hex,
        };
        assert_eq!(provider_key("DEADBEEF", &hex).len(), 10);
    }

    /// The shapes connector-gen writes for a list: a page with its records and a paging
    /// field, a record with a nested object.
    #[derive(Default, serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        data: Listed<Record<'a>, true>,
        #[serde(borrow)]
        has_more: Option<Raw<'a>>,
    }

    #[derive(Default, serde::Deserialize)]
    struct Record<'a> {
        #[serde(borrow)]
        id: Option<Raw<'a>>,
        #[serde(borrow)]
        amount: Option<Raw<'a>>,
        #[serde(borrow, default)]
        owner: Object<Owner<'a>>,
    }

    #[derive(Default, serde::Deserialize)]
    struct Owner<'a> {
        #[serde(borrow)]
        name: Option<Raw<'a>>,
    }

    #[test]
    fn typed_records_read_what_lookups_would_and_borrow_plain_strings() {
        let text = r#"{"data": [
            {"id": "a1", "amount": 12.50, "owner": {"name": "Ann", "age": 3}, "other": [1, {"x": 2}]},
            {"id": "b\"2", "amount": "7", "owner": "not an object"},
            {"id": null, "owner": 17},
            "not a record"
        ], "has_more": true, "next": {"deep": [1]}}"#;
        let page: Page<'_> = serde_json::from_str(text).unwrap();
        let records = &page.data.0;
        assert_eq!(records.len(), 4);
        assert!(matches!(
            &records[0].id,
            Some(Raw::Text(Cow::Borrowed("a1")))
        ));
        assert!(matches!(&records[1].id, Some(Raw::Text(Cow::Owned(id))) if id == "b\"2"));
        assert_eq!(records[2].id, None, "null is no value");
        // Exact number text, as a JSON value's.
        let amount = records[0].amount.as_ref().unwrap();
        assert_eq!(amount.text().as_deref(), Some("12.50"));
        assert_eq!(
            amount.json().as_ref(),
            &serde_json::from_str::<Value>("12.50").unwrap()
        );
        assert_eq!(
            records[0]
                .owner
                .get()
                .and_then(|o| o.name.as_ref())
                .and_then(Provided::into_text),
            Some("Ann".to_owned())
        );
        assert!(records[1].owner.get().is_none() && records[2].owner.get().is_none());
        assert!(
            records[3].id.is_none(),
            "a non-object reads as a record without fields"
        );
        assert_eq!(
            page.has_more.as_ref().map(|v| v.json().into_owned()),
            Some(Value::Bool(true))
        );
    }

    #[test]
    fn records_levels_take_an_object_only_at_the_last_level() {
        let one: Listed<Owner<'_>, true> = serde_json::from_str(r#"{"name": "x"}"#).unwrap();
        assert_eq!(one.0.len(), 1);
        let none: Listed<Owner<'_>, false> = serde_json::from_str(r#"{"name": "x"}"#).unwrap();
        assert!(none.0.is_empty());
        let scalar: Listed<Owner<'_>, true> = serde_json::from_str("12").unwrap();
        assert!(scalar.0.is_empty());
    }

    #[test]
    fn conversions_take_typed_values_like_json_ones() {
        let metrics = Metrics::default();
        let t = Target {
            operation: "getTransactions",
            field: "amount",
            metrics: &metrics,
        };
        let amount = Raw::Json(serde_json::from_str("-12.5").unwrap());
        let currency = Raw::Text(Cow::Borrowed("eur"));
        let typed = t
            .amount(
                Some(&amount),
                Some(&currency),
                AmountFormat::Decimal,
                Sign::Absolute,
                &[],
            )
            .unwrap();
        let json = t
            .amount(
                Some(amount.json().into_owned()),
                Some(Value::String("eur".into())),
                AmountFormat::Decimal,
                Sign::Absolute,
                &[],
            )
            .unwrap();
        assert_eq!(typed, json);
        assert_eq!(typed.as_deref(), Some("1250"));
        let time = Raw::Text(Cow::Borrowed("2026-11-24T14:00:05+02:00"));
        assert_eq!(
            t.time(Some(&time), &TimeFormat::Rfc3339).unwrap(),
            t.time(Some(time.json().into_owned()), &TimeFormat::Rfc3339)
                .unwrap()
        );
        assert_eq!(
            t.currency(Some(&currency), &[]).unwrap().as_deref(),
            Some("EUR/2")
        );
        let settings = Raw::Json(serde_json::json!({"a": {"b": 1}, "c": "d"}));
        let country = Raw::Text(Cow::Borrowed("NO"));
        let typed = metadata(
            &[("country", Some(&country))],
            &[("settings", Some(&settings))],
        );
        let record = serde_json::json!({"country": "NO", "settings": {"a": {"b": 1}, "c": "d"}});
        let json = convert::metadata(
            &record,
            &[("country", &[convert::Step::Key("country")])],
            &[("settings", &[convert::Step::Key("settings")])],
        );
        assert_eq!(typed, json);
    }
}
