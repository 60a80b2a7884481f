//! The protocol model: every operation and type of the spec as plain values. Later stages read
//! only this, never `openapiv3` types, so what the generator supports is exactly what is here.

mod initiation;
mod lower;

use std::collections::BTreeMap;

pub use lower::lower;

#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    pub title: String,
    pub version: String,
    /// In spec order.
    pub operations: Vec<Operation>,
    /// Keyed by the schema's name in the spec (or a name made from where an inline schema sits).
    pub types: BTreeMap<String, TypeDef>,
    /// Where initiated payments show up again, when the spec has initiations and such a list.
    pub link: Option<LinkTarget>,
}

impl Protocol {
    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.id == id)
    }

    pub fn initiations(&self) -> impl Iterator<Item = (&Operation, &Initiation)> {
        self.operations
            .iter()
            .filter_map(|op| op.initiation.as_ref().map(|initiation| (op, initiation)))
    }

    /// The shape behind any aliases (`Metadata` -> a string map).
    pub fn resolve<'p>(&'p self, shape: &'p Shape) -> &'p Shape {
        match shape {
            Shape::Named(name) => match self.types.get(name) {
                Some(TypeDef::Alias(alias)) => self.resolve(&alias.shape),
                _ => shape,
            },
            _ => shape,
        }
    }

    /// The object type a shape names, through aliases, with its name.
    pub fn object(&self, shape: &Shape) -> Option<(&str, &ObjectDef)> {
        match shape {
            Shape::Named(name) => match self.types.get_key_value(name)? {
                (name, TypeDef::Object(object)) => Some((name.as_str(), object)),
                (_, TypeDef::Alias(alias)) => self.object(&alias.shape),
                _ => None,
            },
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The spec's `operationId`, e.g. `getAccounts`.
    pub id: String,
    pub method: Method,
    /// The path template as the spec writes it, e.g. `/accounts/{accountId}/balances`.
    pub path: String,
    pub summary: Option<String>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub success: Success,
    /// JSON pointer of the operation in the spec, for diagnostics.
    pub pointer: String,
    /// Set when the operation initiates a payment that must happen at most once per key.
    pub initiation: Option<Initiation>,
}

impl Operation {
    /// The field a list is sorted and filtered by: `createdAt` for `createdAtFrom`, and so
    /// on; a required, non-null date-time of the listed object.
    pub fn sort_field<'o>(&self, object: &'o ObjectDef) -> Option<&'o str> {
        let wanted = self
            .params
            .iter()
            .find_map(|p| {
                p.name
                    .strip_suffix("From")
                    .filter(|_| p.name.ends_with("AtFrom"))
            })
            .unwrap_or("createdAt");
        object
            .fields
            .iter()
            .find(|f| {
                f.name == wanted
                    && f.required
                    && !f.nullable
                    && matches!(&f.shape, Shape::String(s) if s.format == StringFormat::DateTime)
            })
            .map(|f| f.name.as_str())
    }
}

/// A payment initiation: a POST whose JSON body carries an idempotency key and whose answer
/// is the created object. Retries with the same key must not move money twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiation {
    /// The body field with the caller's key (`idempotencyKey`).
    pub key_field: String,
    /// The body's amount and currency fields (`amount`, `currency`), checked as protocol money
    /// before anything else happens.
    pub money: Option<(String, String)>,
    /// The created object's field with the provider's reference (`id`).
    pub id_field: String,
    /// The transaction type a provider transaction resulting from it carries (`PAYOUT`), when
    /// the linked list's type enum has it.
    pub transaction_type: Option<String>,
}

/// The list whose items name the initiation they resulted from: `relatedTransactionID` and
/// `type` on transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    pub operation: String,
    pub related_field: String,
    pub type_field: String,
    /// The enum of `type_field`.
    pub type_enum: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    pub status: u16,
    /// `None` when the response has no body.
    pub shape: Option<Shape>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    Path,
    Query,
    Header,
}

impl ParamLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
            ParamLocation::Header => "header",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub location: ParamLocation,
    pub required: bool,
    /// A scalar: string, integer, number, boolean, or a named enum.
    pub shape: Shape,
    pub default: Option<Literal>,
    pub doc: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub required: bool,
    pub shape: Shape,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Integer(i64),
    Number(f64),
    Bool(bool),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    String(StringShape),
    Integer(IntegerShape),
    Number(NumberShape),
    Boolean,
    Array(ArrayShape),
    /// A JSON object used as a map from string keys to values of one shape.
    Map(Box<Shape>),
    /// An object, enum or alias in `Protocol::types`.
    Named(String),
    /// Any JSON value.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    Plain,
    DateTime,
    Date,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringShape {
    pub format: StringFormat,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegerBits {
    I32,
    I64,
}

/// Bounds are inclusive; exclusive bounds in the spec are folded in (`> 0` becomes `>= 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct IntegerShape {
    pub bits: IntegerBits,
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumberShape {
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub exclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ArrayShape {
    pub items: Box<Shape>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeDef {
    Object(ObjectDef),
    Enum(EnumDef),
    Alias(AliasDef),
}

impl TypeDef {
    pub fn doc(&self) -> Option<&str> {
        match self {
            TypeDef::Object(def) => def.doc.as_deref(),
            TypeDef::Enum(def) => def.doc.as_deref(),
            TypeDef::Alias(def) => def.doc.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDef {
    pub doc: Option<String>,
    pub fields: Vec<Field>,
    /// `additionalProperties: false`: unknown fields are rejected.
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The JSON key, exactly as the spec spells it (`accountID`, `sourceAccountId`).
    pub name: String,
    pub shape: Shape,
    pub required: bool,
    pub nullable: bool,
    pub doc: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumDef {
    pub doc: Option<String>,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasDef {
    pub doc: Option<String>,
    pub shape: Shape,
    pub nullable: bool,
}
