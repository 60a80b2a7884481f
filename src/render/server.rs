//! server.rs: the axum router and one handler per operation, wiring request parsing, the
//! user's `Connector` method and the response together.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::api::{arguments, describe};
use super::params::params_ident;
use super::types::rust_type;
use crate::ir::{Method, Operation, Protocol, Shape, TypeDef};
use crate::names;

pub fn render(protocol: &Protocol) -> TokenStream {
    let routes = routes(protocol);
    let handlers = protocol.operations.iter().map(|op| handler(protocol, op));
    let methods = method_imports(protocol);
    let models = if protocol.operations.iter().any(|op| op.body.is_some()) {
        quote!(
            use super::models;
        )
    } else {
        TokenStream::new()
    };
    let params = if protocol.operations.iter().any(|op| !op.params.is_empty()) {
        quote!(
            use super::params::*;
        )
    } else {
        TokenStream::new()
    };
    let validate = if protocol
        .operations
        .iter()
        .any(|op| validates_body(protocol, op))
    {
        quote!(
            use super::validate::Validate;
        )
    } else {
        TokenStream::new()
    };
    quote! {
        //! The HTTP surface: protocol routes behind the API key, one handler per operation.
        use axum::Router;
        use axum::extract::{Request, State};
        use axum::response::Response;
        #methods

        use super::api::Connector;
        #models
        #params
        use super::runtime::{self, AppState, RequestInput};
        #validate

        /// Every protocol route, authenticated, plus `/healthz` and JSON 404/405 answers.
        pub fn router<C: Connector>(state: AppState<C>) -> Router {
            let api_key = state.api_key.clone();
            let metrics = state.services.metrics();
            let protocol = Router::new()
                #routes
                .method_not_allowed_fallback(runtime::method_not_allowed)
                .route_layer(axum::middleware::from_fn_with_state(api_key, runtime::require_api_key))
                .with_state(state);
            runtime::with_common_routes(protocol, metrics)
        }

        #(#handlers)*
    }
}

fn method_fn(method: Method) -> proc_macro2::Ident {
    format_ident!("{}", method.as_str().to_lowercase())
}

fn method_imports(protocol: &Protocol) -> TokenStream {
    let mut methods: Vec<Method> = protocol.operations.iter().map(|op| op.method).collect();
    methods.sort();
    methods.dedup();
    let idents = methods.into_iter().map(method_fn);
    if protocol.operations.is_empty() {
        TokenStream::new()
    } else {
        quote!(use axum::routing::{#(#idents),*};)
    }
}

/// `.route(path, get(a).post(b))`, one call per path, in spec order.
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
                quote!(#method(#handler::<C>))
            });
        let first = chain.next();
        let rest = chain.map(|call| quote!(.#call));
        quote!(.route(#path, #first #(#rest)*))
    });
    quote!(#(#routes)*)
}

fn validates_body(protocol: &Protocol, op: &Operation) -> bool {
    matches!(&op.body, Some(body) if matches!(&body.shape, Shape::Named(name) if matches!(protocol.types.get(name), Some(TypeDef::Object(_)))))
}

fn handler(protocol: &Protocol, op: &Operation) -> TokenStream {
    let name = names::snake_ident(&op.id);
    let id = &op.id;
    let doc = format!(" {}", describe(op));
    let status = proc_macro2::Literal::u16_unsuffixed(op.success.status);
    let params =
        params_ident(op).map(|ident| quote! { let params = #ident::from_request(&input)?; });
    let body = op.body.as_ref().map(|body| {
        let ty = rust_type(&body.shape, false);
        let validate = validates_body(protocol, op);
        match (body.required, validate) {
            (true, true) => quote! {
                let body: #ty = input.json_body()?;
                body.validate("")?;
            },
            (true, false) => quote! { let body: #ty = input.json_body()?; },
            (false, true) => quote! {
                let body: Option<#ty> = input.optional_json_body()?;
                if let Some(body) = &body {
                    body.validate("")?;
                }
            },
            (false, false) => quote! { let body: Option<#ty> = input.optional_json_body()?; },
        }
    });
    let arguments: Vec<_> = arguments(op).into_iter().map(|(name, _)| name).collect();
    let respond = if op.success.shape.is_some() {
        quote!(runtime::respond)
    } else {
        quote!(runtime::respond_empty)
    };
    quote! {
        #[doc = #doc]
        async fn #name<C: Connector>(State(state): State<AppState<C>>, request: Request) -> Response {
            let result = async {
                let input = RequestInput::read(request, state.body_limit).await?;
                let ctx = input.context(&state.services);
                #params
                #body
                let connector = state.connector.clone();
                runtime::call_connector(#id, async move { connector.#name(#(#arguments),*).await }).await
            };
            #respond(#id, #status, result.await)
        }
    }
}
