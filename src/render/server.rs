//! server.rs: the axum router and one handler per operation, wiring request parsing, the
//! user's `Connector` method and the response together.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::api::{arguments, describe};
use super::params::params_ident;
use super::types::rust_type;
use crate::ir::{Initiation, Method, Operation, Protocol, Shape, TypeDef};
use crate::names;
use crate::plan::Plan;

pub fn render(protocol: &Protocol, plan: &Plan) -> TokenStream {
    let routes = routes(protocol);
    let handlers = protocol
        .operations
        .iter()
        .map(|op| handler(protocol, plan, op));
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
    let (initiation, error) = if protocol.initiations().next().is_some() {
        (
            quote!(
                use super::initiation;
            ),
            quote!(
                use super::error::ConnectorError;
            ),
        )
    } else {
        (TokenStream::new(), TokenStream::new())
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
        #error
        #validate
        #initiation

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

fn handler(protocol: &Protocol, plan: &Plan, op: &Operation) -> TokenStream {
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
    if let Some(initiation) = &op.initiation {
        return initiation_handler(op, initiation, &doc, body);
    }
    let arguments: Vec<_> = arguments(op).into_iter().map(|(name, _)| name).collect();
    let call =
        quote!(runtime::call_connector(#id, async move { connector.#name(#(#arguments),*).await }));
    let call = if protocol
        .link
        .as_ref()
        .is_some_and(|link| link.operation == op.id)
    {
        let clear_unknown = plan.links_by_provider_reference(&op.id);
        quote! {
            let link_ctx = ctx.clone();
            let mut items = #call.await?;
            initiation::link(&link_ctx, &mut items, #clear_unknown).await?;
            Ok(items)
        }
    } else {
        quote!(#call.await)
    };
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
                #call
            };
            #respond(#id, #status, result.await)
        }
    }
}

/// A payment initiation: money checked, then run at most once per idempotency key.
fn initiation_handler(
    op: &Operation,
    initiation: &Initiation,
    doc: &str,
    body: Option<TokenStream>,
) -> TokenStream {
    let name = names::snake_ident(&op.id);
    let id = &op.id;
    let status = proc_macro2::Literal::u16_unsuffixed(op.success.status);
    let key = names::snake_ident(&initiation.key_field);
    let created = op
        .success
        .shape
        .as_ref()
        .map(|shape| rust_type(shape, false));
    let created_id = names::snake_ident(&initiation.id_field);
    let transaction_type = initiation.transaction_type.as_deref().unwrap_or_default();
    let money = initiation.money.as_ref().map(|(amount, currency)| {
        let (amount_field, currency_field) = (names::snake_ident(amount), names::snake_ident(currency));
        quote!(initiation::check_money(#amount, &body.#amount_field, #currency, &body.#currency_field)?;)
    });
    quote! {
        #[doc = #doc]
        async fn #name<C: Connector>(State(state): State<AppState<C>>, request: Request) -> Response {
            const OPERATION: initiation::Operation = initiation::Operation { id: #id, status: #status, transaction_type: #transaction_type };
            let result = async {
                let input = RequestInput::read(request, state.body_limit).await?;
                let ctx = input.context(&state.services);
                #body
                #money
                let request = serde_json::to_value(&body).map_err(|error| ConnectorError::internal(format!("cannot encode the request: {error}")))?;
                let key = body.#key.clone();
                let connector = state.connector.clone();
                let call = move |ctx| async move { connector.#name(ctx, body).await };
                initiation::run(ctx, &OPERATION, key, request, |created: &#created| created.#created_id.clone(), call).await
            };
            runtime::respond_encoded(#id, result.await.map(|answer| (answer.status, answer.body.into_bytes())))
        }
    }
}
