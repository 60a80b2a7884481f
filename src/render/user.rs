//! The files that belong to the user: written once when missing, never touched again.

use proc_macro2::TokenStream;
use quote::quote;

use super::api::{arguments, describe};
use super::rust_file;
use super::types::output_type;
use crate::diagnostics::Diagnostic;
use crate::ir::{Operation, Protocol};
use crate::names;
use crate::plan::{Crate, FileKind, Plan};

pub fn lib(krate: &Crate) -> TokenStream {
    let title = format!(
        " The {} connector: a Formance Generic connector server.",
        krate.package
    );
    quote! {
        #![doc = #title]
        //!
        //! `src/generated/` is rewritten by `connector-gen generate`; your code lives in
        //! `src/handlers.rs` and in any module you add here.

        #[rustfmt::skip]
        pub mod generated;
        pub mod handlers;
    }
}

pub fn main(krate: &Crate) -> TokenStream {
    let lib = names::snake_ident(&krate.lib);
    quote! {
        //! Starts the connector. Created once by connector-gen; yours to change.
        use std::process::ExitCode;

        fn main() -> ExitCode {
            #lib::generated::runtime::run(#lib::handlers::Handlers::new)
        }
    }
}

/// handlers.rs: an empty `impl Connector` with every operation's signature as a commented
/// example. Comments are not tokens, so they are spliced into the printed file.
pub fn handlers(protocol: &Protocol, plan: &Plan, kind: FileKind) -> Result<String, Diagnostic> {
    let mapped = |op: &Operation| plan.maps(&op.id);
    let intro: &[&str] = if protocol.operations.iter().any(mapped) {
        &[
            " Operations mapped in connector.yaml are answered from the provider; the others",
            " answer 501 Not Implemented. Implement a method here to answer that operation your",
            " own way (the generated `crate::generated::mapped` functions stay callable). The",
            " commented methods below show each signature, ready to uncomment.",
        ]
    } else {
        &[
            " Every protocol operation has a default in `Connector` that answers",
            " 501 Not Implemented; implement here the ones your provider supports. The",
            " commented methods below show each signature, ready to uncomment.",
        ]
    };
    let functions = rust_functions(protocol, plan);
    let stubs = functions.iter().map(RustFunction::stub);
    let function_imports = (!functions.is_empty()).then(|| {
        let models = functions
            .iter()
            .any(|function| super::mentions(&function.output, "models"))
            .then(|| {
                quote!(
                    use crate::generated::models;
                )
            });
        quote! {
            use crate::generated::convert::ConversionError;
            #models
        }
    });
    let tokens = quote! {
        //! Your connector. connector-gen created this file once and never touches it again.
        //!
        #(#![doc = #intro])*

        #function_imports
        use crate::generated::{Config, Connector};

        #(#stubs)*

        /// What your handlers share: HTTP clients, credentials, caches.
        pub struct Handlers {}

        impl Handlers {
            /// Called once at start-up with the configuration read from the environment
            /// (`config.upstream` holds the provider settings from connector.yaml).
            pub fn new(config: &Config) -> Self {
                let _ = config;
                Self {}
            }
        }

        impl Connector for Handlers {}
    };
    let printed = rust_file(kind, tokens)?;
    let examples: Vec<String> = protocol
        .operations
        .iter()
        .map(|op| example(op, mapped(op)))
        .collect();
    let body = format!(
        "impl Connector for Handlers {{\n    // use crate::generated::{{ConnectorError, Context, models, params::*}};\n\n{}}}\n",
        examples.join("\n")
    );
    Ok(printed.replacen("impl Connector for Handlers {}\n", &body, 1))
}

/// One operation as commented-out Rust, indented for the inside of the impl block.
fn example(op: &Operation, mapped: bool) -> String {
    let method = names::snake_ident(&op.id);
    let signature = arguments(op)
        .into_iter()
        .map(|(name, ty)| quote!(#name: #ty));
    let output = output_type(op.success.shape.as_ref());
    let tokens = quote! {
        impl X {
            async fn #method(&self, #(#signature),*) -> Result<#output, ConnectorError> {
                todo!()
            }
        }
    };
    let printed = syn::parse2::<syn::File>(tokens)
        .map(|file| prettyplease::unparse(&file))
        .unwrap_or_default();
    let code: Vec<&str> = printed
        .lines()
        .skip(1)
        .take_while(|line| *line != "}")
        .collect();
    let mut text = format!("    // {}\n", describe(op));
    if mapped {
        text.push_str(
            "    // Mapped in connector.yaml; implementing it here replaces the mapping.\n",
        );
    }
    if op.initiation.is_some() {
        text.push_str(
            "    // Runs at most once per idempotency key; when `ctx.initiation()` is `recovering()`,\n    \
             // an earlier attempt may have paid: send the provider `ctx.initiation().key()` or\n    \
             // look the payment up first.\n",
        );
    }
    for line in code {
        text.push_str(&format!(
            "    // {}\n",
            line.strip_prefix("    ").unwrap_or(line)
        ));
    }
    text.replace(" \n", "\n")
}

/// A `rust: crate::handlers::name` function the mapping calls, to be written in handlers.rs.
struct RustFunction {
    name: String,
    /// The protocol field's type.
    output: TokenStream,
    operation: String,
    field: String,
}

impl RustFunction {
    /// The function with its signature, failing until it is written.
    fn stub(&self) -> TokenStream {
        let name = names::snake_ident(&self.name);
        let output = &self.output;
        let doc = format!(
            " `{}` of `{}`, mapped with `rust:` in connector.yaml: the provider's record in, the\n \
             protocol value out. A `ConversionError` answers the request 502 naming the field.",
            self.field, self.operation
        );
        let message = format!("{} is not written yet", self.name);
        quote! {
            #[doc = #doc]
            pub fn #name(record: &serde_json::Value) -> Result<#output, ConversionError> {
                let _ = record;
                Err(ConversionError::new(#message))
            }
        }
    }
}

/// Every `rust:` function under `crate::handlers::` that the mapping names, once each.
fn rust_functions(protocol: &Protocol, plan: &Plan) -> Vec<RustFunction> {
    let mut found: std::collections::BTreeMap<String, RustFunction> = Default::default();
    let Some(mapped) = &plan.mapped else {
        return Vec::new();
    };
    for (id, mapping) in &mapped.operations {
        let Some(op) = protocol.operation(id) else {
            continue;
        };
        let record = match &op.success.shape {
            Some(crate::ir::Shape::Array(array)) => protocol.object(&array.items),
            Some(shape) => protocol.object(shape),
            None => None,
        };
        if let Some((_, object)) = record {
            collect_rust(protocol, id, object, &mapping.fields, &mut found);
        }
    }
    found.into_values().collect()
}

fn collect_rust(
    protocol: &Protocol,
    operation: &str,
    object: &crate::ir::ObjectDef,
    fields: &[crate::mapping::FieldMapping],
    found: &mut std::collections::BTreeMap<String, RustFunction>,
) {
    for mapping in fields {
        let Some(field) = object.fields.iter().find(|f| f.name == mapping.field) else {
            continue;
        };
        match &mapping.value.source {
            crate::mapping::Source::Rust(path) => {
                if let Some(name) = path.strip_prefix("crate::handlers::")
                    && !name.contains("::")
                {
                    let value = super::types::rust_type(&field.shape, false);
                    // A function for an optional field may leave it out.
                    let output = if field.required && !field.nullable {
                        value
                    } else {
                        quote!(Option<#value>)
                    };
                    found
                        .entry(name.to_owned())
                        .or_insert_with(|| RustFunction {
                            name: name.to_owned(),
                            output,
                            operation: operation.to_owned(),
                            field: field.name.clone(),
                        });
                }
            }
            source => {
                if let crate::ir::Shape::Array(array) = protocol.resolve(&field.shape)
                    && let Some((_, item)) = protocol.object(&array.items)
                {
                    for fields in source.element_fields() {
                        collect_rust(protocol, operation, item, fields, found);
                    }
                }
            }
        }
    }
}
