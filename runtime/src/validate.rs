//! Parsing and checking of parameters and bodies. Every message names the parameter or
//! field and says what was expected, so a 400 tells its reader what to fix.

use super::error::ConnectorError;
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt::Display;
use std::str::FromStr;

/// Checks the constraints of a request body that its type alone cannot express.
pub trait Validate {
    /// `path` names this value inside the body (`""` for the body itself).
    fn validate(&self, path: &str) -> Result<(), ConnectorError>;
}

/// Values whose type says everything the spec asks of them.
macro_rules! valid_by_type {
    ($($ty:ty),*) => {
        $(impl Validate for $ty {
            fn validate(&self, _path: &str) -> Result<(), ConnectorError> {
                Ok(())
            }
        })*
    };
}

valid_by_type!(
    String,
    bool,
    i32,
    i64,
    f64,
    NaiveDate,
    DateTime<Utc>,
    serde_json::Value
);

impl<T: Validate> Validate for Vec<T> {
    fn validate(&self, path: &str) -> Result<(), ConnectorError> {
        for (index, item) in self.iter().enumerate() {
            item.validate(&format!("{path}[{index}]"))?;
        }
        Ok(())
    }
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, path: &str) -> Result<(), ConnectorError> {
        self.as_ref().map_or(Ok(()), |value| value.validate(path))
    }
}

impl<T: Validate> Validate for std::collections::BTreeMap<String, T> {
    fn validate(&self, path: &str) -> Result<(), ConnectorError> {
        for (key, value) in self {
            value.validate(&field_path(path, key))?;
        }
        Ok(())
    }
}

/// `parent.field`, or `field` at the top of the body.
pub fn field_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// A request's query string as decoded pairs.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Self { pairs }
    }

    /// The parameter's value; a parameter given twice is an error, not a guess.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ConnectorError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ConnectorError::bad_request(format!(
                "query parameter {name} is given more than once"
            )));
        }
        Ok(first)
    }
}

pub fn required<'a>(
    name: &str,
    location: &str,
    raw: Option<&'a str>,
) -> Result<&'a str, ConnectorError> {
    raw.ok_or_else(|| {
        ConnectorError::bad_request(format!("missing required {location} parameter {name}"))
    })
}

pub fn parse_string(
    name: &str,
    raw: &str,
    minimum: Option<usize>,
    maximum: Option<usize>,
) -> Result<String, ConnectorError> {
    check_length(name, raw, minimum, maximum)?;
    Ok(raw.to_owned())
}

pub fn parse_integer<T: FromStr + PartialOrd + Display>(
    name: &str,
    raw: &str,
    minimum: Option<T>,
    maximum: Option<T>,
) -> Result<T, ConnectorError> {
    let value: T = raw.parse().map_err(|_| {
        ConnectorError::bad_request(format!("{name} must be an integer, got {raw:?}"))
    })?;
    if let Some(minimum) = minimum {
        check_minimum(name, &value, &minimum)?;
    }

    if let Some(maximum) = maximum {
        check_maximum(name, &value, &maximum)?;
    }

    Ok(value)
}

pub fn parse_number(
    name: &str,
    raw: &str,
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
) -> Result<f64, ConnectorError> {
    let value = raw
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| {
            ConnectorError::bad_request(format!("{name} must be a number, got {raw:?}"))
        })?;
    check_number(name, value, minimum, maximum)?;
    Ok(value)
}

pub fn parse_bool(name: &str, raw: &str) -> Result<bool, ConnectorError> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConnectorError::bad_request(format!(
            "{name} must be true or false, got {raw:?}"
        ))),
    }
}

/// RFC 3339 with any offset, converted to UTC. A `+` that arrived unencoded in a
/// query string decodes as a space; it is taken back as the `+` it was.
pub fn parse_date_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ConnectorError> {
    DateTime::parse_from_rfc3339(raw)
        .or_else(|error| {
            if raw.contains(' ') {
                DateTime::parse_from_rfc3339(&raw.replace(' ', "+"))
            } else {
                Err(error)
            }
        })
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| {
            ConnectorError::bad_request(format!(
                "{name} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z, got {raw:?}"
            ))
        })
}

pub fn parse_date(name: &str, raw: &str) -> Result<NaiveDate, ConnectorError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        ConnectorError::bad_request(format!(
            "{name} must be a date such as 2026-01-31, got {raw:?}"
        ))
    })
}

pub fn parse_enum<T: FromStr<Err = String>>(name: &str, raw: &str) -> Result<T, ConnectorError> {
    raw.parse()
        .map_err(|error| ConnectorError::bad_request(format!("{name}: {error}")))
}

pub fn check_minimum<T: PartialOrd + Display>(
    name: &str,
    value: T,
    minimum: T,
) -> Result<(), ConnectorError> {
    if value < minimum {
        return Err(ConnectorError::bad_request(format!(
            "{name} must be >= {minimum}, got {value}"
        )));
    }

    Ok(())
}

pub fn check_maximum<T: PartialOrd + Display>(
    name: &str,
    value: T,
    maximum: T,
) -> Result<(), ConnectorError> {
    if value > maximum {
        return Err(ConnectorError::bad_request(format!(
            "{name} must be <= {maximum}, got {value}"
        )));
    }

    Ok(())
}

/// Bounds are `(value, exclusive)`.
pub fn check_number(
    name: &str,
    value: f64,
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
) -> Result<(), ConnectorError> {
    if let Some((bound, exclusive)) = minimum
        && (value < bound || (exclusive && value == bound))
    {
        let op = if exclusive { ">" } else { ">=" };
        return Err(ConnectorError::bad_request(format!(
            "{name} must be {op} {bound}, got {value}"
        )));
    }

    if let Some((bound, exclusive)) = maximum
        && (value > bound || (exclusive && value == bound))
    {
        let op = if exclusive { "<" } else { "<=" };
        return Err(ConnectorError::bad_request(format!(
            "{name} must be {op} {bound}, got {value}"
        )));
    }

    Ok(())
}

pub fn check_length(
    name: &str,
    value: &str,
    minimum: Option<usize>,
    maximum: Option<usize>,
) -> Result<(), ConnectorError> {
    let length = value.chars().count();
    if minimum.is_some_and(|min| length < min) || maximum.is_some_and(|max| length > max) {
        let bounds = describe_bounds(minimum, maximum);
        return Err(ConnectorError::bad_request(format!(
            "{name} must be {bounds} characters long, got {length}"
        )));
    }

    Ok(())
}

pub fn check_items(
    name: &str,
    count: usize,
    minimum: Option<usize>,
    maximum: Option<usize>,
) -> Result<(), ConnectorError> {
    if minimum.is_some_and(|min| count < min) || maximum.is_some_and(|max| count > max) {
        let bounds = describe_bounds(minimum, maximum);
        return Err(ConnectorError::bad_request(format!(
            "{name} must have {bounds} items, got {count}"
        )));
    }

    Ok(())
}

fn describe_bounds(minimum: Option<usize>, maximum: Option<usize>) -> String {
    match (minimum, maximum) {
        (Some(min), Some(max)) => format!("{min} to {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "any number of".to_owned(),
    }
}
