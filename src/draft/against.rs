//! `check --against-spec`: a mapping, drafted or written by hand, against the provider's own
//! documents. Methods, paths and parameters must exist; record and field paths must exist in
//! the response schemas; conversions must fit the types; enum maps should cover the values
//! the provider declares. Every finding points into connector.yaml.

use super::load::Document;
use super::model::{self, Api, Endpoint, Location, Schema, Type};
use crate::diagnostics::{Diagnostic, SourceFile, did_you_mean};
use crate::mapping::{
    self, Conversion, Expr, FieldMapping, OperationMapping, Paging, Source, Step, TimeFormat,
};
use crate::yaml::{self, Node};

pub fn check(
    mapping_source: &SourceFile,
    providers: &[SourceFile],
) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let documents: Vec<Document> = super::load_all(providers)?;
    let api = model::build(&documents);
    let (Ok(mapping), Ok(tree)) = (mapping::load(mapping_source), yaml::parse(mapping_source))
    else {
        return Ok(Vec::new());
    };
    let mut checker = Checker {
        api: &api,
        file: &mapping_source.name,
        tree: &tree,
        found: Vec::new(),
    };
    for (id, operation) in &mapping.operations {
        checker.operation(id, operation);
    }
    checker
        .found
        .sort_by_key(|d| (!d.is_error(), d.location.as_ref().map(|l| l.span.start)));
    Ok(checker.found)
}

struct Checker<'a> {
    api: &'a Api<'a>,
    file: &'a str,
    tree: &'a Node,
    found: Vec<Diagnostic>,
}

/// `/v1/accounts/{account}` and `/v1/accounts/{accountId}` are one path.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

impl<'a> Checker<'a> {
    fn span(&self, pointer: &str) -> std::ops::Range<usize> {
        let node = self.tree.find_nearest(pointer);
        let text_end = node.span.end.min(node.span.start + 200);
        node.span.start..text_end.max(node.span.start)
    }

    fn push(&mut self, error: bool, pointer: &str, message: String, help: Option<String>) {
        let span = self.span(pointer);
        let mut d = if error {
            Diagnostic::error(message)
        } else {
            Diagnostic::warning(message)
        };
        d = d.at(self.file, span);
        if let Some(help) = help {
            d = d.with_help(help);
        }
        self.found.push(d);
    }

    fn endpoint(&self, method: &str, path: &str) -> Option<&'a Endpoint<'a>> {
        let wanted = shape(path);
        self.api.endpoints.iter().find(|e| {
            e.method == method
                && (wanted == shape(&e.path)
                    || wanted.ends_with(&shape(&e.path)) && shape(&e.path).len() > 1)
        })
    }

    fn operation(&mut self, id: &str, op: &OperationMapping) {
        let base = format!("/operations/{id}");
        let method = op.request.method.clone();
        let path = op.request.path.text.clone();
        let Some(endpoint) = self.endpoint(&method, &path) else {
            let paths = self
                .api
                .endpoints
                .iter()
                .filter(|e| e.method == method)
                .map(|e| e.path.as_str());
            let help = did_you_mean(&path, paths.collect::<Vec<_>>());
            self.push(
                true,
                &format!("{base}/request/path"),
                format!("the provider's document has no {method} {path}"),
                help,
            );
            return;
        };
        let query: Vec<String> = op.request.query.iter().map(|(k, _)| k.clone()).collect();
        for name in &query {
            self.param(endpoint, name, &format!("{base}/request/query/{name}"));
        }
        if let Some(list) = &op.list {
            let paging = match &list.paging {
                Paging::Cursor { param, .. } => Some(("cursor", param)),
                Paging::PageNumber { param, .. } => Some(("page_number", param)),
                Paging::Offset { param, .. } => Some(("offset", param)),
                _ => None,
            };
            if let Some((kind, param)) = paging {
                self.param(endpoint, param, &format!("{base}/paging/{kind}/param"));
            }
            if let Some(size) = &list.page_size {
                self.param(endpoint, &size.param, &format!("{base}/page_size/param"));
            }
            if let Some(since) = &list.since {
                self.param(endpoint, &since.param, &format!("{base}/since/param"));
                self.since_format(
                    endpoint,
                    &since.param,
                    &since.format,
                    &format!("{base}/since/format"),
                );
            }
            let Some(response) = endpoint.response else {
                return;
            };
            let records = response.at(&list.records.text).and_then(|s| {
                if s.ty() == Type::Array {
                    s.items()
                } else {
                    None
                }
            });
            match records {
                Some(record) => self.fields(&op.fields, record, &format!("{base}/fields")),
                None => self.push(
                    true,
                    &format!("{base}/records"),
                    format!(
                        "`{}` is not a list in the answer of {method} {}",
                        list.records.text, endpoint.path
                    ),
                    None,
                ),
            }
        } else if let Some(initiation) = &op.initiation {
            if let Some(mapping::KeyForwarding::Header(name)) = &initiation.idempotency_key
                && !endpoint
                    .params
                    .iter()
                    .any(|p| p.location == Location::Header && p.name.eq_ignore_ascii_case(name))
            {
                self.push(
                    false,
                    &format!("{base}/idempotency_key/header"),
                    format!("{method} {} declares no `{name}` header", endpoint.path),
                    Some("if the provider ignores it, a retry after a crash may pay twice".into()),
                );
            }
            if let Some(body) = &endpoint.body {
                for field in &initiation.body {
                    let key = field.key.join(".");
                    if body.at(&key).is_none() {
                        let names: Vec<String> =
                            body.properties().into_iter().map(|(n, _, _)| n).collect();
                        let help = did_you_mean(&key, names.iter().map(String::as_str));
                        self.push(
                            true,
                            &format!("{base}/body/{key}"),
                            format!(
                                "the body of {method} {} has no field `{key}`",
                                endpoint.path
                            ),
                            help,
                        );
                    }
                }
            }
            if let Some(response) = endpoint.response {
                let record = if op.record.steps.is_empty() {
                    Some(response)
                } else {
                    response.at(&op.record.text)
                };
                if let Some(record) = record {
                    self.fields(&op.fields, record, &format!("{base}/fields"));
                }
            }
        } else if let Some(response) = endpoint.response {
            let record = if op.record.steps.is_empty() {
                Some(response)
            } else {
                response.at(&op.record.text)
            };
            if let Some(record) = record {
                self.fields(&op.fields, record, &format!("{base}/fields"));
            }
        }
    }

    fn param(&mut self, endpoint: &Endpoint, name: &str, pointer: &str) {
        let base = name.split('[').next().unwrap_or(name);
        let body_names: Vec<String> = endpoint
            .body
            .iter()
            .flat_map(|b| b.properties().into_iter().map(|(n, _, _)| n))
            .collect();
        let exists = endpoint
            .params
            .iter()
            .any(|p| p.location == Location::Query && (p.name == name || p.name == base))
            || body_names.iter().any(|n| n == name);
        if !exists {
            let names: Vec<&str> = endpoint
                .params
                .iter()
                .filter(|p| p.location == Location::Query)
                .map(|p| p.name.as_str())
                .collect();
            let help = did_you_mean(name, names);
            self.push(
                true,
                pointer,
                format!(
                    "{} {} takes no `{name}` query parameter",
                    endpoint.method, endpoint.path
                ),
                help,
            );
        }
    }

    fn since_format(
        &mut self,
        endpoint: &Endpoint,
        name: &str,
        format: &TimeFormat,
        pointer: &str,
    ) {
        let base = name.split('[').next().unwrap_or(name);
        let Some(param) = endpoint
            .params
            .iter()
            .find(|p| p.name == name || p.name == base)
        else {
            return;
        };
        let schema = match name.split_once('[') {
            Some((_, sub)) => param
                .schema
                .property(sub.trim_end_matches(']'))
                .unwrap_or(param.schema),
            None => param.schema,
        };
        self.time_fits(schema, format, pointer, &format!("`{name}`"));
    }

    fn time_fits(&mut self, schema: Schema, format: &TimeFormat, pointer: &str, what: &str) {
        let ty = schema.ty();
        let problem = match format {
            TimeFormat::UnixSeconds | TimeFormat::UnixMillis if ty == Type::String => {
                Some("a string; Unix times are numbers")
            }
            TimeFormat::Rfc3339 if matches!(ty, Type::Integer | Type::Number) => {
                Some("a number; RFC 3339 times are strings")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.push(true, pointer, format!("{what} is {problem}"), None);
        }
    }

    fn fields(&mut self, fields: &[FieldMapping], record: Schema, pointer: &str) {
        for field in fields {
            self.expr(&field.value, record, &format!("{pointer}/{}", field.field));
        }
    }

    fn expr(&mut self, expr: &Expr, record: Schema, pointer: &str) {
        match &expr.source {
            Source::Path(path) | Source::Initiation(path) => {
                if path.steps.is_empty() {
                    return;
                }
                let Some(schema) = at(record, &path.steps) else {
                    let names: Vec<&str> =
                        record.properties().into_iter().map(|(n, _)| n).collect();
                    let help = did_you_mean(&path.text, names);
                    let at_pointer = if expr.source_span == expr.value_span {
                        pointer.to_owned()
                    } else {
                        format!("{pointer}/path")
                    };
                    self.push(
                        true,
                        &at_pointer,
                        format!("the provider's record has no `{}`", path.text),
                        help,
                    );
                    return;
                };
                self.conversion(expr, schema, record, pointer);
            }
            Source::FirstOf(options) => {
                for (i, option) in options.iter().enumerate() {
                    self.expr(option, record, &format!("{pointer}/first_of/{i}"));
                }
            }
            Source::Each { path, fields } => {
                // A list maps each element; an object is one element.
                let element = at(record, &path.steps).and_then(|s| match s.ty() {
                    Type::Object => Some(s),
                    _ => s.items(),
                });
                if let Some(element) = element {
                    self.fields(fields, element, &format!("{pointer}/fields"));
                } else {
                    self.push(
                        true,
                        &format!("{pointer}/each"),
                        format!(
                            "the provider's record has no list or object `{}`",
                            path.text
                        ),
                        None,
                    );
                }
            }
            Source::Items(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.fields(&item.fields, record, &format!("{pointer}/items/{i}"));
                }
            }
            _ => {}
        }
    }

    fn conversion(&mut self, expr: &Expr, schema: Schema, record: Schema, pointer: &str) {
        match &expr.conversion {
            Some(Conversion::Time(format)) => self.time_fits(
                schema,
                format,
                &format!("{pointer}/time"),
                "the provider's value",
            ),
            Some(Conversion::Amount {
                currency, format, ..
            }) => {
                let ty = schema.ty();
                if *format == mapping::AmountFormat::MinorUnits && ty == Type::Number {
                    self.push(
                        false,
                        &format!("{pointer}/amount/format"),
                        "the provider's amount is a JSON number, which is usually in major units"
                            .into(),
                        Some("use `format: decimal` unless the provider says minor units".into()),
                    );
                }
                if *format == mapping::AmountFormat::Decimal && ty == Type::Integer {
                    self.push(
                        false,
                        &format!("{pointer}/amount/format"),
                        "the provider's amount is an integer, which is usually in minor units"
                            .into(),
                        Some("use `format: minor_units` unless the provider says otherwise".into()),
                    );
                }
                if matches!(ty, Type::Object | Type::Array | Type::Boolean) {
                    self.push(
                        true,
                        pointer,
                        "the provider's value is not an amount".into(),
                        None,
                    );
                }
                self.expr(currency, record, &format!("{pointer}/amount/currency"));
            }
            Some(Conversion::Enum { map, fallback, .. }) => {
                let missing: Vec<String> = schema
                    .enum_values()
                    .into_iter()
                    .filter(|v| !map.iter().any(|(k, _)| k == v))
                    .collect();
                if !missing.is_empty() {
                    let then = fallback
                        .as_deref()
                        .map_or("fail the request".to_owned(), |f| format!("become {f}"));
                    self.push(
                        false,
                        &format!("{pointer}/enum/map"),
                        format!(
                            "the provider declares values the map does not name: {} (they {then})",
                            missing.join(", ")
                        ),
                        None,
                    );
                }
            }
            _ => {}
        }
    }
}

fn at<'a>(record: Schema<'a>, steps: &[Step]) -> Option<Schema<'a>> {
    let mut schema = record;
    for step in steps {
        schema = match step {
            Step::Key(key) => schema.property(key)?,
            Step::Index(_) | Step::Each => schema.items()?,
        };
    }
    Some(schema)
}
