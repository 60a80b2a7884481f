//! The mapping's field expressions, evaluated on one provider record with the runtime
//! functions the generated record converters call (`Target::text`, `time`, `amount`,
//! `enumeration`..., `convert::lookup`, `convert::metadata`, `fields::first_of`...). Each
//! branch here mirrors one in render/mapped.rs (`optional_value`, `source`), so a record
//! previewed here converts exactly as the generated crate converts it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use connector_runtime::convert::{self, AmountFormat, Sign};
use connector_runtime::fields::{self, Target};
use connector_runtime::metrics::Metrics;
use connector_runtime::{ConnectorError, convert::DateTime, convert::Utc};
use serde_json::Value;

use super::statics::{intern, steps, time_format};
use crate::ir::{Field, IntegerBits, ObjectDef, Operation, Protocol, Shape, StringFormat, TypeDef};
use crate::mapping::{self, Conversion, Expr, FieldMapping, Source, Span, TemplatePart};

/// A protocol value in the order the generated models serialize it: objects keep their
/// fields' order in the spec, as the derived `Serialize` writes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Value(Value),
    Object(Vec<(String, Out)>),
    Array(Vec<Out>),
}

impl Out {
    /// The value as plain JSON (object keys then sorted), for comparisons.
    pub fn to_json(&self) -> Value {
        match self {
            Out::Value(value) => value.clone(),
            Out::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
            Out::Array(items) => Value::Array(items.iter().map(Out::to_json).collect()),
        }
    }

    pub fn field(&self, name: &str) -> Option<&Out> {
        match self {
            Out::Object(fields) => fields.iter().find(|(key, _)| key == name).map(|(_, v)| v),
            _ => None,
        }
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut Out> {
        match self {
            Out::Object(fields) => fields
                .iter_mut()
                .find(|(key, _)| key == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl serde::Serialize for Out {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Out::Value(value) => value.serialize(serializer),
            Out::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Out::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// Why a record could not be converted: the field (dotted, `balances[1].amount` inside an
/// `each`), the provider value it was computed from, the runtime's message (the detail of
/// the 502 the connector would answer) and where connector.yaml maps the field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub value: Option<Value>,
    pub message: String,
    pub span: Span,
}

/// What one operation's record conversion needs besides the record.
pub struct Interpreter<'a> {
    pub protocol: &'a Protocol,
    pub op: &'a Operation,
    pub operation: &'static str,
    pub metrics: &'a Metrics,
    pub currencies: &'a [(&'static str, u32)],
    /// The `for_each` list's record this one was listed for (`{parent.id}`), if given.
    pub parent: Option<&'a Value>,
    /// Things the preview could not show as the connector would (a Rust function's field).
    pub notes: RefCell<BTreeSet<String>>,
}

impl<'a> Interpreter<'a> {
    pub fn new(
        protocol: &'a Protocol,
        op: &'a Operation,
        metrics: &'a Metrics,
        currencies: &'a [(&'static str, u32)],
        parent: Option<&'a Value>,
    ) -> Self {
        Self {
            protocol,
            op,
            operation: intern(&op.id),
            metrics,
            currencies,
            parent,
            notes: RefCell::new(BTreeSet::new()),
        }
    }

    fn target(&self, field: &str) -> Target<'a> {
        Target {
            operation: self.operation,
            field: intern(field),
            metrics: self.metrics,
        }
    }

    /// One record as the protocol object `object` (`object_literal` in render/mapped.rs).
    pub fn object(
        &self,
        object: &ObjectDef,
        mappings: &[FieldMapping],
        record: &Value,
        prefix: &str,
    ) -> Result<Out, FieldError> {
        let mut out = Vec::with_capacity(object.fields.len());
        for field in &object.fields {
            let value = match mappings.iter().find(|m| m.field == field.name) {
                Some(mapping) => self.field_value(field, &mapping.value, record, prefix)?,
                None => None,
            };
            match value {
                Some(value) => out.push((field.name.clone(), value)),
                // An optional field left out is not written; a nullable one is `null`.
                None if field.required => out.push((field.name.clone(), Out::Value(Value::Null))),
                None => {}
            }
        }
        Ok(Out::Object(out))
    }

    fn field_value(
        &self,
        field: &Field,
        expr: &Expr,
        record: &Value,
        prefix: &str,
    ) -> Result<Option<Out>, FieldError> {
        let path = format!("{prefix}{}", field.name);
        let t = self.target(&field.name);
        let value = self.optional(field, expr, record, &t, &path)?;
        if field.required && !field.nullable {
            // `t.required(value)?`: a missing value fails the record.
            return t.required(value).map(Some).map_err(|error| FieldError {
                field: path,
                value: self.raw(expr, record),
                message: error.detail,
                span: expr.value_span.clone(),
            });
        }
        Ok(value)
    }

    /// `Option<T>` of one field, serialized (`optional_value` in render/mapped.rs).
    fn optional(
        &self,
        field: &Field,
        expr: &Expr,
        record: &Value,
        t: &Target<'a>,
        path: &str,
    ) -> Result<Option<Out>, FieldError> {
        let shape = self.protocol.resolve(&field.shape);
        let fail = |value: Option<Value>, error: ConnectorError, span: &Span| FieldError {
            field: path.to_owned(),
            value,
            message: error.detail,
            span: span.clone(),
        };
        match &expr.source {
            Source::Rust(function) => {
                self.notes.borrow_mut().insert(format!(
                    "{path} is computed by the Rust function `{function}`, which preview cannot run: shown as a placeholder"
                ));
                return Ok(Some(Out::Value(Value::String(format!("<{function}>")))));
            }
            Source::Absent => return Ok(None),
            Source::Switch {
                on,
                by_sign,
                cases,
                default,
            } => {
                let on = self.source(on, record);
                let on = if *by_sign {
                    fields::sign_case(on)
                } else {
                    fields::case_text(on)
                };
                let chosen = cases
                    .iter()
                    .find(|(text, _)| Some(text.as_str()) == on.as_deref())
                    .map(|(_, case)| case)
                    .or(default.as_deref());
                let Some(case) = chosen else { return Ok(None) };
                let mut case = case.clone();
                if case.conversion.is_none() {
                    case.conversion = expr.conversion.clone();
                }
                return self.optional(field, &case, record, t, path);
            }
            Source::Metadata { fields, flatten } => {
                let pairs =
                    |list: &[(String, mapping::Path)]| -> Vec<(&'static str, Vec<convert::Step>)> {
                        list.iter()
                            .map(|(key, path)| (intern(key), steps(&path.steps)))
                            .collect()
                    };
                let (fields, flatten) = (pairs(fields), pairs(flatten));
                fn as_refs<'l>(
                    list: &'l [(&'static str, Vec<convert::Step>)],
                ) -> Vec<(&'static str, &'l [convert::Step])> {
                    list.iter()
                        .map(|(key, path)| (*key, path.as_slice()))
                        .collect()
                }
                let metadata = convert::metadata(record, &as_refs(&fields), &as_refs(&flatten));
                return Ok(Some(Out::Value(to_json(&metadata))));
            }
            Source::Each { path: each, fields } => {
                let Shape::Array(array) = shape else {
                    return Ok(None);
                };
                let Some((_, object)) = self.protocol.object(&array.items) else {
                    return Ok(None);
                };
                let found = convert::lookup(record, &steps(&each.steps));
                let inner: RefCell<Option<FieldError>> = RefCell::new(None);
                let index = Cell::new(0usize);
                let items = t.each(found, |element| {
                    let prefix = format!("{path}[{}].", index.get());
                    index.set(index.get() + 1);
                    self.object(object, fields, element, &prefix)
                        .map_err(|error| {
                            *inner.borrow_mut() = Some(error);
                            ConnectorError::internal("an element failed")
                        })
                });
                return match items {
                    Ok(items) => Ok(Some(Out::Array(items))),
                    Err(error) => Err(inner
                        .into_inner()
                        .unwrap_or_else(|| fail(found.cloned(), error, &expr.value_span))),
                };
            }
            Source::Items(items) => {
                let Shape::Array(array) = shape else {
                    return Ok(None);
                };
                let Some((_, object)) = self.protocol.object(&array.items) else {
                    return Ok(None);
                };
                let built = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        self.object(object, &item.fields, record, &format!("{path}[{index}]."))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Some(Out::Array(built)));
            }
            Source::Now => return Ok(Some(Out::Value(to_json(&Utc::now())))),
            _ => {}
        }
        let value = self.source(expr, record);
        let conversion_span = expr
            .conversion_span
            .clone()
            .unwrap_or_else(|| expr.value_span.clone());
        let converted = match (shape, &expr.conversion) {
            (Shape::String(s), conversion) if s.format != StringFormat::Plain => {
                let format = match conversion {
                    Some(Conversion::Time(format)) => time_format(format),
                    _ => convert::TimeFormat::Rfc3339,
                };
                let time: Option<DateTime<Utc>> = t
                    .time(value.clone(), &format)
                    .map_err(|e| fail(value.clone(), e, &conversion_span))?;
                match s.format {
                    StringFormat::Date => time.map(|time| to_json(&time.date_naive())),
                    _ => time.map(|time| to_json(&time)),
                }
            }
            (Shape::String(_), Some(Conversion::Currency { .. })) => t
                .currency(value.clone(), self.currencies)
                .map_err(|e| fail(value.clone(), e, &conversion_span))?
                .map(Value::String),
            (
                Shape::String(_),
                Some(Conversion::Amount {
                    currency,
                    format,
                    sign,
                }),
            ) => {
                let currency = self.source(currency, record);
                let format = match format {
                    mapping::AmountFormat::Decimal | mapping::AmountFormat::DecimalNumber => {
                        AmountFormat::Decimal
                    }
                    mapping::AmountFormat::MinorUnits | mapping::AmountFormat::MinorUnitsNumber => {
                        AmountFormat::MinorUnits
                    }
                };
                let sign = match sign {
                    mapping::Sign::Keep => Sign::Keep,
                    mapping::Sign::Absolute => Sign::Absolute,
                    mapping::Sign::Negate => Sign::Negate,
                };
                t.amount(value.clone(), currency, format, sign, self.currencies)
                    .map_err(|e| fail(value.clone(), e, &conversion_span))?
                    .map(Value::String)
            }
            (Shape::String(_), _) => t.text(value).map(Value::String),
            (Shape::Named(name), conversion) => self
                .enum_value(name, expr, conversion.as_ref(), value.clone(), t)
                .map_err(|e| fail(value.clone(), e, &conversion_span))?,
            (Shape::Integer(integer), _) => {
                let result = match integer.bits {
                    IntegerBits::I32 => t.integer::<i32>(value.clone()).map(|v| v.map(Value::from)),
                    IntegerBits::I64 => t.integer::<i64>(value.clone()).map(|v| v.map(Value::from)),
                };
                result.map_err(|e| fail(value.clone(), e, &expr.value_span))?
            }
            (Shape::Number(_), _) => value
                .and_then(|value| value.as_f64())
                .map(|number| to_json(&number)),
            (Shape::Boolean, _) => value.and_then(|value| value.as_bool()).map(Value::Bool),
            (Shape::Map(_), _) => value.and_then(|value| {
                value.as_object().map(|object| {
                    let map: std::collections::BTreeMap<String, String> = object
                        .iter()
                        .filter_map(|(key, value)| {
                            convert::to_text(value).map(|text| (key.clone(), text))
                        })
                        .collect();
                    to_json(&map)
                })
            }),
            (Shape::Any, _) => value,
            (Shape::Array(_), _) => None,
        };
        Ok(converted.map(Out::Value))
    }

    fn enum_value(
        &self,
        name: &str,
        expr: &Expr,
        conversion: Option<&Conversion>,
        value: Option<Value>,
        t: &Target<'a>,
    ) -> Result<Option<Value>, ConnectorError> {
        let Some(TypeDef::Enum(def)) = self.protocol.types.get(name) else {
            return Ok(None);
        };
        match (conversion, &expr.source) {
            (Some(Conversion::Enum { map, fallback, .. }), _) => {
                let table: Vec<(&str, &str)> = map
                    .iter()
                    .filter(|(_, to)| def.values.contains(to))
                    .map(|(from, to)| (from.as_str(), to.as_str()))
                    .collect();
                let fallback = fallback
                    .as_deref()
                    .filter(|f| def.values.iter().any(|v| v == f));
                Ok(t.enumeration(value, &table, fallback)?
                    .map(|v| Value::String(v.to_owned())))
            }
            (None, Source::Const(Value::String(constant))) if def.values.contains(constant) => {
                Ok(Some(Value::String(constant.clone())))
            }
            _ => Ok(None),
        }
    }

    /// The provider value a field is computed from, for failure reports.
    fn raw(&self, expr: &Expr, record: &Value) -> Option<Value> {
        match &expr.source {
            Source::Each { path, .. } => convert::lookup(record, &steps(&path.steps)).cloned(),
            Source::Switch { on, .. } => self.source(on, record),
            _ => self.source(expr, record),
        }
    }

    /// An expression's raw value, its default applied (`source` in render/mapped.rs).
    pub fn source(&self, expr: &Expr, record: &Value) -> Option<Value> {
        let raw = match &expr.source {
            Source::Path(path) | Source::Initiation(path) => {
                convert::lookup(record, &steps(&path.steps)).cloned()
            }
            Source::Const(value) => constant(value),
            Source::Template(template) => {
                let mut text = String::new();
                for part in &template.parts {
                    match part {
                        TemplatePart::Text(literal) => text.push_str(literal),
                        TemplatePart::Value(path) => text.push_str(
                            &convert::lookup(record, &steps(&path.steps))
                                .and_then(convert::to_text)
                                .unwrap_or_default(),
                        ),
                        TemplatePart::Param(name) => text.push_str(&self.param_text(name)),
                        TemplatePart::Parent(path) => text.push_str(
                            &self
                                .parent
                                .and_then(|parent| convert::lookup(parent, &steps(&path.steps)))
                                .and_then(convert::to_text)
                                .unwrap_or_default(),
                        ),
                    }
                }
                Some(Value::String(text))
            }
            Source::FirstOf(options) => {
                fields::first_of(options.iter().map(|option| self.source(option, record)))
            }
            Source::Param(name) => Some(Value::String(self.param_text(name))),
            Source::Now => Some(Value::String(Utc::now().to_rfc3339())),
            Source::Parent(path) => self
                .parent
                .and_then(|parent| convert::lookup(parent, &steps(&path.steps)))
                .cloned(),
            Source::Each { .. }
            | Source::Items(_)
            | Source::Metadata { .. }
            | Source::Rust(_)
            | Source::Switch { .. }
            | Source::Absent => None,
        };
        let raw = if expr.empty_is_missing {
            fields::non_empty(raw)
        } else {
            raw
        };
        match &expr.default {
            Some(default) => raw.or_else(|| constant(default)),
            None => raw,
        }
    }

    pub fn param_text(&self, name: &str) -> String {
        param_text(self.op, name)
    }

    /// Replaces the list's sort field by its served time (`convert::served_time`), as the
    /// listing engine serves it, and gives that time and the record's id.
    pub fn served(&self, item: &mut Out, sort_field: Option<&str>) -> (DateTime<Utc>, String) {
        let id = match item.field("id") {
            Some(Out::Value(Value::String(id))) => id.clone(),
            _ => String::new(),
        };
        let Some(field) = sort_field else {
            return (DateTime::<Utc>::UNIX_EPOCH, id);
        };
        let time = match item.field(field) {
            Some(Out::Value(value)) => serde_json::from_value::<DateTime<Utc>>(value.clone()).ok(),
            _ => None,
        };
        let Some(time) = time else {
            return (DateTime::<Utc>::UNIX_EPOCH, id);
        };
        let served = convert::served_time(time, &id);
        if let Some(slot) = item.field_mut(field) {
            *slot = Out::Value(to_json(&served));
        }
        (served, id)
    }
}

/// A protocol parameter's text (`param_text` in render/mapped.rs). Preview has no protocol
/// request: a parameter is its spec default, else empty.
pub fn param_text(op: &Operation, name: &str) -> String {
    op.params
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.default.as_ref())
        .map(|default| match default {
            crate::ir::Literal::Integer(i) => i.to_string(),
            crate::ir::Literal::Number(n) => n.to_string(),
            crate::ir::Literal::Bool(b) => b.to_string(),
            crate::ir::Literal::String(s) => s.clone(),
        })
        .unwrap_or_default()
}

/// A literal of connector.yaml as the generated code writes it (`constant` in
/// render/mapped.rs): integers as integers, other numbers through `f64`.
fn constant(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Number(number) => match number.as_i64() {
            Some(i) => Some(Value::from(i)),
            None => Some(Value::from(number.as_f64().unwrap_or_default())),
        },
        other => Some(other.clone()),
    }
}

/// A typed value serialized as the generated models serialize it.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diagnostics::SourceFile;

    const MAPPING: &str = r#"version: 1
name: acme
upstream:
  base_url: ${env:ACME_BASE_URL}
operations:
  getAccountBalances:
    request:
      path: /accounts/{accountId}
    fields:
      id: { template: "{id}-{param.accountId}" }
      accountID: id
      at: { path: at, time: unix_millis }
      balances:
        each: balances
        fields:
          amount: { path: value, amount: { currency: ccy, format: minor_units } }
          currency: { path: ccy, currency: true }
  getTransactions:
    request:
      path: /tx
    records: items
    order: unordered
    fields:
      id: id
      createdAt: { path: created, time: rfc3339 }
      updatedAt: { first_of: [updated, created], time: rfc3339 }
      amount: { path: amount, amount: { currency: currency, format: decimal, sign: negate } }
      currency: { path: currency, currency: true }
      type:
        switch:
          on: kind
          cases:
            card: { path: direction, enum: { map: { in: PAYIN, out: PAYOUT } } }
          default: { const: OTHER }
      status:
        path: state
        default: done
        empty: missing
        enum: { map: { done: SUCCEEDED, wait: PENDING } }
      sourceAccountID: { path: from, empty: missing }
"#;

    fn with<R>(
        operation: &str,
        check: impl FnOnce(&Interpreter, &ObjectDef, &[FieldMapping]) -> R,
    ) -> R {
        let spec = SourceFile::new(crate::spec::BUNDLED_NAME, crate::spec::BUNDLED);
        let mapping = SourceFile::new("connector.yaml", MAPPING);
        let (protocol, loaded) = match crate::preview::load(&spec, &mapping) {
            Ok(loaded) => loaded,
            Err(crate::preview::Stop::Diagnostics(d)) => panic!("{d:?}"),
            Err(crate::preview::Stop::Usage(u)) => panic!("{u}"),
        };
        let op = protocol.operation(operation).unwrap();
        let shape = match op.success.shape.as_ref().unwrap() {
            Shape::Array(array) => array.items.as_ref().clone(),
            other => other.clone(),
        };
        let (_, object) = protocol.object(&shape).unwrap();
        let metrics = Metrics::default();
        let interpreter = Interpreter::new(&protocol, op, &metrics, &[], None);
        let fields = &loaded.operations[operation].fields;
        check(&interpreter, object, fields)
    }

    #[test]
    fn a_record_converts_with_defaults_switches_and_first_of() {
        let record = json!({
            "id": "t1", "created": "2026-01-02T03:04:05+01:00", "amount": "1.50",
            "currency": "EUR", "kind": "card", "direction": "out", "state": "", "from": ""
        });
        let out = with("getTransactions", |i, object, fields| {
            i.object(object, fields, &record, "").unwrap().to_json()
        });
        assert_eq!(out["id"], "t1");
        assert_eq!(out["createdAt"], "2026-01-02T02:04:05Z");
        assert_eq!(
            out["updatedAt"], "2026-01-02T02:04:05Z",
            "first_of falls back"
        );
        assert_eq!(out["amount"], "-150", "1.50 negated, in minor units");
        assert_eq!(out["currency"], "EUR/2");
        assert_eq!(out["type"], "PAYOUT", "the case takes its own enum");
        assert_eq!(
            out["status"], "SUCCEEDED",
            "an empty state is missing: the default"
        );
        assert!(out.get("sourceAccountID").is_none(), "{out}");
    }

    #[test]
    fn an_unknown_enum_value_without_fallback_fails_at_its_conversion() {
        let record = json!({
            "id": "t1", "created": "2026-01-02T03:04:05Z", "amount": "1", "currency": "EUR",
            "kind": "card", "direction": "sideways"
        });
        let error = with("getTransactions", |i, object, fields| {
            i.object(object, fields, &record, "").unwrap_err()
        });
        assert_eq!(error.field, "type");
        assert_eq!(error.value, Some(json!("sideways")));
        assert!(
            error
                .message
                .starts_with("getTransactions: field type: unknown value"),
            "{}",
            error.message
        );
        let at = &MAPPING[error.span.clone()];
        assert!(at.starts_with("enum"), "{at}");
    }

    #[test]
    fn an_each_element_that_fails_is_named_by_its_position() {
        let record = json!({
            "id": "a1", "at": 1767225600000_i64,
            "balances": [{"value": 5, "ccy": "EUR"}, {"value": 7, "ccy": "XXQ"}]
        });
        let error = with("getAccountBalances", |i, object, fields| {
            i.object(object, fields, &record, "").unwrap_err()
        });
        assert_eq!(error.field, "balances[1].amount");
        assert_eq!(error.value, Some(json!(7)));
        let good =
            json!({"id": "a1", "at": 1767225600000_i64, "balances": {"value": 5, "ccy": "JPY"}});
        let out = with("getAccountBalances", |i, object, fields| {
            i.object(object, fields, &good, "").unwrap().to_json()
        });
        assert_eq!(
            out["id"], "a1-",
            "no protocol request: a parameter without default is empty"
        );
        assert_eq!(out["at"], "2026-01-01T00:00:00Z");
        assert_eq!(
            out["balances"],
            json!([{"amount": "5", "currency": "JPY/0"}]),
            "one object is one element"
        );
    }

    #[test]
    fn a_required_field_missing_points_at_its_path() {
        let record = json!({"id": "t1", "amount": "1", "currency": "EUR"});
        let error = with("getTransactions", |i, object, fields| {
            i.object(object, fields, &record, "").unwrap_err()
        });
        assert_eq!(error.field, "createdAt");
        assert_eq!(error.value, None);
        assert_eq!(&MAPPING[error.span.clone()], "created");
    }
}
