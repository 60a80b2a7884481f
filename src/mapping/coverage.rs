//! `check --coverage`: for every enum mapping, each protocol value and the provider values
//! that become it. Not warnings: a provider rarely has every value of the protocol, and
//! nothing is to be done about it; this is the table to read when reviewing a mapping.

use std::fmt::Write;

use super::{Conversion, FieldMapping, Mapping, Span};
use crate::diagnostics::SourceFile;
use crate::ir::{ObjectDef, Protocol, Shape, TypeDef};

/// One enum mapping of a protocol field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumCoverage {
    /// `getTransactions.status`, `getAccountBalances.balances[].kind`.
    pub field: String,
    pub enum_type: String,
    /// The `enum` key.
    pub span: Span,
    /// Every protocol value, in the protocol's order, with the provider values mapped to it.
    pub rows: Vec<(String, Vec<String>)>,
    pub fallback: Option<String>,
}

/// The enum mappings of every operation the protocol has, in the file's order.
pub fn coverage(mapping: &Mapping, protocol: &Protocol) -> Vec<EnumCoverage> {
    let mut found = Vec::new();
    for (id, operation) in &mapping.operations {
        let Some(op) = protocol.operation(id) else {
            continue;
        };
        let target = match &op.success.shape {
            Some(Shape::Array(array)) => protocol.object(&array.items),
            Some(shape) => protocol.object(shape),
            None => None,
        };
        if let Some((_, object)) = target {
            walk(protocol, id, object, &operation.fields, &mut found);
        }
    }
    found.sort_by_key(|c| c.span.start);
    found
}

fn walk(
    protocol: &Protocol,
    prefix: &str,
    object: &ObjectDef,
    fields: &[FieldMapping],
    found: &mut Vec<EnumCoverage>,
) {
    for mapped in fields {
        let Some(field) = object.fields.iter().find(|f| f.name == mapped.field) else {
            continue;
        };
        let name = format!("{prefix}.{}", field.name);
        let shape = protocol.resolve(&field.shape);
        if let Shape::Array(array) = &shape
            && let Some((_, element)) = protocol.object(&array.items)
        {
            for element_fields in mapped.value.source.element_fields() {
                walk(
                    protocol,
                    &format!("{name}[]"),
                    element,
                    element_fields,
                    found,
                );
            }
        }
        let (
            Shape::Named(enum_type),
            Some(Conversion::Enum {
                map,
                fallback,
                span,
                ..
            }),
        ) = (&shape, &mapped.value.conversion)
        else {
            continue;
        };
        let Some(TypeDef::Enum(def)) = protocol.types.get(enum_type) else {
            continue;
        };
        let rows = def
            .values
            .iter()
            .map(|value| {
                let from = map
                    .iter()
                    .filter(|(_, to)| to == value)
                    .map(|(from, _)| from.clone())
                    .collect();
                (value.clone(), from)
            })
            .collect();
        found.push(EnumCoverage {
            field: name,
            enum_type: enum_type.clone(),
            span: span.clone(),
            rows,
            fallback: fallback.clone(),
        });
    }
}

/// The table as `check --coverage` prints it.
pub fn render(coverage: &[EnumCoverage], source: &SourceFile) -> String {
    let mut out = String::new();
    if coverage.is_empty() {
        let _ = writeln!(out, "{}: no enum mappings", source.name);
        return out;
    }
    for (index, enumeration) in coverage.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let (line, col) = source.line_col(enumeration.span.start);
        let _ = writeln!(
            out,
            "{} ({}), {}:{line}:{col}",
            enumeration.field, enumeration.enum_type, source.name
        );
        let width = enumeration
            .rows
            .iter()
            .map(|(value, _)| value.len())
            .max()
            .unwrap_or(0);
        for (value, from) in &enumeration.rows {
            let mut sources: Vec<String> = from.iter().map(|v| format!("`{v}`")).collect();
            if enumeration.fallback.as_ref() == Some(value) {
                sources.push("any other value (fallback)".to_owned());
            }
            let sources = if sources.is_empty() {
                "(none)".to_owned()
            } else {
                sources.join(", ")
            };
            let _ = writeln!(out, "  {value:width$}  <- {sources}");
        }
        if enumeration.fallback.is_none() {
            let _ = writeln!(
                out,
                "  any other value fails the request: there is no `fallback`"
            );
        }
    }
    out
}
