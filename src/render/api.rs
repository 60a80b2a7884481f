//! api.rs: the `Connector` trait, one async method per protocol operation. Every method has a
//! default answering 501, so an operation added to the spec never breaks the user's build.

use proc_macro2::TokenStream;
use quote::quote;

use super::doc;
use super::params::params_ident;
use super::types::{mentions_model, output_type, rust_type};
use crate::ir::{Operation, Protocol};
use crate::names;
use crate::plan::Plan;

pub fn render(protocol: &Protocol, plan: &Plan) -> TokenStream {
    let mapped = |op: &Operation| plan.maps(&op.id);
    let methods = protocol
        .operations
        .iter()
        .map(|op| trait_method(op, mapped(op)));
    let imports = imports(protocol);
    quote! {
        //! The interface your connector implements: one method per protocol operation.
        use std::future::Future;

        #imports

        /// The Generic connector protocol. Implement the operations your provider supports;
        /// the others answer `501 Not Implemented`.
        ///
        /// Requests reach these methods already authenticated, parsed and validated; what a
        /// method returns is sent back with the status code the spec gives. `ctx` gives the
        /// configuration and the request's id.
        pub trait Connector: Send + Sync + 'static {
            #(#methods)*
        }
    }
}

fn imports(protocol: &Protocol) -> TokenStream {
    let models = protocol.operations.iter().any(|op| {
        op.body.as_ref().is_some_and(|b| mentions_model(&b.shape))
            || op.success.shape.as_ref().is_some_and(mentions_model)
    });
    let params = protocol.operations.iter().any(|op| !op.params.is_empty());
    let models = if models {
        quote!(
            use super::models;
        )
    } else {
        TokenStream::new()
    };
    let params = if params {
        quote!(
            use super::params::*;
        )
    } else {
        TokenStream::new()
    };
    quote! {
        #models
        #params
        use super::runtime::{ConnectorError, Context};
    }
}

/// The method's arguments: parameters, then body, as `(name, type)` pairs.
pub fn arguments(op: &Operation) -> Vec<(proc_macro2::Ident, TokenStream)> {
    let mut arguments = vec![(quote::format_ident!("ctx"), quote!(Context))];
    if let Some(params) = params_ident(op) {
        arguments.push((quote::format_ident!("params"), quote!(#params)));
    }
    if let Some(body) = &op.body {
        let ty = rust_type(&body.shape, false);
        let ty = if body.required {
            ty
        } else {
            quote!(Option<#ty>)
        };
        arguments.push((quote::format_ident!("body"), ty));
    }
    arguments
}

/// `METHOD /path (operationId): summary`, the first doc line of everything about an operation.
pub fn describe(op: &Operation) -> String {
    match &op.summary {
        Some(summary) => format!(
            "`{} {}` ({}): {}",
            op.method.as_str(),
            op.path,
            op.id,
            summary.trim()
        ),
        None => format!("`{} {}` ({})", op.method.as_str(), op.path, op.id),
    }
}

fn trait_method(op: &Operation, mapped: bool) -> TokenStream {
    let method = names::snake_ident(&op.id);
    let source = if mapped {
        "By default it is answered from the provider as connector.yaml maps it."
    } else {
        "By default it answers 501 Not Implemented."
    };
    let doc = doc(Some(&format!(
        "{}\n\nAnswers {} on success. {source}",
        describe(op),
        op.success.status
    )));
    let arguments = arguments(op);
    let names: Vec<_> = arguments.iter().map(|(name, _)| name).collect();
    let signature = arguments.iter().map(|(name, ty)| quote!(#name: #ty));
    let output = output_type(op.success.shape.as_ref());
    let id = &op.id;
    let ignore = match names.as_slice() {
        [] => TokenStream::new(),
        [name] => quote!(let _ = #name;),
        names => quote!(let _ = (#(#names),*);),
    };
    let body = if mapped {
        let arguments = names.iter().skip(1);
        quote!(async move { super::mapped::#method(&ctx, #(#arguments),*).await })
    } else {
        quote! {
            #ignore
            async { Err(ConnectorError::not_implemented(#id)) }
        }
    };
    quote! {
        #doc
        fn #method(&self, #(#signature),*) -> impl Future<Output = Result<#output, ConnectorError>> + Send {
            #body
        }
    }
}
