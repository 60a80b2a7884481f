//! `connector-gen preview`: one operation's record extraction and field mapping, run on a
//! saved provider answer (or, with `--live`, on the answer to the operation's first request)
//! by the runtime code the generated connector runs, so that what preview prints is what the
//! connector serves.
//!
//! The pieces, plain data in and out: [`statics`] turns the mapping model into the runtime's
//! types, [`interpret`] evaluates field expressions with the runtime's conversions, [`live`]
//! sends the first request, [`format`] prints.

pub mod format;
pub mod interpret;
pub mod live;
pub mod statics;

use std::path::{Path, PathBuf};

use connector_runtime::fields;
use connector_runtime::listing::{self, ListSpec};
use connector_runtime::metrics::Metrics;
use serde_json::Value;

use crate::diagnostics::{Diagnostic, SourceFile};
use crate::ir::{ObjectDef, Operation, Protocol, Shape};
use crate::mapping::{Mapping, OperationMapping, ParentList, Span};
use format::Failure;
use interpret::{FieldError, Interpreter, Out};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Table,
}

/// Where the provider's answer comes from.
#[derive(Debug, Clone)]
pub enum Input {
    Sample(PathBuf),
    Live,
}

/// Why preview stopped before converting anything (exit 2).
#[derive(Debug)]
pub enum Stop {
    /// A message for `error: ...`.
    Usage(String),
    /// Problems of the spec or the mapping file, to be rendered against their sources.
    Diagnostics(Vec<Diagnostic>),
}

/// What a preview found.
#[derive(Debug)]
pub struct Outcome {
    pub operation: String,
    /// The sample's records that converted, in the order the connector serves them.
    pub records: Vec<Out>,
    pub failures: Vec<Failure>,
    /// How many records the sample held.
    pub total: usize,
    pub notes: Vec<String>,
    /// The protocol object's fields, in the spec's order (the table's columns).
    pub fields: Vec<String>,
}

impl Outcome {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => format::json(&format::Report {
                operation: &self.operation,
                records: &self.records,
                failures: &self.failures,
                notes: &self.notes,
            }),
            Format::Table => {
                let fields: Vec<&str> = self.fields.iter().map(String::as_str).collect();
                format::table(&self.records, &fields)
            }
        }
    }
}

/// The checked protocol and mapping, as `generate` would use them.
pub fn load(spec: &SourceFile, mapping: &SourceFile) -> Result<(Protocol, Mapping), Stop> {
    let protocol = crate::load_protocol(spec);
    let (loaded, mut problems) = crate::mapping::load_partial(mapping);
    if let (Ok(protocol), Some(loaded)) = (&protocol, &loaded) {
        problems.extend(crate::mapping::validate(loaded, protocol, &mapping.name));
    }
    match (protocol, loaded) {
        (Ok(protocol), Some(loaded)) if !problems.iter().any(Diagnostic::is_error) => {
            Ok((protocol, loaded))
        }
        (protocol, _) => {
            let mut diagnostics = protocol.err().unwrap_or_default();
            diagnostics.extend(problems.into_iter().filter(Diagnostic::is_error));
            Err(Stop::Diagnostics(diagnostics))
        }
    }
}

/// The operation's mapping, or an error listing the mapped operations.
pub fn operation<'m>(mapping: &'m Mapping, id: &str) -> Result<&'m OperationMapping, Stop> {
    if let Some(found) = mapping.operations.get(id) {
        return Ok(found);
    }
    let mapped: Vec<&str> = mapping.operations.keys().map(String::as_str).collect();
    let mut message = format!("connector.yaml maps no operation `{id}`");
    if let Some(close) = mapped
        .iter()
        .filter(|known| strsim::jaro_winkler(known, id) > 0.85)
        .max_by(|a, b| strsim::jaro_winkler(a, id).total_cmp(&strsim::jaro_winkler(b, id)))
    {
        message.push_str(&format!(" (did you mean `{close}`?)"));
    }
    if mapped.is_empty() {
        message
            .push_str("; it maps none: operations answered in src/handlers.rs cannot be previewed");
    } else {
        message.push_str(&format!(
            "; the mapped operations are: {}",
            mapped.join(", ")
        ));
    }
    Err(Stop::Usage(message))
}

/// A provider answer read from `path`, or an error naming the file and the JSON position.
pub fn read_sample(path: &Path) -> Result<Value, Stop> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| Stop::Usage(format!("cannot read {}: {error}", path.display())))?;
    parse_sample(&path.display().to_string(), &text)
}

pub fn parse_sample(name: &str, text: &str) -> Result<Value, Stop> {
    serde_json::from_str(text).map_err(|error| {
        let what = error.to_string();
        // serde_json ends its message with " at line L column C": the place goes in front.
        let what = what
            .rsplit_once(" at line ")
            .map_or(what.as_str(), |(message, _)| message);
        Stop::Usage(format!(
            "{name}:{}:{}: expected the provider's JSON answer: {what}",
            error.line(),
            error.column().max(1)
        ))
    })
}

/// How one operation's records are found in a provider answer and converted.
pub struct Preview<'a> {
    pub protocol: &'a Protocol,
    pub mapping: &'a Mapping,
    pub mapping_source: &'a SourceFile,
    pub op: &'a Operation,
    pub operation: &'a OperationMapping,
    /// The `for_each` parent record, when given (`--parent`).
    pub parent: Option<&'a Value>,
}

impl<'a> Preview<'a> {
    /// The list whose pages the sample is one of: the operation's own, or for `from_list`
    /// the list it picks its record from. `None` for a single-object answer.
    pub fn list(&self) -> Option<(&'a str, ListSpec)> {
        if let Some(list) = &self.operation.list {
            let movable = self.sort_field().is_some_and(|field| field != "createdAt");
            return Some((
                self.op.id.as_str(),
                statics::list_spec(&self.op.id, list, movable),
            ));
        }
        let from = self.operation.from_list.as_ref()?;
        let (id, source) = self.mapping.operations.get_key_value(&from.list)?;
        let list = source.list.as_ref()?;
        Some((id.as_str(), statics::list_spec(id, list, false)))
    }

    /// The protocol object one record becomes.
    fn object(&self) -> Option<&'a ObjectDef> {
        let shape = self.op.success.shape.as_ref()?;
        let shape = match shape {
            Shape::Array(array) => array.items.as_ref(),
            other => other,
        };
        self.protocol.object(shape).map(|(_, object)| object)
    }

    /// The field a list is served in order of (`sort_field` in render/mapped.rs).
    fn sort_field(&self) -> Option<&'a str> {
        self.operation.list.as_ref()?;
        self.op.sort_field(self.object()?)
    }

    /// Notes on what the preview could not know.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(for_each) = &self.operation.for_each
            && self.parent.is_none()
            && self.operation.fields.iter().any(|f| reads_parent(&f.value))
        {
            let parent = match &for_each.parent {
                ParentList::Operation { id, .. } => format!("one of {id}'s provider records"),
                ParentList::Inline(_) => "one record of its `for_each` list".to_owned(),
            };
            notes.push(format!(
                "{} is listed once per parent record: `{{parent.…}}` values are left empty; pass --parent FILE with {parent} to fill them",
                self.op.id
            ));
        }
        if let Some(from) = &self.operation.from_list {
            notes.push(format!(
                "{} answers with the record of {}'s list its request names: every record of the sample (a page of {}) is shown as it would be answered",
                self.op.id, from.list, from.list
            ));
        }
        if self.operation.initiation.is_some() {
            notes.push(format!(
                "{} echoes fields it does not map from the payment request, which preview does not have: they are left out",
                self.op.id
            ));
        }
        if let Some(list) = &self.operation.list
            && !list.joins.is_empty()
        {
            let names: Vec<&str> = list.joins.iter().map(|j| j.name.as_str()).collect();
            notes.push(format!(
                "{} joins {}: preview makes no calls for the records, so what the fields read of the answers is missing unless the sample's records have it",
                self.op.id,
                names.join(", ")
            ));
        }
        if self.operation.union.len() > 1 {
            notes.push(format!(
                "{} is a union of {} requests: the sample is read as the answer of one of them, without the values its `set` adds",
                self.op.id,
                self.operation.union.len()
            ));
        }
        notes
    }

    /// Converts every record of `body`.
    pub fn run(&self, body: &Value) -> Outcome {
        let metrics = Metrics::default();
        let currencies: Vec<(&'static str, u32)> = self
            .mapping
            .currencies
            .iter()
            .map(|(code, precision)| (statics::intern(code), *precision))
            .collect();
        let interpreter =
            Interpreter::new(self.protocol, self.op, &metrics, &currencies, self.parent);
        let mut notes = self.notes();
        let mut failures = Vec::new();
        let Some(object) = self.object() else {
            notes.push(format!(
                "{} answers no object: there is nothing to preview",
                self.op.id
            ));
            return Outcome {
                operation: self.op.id.clone(),
                records: Vec::new(),
                failures,
                total: 0,
                notes,
                fields: Vec::new(),
            };
        };
        let (records, listed): (Vec<&Value>, bool) = match self.list() {
            Some((list_id, spec)) => {
                let records = listing::page_records(&spec, body);
                if records.is_empty() {
                    let path = self
                        .mapping
                        .operations
                        .get(list_id)
                        .and_then(|m| m.list.as_ref())
                        .map_or(".", |list| list.records.text.as_str());
                    notes.push(format!(
                        "the sample has no records at `{path}` (the records path of {list_id})"
                    ));
                }
                (records, true)
            }
            None => {
                let record = &self.operation.record;
                let steps = statics::steps(&record.steps);
                match fields::record_at(&self.op.id, body, &steps, &record.text) {
                    Ok(found) => (vec![found], false),
                    Err(error) => {
                        failures.push(Failure {
                            record: 1,
                            pointer: String::new(),
                            field: String::new(),
                            value: None,
                            error: error.detail,
                            mapping: self.place(&self.operation.span),
                        });
                        (Vec::new(), false)
                    }
                }
            }
        };
        let total = records.len().max(failures.len());
        let sort_field = self.sort_field();
        let mut converted: Vec<(chrono::DateTime<chrono::Utc>, String, Out)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match interpreter.object(object, &self.operation.fields, record, "") {
                Ok(mut item) => {
                    let (served, id) = if listed && self.operation.from_list.is_none() {
                        interpreter.served(&mut item, sort_field)
                    } else {
                        (chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, String::new())
                    };
                    converted.push((served, id, item));
                }
                Err(error) => failures.push(self.failure(index, record, body, error)),
            }
        }
        if listed && self.operation.from_list.is_none() {
            // The protocol's order: by served time, then id (the listing engine's window).
            converted.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        }
        notes.extend(interpreter.notes.into_inner());
        Outcome {
            operation: self.op.id.clone(),
            records: converted.into_iter().map(|(_, _, item)| item).collect(),
            failures,
            total,
            notes,
            fields: object.fields.iter().map(|f| f.name.clone()).collect(),
        }
    }

    fn failure(&self, index: usize, record: &Value, body: &Value, error: FieldError) -> Failure {
        Failure {
            record: index + 1,
            pointer: pointer_of(body, record).unwrap_or_default(),
            field: error.field,
            value: error.value,
            error: error.message,
            mapping: self.place(&error.span),
        }
    }

    /// `connector.yaml:LINE:COLUMN` of a span.
    fn place(&self, span: &Span) -> String {
        let (line, column) = self.mapping_source.line_col(span.start);
        format!("{}:{line}:{column}", self.mapping_source.name)
    }
}

/// `--live`: the answer to the operation's first provider request. Only GET requests are
/// sent: a payout or transfer is never initiated to preview its answer.
pub fn fetch(preview: &Preview) -> Result<Value, Stop> {
    let (op, operation) = (preview.op, preview.operation);
    if operation.initiation.is_some() || op.method != crate::ir::Method::Get {
        let what = if operation.initiation.is_some() {
            " (it initiates a payment)"
        } else {
            ""
        };
        return Err(Stop::Usage(format!(
            "{} is a {} operation{what}: --live sends only GET requests; save the provider's answer to it and pass it with --sample FILE",
            op.id,
            op.method.as_str()
        )));
    }
    let source = match &operation.from_list {
        Some(from) => preview
            .mapping
            .operations
            .get(&from.list)
            .unwrap_or(operation),
        None => operation,
    };
    let template = &source.request;
    if !template.method.eq_ignore_ascii_case("GET") {
        return Err(Stop::Usage(format!(
            "{}'s provider request is a {}: --live sends only GET requests; save the provider's answer and pass it with --sample FILE",
            op.id, template.method
        )));
    }
    if source.for_each.is_some() && live::reads_parent(template) && preview.parent.is_none() {
        return Err(Stop::Usage(format!(
            "{}'s request is sent once per parent record and names `{{parent.…}}`: pass --parent FILE with the parent's provider record",
            op.id
        )));
    }
    let unknown = template_params(template).into_iter().find(|name| {
        op.params
            .iter()
            .any(|p| p.name == *name && p.default.is_none())
    });
    if let Some(name) = unknown {
        return Err(Stop::Usage(format!(
            "{}'s provider request names the protocol parameter `{{{name}}}`, which preview has no value for: save the provider's answer for one {name} and pass it with --sample FILE",
            op.id
        )));
    }
    let plan = crate::plan::plan(preview.protocol, preview.mapping);
    let settings =
        live::settings(&plan.krate, &|name| std::env::var(name).ok()).map_err(|problems| {
            Stop::Usage(format!(
                "--live reads the provider settings of {} from the environment:\n  {}",
                preview.mapping_source.name,
                problems.join("\n  ")
            ))
        })?;
    let base_url = settings.base_url.clone();
    let request = live::request(template, preview.parent, &|name| {
        interpret::param_text(op, name)
    });
    let shown = live::describe(&base_url, &request);
    let spec = preview.list().map(|(_, spec)| spec);
    let (sent, response) = live::send(settings, &op.id, spec.as_ref(), request, preview.parent)
        .map_err(|error| Stop::Usage(format!("{shown}: {error}")))?;
    eprintln!(
        "{} -> {}",
        live::describe(&base_url, &sent),
        response.status
    );
    Ok(response.body)
}

/// The protocol parameters a request template names (`{accountId}`).
fn template_params(template: &crate::mapping::RequestTemplate) -> Vec<&str> {
    template
        .templates()
        .flat_map(|t| &t.parts)
        .filter_map(|part| match part {
            crate::mapping::TemplatePart::Param(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// Whether an expression reads the `for_each` parent's record (`parent:`, `{parent.x}`).
fn reads_parent(expr: &crate::mapping::Expr) -> bool {
    use crate::mapping::{Conversion, Source, TemplatePart};
    let source = match &expr.source {
        Source::Parent(_) => true,
        Source::Template(template) => template
            .parts
            .iter()
            .any(|part| matches!(part, TemplatePart::Parent(_))),
        Source::FirstOf(options) => options.iter().any(reads_parent),
        Source::Each { fields, .. } => fields.iter().any(|f| reads_parent(&f.value)),
        Source::Items(items) => items
            .iter()
            .any(|item| item.fields.iter().any(|f| reads_parent(&f.value))),
        Source::Switch {
            on, cases, default, ..
        } => {
            reads_parent(on)
                || cases.iter().any(|(_, case)| reads_parent(case))
                || default.as_deref().is_some_and(reads_parent)
        }
        _ => false,
    };
    source
        || matches!(&expr.conversion, Some(Conversion::Amount { currency, .. }) if reads_parent(currency))
}

/// The JSON pointer of `target` (a value inside `root`, by address).
pub fn pointer_of(root: &Value, target: &Value) -> Option<String> {
    if std::ptr::eq(root, target) {
        return Some(String::new());
    }
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match root {
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            pointer_of(item, target).map(|rest| format!("/{index}{rest}"))
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            pointer_of(item, target).map(|rest| format!("/{}{rest}", escape(key)))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bad_sample_names_the_file_and_the_position() {
        let Err(Stop::Usage(message)) = parse_sample("page.json", "{\n  \"data\": [1,]\n}") else {
            panic!("a bad sample is refused");
        };
        assert!(message.starts_with("page.json:2:14: "), "{message}");
        assert!(!message.contains(" at line "), "{message}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the provider sends, every operation of a real mapping previews it without
        /// panicking: records convert or fail with a report.
        #[test]
        fn any_answer_previews_without_panicking(body in any_json()) {
            let spec = SourceFile::new(crate::spec::BUNDLED_NAME, crate::spec::BUNDLED);
            let mapping = SourceFile::new(
                "connector.yaml",
                include_str!("../../generated-examples/nordbank/connector.yaml"),
            );
            let Ok((protocol, loaded)) = load(&spec, &mapping) else {
                panic!("the example mapping loads");
            };
            let parent = serde_json::json!({"id": "acc-1"});
            for (id, operation) in &loaded.operations {
                let op = protocol.operation(id).unwrap();
                let preview = Preview {
                    protocol: &protocol,
                    mapping: &loaded,
                    mapping_source: &mapping,
                    op,
                    operation,
                    parent: Some(&parent),
                };
                let outcome = preview.run(&body);
                let _ = outcome.render(Format::Json);
                let _ = outcome.render(Format::Table);
                let _ = format::failures(&outcome.failures, outcome.total);
            }
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("2025-03-01T10:00:00.000"),
                Just("12.50"),
                Just("NOK"),
                Just("PROCESSED"),
                Just("true")
            ]
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = prop_oneof![
                Just("content"),
                Just("id"),
                Just("name"),
                Just("createdDate"),
                Just("amount"),
                Just("currency"),
                Just("balance"),
                Just("credit"),
                Just("transactionDate"),
                Just("lastUpdated"),
                Just("type"),
                Just("status"),
                Just("x")
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(keys.prop_map(str::to_owned), inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn pointers_find_records_by_address() {
        let body = json!({"data": [{"id": 1}, {"id": 2}], "a/b": {"x": [0, {"y": 1}]}});
        let second = &body["data"][1];
        assert_eq!(pointer_of(&body, second).as_deref(), Some("/data/1"));
        let nested = &body["a/b"]["x"][1];
        assert_eq!(pointer_of(&body, nested).as_deref(), Some("/a~1b/x/1"));
        assert_eq!(pointer_of(&body, &json!(2)), None);
    }
}
