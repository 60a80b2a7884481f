//! Protocol shapes as Rust types, shared by every generated module.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ir::{IntegerBits, Shape, StringFormat};
use crate::names;

/// The Rust type of a value of `shape`; named types are referred to as `models::Name`
/// (modules that use them import `super::models`) unless `local` (inside models.rs itself).
pub fn rust_type(shape: &Shape, local: bool) -> TokenStream {
    match shape {
        Shape::String(s) => match s.format {
            StringFormat::Plain => quote!(String),
            StringFormat::DateTime => quote!(chrono::DateTime<chrono::Utc>),
            StringFormat::Date => quote!(chrono::NaiveDate),
        },
        Shape::Integer(i) => match i.bits {
            IntegerBits::I32 => quote!(i32),
            IntegerBits::I64 => quote!(i64),
        },
        Shape::Number(_) => quote!(f64),
        Shape::Boolean => quote!(bool),
        Shape::Array(a) => {
            let items = rust_type(&a.items, local);
            quote!(Vec<#items>)
        }
        Shape::Map(values) => {
            let values = rust_type(values, local);
            quote!(std::collections::BTreeMap<String, #values>)
        }
        Shape::Named(name) => {
            let ident = names::pascal_ident(name);
            if local {
                quote!(#ident)
            } else {
                quote!(models::#ident)
            }
        }
        Shape::Any => quote!(serde_json::Value),
    }
}

/// What a successful call returns: the response body's type, or `()` when there is none.
pub fn output_type(shape: Option<&Shape>) -> TokenStream {
    match shape {
        Some(shape) => rust_type(shape, false),
        None => quote!(()),
    }
}

/// Whether a shape mentions a type of models.rs, so that a module needs `use super::models`.
pub fn mentions_model(shape: &Shape) -> bool {
    match shape {
        Shape::Named(_) => true,
        Shape::Array(a) => mentions_model(&a.items),
        Shape::Map(values) => mentions_model(values),
        _ => false,
    }
}

/// `Some((value, exclusive))` or `None`, for a number bound in generated checks.
pub fn number_bound(bound: Option<crate::ir::Bound>) -> TokenStream {
    match bound {
        Some(bound) if bound.value.is_finite() => {
            let (value, exclusive) = (
                proc_macro2::Literal::f64_unsuffixed(bound.value),
                bound.exclusive,
            );
            quote!(Some((#value, #exclusive)))
        }
        _ => quote!(None),
    }
}

/// `Some(n)` or `None`, for a length or count bound in generated checks.
pub fn optional_usize(value: Option<usize>) -> TokenStream {
    match value {
        Some(n) => {
            let n = proc_macro2::Literal::usize_unsuffixed(n);
            quote!(Some(#n))
        }
        None => quote!(None),
    }
}
