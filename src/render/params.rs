//! params.rs: per operation, a struct of its path, query and header parameters, and the code
//! that reads them from a request enforcing every constraint and default the spec states.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::doc;
use super::types::{mentions_model, number_bound, optional_usize, rust_type};
use crate::ir::{
    IntegerBits, Literal as Default, Operation, Param, ParamLocation, Protocol, Shape, StringFormat,
};
use crate::names;

/// The name of an operation's parameter struct, if it has parameters.
pub fn params_ident(op: &Operation) -> Option<proc_macro2::Ident> {
    (!op.params.is_empty()).then(|| format_ident!("{}Params", names::pascal(&op.id)))
}

pub fn render(protocol: &Protocol) -> TokenStream {
    let structs: Vec<_> = protocol
        .operations
        .iter()
        .filter_map(|op| params_struct(protocol, op))
        .collect();
    let uses_models = protocol
        .operations
        .iter()
        .flat_map(|op| &op.params)
        .any(|p| mentions_model(&p.shape));
    let models = if uses_models {
        quote!(
            use super::models;
        )
    } else {
        TokenStream::new()
    };
    let runtime = if structs.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            use axum::extract::FromRequestParts;
            use axum::http::request::Parts;

            #models
            use super::runtime::request::RequestParts;
            use super::runtime::{ConnectorError, validate};
        }
    };
    quote! {
        //! Each operation's path, query and header parameters, parsed and checked: a handler
        //! takes them as an extractor, and a parameter that does not fit is a 400 naming it.
        #runtime
        #(#structs)*
    }
}

fn params_struct(protocol: &Protocol, op: &Operation) -> Option<TokenStream> {
    let ident = params_ident(op)?;
    let summary = format!(
        " Parameters of `{} {}` ({}).",
        op.method.as_str(),
        op.path,
        op.id
    );
    let fields = op.params.iter().map(|param| {
        let field = names::snake_ident(&param.name);
        let doc = doc(param.doc.as_deref());
        let ty = param_type(param);
        quote! { #doc pub #field: #ty, }
    });
    let reads_query = op.params.iter().any(|p| p.location == ParamLocation::Query);
    let query = if reads_query {
        quote!(let query = request.query();)
    } else {
        TokenStream::new()
    };
    let values = op.params.iter().map(|param| {
        let field = names::snake_ident(&param.name);
        let value = read_param(protocol, param);
        quote! { #field: #value, }
    });
    Some(quote! {
        #[doc = #summary]
        #[derive(Debug, Clone, PartialEq)]
        pub struct #ident { #(#fields)* }

        impl<S: Send + Sync> FromRequestParts<S> for #ident {
            type Rejection = ConnectorError;

            async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ConnectorError> {
                let request = RequestParts::read(parts).await?;
                #query
                Ok(Self { #(#values)* })
            }
        }
    })
}

fn param_type(param: &Param) -> TokenStream {
    let base = rust_type(&param.shape, false);
    if param.required || param.default.is_some() {
        base
    } else {
        quote!(Option<#base>)
    }
}

/// The expression reading one parameter: its raw text, parsed, checked, defaulted.
fn read_param(protocol: &Protocol, param: &Param) -> TokenStream {
    let name = &param.name;
    let raw = match param.location {
        ParamLocation::Path => quote!(request.path_param(#name)),
        ParamLocation::Query => quote!(query.get(#name)?),
        ParamLocation::Header => quote!(request.header(#name)?),
    };
    let parse = parse_value(protocol, param);
    if param.required {
        let location = param.location.as_str();
        return quote!(validate::required(#name, #location, #raw).and_then(|raw| #parse)?);
    }
    match &param.default {
        Some(default) => {
            let missing = default_value(protocol, param, default);
            quote! {
                match #raw {
                    Some(raw) => #parse?,
                    None => #missing,
                }
            }
        }
        None => quote!(#raw.map(|raw| #parse).transpose()?),
    }
}

/// Parses `raw` (a `&str`) into the parameter's type and applies its constraints.
fn parse_value(protocol: &Protocol, param: &Param) -> TokenStream {
    let name = &param.name;
    match protocol.resolve(&param.shape) {
        Shape::String(s) => match s.format {
            StringFormat::DateTime => quote!(validate::parse_date_time(#name, raw)),
            StringFormat::Date => quote!(validate::parse_date(#name, raw)),
            StringFormat::Plain => {
                let (min, max) = (optional_usize(s.min_length), optional_usize(s.max_length));
                quote!(validate::parse_string(#name, raw, #min, #max))
            }
        },
        Shape::Integer(i) => {
            let ty = match i.bits {
                IntegerBits::I32 => quote!(i32),
                IntegerBits::I64 => quote!(i64),
            };
            let bound = |b: Option<i64>| match b {
                Some(b) => {
                    let b = Literal::i64_unsuffixed(b);
                    quote!(Some(#b))
                }
                None => quote!(None),
            };
            let (min, max) = (bound(i.minimum), bound(i.maximum));
            quote!(validate::parse_integer::<#ty>(#name, raw, #min, #max))
        }
        Shape::Number(n) => {
            let (min, max) = (number_bound(n.minimum), number_bound(n.maximum));
            quote!(validate::parse_number(#name, raw, #min, #max))
        }
        Shape::Boolean => quote!(validate::parse_bool(#name, raw)),
        Shape::Named(_) => {
            let ty = rust_type(&param.shape, false);
            quote!(validate::parse_enum::<#ty>(#name, raw))
        }
        // Lowering only lets scalars through as parameters.
        Shape::Array(_) | Shape::Map(_) | Shape::Any => {
            quote!(validate::parse_string(#name, raw, None, None))
        }
    }
}

fn default_value(protocol: &Protocol, param: &Param, default: &Default) -> TokenStream {
    match default {
        Default::Integer(i) => {
            let value = Literal::i64_unsuffixed(*i);
            quote!(#value)
        }
        Default::Number(n) => {
            let value = Literal::f64_unsuffixed(if n.is_finite() { *n } else { 0.0 });
            quote!(#value)
        }
        Default::Bool(b) => quote!(#b),
        Default::String(text) => match protocol.resolve(&param.shape) {
            Shape::Named(name) => {
                let ty = names::pascal_ident(name);
                let variant = names::pascal_ident(text);
                quote!(models::#ty::#variant)
            }
            _ => {
                let parse = parse_value(protocol, param);
                quote! {{
                    let raw = #text;
                    #parse?
                }}
            }
        },
    }
}
