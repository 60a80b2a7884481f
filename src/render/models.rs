//! models.rs: one Rust type per protocol schema, with the spec's exact wire names, and
//! `Validate` for the types that arrive in request bodies.

use std::collections::BTreeSet;

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::doc;
use super::types::{number_bound, optional_usize, rust_type};
use crate::ir::{AliasDef, EnumDef, Field, ObjectDef, Protocol, Shape, StringFormat, TypeDef};
use crate::names;

pub fn render(protocol: &Protocol) -> TokenStream {
    let validated = body_types(protocol);
    let items = protocol.types.iter().map(|(name, def)| {
        let item = match def {
            TypeDef::Object(object) => object_struct(name, object),
            TypeDef::Enum(def) => enumeration(name, def),
            TypeDef::Alias(alias) => alias_type(name, alias),
        };
        let validate = match def {
            TypeDef::Object(object) if validated.contains(name) => {
                validate_impl(protocol, name, object)
            }
            TypeDef::Enum(_) if validated.contains(name) => valid_by_type(name),
            _ => TokenStream::new(),
        };
        quote! { #item #validate }
    });
    let initiations = initiation_impls(protocol);
    let uses_serde = protocol
        .types
        .values()
        .any(|def| !matches!(def, TypeDef::Alias(_)));
    let serde_import = if uses_serde {
        quote!(
            use serde::{Deserialize, Serialize};
        )
    } else {
        TokenStream::new()
    };
    quote! {
        //! The protocol's types, exactly as the spec names them on the wire.
        #serde_import
        #(#items)*
        #initiations
    }
}

/// What the runtime's initiations need to know of the protocol's types: the key and the
/// money of a payment request, the id of what it created, and where a transaction names
/// the payment it came from.
fn initiation_impls(protocol: &Protocol) -> TokenStream {
    let mut requests = BTreeSet::new();
    let mut created = BTreeSet::new();
    let mut impls = Vec::new();
    for (op, initiation) in protocol.initiations() {
        let (Some(body), Some(success)) = (&op.body, &op.success.shape) else {
            continue;
        };
        if let Some((name, _)) = protocol.object(&body.shape)
            && requests.insert(name.to_owned())
        {
            let ident = names::pascal_ident(name);
            let key = names::snake_ident(&initiation.key_field);
            let money = initiation.money.as_ref().map(|(amount, currency)| {
                let (amount_field, currency_field) =
                    (names::snake_ident(amount), names::snake_ident(currency));
                quote! {
                    fn money(&self) -> Option<super::runtime::initiation::Money<'_>> {
                        Some(super::runtime::initiation::Money {
                            amount_field: #amount,
                            amount: &self.#amount_field,
                            currency_field: #currency,
                            currency: &self.#currency_field,
                        })
                    }
                }
            });
            impls.push(quote! {
                impl super::runtime::initiation::PaymentRequest for #ident {
                    fn idempotency_key(&self) -> &str {
                        &self.#key
                    }
                    #money
                }
            });
        }
        if let Some((name, _)) = protocol.object(success)
            && created.insert(name.to_owned())
        {
            let ident = names::pascal_ident(name);
            let id = names::snake_ident(&initiation.id_field);
            impls.push(quote! {
                impl super::runtime::initiation::CreatedPayment for #ident {
                    fn payment_id(&self) -> &str {
                        &self.#id
                    }
                }
            });
        }
    }
    if let Some(link) = &protocol.link
        && let Some(op) = protocol.operation(&link.operation)
        && let Some(Shape::Array(array)) = &op.success.shape
        && let Some((name, _)) = protocol.object(&array.items)
    {
        let ident = names::pascal_ident(name);
        let related = names::snake_ident(&link.related_field);
        let kind = names::snake_ident(&link.type_field);
        let kind_type = names::pascal_ident(&link.type_enum);
        impls.push(quote! {
            impl super::runtime::initiation::LinkedTransaction for #ident {
                fn related_transaction(&mut self) -> &mut Option<String> {
                    &mut self.#related
                }

                fn set_transaction_type(&mut self, transaction_type: &str) {
                    if let Ok(kind) = transaction_type.parse::<#kind_type>() {
                        self.#kind = kind;
                    }
                }
            }
        });
    }
    quote!(#(#impls)*)
}

/// `Validate` for a type that arrives in a request body but has nothing to check.
fn valid_by_type(name: &str) -> TokenStream {
    let ident = names::pascal_ident(name);
    quote! {
        impl super::runtime::validate::Validate for #ident {
            fn validate(&self, _path: &str) -> Result<(), super::runtime::ConnectorError> {
                Ok(())
            }
        }
    }
}

fn object_struct(name: &str, object: &ObjectDef) -> TokenStream {
    let ident = names::pascal_ident(name);
    let doc = doc(object.doc.as_deref());
    let closed = if object.closed {
        quote!(#[serde(deny_unknown_fields)])
    } else {
        TokenStream::new()
    };
    let fields = object.fields.iter().map(field);
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #closed
        pub struct #ident { #(#fields)* }
    }
}

fn field(field: &Field) -> TokenStream {
    let ident = names::snake_ident(&field.name);
    let doc = doc(field.doc.as_deref());
    let base = rust_type(&field.shape, true);
    let wire = &field.name;
    let mut serde = Vec::new();
    if names::snake(wire) != *wire {
        serde.push(quote!(rename = #wire));
    }
    let optional = !field.required || field.nullable;
    let ty = if !field.required {
        serde.push(quote!(default, skip_serializing_if = "Option::is_none"));
        quote!(Option<#base>)
    } else if field.nullable {
        // Present but possibly null: `deserialize_with` stops serde treating absence as `None`.
        serde.push(quote!(deserialize_with = "Option::deserialize"));
        quote!(Option<#base>)
    } else {
        base
    };
    if matches!(&field.shape, Shape::String(s) if s.format == StringFormat::DateTime) {
        // The same text as chrono's own `Serialize`, written faster.
        let writer = if optional {
            "super::runtime::convert::serialize_optional_time"
        } else {
            "super::runtime::convert::serialize_time"
        };
        serde.push(quote!(serialize_with = #writer));
    }
    let serde = if serde.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[serde(#(#serde),*)])
    };
    quote! { #doc #serde pub #ident: #ty, }
}

fn enumeration(name: &str, def: &EnumDef) -> TokenStream {
    let ident = names::pascal_ident(name);
    let doc = doc(def.doc.as_deref());
    let variants: Vec<_> = def.values.iter().map(|v| names::pascal_ident(v)).collect();
    let values = &def.values;
    let count = Literal::usize_unsuffixed(values.len());
    let listed = values.join(", ");
    quote! {
        #doc
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum #ident {
            #( #[serde(rename = #values)] #variants, )*
        }

        impl #ident {
            /// Every value the protocol allows, in spec order.
            pub const ALL: [Self; #count] = [#(Self::#variants),*];

            /// The value as it goes on the wire.
            pub fn as_str(self) -> &'static str {
                match self { #(Self::#variants => #values,)* }
            }
        }

        impl std::fmt::Display for #ident {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for #ident {
            type Err = String;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    #(#values => Ok(Self::#variants),)*
                    other => Err(format!("expected one of {}, got {other:?}", #listed)),
                }
            }
        }
    }
}

fn alias_type(name: &str, alias: &AliasDef) -> TokenStream {
    let ident = names::pascal_ident(name);
    let doc = doc(alias.doc.as_deref());
    let ty = rust_type(&alias.shape, true);
    quote! { #doc pub type #ident = #ty; }
}

// ---- validation of request bodies --------------------------------------------------------

/// Object and enum types that can arrive in a request body, where the spec's constraints are
/// enforced.
fn body_types(protocol: &Protocol) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending: Vec<&Shape> = protocol
        .operations
        .iter()
        .filter_map(|op| op.body.as_ref())
        .map(|b| &b.shape)
        .collect();
    while let Some(shape) = pending.pop() {
        match shape {
            Shape::Array(a) => pending.push(&a.items),
            Shape::Map(values) => pending.push(values),
            Shape::Named(name) if found.insert(name.clone()) => match protocol.types.get(name) {
                Some(TypeDef::Object(object)) => {
                    pending.extend(object.fields.iter().map(|f| &f.shape))
                }
                Some(TypeDef::Alias(alias)) => pending.push(&alias.shape),
                _ => {}
            },
            _ => {}
        }
    }
    found.retain(|name| {
        matches!(
            protocol.types.get(name),
            Some(TypeDef::Object(_) | TypeDef::Enum(_))
        )
    });
    found
}

fn validate_impl(protocol: &Protocol, name: &str, object: &ObjectDef) -> TokenStream {
    let ident = names::pascal_ident(name);
    let checks: Vec<TokenStream> = object
        .fields
        .iter()
        .filter_map(|field| field_checks(protocol, field))
        .collect();
    let path = if checks.is_empty() {
        quote!(_path)
    } else {
        quote!(path)
    };
    quote! {
        impl super::runtime::validate::Validate for #ident {
            fn validate(&self, #path: &str) -> Result<(), super::runtime::ConnectorError> {
                #(#checks)*
                Ok(())
            }
        }
    }
}

fn field_checks(protocol: &Protocol, field: &Field) -> Option<TokenStream> {
    let ident = names::snake_ident(&field.name);
    let wire = &field.name;
    let path = quote!(field_path);
    if field.required && !field.nullable {
        let checks = value_checks(protocol, &field.shape, quote!(&self.#ident), &path)?;
        Some(
            quote! { { let field_path = super::runtime::validate::field_path(path, #wire); #checks } },
        )
    } else {
        let checks = value_checks(protocol, &field.shape, quote!(value), &path)?;
        Some(quote! {
            if let Some(value) = &self.#ident {
                let field_path = super::runtime::validate::field_path(path, #wire);
                #checks
            }
        })
    }
}

/// Checks for one value (`value` is an expression of type `&T`), or `None` when the type alone
/// already guarantees everything the spec asks.
fn value_checks(
    protocol: &Protocol,
    shape: &Shape,
    value: TokenStream,
    path: &TokenStream,
) -> Option<TokenStream> {
    match shape {
        Shape::String(s)
            if s.format == StringFormat::Plain
                && (s.min_length.is_some() || s.max_length.is_some()) =>
        {
            let (min, max) = (optional_usize(s.min_length), optional_usize(s.max_length));
            Some(quote! { super::runtime::validate::check_length(&#path, #value, #min, #max)?; })
        }
        Shape::Integer(i) if i.minimum.is_some() || i.maximum.is_some() => {
            let min = i.minimum.map(|m| {
                let m = Literal::i64_unsuffixed(m);
                quote! { super::runtime::validate::check_minimum(&#path, *#value, #m)?; }
            });
            let max = i.maximum.map(|m| {
                let m = Literal::i64_unsuffixed(m);
                quote! { super::runtime::validate::check_maximum(&#path, *#value, #m)?; }
            });
            Some(quote! { #min #max })
        }
        Shape::Number(n) if n.minimum.is_some() || n.maximum.is_some() => {
            let (min, max) = (number_bound(n.minimum), number_bound(n.maximum));
            Some(quote! { super::runtime::validate::check_number(&#path, *#value, #min, #max)?; })
        }
        Shape::Array(a) => {
            let count = (a.min_items.is_some() || a.max_items.is_some()).then(|| {
                let (min, max) = (optional_usize(a.min_items), optional_usize(a.max_items));
                quote! { super::runtime::validate::check_items(&#path, #value.len(), #min, #max)?; }
            });
            let items =
                value_checks(protocol, &a.items, quote!(item), &quote!(item_path)).map(|checks| {
                    quote! {
                        for (index, item) in #value.iter().enumerate() {
                            let item_path = format!("{}[{index}]", #path);
                            #checks
                        }
                    }
                });
            (count.is_some() || items.is_some()).then(|| quote! { #count #items })
        }
        Shape::Map(values) => {
            value_checks(protocol, values, quote!(item), &quote!(item_path)).map(|checks| {
                quote! {
                    for (key, item) in #value {
                        let item_path = super::runtime::validate::field_path(&#path, key);
                        #checks
                    }
                }
            })
        }
        Shape::Named(name) => match protocol.types.get(name) {
            Some(TypeDef::Object(_)) => {
                Some(quote! { super::runtime::validate::Validate::validate(#value, &#path)?; })
            }
            Some(TypeDef::Alias(alias)) => value_checks(protocol, &alias.shape, value, path),
            _ => None,
        },
        _ => None,
    }
}
