//! server.rs: the protocol's routes and one axum handler per operation (extractors in,
//! `IntoResponse` out), and the `App` the runtime starts.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::api::{arguments, describe};
use super::params::params_ident;
use super::types::{mentions_model, output_type, rust_type};
use crate::ir::{Method, Operation, Protocol};
use crate::names;
use crate::plan::Plan;

pub fn render(protocol: &Protocol, plan: &Plan) -> TokenStream {
    let routes = routes(protocol);
    let handlers = protocol
        .operations
        .iter()
        .map(|op| handler(protocol, plan, op));
    let imports = imports(protocol);
    let package = &plan.krate.package;
    let methods = protocol.operations.iter().map(dyn_method);
    let boxed = protocol.operations.iter().map(boxed_method);
    let (field_sources_fn, field_sources) = super::sources::render(&plan.field_lines);
    quote! {
        //! The HTTP surface: one route and handler per protocol operation, and what the
        //! runtime needs to start this connector.
        #imports

        impl<C: Connector> App for C {
            const PACKAGE: &'static str = #package;

            fn upstream_settings(env: Env, problems: &mut Vec<String>) -> UpstreamSettings {
                super::settings::upstream(env, problems)
            }

            fn routes(connector: Arc<Self>, services: Services) -> Router {
                routes(connector, services)
            }
            #field_sources_fn
        }
        #field_sources

        /// The routes, serving any `Connector` through one trait object: they are compiled
        /// once, here, whatever implements it.
        fn routes(connector: Arc<dyn DynConnector>, services: Services) -> Router {
            Router::new()
                #routes
                .with_state(AppState { connector, services })
        }

        /// `Connector` as a trait object.
        trait DynConnector: Send + Sync + 'static {
            #(#methods)*
        }

        impl<C: Connector> DynConnector for C {
            #(#boxed)*
        }

        #(#handlers)*
    }
}

fn imports(protocol: &Protocol) -> TokenStream {
    let operations = &protocol.operations;
    let mut methods: Vec<Method> = operations.iter().map(|op| op.method).collect();
    methods.sort();
    methods.dedup();
    let methods = methods.into_iter().map(method_fn);
    let routing = (!operations.is_empty()).then(|| {
        quote! {
            use axum::extract::State;
            use axum::routing::{#(#methods),*};
        }
    });
    let models = operations
        .iter()
        .any(|op| {
            op.body.as_ref().is_some_and(|b| mentions_model(&b.shape))
                || op.success.shape.as_ref().is_some_and(mentions_model)
        })
        .then(|| {
            quote!(
                use super::models;
            )
        });
    let params = operations.iter().any(|op| !op.params.is_empty()).then(|| {
        quote!(
            use super::params::*;
        )
    });
    let mut runtime = vec![quote!(App), quote!(AppState), quote!(ConnectorError)];
    if !operations.is_empty() {
        runtime.push(quote!(Context));
    }
    if operations.iter().any(|op| op.body.is_some()) {
        runtime.push(quote!(Json));
    }
    if operations
        .iter()
        .any(|op| op.initiation.is_none() && op.success.shape.is_some())
    {
        runtime.push(quote!(Reply));
    }
    runtime.push(quote!(Services));
    let mut server = vec![];
    if !operations.is_empty() {
        server.push(quote!(BoxFuture));
    }
    if operations
        .iter()
        .any(|op| op.initiation.is_none() && !reads(op))
    {
        server.push(quote!(call_connector));
    }
    if operations
        .iter()
        .any(|op| op.initiation.is_none() && reads(op))
    {
        server.push(quote!(call_read));
    }
    if !operations.is_empty() {
        server.push(quote!(operation));
    }
    let server = (!server.is_empty()).then(|| quote!(use super::runtime::server::{#(#server),*};));
    let response = operations
        .iter()
        .any(|op| op.success.shape.is_none())
        .then(|| {
            quote!(
                use super::runtime::response::Empty;
            )
        });
    let initiation = initiation_imports(protocol);
    quote! {
        use std::sync::Arc;

        use axum::Router;
        #routing

        use super::api::Connector;
        #models
        #params
        use super::runtime::config::{Env, UpstreamSettings};
        #initiation
        #response
        #server
        use super::runtime::{#(#runtime),*};
    }
}

fn initiation_imports(protocol: &Protocol) -> TokenStream {
    let mut names = Vec::new();
    if protocol.initiations().next().is_some() {
        names.push(quote!(self));
        names.push(quote!(Operation));
        if protocol.link.is_some() {
            names.push(quote!(Unknown));
        }
    }
    if names.is_empty() {
        TokenStream::new()
    } else {
        quote!(use super::runtime::initiation::{#(#names),*};)
    }
}

/// A `DynConnector` method: the `Connector` method's arguments, its result boxed.
fn dyn_signature(op: &Operation) -> TokenStream {
    let method = names::snake_ident(&op.id);
    let signature = arguments(op)
        .into_iter()
        .map(|(name, ty)| quote!(#name: #ty));
    let output = output_type(op.success.shape.as_ref());
    quote!(fn #method(&self, #(#signature),*) -> BoxFuture<'_, Result<#output, ConnectorError>>)
}

fn dyn_method(op: &Operation) -> TokenStream {
    let signature = dyn_signature(op);
    quote!(#signature;)
}

fn boxed_method(op: &Operation) -> TokenStream {
    let signature = dyn_signature(op);
    let method = names::snake_ident(&op.id);
    let names = arguments(op).into_iter().map(|(name, _)| name);
    quote! {
        #signature {
            Box::pin(Connector::#method(self, #(#names),*))
        }
    }
}

fn method_fn(method: Method) -> proc_macro2::Ident {
    format_ident!("{}", method.as_str().to_lowercase())
}

/// `.route(path, operation(get(a), "a").merge(...))`, one call per path, in spec order.
fn routes(protocol: &Protocol) -> TokenStream {
    let mut paths: Vec<&str> = Vec::new();
    for op in &protocol.operations {
        if !paths.contains(&op.path.as_str()) {
            paths.push(&op.path);
        }
    }
    let routes = paths.into_iter().map(|path| {
        let mut chain = protocol
            .operations
            .iter()
            .filter(|op| op.path == path)
            .map(|op| {
                let method = method_fn(op.method);
                let handler = names::snake_ident(&op.id);
                let id = &op.id;
                quote!(operation(#method(#handler), #id))
            });
        let first = chain.next();
        let rest = chain.map(|call| quote!(.merge(#call)));
        quote!(.route(#path, #first #(#rest)*))
    });
    quote!(#(#routes)*)
}

/// The handler's extractors, after the connector's state: the context, then the
/// parameters, then the body.
fn extractors(op: &Operation) -> Vec<TokenStream> {
    let mut extractors = vec![quote!(ctx: Context)];
    if let Some(params) = params_ident(op) {
        extractors.push(quote!(params: #params));
    }
    if let Some(body) = &op.body {
        let ty = rust_type(&body.shape, false);
        extractors.push(if body.required {
            quote!(Json(body): Json<#ty>)
        } else {
            quote!(body: Option<Json<#ty>>)
        });
    }
    extractors
}

/// The connector method's arguments, as the handler holds them.
fn call_arguments(op: &Operation) -> Vec<TokenStream> {
    arguments(op)
        .into_iter()
        .map(|(name, _)| match &op.body {
            Some(body) if name == "body" && !body.required => quote!(body.map(|Json(body)| body)),
            _ => quote!(#name),
        })
        .collect()
}

/// A `GET`: it changes nothing, so it may run in the request's own task and stop with it.
fn reads(op: &Operation) -> bool {
    op.method == Method::Get
}

fn handler(protocol: &Protocol, plan: &Plan, op: &Operation) -> TokenStream {
    if op.initiation.is_some() {
        return initiation_handler(plan, op);
    }
    let name = names::snake_ident(&op.id);
    let id = &op.id;
    let doc = format!(" {}", describe(op));
    let status = proc_macro2::Literal::u16_unsuffixed(op.success.status);
    let extractors = extractors(op);
    let arguments = call_arguments(op);
    let caller = if reads(op) {
        quote!(call_read)
    } else {
        quote!(call_connector)
    };
    let call = quote!(#caller(#id, async move { connector.#name(#(#arguments),*).await }));
    let (output, answer) = match &op.success.shape {
        Some(shape) => {
            let ty = rust_type(shape, false);
            (quote!(Reply<#status, #ty>), quote!(Reply))
        }
        None => (quote!(Empty<#status>), quote!(|()| Empty)),
    };
    let links = protocol
        .link
        .as_ref()
        .is_some_and(|link| link.operation == op.id)
        && protocol.initiations().next().is_some();
    let body = if links {
        let unknown = unknown_links(plan, op);
        quote! {
            let link_ctx = ctx.clone();
            let mut items = #call.await?;
            initiation::link(&link_ctx, &mut items, #unknown).await?;
            Ok(Reply(items))
        }
    } else {
        quote!(#call.await.map(#answer))
    };
    quote! {
        #[doc = #doc]
        async fn #name(
            State(connector): State<Arc<dyn DynConnector>>,
            #(#extractors),*
        ) -> Result<#output, ConnectorError> {
            #body
        }
    }
}

/// What linking does with a `relatedTransactionID` that names no initiation made here.
fn unknown_links(plan: &Plan, op: &Operation) -> TokenStream {
    if !plan.links_by_provider_reference(&op.id) {
        quote!(Unknown::Keep)
    } else if plan.finds_payments() {
        quote!(Unknown::ClearAfterLookup(super::mapped::find_payment))
    } else {
        quote!(Unknown::Clear)
    }
}

/// A payment initiation: money checked, then run at most once per idempotency key.
fn initiation_handler(plan: &Plan, op: &Operation) -> TokenStream {
    let name = names::snake_ident(&op.id);
    let id = &op.id;
    let doc = format!(" {}", describe(op));
    let status = proc_macro2::Literal::u16_unsuffixed(op.success.status);
    let transaction_type = op
        .initiation
        .as_ref()
        .and_then(|initiation| initiation.transaction_type.as_deref())
        .unwrap_or_default();
    let currencies = if plan.mapped.is_some() {
        quote!(super::mapped::CURRENCIES)
    } else {
        quote!(&[])
    };
    let reshaped = plan
        .mapped
        .as_ref()
        .and_then(|mapped| mapped.operations.get(&op.id))
        .and_then(|mapping| mapping.initiation.as_ref())
        .is_some_and(|initiation| initiation.provider_key.is_some());
    let provider_key = if reshaped {
        let name = format_ident!("{}_provider_key", names::snake(&op.id));
        quote!(Some(super::mapped::#name))
    } else {
        quote!(None)
    };
    let extractors = extractors(op);
    quote! {
        #[doc = #doc]
        async fn #name(
            State(connector): State<Arc<dyn DynConnector>>,
            #(#extractors),*
        ) -> Result<initiation::Answer, ConnectorError> {
            const OPERATION: Operation = Operation {
                id: #id,
                status: #status,
                transaction_type: #transaction_type,
                currencies: #currencies,
                provider_key: #provider_key,
            };
            initiation::run(ctx, &OPERATION, body, move |ctx, body| async move {
                connector.#name(ctx, body).await
            })
            .await
        }
    }
}
