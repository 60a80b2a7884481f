//! Typed extraction for list operations: the provider's page is parsed straight into
//! generated types that hold only what the mapping reads (nested paths as nested types, `[]`
//! flattening as lists, strings borrowed from the answer), instead of a `serde_json::Value`
//! tree walked by path for every record.
//!
//! An operation qualifies when everything its mapping reads is a path of keys in its own
//! records (or the page's paging fields): `rust:` functions, `each`, parent records, filters,
//! joins and unions need the whole record as JSON, and keep the JSON reader.

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::ir::Operation;
use crate::mapping::{
    Conversion, CursorSource, Expr, FieldMapping, ListMapping, OperationMapping, Paging, Path,
    Source, Step, TemplatePart,
};
use crate::names;

/// What one generated type holds: a field per key, in key order.
#[derive(Debug, Default)]
pub struct Shape {
    fields: BTreeMap<String, Node>,
}

#[derive(Debug)]
enum Node {
    /// A value the mapping converts.
    Value,
    /// An object the mapping reads further into.
    Object(Shape),
    /// One level of the list's records (`last`: the records themselves), each item of this
    /// shape.
    Records { last: bool, item: Shape },
}

/// The shapes of an operation's page and its records, when its mapping qualifies.
#[derive(Debug)]
pub struct Typed {
    page: Shape,
    /// The key paths of the records levels (`items[].entries`: `items`, then `entries`).
    levels: Vec<Vec<String>>,
    /// Paths into the page the stop rule reads.
    paging: Vec<Vec<String>>,
    /// The path into the last record the next cursor is read from.
    cursor: Option<Vec<String>>,
}

impl Typed {
    /// The typed reader's shapes for `mapping`, or `None` when it needs JSON records.
    pub fn of(mapping: &OperationMapping) -> Option<Typed> {
        let list = mapping.list.as_ref()?;
        let plain = mapping.for_each.is_none()
            && mapping.union.is_empty()
            && mapping.from_list.is_none()
            && mapping.initiation.is_none()
            && list.joins.is_empty()
            && list.filter == crate::mapping::RecordFilter::default();
        if !plain {
            return None;
        }
        let levels = list
            .records
            .steps
            .split(|step| *step == Step::Each)
            .map(keys)
            .collect::<Option<Vec<_>>>()?;
        if levels.iter().any(Vec::is_empty) {
            return None;
        }
        let (paging, cursor) = paging_paths(list)?;
        let mut record = Shape::default();
        for path in record_paths(&mapping.fields)?.iter().chain(&cursor) {
            record.insert(path, Node::Value)?;
        }
        // A type without fields would not use its lifetime.
        if record.fields.is_empty() {
            return None;
        }
        // The records levels nest from the last one out; the page holds the first.
        let mut item = record;
        for (depth, level) in levels.iter().enumerate().rev() {
            let node = Node::Records {
                last: depth + 1 == levels.len(),
                item,
            };
            if depth == 0 {
                let mut page = Shape::default();
                page.insert(level, node)?;
                for path in &paging {
                    page.insert(path, Node::Value)?;
                }
                return Some(Typed {
                    page,
                    levels,
                    paging,
                    cursor,
                });
            }
            let mut outer = Shape::default();
            outer.insert(level, node)?;
            item = outer;
        }
        None
    }

    /// The generated types, named after `op`: `XPage`, the records levels' `XItems...`,
    /// `XRecord` and the objects inside them.
    pub fn types(&self, op: &Operation) -> TokenStream {
        let mut out = Vec::new();
        let base = names::pascal(&op.id);
        self.page.render(&format!("{base}Page"), &base, &mut out, 0);
        quote!(#(#out)*)
    }

    /// The records of `page` (in scope), flattened: `let records: Vec<&XRecord> = ...`;
    /// and `count`, the items of the page itself.
    pub fn records(&self, op: &Operation) -> TokenStream {
        let record = record_type(op);
        let first = self.page.list(quote!(page), &self.levels[0]);
        let mut shape = self.page.item(&self.levels[0]);
        let mut iter = quote!(#first.iter());
        for level in &self.levels[1..] {
            let slice = shape.list(quote!(item), level);
            iter = quote!(#iter.flat_map(|item| #slice.iter()));
            shape = shape.item(level);
        }
        quote! {
            let count = #first.len();
            let records: Vec<&#record<'_>> = #iter.collect();
        }
    }

    /// The page's paging values put where the stop rule looks (`page` in scope), and the
    /// last record's cursor (`records` in scope): `let paging = ...; let cursor = ...;`.
    pub fn paging(&self) -> TokenStream {
        let puts = self.paging.iter().map(|path| {
            let access = self.page.value(quote!(page), path);
            let steps = key_steps(path);
            quote! {
                if let Some(value) = fields::json(#access) {
                    listing::put(&mut paging, #steps, value);
                }
            }
        });
        let record = self.record_shape();
        let cursor = match &self.cursor {
            Some(path) => {
                let access = record.value(quote!(record), path);
                quote!(fields::json(records.last().and_then(|record| #access)))
            }
            None => quote!(None),
        };
        let binding = if self.paging.is_empty() {
            quote!(let paging = Value::Null;)
        } else {
            quote!(let mut paging = Value::Null;)
        };
        quote! {
            #binding
            #(#puts)*
            let cursor = #cursor;
        }
    }

    fn record_shape(&self) -> &Shape {
        let mut shape = &self.page;
        for level in &self.levels {
            shape = shape.item(level);
        }
        shape
    }

    /// The value at `path` of the record (`record` in scope): `Option<&fields::Raw>`.
    pub fn value(&self, path: &Path) -> TokenStream {
        let keys = keys(&path.steps).unwrap_or_default();
        self.record_shape().value(quote!(record), &keys)
    }
}

/// The record type of `op`'s typed reader.
pub fn record_type(op: &Operation) -> Ident {
    format_ident!("{}Record", names::pascal(&op.id))
}

/// The page type of `op`'s typed reader.
pub fn page_type(op: &Operation) -> Ident {
    format_ident!("{}Page", names::pascal(&op.id))
}

impl Shape {
    /// Adds `node` at `path`; `None` where a value and an object would share a key.
    fn insert(&mut self, path: &[String], node: Node) -> Option<()> {
        let (key, rest) = path.split_first()?;
        if rest.is_empty() {
            return match (self.fields.get(key), &node) {
                (None, _) => {
                    self.fields.insert(key.clone(), node);
                    Some(())
                }
                (Some(Node::Value), Node::Value) => Some(()),
                _ => None,
            };
        }
        let entry = self
            .fields
            .entry(key.clone())
            .or_insert_with(|| Node::Object(Shape::default()));
        match entry {
            Node::Object(inner) => inner.insert(rest, node),
            _ => None,
        }
    }

    /// The field names, one per key, made unique in key order.
    fn idents(&self) -> BTreeMap<&str, Ident> {
        let mut taken = std::collections::BTreeSet::new();
        self.fields
            .keys()
            .map(|key| {
                let base = names::snake(key);
                let mut name = base.clone();
                let mut n = 2;
                while !taken.insert(name.clone()) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
                (key.as_str(), format_ident!("{}", name))
            })
            .collect()
    }

    fn ident(&self, key: &str) -> Ident {
        self.idents()
            .remove(key)
            .unwrap_or_else(|| format_ident!("missing"))
    }

    fn item(&self, path: &[String]) -> &Shape {
        let (key, rest) = path.split_first().expect("a records path has keys");
        match self.fields.get(key) {
            Some(Node::Object(inner)) if !rest.is_empty() => inner.item(rest),
            Some(Node::Records { item, .. }) => item,
            _ => unreachable!("records paths are in the shape"),
        }
    }

    /// `Option<&Raw>` at `path` (a value's path) from `base`, a `&Self` expression.
    fn value(&self, base: TokenStream, path: &[String]) -> TokenStream {
        self.walk(base, path, |last| quote!(#last.as_ref()))
    }

    /// `&[Item]`: the records at `path` from `base`.
    fn list(&self, base: TokenStream, path: &[String]) -> TokenStream {
        if path.len() == 1 {
            let ident = self.ident(&path[0]);
            return quote!(#base.#ident.0.as_slice());
        }
        let objects = self.walk(base, &path[..path.len() - 1], |last| quote!(#last.get()));
        let inner = self.object(&path[..path.len() - 1]);
        let ident = inner.ident(&path[path.len() - 1]);
        quote!(#objects.map_or(&[][..], |value| value.#ident.0.as_slice()))
    }

    fn object(&self, path: &[String]) -> &Shape {
        match path.split_first() {
            None => self,
            Some((key, rest)) => match self.fields.get(key) {
                Some(Node::Object(inner)) => inner.object(rest),
                _ => unreachable!("object paths are in the shape"),
            },
        }
    }

    /// Through the objects of `path` to its last key, which `last` reads.
    fn walk(
        &self,
        base: TokenStream,
        path: &[String],
        last: impl Fn(TokenStream) -> TokenStream,
    ) -> TokenStream {
        let (first, rest) = path.split_first().expect("a path has keys");
        let ident = self.ident(first);
        if rest.is_empty() {
            return last(quote!(#base.#ident));
        }
        let Some(Node::Object(inner)) = self.fields.get(first) else {
            unreachable!("paths through objects are in the shape")
        };
        let mut chain = quote!(#base.#ident.get());
        let mut shape = inner;
        for (i, key) in rest.iter().enumerate() {
            let ident = shape.ident(key);
            if i + 1 == rest.len() {
                let read = last(quote!(value.#ident));
                chain = quote!(#chain.and_then(|value| #read));
            } else {
                chain = quote!(#chain.and_then(|value| value.#ident.get()));
                let Some(Node::Object(inner)) = shape.fields.get(key) else {
                    unreachable!("paths through objects are in the shape")
                };
                shape = inner;
            }
        }
        chain
    }

    /// This shape as the type `name`, and the types of what it holds (named after it, or
    /// `XRecord` and `XItems...` for records levels), into `out`.
    fn render(&self, name: &str, base: &str, out: &mut Vec<TokenStream>, depth: usize) {
        let ident = format_ident!("{}", name);
        let idents = self.idents();
        let fields = self.fields.iter().map(|(key, node)| {
            let field = &idents[key.as_str()];
            let rename = (field != key).then(|| quote!(rename = #key,));
            match node {
                Node::Value => quote! {
                    #[serde(borrow, #rename)]
                    #field: Option<fields::Raw<'a>>,
                },
                Node::Object(inner) => {
                    let inner_name = format!("{name}{}", names::pascal(key));
                    inner.render(&inner_name, base, out, depth);
                    let inner_ident = format_ident!("{}", inner_name);
                    quote! {
                        #[serde(borrow, default, #rename)]
                        #field: fields::Object<#inner_ident<'a>>,
                    }
                }
                Node::Records { last, item } => {
                    let item_name = if *last {
                        format!("{base}Record")
                    } else {
                        format!("{base}{}", names::pascal(key))
                    };
                    item.render(&item_name, base, out, depth + 1);
                    let item_ident = format_ident!("{}", item_name);
                    quote! {
                        #[serde(borrow, default, #rename)]
                        #field: fields::Listed<#item_ident<'a>, #last>,
                    }
                }
            }
        });
        let doc = if name.ends_with("Page") {
            " A provider page, as the mapping reads it.".to_owned()
        } else if name.ends_with("Record") && depth > 0 {
            " A provider record, only the fields the mapping reads.".to_owned()
        } else {
            " Part of a provider page the mapping reads.".to_owned()
        };
        let fields: Vec<TokenStream> = fields.collect();
        out.insert(
            0,
            quote! {
                #[doc = #doc]
                #[derive(Default, serde::Deserialize)]
                struct #ident<'a> {
                    #(#fields)*
                }
            },
        );
    }
}

/// The keys of a path, `None` when it has an index or `[]`.
fn keys(steps: &[Step]) -> Option<Vec<String>> {
    steps
        .iter()
        .map(|step| match step {
            Step::Key(key) => Some(key.clone()),
            Step::Index(_) | Step::Each => None,
        })
        .collect()
}

fn key_steps(path: &[String]) -> TokenStream {
    quote!(&[#(Step::Key(#path)),*])
}

/// The page's paths the stop rule reads and the last record's cursor path, keys only.
#[allow(clippy::type_complexity)]
fn paging_paths(list: &ListMapping) -> Option<(Vec<Vec<String>>, Option<Vec<String>>)> {
    let path = |path: &Path| keys(&path.steps).filter(|keys| !keys.is_empty());
    let mut paging = Vec::new();
    let mut cursor = None;
    match &list.paging {
        Paging::None | Paging::LinkHeader => {}
        Paging::Cursor { next, has_more, .. } => {
            match next {
                CursorSource::LastRecord(from) => cursor = Some(path(from)?),
                CursorSource::Body(from) => paging.push(path(from)?),
            }
            if let Some(has_more) = has_more {
                paging.push(path(has_more)?);
            }
        }
        Paging::NextUrl { path: next } => paging.push(path(next)?),
        Paging::PageNumber { total_pages, .. } => {
            if let Some(total) = total_pages {
                paging.push(path(total)?);
            }
        }
        Paging::Offset { total, .. } => {
            if let Some(total) = total {
                paging.push(path(total)?);
            }
        }
    }
    Some((paging, cursor))
}

/// Every record path the fields read, or `None` when one needs the whole record.
fn record_paths(fields: &[FieldMapping]) -> Option<Vec<Vec<String>>> {
    let mut paths = Vec::new();
    for field in fields {
        expr_paths(&field.value, &mut paths)?;
    }
    Some(paths)
}

fn expr_paths(expr: &Expr, out: &mut Vec<Vec<String>>) -> Option<()> {
    let mut path = |path: &Path| -> Option<()> {
        let keys = keys(&path.steps)?;
        if keys.is_empty() {
            return None;
        }
        out.push(keys);
        Some(())
    };
    match &expr.source {
        Source::Path(p) | Source::Initiation(p) => path(p)?,
        Source::Const(_) | Source::Param(_) | Source::Now | Source::Absent => {}
        Source::Template(template) => {
            for part in &template.parts {
                match part {
                    TemplatePart::Value(p) => path(p)?,
                    TemplatePart::Text(_) | TemplatePart::Param(_) => {}
                    TemplatePart::Parent(_) => return None,
                }
            }
        }
        Source::Metadata { fields, flatten } => {
            for (_, p) in fields.iter().chain(flatten) {
                path(p)?;
            }
        }
        Source::FirstOf(options) => {
            for option in options {
                expr_paths(option, out)?;
            }
        }
        Source::Switch {
            on, cases, default, ..
        } => {
            expr_paths(on, out)?;
            for (_, case) in cases {
                expr_paths(case, out)?;
            }
            if let Some(default) = default {
                expr_paths(default, out)?;
            }
        }
        Source::Items(items) => {
            for item in items {
                for field in &item.fields {
                    expr_paths(&field.value, out)?;
                }
            }
        }
        Source::Each { .. } | Source::Rust(_) | Source::Parent(_) => return None,
    }
    if let Some(Conversion::Amount { currency, .. }) = &expr.conversion {
        expr_paths(currency, out)?;
    }
    Some(())
}
