//! mapped.rs of a generated crate: the operations connector.yaml answers from the provider's
//! API. Each becomes a request builder, a record converter with one typed step per protocol
//! field, and (for lists) a static description the listing engine walks.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::params::params_ident;
use super::typed::{self, Typed};
use super::types::rust_type;
use super::{idents, mentions, uses};
use crate::ir::{
    Field, ObjectDef, Operation, ParamLocation, Protocol, Shape, StringFormat, TypeDef,
};
use crate::mapping::{
    AmountFormat, BodyEncoding, Conversion, CursorSource, Expr, FieldMapping, ForEach,
    InitiationMapping, KeyForwarding, ListMapping, Lookup, OperationMapping, Order, Paging,
    ParentList, PaymentStep, RequestTemplate, Sign, Source, Step, Template, TemplatePart,
    TimeFormat,
};
use crate::names;
use crate::plan::Mapped;

pub fn render(protocol: &Protocol, mapped: &Mapped) -> TokenStream {
    let operations: Vec<(&Operation, &OperationMapping)> = protocol
        .operations
        .iter()
        .filter_map(|op| mapped.operations.get(&op.id).map(|mapping| (op, mapping)))
        .collect();
    let lists = operations
        .iter()
        .filter(|(_, m)| m.list.is_some())
        .map(|(op, _)| {
            let field = names::snake_ident(&op.id);
            let item = list_item(protocol, op).map_or(quote!(serde_json::Value), |(name, _)| {
                let ident = names::pascal_ident(name);
                quote!(models::#ident)
            });
            quote!(pub #field: listing::ListState<#item>,)
        });
    let currencies = mapped.currencies.iter().map(|(code, precision)| {
        let precision = Literal::u32_unsuffixed(*precision);
        quote!((#code, #precision))
    });
    let bodies = operations
        .iter()
        .map(|(op, mapping)| operation(protocol, op, mapping));
    let find_payment = find_payment(&operations);
    let walks = record_walks(&operations);
    let caches = record_caches(&operations);
    let code = quote! {
        /// Currency precisions from connector.yaml, on top of ISO 4217.
        pub const CURRENCIES: &[(&str, u32)] = &[#(#currencies),*];

        /// The list operations' windows, and the walks of every record of the lists other
        /// operations read, kept between requests.
        #[derive(Default)]
        pub struct Lists {
            #(#lists)*
            #(#caches)*
        }

        #(#bodies)*

        #walks

        #find_payment
    };
    let imports = imports(&operations, &code);
    quote! {
        //! The operations connector.yaml answers from the provider's API. The `Connector`
        //! trait's default methods call these; implement a method in src/handlers.rs to
        //! answer that operation your own way instead.
        #imports

        #code
    }
}

/// The operations whose every record another reads (`for_each`, `from_list`).
fn read_lists<'o>(
    operations: &[(&'o Operation, &'o OperationMapping)],
) -> std::collections::BTreeSet<&'o str> {
    operations
        .iter()
        .flat_map(|(_, mapping)| {
            let parent = mapping.for_each.as_ref().and_then(|f| match &f.parent {
                ParentList::Operation { id, .. } => Some(id.as_str()),
                ParentList::Inline(_) => None,
            });
            parent
                .into_iter()
                .chain(mapping.from_list.as_ref().map(|f| f.list.as_str()))
        })
        .collect()
}

/// A `RecordCache` field of `Lists` for every walk of all records: `x_records` of the lists
/// others read, `x_parents` of the parent lists fan-outs have of their own.
fn record_caches(operations: &[(&Operation, &OperationMapping)]) -> Vec<TokenStream> {
    let read = read_lists(operations);
    operations
        .iter()
        .flat_map(|(op, mapping)| {
            let records = read
                .contains(op.id.as_str())
                .then(|| format_ident!("{}_records", names::snake(&op.id)));
            let parents = matches!(
                mapping.for_each.as_ref().map(|f| &f.parent),
                Some(ParentList::Inline(_))
            )
            .then(|| format_ident!("{}_parents", names::snake(&op.id)));
            records.into_iter().chain(parents)
        })
        .map(|field| quote!(pub #field: listing::RecordCache,))
        .collect()
}

/// What the mapped code names, imported.
fn imports(operations: &[(&Operation, &OperationMapping)], code: &TokenStream) -> TokenStream {
    let params = operations
        .iter()
        .filter_map(|(op, _)| params_ident(op))
        .any(|ident| mentions(code, &ident.to_string()))
        .then(|| {
            quote!(
                use super::params::*;
            )
        });
    let named = idents(code);
    let external = uses(
        &named,
        &[
            ("std::sync", &["Arc"]),
            ("std::time", &["Duration"]),
            ("serde_json", &["Value"]),
        ],
    );
    let local = uses(&named, &[("super", &["models"])]);
    let runtime = uses(
        &named,
        &[
            (
                "super::runtime::convert",
                &["self", "AmountFormat", "Sign", "Step", "TimeFormat"],
            ),
            (
                "super::runtime::fields",
                &["self", "KeyCharset", "KeyShape", "Target"],
            ),
            ("super::runtime::initiation", &["Found"]),
            ("super::runtime::join", &["Join"]),
            (
                "super::runtime::listing",
                &[
                    "self",
                    "CursorFrom",
                    "Entry",
                    "Filter",
                    "ListSpec",
                    "Order",
                    "Paging",
                    "Records",
                    "Since",
                    "Source",
                    "WindowStart",
                    "Windows",
                ],
            ),
            ("super::runtime::metrics", &["Metrics"]),
            (
                "super::runtime::upstream",
                &["BodyEncoding", "UpstreamRequest"],
            ),
            ("super::runtime", &["ConnectorError", "Context"]),
        ],
    );
    quote! {
        #external
        #local
        #params
        #runtime
    }
}

/// `find_payment`: an initiation's payment by its stored request, through the operation's
/// `lookup`; for linking transactions of initiations left without an answer.
fn find_payment(operations: &[(&Operation, &OperationMapping)]) -> TokenStream {
    let arms: Vec<TokenStream> = operations
        .iter()
        .filter(|(_, mapping)| {
            mapping
                .initiation
                .as_ref()
                .is_some_and(|i| i.lookup.is_some())
        })
        .filter_map(|(op, _)| {
            let (id, body) = (&op.id, op.body.as_ref()?);
            let initiation = op.initiation.as_ref()?;
            let body_type = rust_type(&body.shape, false);
            let lookup_fn = format_ident!("{}_lookup", names::snake(&op.id));
            let input_fn = format_ident!("{}_input", names::snake(&op.id));
            let created_id = names::snake_ident(&initiation.id_field);
            Some(quote! {
                #id => {
                    let body: #body_type = serde_json::from_str(request).map_err(unreadable)?;
                    let value = #input_fn(&body)?;
                    Ok(#lookup_fn(ctx, &body, &value).await?.map(|created| created.#created_id))
                }
            })
        })
        .collect();
    if arms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        /// The provider's id of the payment an initiation made, looked up as connector.yaml
        /// says, from the request stored with its key.
        pub fn find_payment<'a>(ctx: &'a Context, operation: &'a str, request: &'a str) -> Found<'a> {
            Box::pin(async move {
                let unreadable = |error: serde_json::Error| ConnectorError::internal(format!("a stored {operation} request cannot be read: {error}"));
                match operation {
                    #(#arms)*
                    _ => Ok(None),
                }
            })
        }
    }
}

/// The item type of a list operation and its object definition.
fn list_item<'p>(protocol: &'p Protocol, op: &Operation) -> Option<(&'p str, &'p ObjectDef)> {
    let Some(Shape::Array(array)) = &op.success.shape else {
        return None;
    };
    protocol.object(&array.items)
}

fn operation(protocol: &Protocol, op: &Operation, mapping: &OperationMapping) -> TokenStream {
    if let Some(initiation) = &mapping.initiation {
        return initiation_operation(protocol, op, mapping, initiation);
    }
    if let Some(from_list) = &mapping.from_list {
        return from_list_operation(protocol, op, mapping, from_list);
    }
    let name = names::snake_ident(&op.id);
    let request_fn = format_ident!("{}_request", names::snake(&op.id));
    let record_fn = format_ident!("{}_record", names::snake(&op.id));
    let params_type = params_ident(op).map_or(quote!(()), |ident| quote!(#ident));
    let fanned_out = mapping.for_each.is_some();
    let builders = request_builders(op, mapping, &params_type);
    let takes_params = any_takes_params(&builders);
    let request: TokenStream = builders
        .iter()
        .map(|builder| builder.code.clone())
        .collect();
    let id = &op.id;
    match (&mapping.list, list_item(protocol, op), &op.success.shape) {
        (Some(list), Some((type_name, object)), _) => {
            let spec_name = format_ident!("{}", names::shouty(&op.id));
            let sort_field = op.sort_field(object);
            let spec = list_spec(&op.id, list, sort_field);
            let item = names::pascal_ident(type_name);
            let typed = Typed::of(mapping);
            let reads = typed.as_ref().map_or(Reads::Json, Reads::Typed);
            let build =
                object_literal(protocol, op, type_name, object, &mapping.fields, &[], reads);
            let finish = match sort_field {
                Some(field) => {
                    let field = names::snake_ident(field);
                    quote! {
                        let served = convert::served_time(item.#field, &item.id);
                        Ok(Entry { served, id: item.id.clone(), item: models::#item { #field: served, ..item } })
                    }
                }
                None => quote! {
                    Ok(Entry { served: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, id: item.id.clone(), item })
                },
            };
            let record_type = match &typed {
                Some(_) => {
                    let ident = typed::record_type(op);
                    quote!(#ident<'_>)
                }
                None => quote!(Value),
            };
            let (record_signature, target) = record_fn_head(
                &record_fn,
                &record_type,
                &params_type,
                id,
                &build,
                fanned_out,
            );
            let since = filter_param(op).map_or(quote!(None), |field| quote!(params.#field));
            let page = paging_param(op, "page").map_or(quote!(1), |field| quote!(params.#field));
            let size = paging_param(op, "pageSize")
                .map_or(quote!(i64::MAX), |field| quote!(params.#field));
            let sources = sources_fn(op, mapping, &builders, &params_type);
            let to_entry = if fanned_out {
                quote!(|record: &Value, parent: Option<&Value>| #record_fn(record, parent, &params, metrics))
            } else {
                quote!(|record: &Value, _parent: Option<&Value>| #record_fn(record, &params, metrics))
            };
            let sources_closure = sources_closure(op, mapping, takes_params);
            let joins = join_builders(op, list);
            let (reader, call) = match &typed {
                Some(typed) => {
                    let page_fn = format_ident!("{}_page", names::snake(&op.id));
                    let reader = typed_reader(op, typed, &page_fn, &record_fn, &params_type, &item);
                    let read = quote!(let read = |text: &str| #page_fn(text, &params, metrics););
                    (
                        reader,
                        quote! {
                            #read
                            let lists = ctx.state::<Lists>();
                            let sources = #sources_closure;
                            listing::page_typed(ctx.upstream(), &#spec_name, &lists.#name, sources, #since, #page, #size, read).await
                        },
                    )
                }
                None => (
                    TokenStream::new(),
                    quote! {
                        let to_entry = #to_entry;
                        let lists = ctx.state::<Lists>();
                        let sources = #sources_closure;
                        listing::page(ctx.upstream(), &#spec_name, &lists.#name, sources, #since, #page, #size, to_entry).await
                    },
                ),
            };
            quote! {
                static #spec_name: ListSpec = #spec;

                #[doc = concat!(" `", #id, "` from the provider's list, in protocol order.")]
                pub async fn #name(ctx: &Context, params: #params_type) -> Result<Vec<models::#item>, ConnectorError> {
                    let metrics = ctx.metrics();
                    #call
                }

                #reader

                #sources

                #request

                #joins

                #record_signature -> Result<Entry<models::#item>, ConnectorError> {
                    #target
                    let item = #build;
                    #finish
                }
            }
        }
        (None, _, Some(shape)) => {
            let Some((type_name, object)) = protocol.object(shape) else {
                return TokenStream::new();
            };
            let item = names::pascal_ident(type_name);
            let build = object_literal(
                protocol,
                op,
                type_name,
                object,
                &mapping.fields,
                &[],
                Reads::Json,
            );
            let steps = steps(&mapping.record.steps);
            let record_text = &mapping.record.text;
            let (record_signature, target) =
                record_fn_head(&record_fn, &quote!(Value), &params_type, id, &build, false);
            let request_call = if takes_params {
                quote!(#request_fn(&params))
            } else {
                quote!(#request_fn())
            };
            quote! {
                #[doc = concat!(" `", #id, "` from the provider.")]
                pub async fn #name(ctx: &Context, params: #params_type) -> Result<models::#item, ConnectorError> {
                    let request = #request_call;
                    let response = ctx.upstream().send(#id, &request).await?;
                    let record = fields::record_at(#id, &response.body, #steps, #record_text)?;
                    #record_fn(record, &params, ctx.metrics())
                }

                #request

                #record_signature -> Result<models::#item, ConnectorError> {
                    #target
                    Ok(#build)
                }
            }
        }
        _ => TokenStream::new(),
    }
}

/// `x_sources(ctx, params)`: the provider walks of a list, one, or one per parent record.
fn sources_fn(
    op: &Operation,
    mapping: &OperationMapping,
    builders: &[Builder],
    params_type: &TokenStream,
) -> TokenStream {
    let name = format_ident!("{}_sources", names::snake(&op.id));
    let uses_params = any_takes_params(builders);
    let params = uses_params.then(|| quote!(params: &#params_type));
    let doc = format!(" The provider walks of `{}`.", op.id);
    let walks = walks(mapping, builders);
    match &mapping.for_each {
        None => quote! {
            #[doc = #doc]
            async fn #name(#params) -> Result<Vec<Source>, ConnectorError> {
                Ok(#walks)
            }
        },
        Some(for_each) => {
            let parents = parents_fn_name(&op.id, for_each);
            quote! {
                #[doc = #doc]
                async fn #name(ctx: &Context, max_age: Duration, #params) -> Result<Vec<Source>, ConnectorError> {
                    let parents = #parents(ctx, max_age).await?;
                    Ok(#walks)
                }
            }
        }
    }
}

/// The name of the request builder of a list's `index`th request (of a `union`).
fn request_fn_name(op: &Operation, index: usize) -> proc_macro2::Ident {
    match index {
        0 => format_ident!("{}_request", names::snake(&op.id)),
        n => format_ident!("{}_request_{}", names::snake(&op.id), n + 1),
    }
}

/// The request builder of an operation, one for each request of its `union`.
fn request_builders(
    op: &Operation,
    mapping: &OperationMapping,
    params_type: &TokenStream,
) -> Vec<Builder> {
    let fanned_out = mapping.for_each.is_some();
    if mapping.union.is_empty() {
        return vec![request_builder(
            op,
            &mapping.request,
            &request_fn_name(op, 0),
            params_type,
            fanned_out,
        )];
    }
    mapping
        .union
        .iter()
        .enumerate()
        .map(|(index, member)| {
            request_builder(
                op,
                &member.request,
                &request_fn_name(op, index),
                params_type,
                fanned_out,
            )
        })
        .collect()
}

/// The `Vec<Source>` of a list's walks, one for each of its `builders` (its request, or
/// each of its `union`), once or for every `parent` of `parents`.
fn walks(mapping: &OperationMapping, builders: &[Builder]) -> TokenStream {
    let fanned_out = mapping.for_each.is_some();
    let call = |builder: &Builder| {
        let name = &builder.name;
        let params = builder.takes_params.then(|| quote!(params,));
        let parent = fanned_out.then(|| quote!(parent));
        quote!(#name(#params #parent))
    };
    let source = |builder: &Builder, constants: &[(String, String)]| {
        let request = call(builder);
        let walk = if fanned_out {
            quote!(Source { request: #request, parent: Some(Arc::clone(parent)), ..Source::default() })
        } else {
            quote!(Source { request: #request, ..Source::default() })
        };
        if constants.is_empty() {
            return walk;
        }
        let pairs = constants.iter().map(|(key, value)| quote!((#key, #value)));
        quote!(#walk.with_constants(&[#(#pairs),*]))
    };
    if mapping.union.is_empty() {
        if !fanned_out {
            let request = call(&builders[0]);
            return quote!(Source::single(#request));
        }
        let only = source(&builders[0], &[]);
        return quote!(parents.iter().map(|parent| #only).collect());
    }
    let sources = mapping
        .union
        .iter()
        .zip(builders)
        .map(|(member, builder)| source(builder, &member.constants));
    if fanned_out {
        quote!(parents.iter().flat_map(|parent| [#(#sources),*]).collect())
    } else {
        quote!(Vec::from([#(#sources),*]))
    }
}

/// How a list operation's walks are asked for, from parents walked at most `max_age` ago:
/// `|max_age| x_sources(ctx, max_age, &params)`.
fn sources_closure(op: &Operation, mapping: &OperationMapping, takes_params: bool) -> TokenStream {
    let name = format_ident!("{}_sources", names::snake(&op.id));
    let params = takes_params.then(|| quote!(&params));
    if mapping.for_each.is_some() {
        quote!(|max_age| #name(ctx, max_age, #params))
    } else {
        quote!(|_max_age| #name(#params))
    }
}

/// The function giving a fan-out's parent records: another list's, or its own parent list's.
fn parents_fn_name(id: &str, for_each: &ForEach) -> proc_macro2::Ident {
    match &for_each.parent {
        ParentList::Operation { id: parent, .. } => {
            format_ident!("{}_records", names::snake(parent))
        }
        ParentList::Inline(_) => format_ident!("{}_parents", names::snake(id)),
    }
}

/// Every provider record of the lists other operations read (`for_each`, `from_list`), and
/// the parent lists of their own that fan-outs walk.
fn record_walks(operations: &[(&Operation, &OperationMapping)]) -> TokenStream {
    let used = read_lists(operations);
    let walks = operations
        .iter()
        .filter(|(op, _)| used.contains(op.id.as_str()))
        .map(|(op, mapping)| {
            let name = format_ident!("{}_records", names::snake(&op.id));
            let spec = format_ident!("{}", names::shouty(&op.id));
            let builders = request_builders(op, mapping, &quote!(()));
            let walks = walks(mapping, &builders);
            let sources = match &mapping.for_each {
                Some(for_each) => {
                    let parents = parents_fn_name(&op.id, for_each);
                    quote! {
                        async {
                            let parents = #parents(ctx, max_age).await?;
                            Ok(#walks)
                        }
                    }
                }
                None => quote!(async { Ok(#walks) }),
            };
            let doc = format!(" Every provider record of `{}`'s list, from a walk at most `max_age` old.", op.id);
            quote! {
                #[doc = #doc]
                async fn #name(ctx: &Context, max_age: Duration) -> Result<Records, ConnectorError> {
                    let lists = ctx.state::<Lists>();
                    listing::records(ctx.upstream(), &#spec, &lists.#name, max_age, #sources).await
                }
            }
        });
    let inline = operations.iter().filter_map(|(op, mapping)| {
        let ParentList::Inline(list) = &mapping.for_each.as_ref()?.parent else {
            return None;
        };
        let name = format_ident!("{}_parents", names::snake(&op.id));
        let spec = format_ident!("{}_PARENTS", names::shouty(&op.id));
        let request_fn = format_ident!("{}_parents_request", names::snake(&op.id));
        let label = format!("{} for_each", op.id);
        let spec_value = list_spec(&label, &list.list, None);
        let request = request_builder(op, &list.request, &request_fn, &quote!(()), false).code;
        let doc = format!(" The records `{}` is fanned out over, from a walk at most `max_age` old.", op.id);
        Some(quote! {
            static #spec: ListSpec = #spec_value;

            #[doc = #doc]
            async fn #name(ctx: &Context, max_age: Duration) -> Result<Records, ConnectorError> {
                let lists = ctx.state::<Lists>();
                listing::records(ctx.upstream(), &#spec, &lists.#name, max_age, async { Ok(Source::single(#request_fn())) }).await
            }

            #request
        })
    });
    quote!(#(#walks)* #(#inline)*)
}

/// A single-object operation answered by the record of another list whose fields match.
fn from_list_operation(
    protocol: &Protocol,
    op: &Operation,
    mapping: &OperationMapping,
    from_list: &crate::mapping::FromList,
) -> TokenStream {
    let Some((type_name, object)) = op.success.shape.as_ref().and_then(|s| protocol.object(s))
    else {
        return TokenStream::new();
    };
    let name = names::snake_ident(&op.id);
    let record_fn = format_ident!("{}_record", names::snake(&op.id));
    let records_fn = format_ident!("{}_records", names::snake(&from_list.list));
    let params_type = params_ident(op).map_or(quote!(()), |ident| quote!(#ident));
    let item = names::pascal_ident(type_name);
    let build = object_literal(
        protocol,
        op,
        type_name,
        object,
        &mapping.fields,
        &[],
        Reads::Json,
    );
    let (record_signature, target) = record_fn_head(
        &record_fn,
        &quote!(Value),
        &params_type,
        &op.id,
        &build,
        false,
    );
    let matches = from_list.matches.iter().map(|(path, template)| {
        let path = steps(&path.steps);
        let text = template_text(op, template, false, "request");
        quote!((#path, #text))
    });
    let (id, list) = (&op.id, &from_list.list);
    let count = Literal::usize_unsuffixed(from_list.matches.len());
    quote! {
        #[doc = concat!(" `", #id, "` from the record of `", #list, "`'s list it names.")]
        pub async fn #name(ctx: &Context, params: #params_type) -> Result<models::#item, ConnectorError> {
            let records = #records_fn(ctx, listing::RECORDS_TTL).await?;
            let wanted: [(&[Step], String); #count] = [#(#matches),*];
            let record = fields::find_record(&records, &wanted).ok_or_else(|| {
                ConnectorError::not_found(format!("{}: no record of {}'s list has {}", #id, #list, fields::describe_match(&wanted)))
            })?;
            #record_fn(record, &params, ctx.metrics())
        }

        #record_signature -> Result<models::#item, ConnectorError> {
            #target
            Ok(#build)
        }
    }
}

/// The typed reader of a list operation: its page and record types, and
/// `fn x_page(text, params, metrics)`, which reads one provider page into entries.
fn typed_reader(
    op: &Operation,
    typed: &Typed,
    page_fn: &proc_macro2::Ident,
    record_fn: &proc_macro2::Ident,
    params_type: &TokenStream,
    item: &proc_macro2::Ident,
) -> TokenStream {
    let types = typed.types(op);
    let page_type = typed::page_type(op);
    let records = typed.records(op);
    let paging = typed.paging();
    quote! {
        #types

        /// One provider page, read into the types above and converted.
        fn #page_fn(text: &str, params: &#params_type, metrics: &Metrics) -> Result<listing::Read<models::#item>, listing::Unread> {
            let page: #page_type<'_> = listing::parse(text)?;
            #records
            #paging
            let entries = listing::convert_all(records, |record| #record_fn(record, params, metrics))?;
            Ok(listing::Read { entries, count, paging, cursor })
        }
    }
}

/// `fn x_record(record, [parent,] params, metrics)` with the arguments `build` does not use
/// marked so, and the `target` closure when it needs one.
fn record_fn_head(
    name: &proc_macro2::Ident,
    record_type: &TokenStream,
    params_type: &TokenStream,
    operation: &str,
    build: &TokenStream,
    fanned_out: bool,
) -> (TokenStream, TokenStream) {
    let argument = |name: &str| {
        let ident = if mentions(build, name) {
            format_ident!("{name}")
        } else {
            format_ident!("_{name}")
        };
        quote!(#ident)
    };
    let (record, params) = (argument("record"), argument("params"));
    let parent = fanned_out.then(|| {
        let parent = argument("parent");
        quote!(#parent: Option<&Value>,)
    });
    let targets = mentions(build, "target");
    let metrics = if targets {
        quote!(metrics)
    } else {
        quote!(_metrics)
    };
    let target = targets.then(|| {
        quote!(let target = |field: &'static str| Target { operation: #operation, field, metrics };)
    });
    (
        quote!(fn #name(#record: &#record_type, #parent #params: &#params_type, #metrics: &Metrics)),
        quote!(#target),
    )
}

// ---- initiations ------------------------------------------------------------------------------

/// A payout or transfer: the provider request built from the protocol request, an optional
/// look-up first when an earlier attempt may have paid, and the answer mapped back with the
/// request's own fields echoed.
fn initiation_operation(
    protocol: &Protocol,
    op: &Operation,
    mapping: &OperationMapping,
    initiation: &InitiationMapping,
) -> TokenStream {
    let (Some(body), Some((created_name, created))) = (
        op.body.as_ref(),
        op.success
            .shape
            .as_ref()
            .and_then(|shape| protocol.object(shape)),
    ) else {
        return TokenStream::new();
    };
    let request_fields: Vec<&str> = protocol
        .object(&body.shape)
        .map(|(_, object)| object.fields.iter().map(|f| f.name.as_str()).collect())
        .unwrap_or_default();
    let id = &op.id;
    let name = names::snake_ident(&op.id);
    let request_fn = format_ident!("{}_request", names::snake(&op.id));
    let lookup_fn = format_ident!("{}_lookup", names::snake(&op.id));
    let record_fn = format_ident!("{}_record", names::snake(&op.id));
    let body_type = rust_type(&body.shape, false);
    let created_type = names::pascal_ident(created_name);
    // Fields the request has are echoed from it when not mapped (the key always is: mapping it
    // is an error).
    let build = object_literal(
        protocol,
        op,
        created_name,
        created,
        &mapping.fields,
        &request_fields,
        Reads::Json,
    );
    let request_arg = if mentions(&build, "request") {
        quote!(request)
    } else {
        quote!(_request)
    };
    let request = initiation_request(op, mapping, initiation, &request_fn);
    let record_steps = steps(&mapping.record.steps);
    let record_text = &mapping.record.text;
    let (lookup, recover) = match &initiation.lookup {
        Some(lookup) => (
            initiation_lookup(
                op,
                lookup,
                &lookup_fn,
                &record_fn,
                &body_type,
                &created_type,
            ),
            quote! {
                if ctx.initiation().is_some_and(|attempt| attempt.recovering())
                    && let Some(found) = #lookup_fn(ctx, &body, &request).await?
                {
                    tracing::info!(operation = #id, id = %found.id, "found the payment of an earlier attempt; not paying again");
                    return Ok(found);
                }
            },
        ),
        None => (TokenStream::new(), TokenStream::new()),
    };
    let input_fn = format_ident!("{}_input", names::snake(&op.id));
    let key_field = op
        .initiation
        .as_ref()
        .map(|i| names::snake_ident(&i.key_field))
        .unwrap_or_else(|| format_ident!("idempotency_key"));
    let (provider_key, provider_key_fn) = match &initiation.provider_key {
        Some(shape) => {
            let name = format_ident!("{}_provider_key", names::snake(&op.id));
            let (min, max) = (
                Literal::usize_unsuffixed(shape.min_length),
                Literal::usize_unsuffixed(shape.max_length),
            );
            let charset = match shape.charset {
                crate::mapping::KeyCharset::Any => quote!(KeyCharset::Any),
                crate::mapping::KeyCharset::Alphanumeric => quote!(KeyCharset::Alphanumeric),
                crate::mapping::KeyCharset::Hex => quote!(KeyCharset::Hex),
                crate::mapping::KeyCharset::Uuid => quote!(KeyCharset::Uuid),
            };
            let doc = format!(" Formance's key as the provider takes `{id}`'s (`provider_key`).");
            (
                quote!(#name(&body.#key_field)),
                quote! {
                    #[doc = #doc]
                    pub fn #name(key: &str) -> String {
                        fields::provider_key(key, &KeyShape { min_length: #min, max_length: #max, charset: #charset })
                    }
                },
            )
        }
        None => (quote!(body.#key_field.clone()), TokenStream::new()),
    };
    let (run_steps, steps_fn) = initiation_steps(op, initiation);
    quote! {
        #[doc = concat!(" `", #id, "` at the provider, at most once per idempotency key.")]
        pub async fn #name(ctx: &Context, body: #body_type) -> Result<models::#created_type, ConnectorError> {
            let request = #input_fn(&body)?;
            #run_steps
            #recover
            let upstream = #request_fn(ctx, &request)?;
            let response = ctx.upstream().send(#id, &upstream).await?;
            let record = fields::record_at(#id, &response.body, #record_steps, #record_text)?;
            #record_fn(record, &body, ctx.metrics())
        }

        /// The protocol request as the mapping reads it, with `providerKey`.
        fn #input_fn(body: &#body_type) -> Result<Value, ConnectorError> {
            let mut request = serde_json::to_value(body).map_err(|error| ConnectorError::internal(format!("cannot encode the request: {error}")))?;
            request["providerKey"] = Value::String(#provider_key);
            Ok(request)
        }

        #provider_key_fn

        #steps_fn

        #request
        #lookup

        fn #record_fn(record: &Value, #request_arg: &#body_type, metrics: &Metrics) -> Result<models::#created_type, ConnectorError> {
            let target = |field: &'static str| Target { operation: #id, field, metrics };
            Ok(#build)
        }
    }
}

/// The call to `x_steps` and the function: the provider calls a payment makes first, each
/// answer added to the protocol request under the step's name.
fn initiation_steps(op: &Operation, initiation: &InitiationMapping) -> (TokenStream, TokenStream) {
    if initiation.steps.is_empty() {
        return (TokenStream::new(), TokenStream::new());
    }
    let id = &op.id;
    let name = format_ident!("{}_steps", names::snake(&op.id));
    let calls = initiation.steps.iter().map(|step| {
        let RequestParts {
            method,
            path,
            query,
            headers,
        } = request_parts(op, &step.request);
        let (query_field, headers_field) = (pairs_field("query", &query), pairs_field("headers", &headers));
        let step_name = &step.name;
        let record = steps(&step.record.steps);
        let record_text = &step.record.text;
        let upstream = quote! {
            UpstreamRequest {
                method: #method.to_owned(),
                path: #path,
                #query_field
                #headers_field
                ..Default::default()
            }
        };
        let upstream = if mentions(&upstream, "request") {
            quote!({ let request = &request; #upstream })
        } else {
            upstream
        };
        quote! {
            let upstream = #upstream;
            let answer = fields::step(ctx.upstream(), #id, #step_name, &upstream, #record, #record_text).await?;
            request[#step_name] = answer;
        }
    });
    let doc = format!(
        " The provider calls `{id}` makes first (`steps`); each answer joins the request under its name."
    );
    (
        quote!(let request = #name(ctx, request).await?;),
        quote! {
            #[doc = #doc]
            async fn #name(ctx: &Context, mut request: Value) -> Result<Value, ConnectorError> {
                #(#calls)*
                Ok(request)
            }
        },
    )
}

/// `fn x_request(ctx, request) -> UpstreamRequest`: the provider's body from connector.yaml's
/// `body`, and the idempotency key where the provider takes it.
fn initiation_request(
    op: &Operation,
    mapping: &OperationMapping,
    initiation: &InitiationMapping,
    name: &proc_macro2::Ident,
) -> TokenStream {
    let id = &op.id;
    let RequestParts {
        method,
        path,
        query,
        mut headers,
    } = request_parts(op, &mapping.request);
    let puts = initiation.body.iter().map(|field| {
        let keys = &field.key;
        let label = keys.join(".");
        let value = provider_value(op, &field.value);
        quote!(fields::put(&mut payload, &[#(#keys),*], fields::request_field(#label, #value)?);)
    });
    let key_put = match &initiation.idempotency_key {
        Some(KeyForwarding::Header(header)) => {
            headers.push(quote!((#header.to_owned(), key.clone())));
            TokenStream::new()
        }
        Some(KeyForwarding::Body(keys)) => {
            quote!(fields::put(&mut payload, &[#(#keys),*], Some(Value::String(key.clone())));)
        }
        None => TokenStream::new(),
    };
    let key = initiation.idempotency_key.as_ref().map(|_| {
        quote! {
            let key = ctx.initiation().map(|attempt| attempt.provider_key().to_owned()).ok_or_else(|| {
                ConnectorError::internal(concat!(#id, " ran outside an initiation"))
            })?;
        }
    });
    let (query_field, headers_field) = (
        pairs_field("query", &query),
        pairs_field("headers", &headers),
    );
    let encoding = match initiation.encoding {
        BodyEncoding::Json => TokenStream::new(),
        BodyEncoding::Form => quote!(encoding: BodyEncoding::Form,),
    };
    let body = quote! {
        #key
        let mut payload = Value::Object(serde_json::Map::new());
        #(#puts)*
        #key_put
        Ok(UpstreamRequest {
            method: #method.to_owned(),
            path: #path,
            #query_field
            #headers_field
            body: Some(payload),
            #encoding
            ..Default::default()
        })
    };
    let ctx = if key.is_some() {
        quote!(ctx)
    } else {
        quote!(_ctx)
    };
    // Body values read the protocol request as `record`, placeholders as `request`.
    let record = mentions(&body, "record").then(|| quote!(let record = request;));
    let request = if record.is_some() || mentions(&body, "request") {
        quote!(request)
    } else {
        quote!(_request)
    };
    quote! {
        fn #name(#ctx: &Context, #request: &Value) -> Result<UpstreamRequest, ConnectorError> {
            #record
            #body
        }
    }
}

/// One provider body value: `Result<Option<Value>, ConversionError>`.
fn provider_value(op: &Operation, expr: &Expr) -> TokenStream {
    let value = json_source(op, expr);
    match &expr.conversion {
        Some(Conversion::Amount {
            currency, format, ..
        }) => {
            let currency = json_source(op, currency);
            let (format, as_number) = match format {
                AmountFormat::Decimal => (quote!(AmountFormat::Decimal), false),
                AmountFormat::DecimalNumber => (quote!(AmountFormat::Decimal), true),
                AmountFormat::MinorUnits => (quote!(AmountFormat::MinorUnits), false),
                AmountFormat::MinorUnitsNumber => (quote!(AmountFormat::MinorUnits), true),
            };
            quote!(fields::provider_amount(#value, #currency, #format, #as_number, CURRENCIES))
        }
        Some(Conversion::Currency { lower }) => {
            quote!(fields::provider_currency(#value, #lower, CURRENCIES))
        }
        Some(Conversion::Time(format)) => {
            let format = time_format(format);
            quote!(fields::provider_time(#value, &#format))
        }
        _ => quote!(Ok::<_, convert::ConversionError>(#value)),
    }
}

/// `async fn x_lookup(...)`: the payment an earlier attempt made, if the provider has it.
fn initiation_lookup(
    op: &Operation,
    lookup: &Lookup,
    name: &proc_macro2::Ident,
    record_fn: &proc_macro2::Ident,
    body_type: &TokenStream,
    created_type: &proc_macro2::Ident,
) -> TokenStream {
    let id = &op.id;
    let RequestParts {
        method,
        path,
        query,
        headers,
    } = request_parts(op, &lookup.request);
    let (query_field, headers_field) = (
        pairs_field("query", &query),
        pairs_field("headers", &headers),
    );
    let found = match &lookup.records {
        Some(records) => {
            let records = steps(&records.steps);
            quote!(convert::lookup(&response.body, #records).and_then(Value::as_array).and_then(|records| records.first()))
        }
        None => {
            let record = steps(&lookup.record.steps);
            quote!(convert::lookup(&response.body, #record).filter(|record| !record.is_null()))
        }
    };
    quote! {
        async fn #name(ctx: &Context, body: &#body_type, request: &Value) -> Result<Option<models::#created_type>, ConnectorError> {
            let upstream = UpstreamRequest {
                method: #method.to_owned(),
                path: #path,
                #query_field
                #headers_field
                ..Default::default()
            };
            let response = match ctx.upstream().send(#id, &upstream).await {
                Ok(response) => response,
                Err(error) if error.status == axum::http::StatusCode::NOT_FOUND => return Ok(None),
                Err(error) => return Err(error),
            };
            #found.map(|record| #record_fn(record, body, ctx.metrics())).transpose()
        }
    }
}

fn filter_param(op: &Operation) -> Option<proc_macro2::Ident> {
    op.params
        .iter()
        .find(|p| p.name.ends_with("AtFrom") && p.location == ParamLocation::Query)
        .map(|p| names::snake_ident(&p.name))
}

fn paging_param(op: &Operation, name: &str) -> Option<proc_macro2::Ident> {
    op.params
        .iter()
        .find(|p| p.name == name && (p.required || p.default.is_some()))
        .map(|p| names::snake_ident(&p.name))
}

fn steps(steps: &[Step]) -> TokenStream {
    let steps = steps.iter().filter_map(|step| match step {
        Step::Key(key) => Some(quote!(Step::Key(#key))),
        Step::Index(index) => {
            let index = Literal::usize_unsuffixed(*index);
            Some(quote!(Step::Index(#index)))
        }
        Step::Each => None,
    });
    quote!(&[#(#steps),*])
}

fn list_spec(operation: &str, list: &ListMapping, sort_field: Option<&str>) -> TokenStream {
    let movable = sort_field.is_some_and(|field| field != "createdAt");
    let segments = list
        .records
        .steps
        .split(|step| *step == Step::Each)
        .map(steps);
    let paging = match &list.paging {
        Paging::None => quote!(Paging::None),
        Paging::Cursor {
            param,
            next,
            has_more,
        } => {
            let from = match next {
                CursorSource::LastRecord(path) => {
                    let path = steps(&path.steps);
                    quote!(CursorFrom::LastRecord(#path))
                }
                CursorSource::Body(path) => {
                    let path = steps(&path.steps);
                    quote!(CursorFrom::Body(#path))
                }
            };
            let has_more = optional_path(has_more.as_ref().map(|p| p.steps.as_slice()));
            quote!(Paging::Cursor { param: #param, from: #from, has_more: #has_more })
        }
        Paging::NextUrl { path } => {
            let path = steps(&path.steps);
            quote!(Paging::NextUrl(#path))
        }
        Paging::LinkHeader => quote!(Paging::LinkHeader),
        Paging::PageNumber {
            param,
            first,
            total_pages,
        } => {
            let first = Literal::u64_unsuffixed(*first);
            let total = optional_path(total_pages.as_ref().map(|p| p.steps.as_slice()));
            quote!(Paging::PageNumber { param: #param, first: #first, total_pages: #total })
        }
        Paging::Offset { param, total } => {
            let total = optional_path(total.as_ref().map(|p| p.steps.as_slice()));
            quote!(Paging::Offset { param: #param, total: #total })
        }
    };
    let page_size = match &list.page_size {
        Some(size) => {
            let (param, value) = (&size.param, Literal::u32_unsuffixed(size.value));
            quote!(Some((#param, #value)))
        }
        None => quote!(None),
    };
    let max_pages = Literal::u32_unsuffixed(list.max_pages);
    let order = match list.order {
        Order::OldestFirst => quote!(Order::OldestFirst),
        Order::NewestFirst => quote!(Order::NewestFirst),
        Order::Unordered => quote!(Order::Unordered),
    };
    let since = match &list.since {
        Some(since) => {
            let (param, format, inclusive) =
                (&since.param, time_format(&since.format), since.inclusive);
            quote!(Some(Since { param: #param, format: #format, inclusive: #inclusive }))
        }
        None => quote!(None),
    };
    let windows = match list.since.as_ref().and_then(|since| since.window.as_ref()) {
        Some(window) => {
            let (to, span) = (&window.to, Literal::i64_unsuffixed(window.max_span_secs));
            let start = match window.start {
                crate::mapping::WindowStart::At(at) => {
                    let at = Literal::i64_unsuffixed(at);
                    quote!(WindowStart::At(#at))
                }
                crate::mapping::WindowStart::Ago(ago) => {
                    let ago = Literal::i64_unsuffixed(ago);
                    quote!(WindowStart::Ago(#ago))
                }
            };
            quote!(Some(Windows { to_param: #to, max_span: #span, start: #start }))
        }
        None => quote!(None),
    };
    let rules = |rules: &[(crate::mapping::Path, Vec<String>)]| {
        let rules = rules.iter().map(|(path, values)| {
            let path = steps(&path.steps);
            quote!((#path, &[#(#values),*]))
        });
        quote!(&[#(#rules),*])
    };
    let filter = if list.filter == crate::mapping::RecordFilter::default() {
        quote!(Filter {
            exclude: &[],
            only: &[]
        })
    } else {
        let (exclude, only) = (rules(&list.filter.exclude), rules(&list.filter.only));
        quote!(Filter { exclude: #exclude, only: #only })
    };
    let joins = list.joins.iter().map(|join| {
        let name = &join.name;
        let request = join_fn_name(operation, join);
        let needs = join_values(join).into_iter().map(|path| steps(&path.steps));
        let record = steps(&join.record.steps);
        quote!(Join { name: #name, needs: &[#(#needs),*], request: #request, record: #record })
    });
    quote! {
        ListSpec {
            operation: #operation,
            records: &[#(#segments),*],
            paging: #paging,
            page_size: #page_size,
            max_pages: #max_pages,
            order: #order,
            since: #since,
            windows: #windows,
            filter: #filter,
            joins: &[#(#joins),*],
            movable: #movable,
        }
    }
}

fn join_fn_name(operation: &str, join: &PaymentStep) -> proc_macro2::Ident {
    format_ident!(
        "{}_{}_request",
        names::snake(operation),
        names::snake(&join.name)
    )
}

/// The record values a join's request is built from.
fn join_values(join: &PaymentStep) -> Vec<&crate::mapping::Path> {
    join.request
        .templates()
        .flat_map(|template| &template.parts)
        .filter_map(|part| match part {
            TemplatePart::Value(path) => Some(path),
            _ => None,
        })
        .collect()
}

/// `fn x_NAME_request(record: &Value) -> UpstreamRequest` for each join of a list.
fn join_builders(op: &Operation, list: &ListMapping) -> TokenStream {
    let builders = list.joins.iter().map(|join| {
        let name = join_fn_name(&op.id, join);
        let RequestParts {
            method,
            path,
            query,
            headers,
        } = request_parts_reading(op, &join.request, "record");
        let (query_field, headers_field) = (
            pairs_field("query", &query),
            pairs_field("headers", &headers),
        );
        let doc = format!(
            " The request of `{}`'s join `{}` for one provider record.",
            op.id, join.name
        );
        quote! {
            #[doc = #doc]
            fn #name(record: &Value) -> UpstreamRequest {
                UpstreamRequest {
                    method: #method.to_owned(),
                    path: #path,
                    #query_field
                    #headers_field
                    ..Default::default()
                }
            }
        }
    });
    quote!(#(#builders)*)
}

fn optional_path(path: Option<&[Step]>) -> TokenStream {
    match path {
        Some(path) => {
            let path = steps(path);
            quote!(Some(#path))
        }
        None => quote!(None),
    }
}

fn time_format(format: &TimeFormat) -> TokenStream {
    match format {
        TimeFormat::Rfc3339 => quote!(TimeFormat::Rfc3339),
        TimeFormat::UnixSeconds => quote!(TimeFormat::UnixSeconds),
        TimeFormat::UnixMillis => quote!(TimeFormat::UnixMillis),
        TimeFormat::Pattern {
            pattern,
            utc_offset_seconds,
        } => {
            let offset = match utc_offset_seconds {
                Some(seconds) => {
                    let seconds = Literal::i32_unsuffixed(*seconds);
                    quote!(Some(#seconds))
                }
                None => quote!(None),
            };
            quote!(TimeFormat::Custom { pattern: #pattern, utc_offset_seconds: #offset })
        }
        TimeFormat::Zoned { pattern, zone } => {
            quote!(TimeFormat::Zoned { pattern: #pattern, zone: #zone })
        }
    }
}

// ---- requests ---------------------------------------------------------------------------------

/// A generated request builder: its name, whether it takes the protocol request's
/// parameters, and its code.
struct Builder {
    name: proc_macro2::Ident,
    takes_params: bool,
    code: TokenStream,
}

/// Whether a walk of a list calls a builder that takes the protocol request's parameters.
fn any_takes_params(builders: &[Builder]) -> bool {
    builders.iter().any(|builder| builder.takes_params)
}

/// `fn x_request([params], [parent]) -> UpstreamRequest`, taking the protocol request's
/// parameters when the template names them, and the parent record of a fan-out.
fn request_builder(
    op: &Operation,
    template: &RequestTemplate,
    name: &proc_macro2::Ident,
    params_type: &TokenStream,
    fanned_out: bool,
) -> Builder {
    let RequestParts {
        method,
        path,
        query,
        headers,
    } = request_parts(op, template);
    let (query_field, headers_field) = (
        pairs_field("query", &query),
        pairs_field("headers", &headers),
    );
    let request = quote! {
        UpstreamRequest {
            method: #method.to_owned(),
            path: #path,
            #query_field
            #headers_field
            ..Default::default()
        }
    };
    let takes_params = mentions(&request, "params");
    let params = takes_params.then(|| quote!(params: &#params_type,));
    let parent = fanned_out.then(|| {
        if mentions(&request, "parent") {
            quote!(parent: &Value)
        } else {
            quote!(_parent: &Value)
        }
    });
    Builder {
        name: name.clone(),
        takes_params,
        code: quote! {
            fn #name(#params #parent) -> UpstreamRequest {
                #request
            }
        },
    }
}

/// A request template's parts as expressions: the method, the path (`String`), and the query
/// and header pairs (`(String, String)`).
struct RequestParts<'t> {
    method: &'t str,
    path: TokenStream,
    query: Vec<TokenStream>,
    headers: Vec<TokenStream>,
}

fn request_parts<'t>(op: &Operation, template: &'t RequestTemplate) -> RequestParts<'t> {
    request_parts_reading(op, template, "request")
}

/// [`request_parts`] whose dotted placeholders read the value named `values`.
fn request_parts_reading<'t>(
    op: &Operation,
    template: &'t RequestTemplate,
    values: &str,
) -> RequestParts<'t> {
    let pairs = |pairs: &[(String, Template)]| -> Vec<TokenStream> {
        pairs
            .iter()
            .map(|(key, value)| {
                let value = template_text(op, value, false, values);
                quote!((#key.to_owned(), #value))
            })
            .collect()
    };
    RequestParts {
        method: &template.method,
        path: template_text(op, &template.path, true, values),
        query: pairs(&template.query),
        headers: pairs(&template.headers),
    }
}

/// `query: Vec::from([...]),` (which prettyplease formats, unlike `vec![...]`), or nothing
/// when there are no pairs (the default is none).
fn pairs_field(name: &str, items: &[TokenStream]) -> TokenStream {
    if items.is_empty() {
        return TokenStream::new();
    }
    let name = format_ident!("{name}");
    quote!(#name: Vec::from([#(#items),*]),)
}

/// A `String` expression for a request template; path parameters are percent-encoded.
/// Dotted placeholders read the value named `values` (the protocol request with its steps'
/// answers, or the provider record of a join).
fn template_text(op: &Operation, template: &Template, in_path: bool, values: &str) -> TokenStream {
    let values = format_ident!("{values}");
    if let [TemplatePart::Text(text)] = template.parts.as_slice() {
        return quote!(#text.to_owned());
    }
    let parts = template.parts.iter().map(|part| match part {
        TemplatePart::Text(text) => push_text(text),
        TemplatePart::Param(name) => {
            let value = param_text(op, name);
            if in_path {
                quote!(text.push_str(&fields::path_segment(&#value));)
            } else {
                quote!(text.push_str(&#value);)
            }
        }
        TemplatePart::Parent(path) => {
            let path = steps(&path.steps);
            let value = quote!(convert::lookup(parent, #path).and_then(convert::to_text).unwrap_or_default());
            if in_path {
                quote!(text.push_str(&fields::path_segment(&#value));)
            } else {
                quote!(text.push_str(&#value);)
            }
        }
        // A dotted placeholder of a payment: the protocol request with its steps' answers.
        TemplatePart::Value(path) => {
            let path = steps(&path.steps);
            let value = quote!(convert::lookup(#values, #path).and_then(convert::to_text).unwrap_or_default());
            if in_path {
                quote!(text.push_str(&fields::path_segment(&#value));)
            } else {
                quote!(text.push_str(&#value);)
            }
        }
    });
    quote!({
        let mut text = String::new();
        #(#parts)*
        text
    })
}

/// `text.push_str(...)`, or `text.push(c)` for one character.
fn push_text(literal: &str) -> TokenStream {
    let mut chars = literal.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => quote!(text.push(#c);),
        _ => quote!(text.push_str(#literal);),
    }
}

/// A protocol parameter as text (`String`); date-times in RFC 3339.
fn param_text(op: &Operation, name: &str) -> TokenStream {
    let Some(param) = op.params.iter().find(|p| p.name == name) else {
        // An initiation's placeholders name fields of its request body.
        return quote!(convert::lookup(request, &[Step::Key(#name)]).and_then(convert::to_text).unwrap_or_default());
    };
    let field = names::snake_ident(name);
    let is_time = matches!(&param.shape, Shape::String(s) if s.format == StringFormat::DateTime);
    let text = |value: TokenStream| {
        if is_time {
            quote!(#value.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        } else {
            quote!(#value.to_string())
        }
    };
    if param.required || param.default.is_some() {
        text(quote!(params.#field))
    } else {
        let inner = text(quote!(value));
        quote!(params.#field.as_ref().map(|value| #inner).unwrap_or_default())
    }
}

// ---- records ----------------------------------------------------------------------------------

/// `models::Type { field: value, ... }` for one record (`record` in scope). Unmapped fields
/// named in `echoed` take the protocol request's value (`request` in scope).
fn object_literal(
    protocol: &Protocol,
    op: &Operation,
    type_name: &str,
    object: &ObjectDef,
    mappings: &[FieldMapping],
    echoed: &[&str],
    reads: Reads,
) -> TokenStream {
    let ty = names::pascal_ident(type_name);
    let fields = object.fields.iter().map(|field| {
        let ident = names::snake_ident(&field.name);
        let value = match mappings.iter().find(|m| m.field == field.name) {
            Some(mapping) => field_value(protocol, op, field, &mapping.value, reads),
            None if echoed.contains(&field.name.as_str()) => quote!(request.#ident.clone()),
            None => quote!(None),
        };
        quote!(#ident: #value,)
    });
    quote!(models::#ty { #(#fields)* })
}

/// The value of one protocol field: `T` for required fields, `Option<T>` otherwise.
fn field_value(
    protocol: &Protocol,
    op: &Operation,
    field: &Field,
    expr: &Expr,
    reads: Reads,
) -> TokenStream {
    let name = &field.name;
    let target = quote!(t);
    let value = optional_value(protocol, op, field, expr, &target, reads);
    let required = field.required && !field.nullable;
    let value = if required {
        quote!(t.required(#value)?)
    } else {
        value
    };
    // `items` builds each element in a block of its own; only `required` reads this target.
    let reads_target = match expr.source {
        Source::Items(_) => required,
        _ => mentions(&value, "t"),
    };
    if reads_target {
        quote!({
            let t = target(#name);
            #value
        })
    } else {
        value
    }
}

fn optional_value(
    protocol: &Protocol,
    op: &Operation,
    field: &Field,
    expr: &Expr,
    target: &TokenStream,
    reads: Reads,
) -> TokenStream {
    let shape = protocol.resolve(&field.shape);
    match &expr.source {
        Source::Rust(function) => {
            let function: TokenStream = function.parse().unwrap_or_default();
            // A function for an optional field may leave it out: it returns an `Option`.
            return if field.required && !field.nullable {
                quote!(Some(#target.custom(#function(record))?))
            } else {
                quote!(#target.custom(#function(record))?)
            };
        }
        Source::Absent => return quote!(None),
        Source::Switch {
            on,
            by_sign,
            cases,
            default,
        } => {
            let on = source(op, on, reads);
            let case = if *by_sign {
                quote!(fields::sign_case(#on))
            } else {
                quote!(fields::case_text(#on))
            };
            let arm = |case: &Expr| {
                let mut case = case.clone();
                if case.conversion.is_none() {
                    case.conversion = expr.conversion.clone();
                }
                optional_value(protocol, op, field, &case, target, reads)
            };
            let arms = cases.iter().map(|(text, case)| {
                let value = arm(case);
                quote!(Some(#text) => #value,)
            });
            let fallback = match default {
                Some(default) => arm(default),
                None => quote!(None),
            };
            return quote! {
                match #case.as_deref() {
                    #(#arms)*
                    _ => #fallback,
                }
            };
        }
        Source::Metadata { fields, flatten } => {
            if let Reads::Typed(typed) = reads {
                let pairs = |list: &[(String, crate::mapping::Path)]| {
                    let items = list.iter().map(|(key, path)| {
                        let value = typed.value(path);
                        quote!((#key, #value))
                    });
                    quote!(&[#(#items),*])
                };
                let (fields, flatten) = (pairs(fields), pairs(flatten));
                return quote!(Some(fields::metadata(#fields, #flatten)));
            }
            let pairs = |list: &[(String, crate::mapping::Path)]| {
                let items = list.iter().map(|(key, path)| {
                    let path = steps(&path.steps);
                    quote!((#key, #path))
                });
                quote!(&[#(#items),*])
            };
            let (fields, flatten) = (pairs(fields), pairs(flatten));
            return quote!(Some(convert::metadata(record, #fields, #flatten)));
        }
        Source::Each { path, fields } => {
            let Shape::Array(array) = shape else {
                return quote!(None);
            };
            let Some((type_name, object)) = protocol.object(&array.items) else {
                return quote!(None);
            };
            let path = steps(&path.steps);
            let build = object_literal(protocol, op, type_name, object, fields, &[], reads);
            return quote!(Some(#target.each(convert::lookup(record, #path), |record| Ok(#build))?));
        }
        Source::Items(items) => {
            let Shape::Array(array) = shape else {
                return quote!(None);
            };
            let Some((type_name, object)) = protocol.object(&array.items) else {
                return quote!(None);
            };
            let builds = items.iter().map(|item| {
                object_literal(protocol, op, type_name, object, &item.fields, &[], reads)
            });
            return quote!(Some(vec![#(#builds),*]));
        }
        Source::Now => return quote!(Some(chrono::Utc::now())),
        _ => {}
    }
    let value = source(op, expr, reads);
    // What takes a JSON value as it is gets one.
    let json = match reads {
        Reads::Json => value.clone(),
        Reads::Typed(_) => quote!(fields::json(#value)),
    };
    match (shape, &expr.conversion) {
        (Shape::String(s), conversion) if s.format != StringFormat::Plain => {
            let format = match conversion {
                Some(Conversion::Time(format)) => time_format(format),
                _ => quote!(TimeFormat::Rfc3339),
            };
            let time = quote!(#target.time(#value, &#format)?);
            if s.format == StringFormat::Date {
                quote!(#time.map(|time| time.date_naive()))
            } else {
                time
            }
        }
        (Shape::String(_), Some(Conversion::Currency { .. })) => {
            quote!(#target.currency(#value, CURRENCIES)?)
        }
        (
            Shape::String(_),
            Some(Conversion::Amount {
                currency,
                format,
                sign,
            }),
        ) => {
            let currency = source(op, currency, reads);
            let format = match format {
                AmountFormat::Decimal | AmountFormat::DecimalNumber => {
                    quote!(AmountFormat::Decimal)
                }
                AmountFormat::MinorUnits | AmountFormat::MinorUnitsNumber => {
                    quote!(AmountFormat::MinorUnits)
                }
            };
            let sign = match sign {
                Sign::Keep => quote!(Sign::Keep),
                Sign::Absolute => quote!(Sign::Absolute),
                Sign::Negate => quote!(Sign::Negate),
            };
            quote!(#target.amount(#value, #currency, #format, #sign, CURRENCIES)?)
        }
        (Shape::String(_), _) => quote!(#target.text(#value)),
        (Shape::Named(name), conversion) => {
            enum_value(protocol, name, expr, conversion.as_ref(), &value, target)
        }
        (Shape::Integer(_), _) => quote!(#target.integer(#value)?),
        (Shape::Number(_), _) => quote!(#json.and_then(|value| value.as_f64())),
        (Shape::Boolean, _) => quote!(#json.and_then(|value| value.as_bool())),
        (Shape::Map(_), _) => quote! {
            #json.and_then(|value| value.as_object().map(|object| {
                object.iter().filter_map(|(key, value)| convert::to_text(value).map(|text| (key.clone(), text))).collect()
            }))
        },
        (Shape::Any, _) => json,
        (Shape::Array(_), _) => quote!(None),
    }
}

fn enum_value(
    protocol: &Protocol,
    name: &str,
    expr: &Expr,
    conversion: Option<&Conversion>,
    source: &TokenStream,
    target: &TokenStream,
) -> TokenStream {
    let Some(TypeDef::Enum(def)) = protocol.types.get(name) else {
        return quote!(None);
    };
    let ty = rust_type(&Shape::Named(name.to_owned()), false);
    let variant = |value: &str| {
        let variant = names::pascal_ident(value);
        quote!(#ty::#variant)
    };
    match (conversion, &expr.source) {
        (Some(Conversion::Enum { map, fallback, .. }), _) => {
            let table = map
                .iter()
                .filter(|(_, to)| def.values.contains(to))
                .map(|(from, to)| {
                    let to = variant(to);
                    quote!((#from, #to))
                });
            let fallback = match fallback.as_ref().filter(|f| def.values.contains(f)) {
                Some(value) => {
                    let value = variant(value);
                    quote!(Some(#value))
                }
                None => quote!(None),
            };
            quote!(#target.enumeration(#source, &[#(#table),*], #fallback)?)
        }
        (None, Source::Const(serde_json::Value::String(value))) if def.values.contains(value) => {
            let value = variant(value);
            quote!(Some(#value))
        }
        _ => quote!(None),
    }
}

/// Where a record's values are read from: a JSON record (`record: &Value`), or the record
/// type of a typed reader (`record: &XRecord`).
#[derive(Clone, Copy)]
enum Reads<'t> {
    Json,
    Typed(&'t Typed),
}

/// An expression's raw value, its default applied: `Option<serde_json::Value>` from a JSON
/// record; from a typed record, `Option<&fields::Raw>` for a path, else `Option<fields::Raw>`.
fn source(op: &Operation, expr: &Expr, reads: Reads) -> TokenStream {
    match reads {
        Reads::Json => json_source(op, expr),
        Reads::Typed(typed) => typed_source(op, expr, typed).0,
    }
}

/// [`source`] from a typed record, and whether it borrows from the record.
fn typed_source(op: &Operation, expr: &Expr, typed: &Typed) -> (TokenStream, bool) {
    let owned = |(value, borrowed): (TokenStream, bool)| {
        if borrowed {
            quote!(#value.cloned())
        } else {
            value
        }
    };
    let (raw, borrowed) = match &expr.source {
        Source::Path(path) | Source::Initiation(path) => (typed.value(path), true),
        Source::Const(value) => {
            let value = constant(value);
            (quote!(#value.map(fields::Raw::Json)), false)
        }
        Source::Template(template) => {
            let parts = template.parts.iter().map(|part| match part {
                TemplatePart::Text(text) => push_text(text),
                TemplatePart::Value(path) => {
                    let value = typed.value(path);
                    quote!(text.push_str(&#value.and_then(fields::Provided::text).unwrap_or_default());)
                }
                TemplatePart::Param(name) => {
                    let value = param_text(op, name);
                    quote!(text.push_str(&#value);)
                }
                // Not read by typed records (see `Typed::of`).
                TemplatePart::Parent(_) => TokenStream::new(),
            });
            let text = quote!({
                let mut text = String::new();
                #(#parts)*
                text
            });
            (quote!(Some(fields::Raw::from_text(#text))), false)
        }
        Source::FirstOf(options) => {
            let options = options
                .iter()
                .map(|option| owned(typed_source(op, option, typed)));
            (quote!(fields::first_of([#(#options),*])), false)
        }
        Source::Param(name) => {
            let value = param_text(op, name);
            (quote!(Some(fields::Raw::from_text(#value))), false)
        }
        Source::Now => (
            quote!(Some(fields::Raw::from_text(
                chrono::Utc::now().to_rfc3339()
            ))),
            false,
        ),
        Source::Parent(_)
        | Source::Each { .. }
        | Source::Items(_)
        | Source::Metadata { .. }
        | Source::Rust(_)
        | Source::Switch { .. }
        | Source::Absent => (quote!(None::<fields::Raw>), false),
    };
    let raw = if expr.empty_is_missing {
        (quote!(fields::non_empty(#raw)), borrowed)
    } else {
        (raw, borrowed)
    };
    match &expr.default {
        Some(default) => {
            let default = constant(default);
            let raw = owned(raw);
            (
                quote!(#raw.or_else(|| #default.map(fields::Raw::Json))),
                false,
            )
        }
        None => raw,
    }
}

/// [`source`] from a JSON record.
fn json_source(op: &Operation, expr: &Expr) -> TokenStream {
    let raw = match &expr.source {
        Source::Path(path) | Source::Initiation(path) => {
            let path = steps(&path.steps);
            quote!(convert::lookup(record, #path).cloned())
        }
        Source::Const(value) => constant(value),
        Source::Template(template) => {
            let parts = template.parts.iter().map(|part| match part {
                TemplatePart::Text(text) => push_text(text),
                TemplatePart::Value(path) => {
                    let path = steps(&path.steps);
                    quote!(text.push_str(&convert::lookup(record, #path).and_then(convert::to_text).unwrap_or_default());)
                }
                TemplatePart::Param(name) => {
                    let value = param_text(op, name);
                    quote!(text.push_str(&#value);)
                }
                TemplatePart::Parent(path) => {
                    let path = steps(&path.steps);
                    quote!(text.push_str(&parent.and_then(|parent| convert::lookup(parent, #path)).and_then(convert::to_text).unwrap_or_default());)
                }
            });
            quote!(Some(Value::String({
                let mut text = String::new();
                #(#parts)*
                text
            })))
        }
        Source::FirstOf(options) => {
            let options = options.iter().map(|option| json_source(op, option));
            quote!(fields::first_of([#(#options),*]))
        }
        Source::Param(name) => {
            let value = param_text(op, name);
            quote!(Some(Value::String(#value)))
        }
        Source::Now => quote!(Some(Value::String(chrono::Utc::now().to_rfc3339()))),
        Source::Parent(path) => {
            let path = steps(&path.steps);
            quote!(parent.and_then(|parent| convert::lookup(parent, #path)).cloned())
        }
        Source::Each { .. }
        | Source::Items(_)
        | Source::Metadata { .. }
        | Source::Rust(_)
        | Source::Switch { .. }
        | Source::Absent => quote!(None::<Value>),
    };
    let raw = if expr.empty_is_missing {
        quote!(fields::non_empty(#raw))
    } else {
        raw
    };
    match &expr.default {
        Some(default) => {
            let default = constant(default);
            quote!(#raw.or_else(|| #default))
        }
        None => raw,
    }
}

fn constant(value: &serde_json::Value) -> TokenStream {
    match value {
        serde_json::Value::Null => quote!(None::<Value>),
        serde_json::Value::Bool(b) => quote!(Some(Value::Bool(#b))),
        serde_json::Value::String(text) => quote!(Some(Value::String(#text.to_owned()))),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(i) => {
                let i = Literal::i64_suffixed(i);
                quote!(Some(Value::from(#i)))
            }
            None => {
                let f = Literal::f64_suffixed(number.as_f64().unwrap_or_default());
                quote!(Some(Value::from(#f)))
            }
        },
        other => {
            let text = other.to_string();
            quote!(serde_json::from_str::<Value>(#text).ok())
        }
    }
}
