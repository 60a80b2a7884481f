//! What a protocol change means for one connector: the diff read against its mapping and the
//! methods its author wrote, each change given a severity (blocking, needs a look, for
//! information) and the places in connector.yaml and src/ it concerns.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::diff::{ProtocolDiff, TypeChange, types_of};
use crate::diagnostics::SourceFile;
use crate::ir::{Protocol, Shape, TypeDef};
use crate::mapping::{Conversion, FieldMapping, Mapping, Span};
use crate::names;
use crate::usercode::UserMethod;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Regenerating fails, or the crate stops compiling.
    Blocking,
    /// Works, but someone should decide something.
    Look,
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    OperationAdded,
    OperationRemoved,
    OperationChanged,
    FieldAdded,
    FieldRequired,
    FieldRemoved,
    FieldChanged,
    TypeReplaced,
    EnumValueAdded,
    EnumValueRemoved,
    MappingError,
}

#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub severity: Severity,
    pub change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    pub message: String,
    /// `connector.yaml:12:5`, `src/handlers.rs:40:14`.
    pub locations: Vec<String>,
    #[serde(skip)]
    spans: Vec<usize>,
}

impl Item {
    fn new(severity: Severity, change: Change, message: String) -> Item {
        Item {
            severity,
            change,
            operation: None,
            schema: None,
            field: None,
            values: Vec::new(),
            message,
            locations: Vec::new(),
            spans: Vec::new(),
        }
    }
}

/// The connector's side: its mapping (with its text, for line numbers) and its methods.
pub struct Connector<'a> {
    pub mapping: Option<&'a Mapping>,
    pub mapping_source: Option<&'a SourceFile>,
    pub methods: &'a [UserMethod],
}

/// What the connector does with each protocol type: fields its mapping sets, enum rules.
#[derive(Default)]
struct Uses {
    /// Type -> mapped fields and where.
    mapped: BTreeMap<String, Vec<(String, Span)>>,
    /// Types a mapped operation produces, with that operation.
    produced: BTreeMap<String, String>,
    /// Fields a mapped initiation echoes from its request, by created type.
    echoed: BTreeMap<String, BTreeSet<String>>,
    rules: Vec<EnumRule>,
}

struct EnumRule {
    enum_type: String,
    operation: String,
    field: String,
    span: Span,
    /// Protocol values produced, with where each is written.
    targets: Vec<(String, Span)>,
    fallback: Option<String>,
}

/// Enum rules written once (a YAML anchor) and used by several operations.
struct RuleGroup {
    rules: Vec<String>,
    span: Span,
    /// Protocol values the rule produces.
    targets: Vec<String>,
    fallback: Option<String>,
}

struct Context<'a> {
    old: &'a Protocol,
    new: &'a Protocol,
    connector: &'a Connector<'a>,
    uses: Uses,
    items: Vec<Item>,
}

pub fn assess(
    old: &Protocol,
    new: &Protocol,
    diff: &ProtocolDiff,
    connector: &Connector,
) -> Vec<Item> {
    let mut uses = Uses::default();
    if let Some(mapping) = connector.mapping {
        collect_uses(old, mapping, &mut uses);
        collect_uses(new, mapping, &mut uses);
    }
    let mut cx = Context {
        old,
        new,
        connector,
        uses,
        items: Vec::new(),
    };
    for id in &diff.added_operations {
        cx.operation_added(id);
    }
    for id in &diff.removed_operations {
        cx.operation_removed(id);
    }
    for change in &diff.changed_operations {
        cx.operation_changed(change);
    }
    for (name, change) in &diff.changed_types {
        cx.type_changed(name, change);
    }
    cx.mapping_errors();
    cx.items.sort_by_key(|i| i.severity);
    cx.items
}

fn collect_uses(protocol: &Protocol, mapping: &Mapping, uses: &mut Uses) {
    for (id, op_mapping) in &mapping.operations {
        let Some(op) = protocol.operation(id) else {
            continue;
        };
        let target = match &op.success.shape {
            Some(Shape::Array(array)) => protocol.object(&array.items),
            Some(shape) => protocol.object(shape),
            None => None,
        };
        let Some((type_name, _)) = target else {
            continue;
        };
        collect_fields(protocol, id, type_name, &op_mapping.fields, uses);
        if let (Some(initiation), Some(body)) = (&op.initiation, &op.body)
            && let Some((_, request)) = protocol.object(&body.shape)
        {
            let echoed = uses.echoed.entry(type_name.to_owned()).or_default();
            echoed.extend(request.fields.iter().map(|f| f.name.clone()));
            echoed.insert(initiation.key_field.clone());
        }
    }
}

fn collect_fields(
    protocol: &Protocol,
    op: &str,
    type_name: &str,
    fields: &[FieldMapping],
    uses: &mut Uses,
) {
    uses.produced
        .entry(type_name.to_owned())
        .or_insert_with(|| op.to_owned());
    let Some(TypeDef::Object(object)) = protocol.types.get(type_name) else {
        return;
    };
    for mapped in fields {
        let entry = uses.mapped.entry(type_name.to_owned()).or_default();
        if !entry.iter().any(|(f, _)| *f == mapped.field) {
            entry.push((mapped.field.clone(), mapped.span.clone()));
        }
        let Some(field) = object.fields.iter().find(|f| f.name == mapped.field) else {
            continue;
        };
        if let Shape::Array(array) = protocol.resolve(&field.shape)
            && let Some((element, _)) = protocol.object(&array.items)
        {
            for fields in mapped.value.source.element_fields() {
                collect_fields(protocol, op, element, fields, uses);
            }
        }
        if let (
            Some(Conversion::Enum {
                map,
                fallback,
                span,
                target_spans,
            }),
            Shape::Named(enum_type),
        ) = (&mapped.value.conversion, &field.shape)
        {
            let exists = uses
                .rules
                .iter()
                .any(|r| r.operation == op && r.field == mapped.field && r.enum_type == *enum_type);
            if !exists {
                let values = map.iter().map(|(_, v)| v.clone()).chain(fallback.clone());
                uses.rules.push(EnumRule {
                    enum_type: enum_type.clone(),
                    operation: op.to_owned(),
                    field: mapped.field.clone(),
                    span: span.clone(),
                    targets: values.zip(target_spans.iter().cloned()).collect(),
                    fallback: fallback.clone(),
                });
            }
        }
    }
}

impl Context<'_> {
    fn at(&self, span: &Span) -> String {
        match self.connector.mapping_source {
            Some(source) => {
                let (line, column) = source.line_col(span.start);
                format!("{}:{line}:{column}", source.name)
            }
            None => String::new(),
        }
    }

    fn mapped(&self, op: &str) -> Option<Span> {
        self.connector
            .mapping?
            .operations
            .get(op)
            .map(|m| m.span.clone())
    }

    fn method(&self, op: &str) -> Option<&UserMethod> {
        let name = names::snake(op);
        self.connector.methods.iter().find(|m| m.name == name)
    }

    fn method_at(method: &UserMethod) -> String {
        format!("{}:{}:{}", method.file, method.line, method.column + 1)
    }

    fn push(&mut self, mut item: Item, spans: Vec<Span>) {
        for span in spans {
            let place = self.at(&span);
            if !item.locations.contains(&place) {
                item.locations.push(place);
            }
            item.spans.push(span.start);
        }
        self.items.push(item);
    }

    fn operation_added(&mut self, id: &str) {
        let (severity, message, spans) = match (self.mapped(id), self.method(id)) {
            (Some(span), _) => (
                Severity::Info,
                format!("`{id}` is new; connector.yaml maps it"),
                vec![span],
            ),
            (None, Some(method)) => (
                Severity::Info,
                format!(
                    "`{id}` is new; src/handlers.rs implements it ({})",
                    Self::method_at(method)
                ),
                vec![],
            ),
            (None, None) => (
                Severity::Look,
                format!(
                    "`{id}` is new: the connector answers it 501 until connector.yaml maps it or src/handlers.rs implements it"
                ),
                vec![],
            ),
        };
        let mut item = Item::new(severity, Change::OperationAdded, message);
        item.operation = Some(id.to_owned());
        self.push(item, spans);
    }

    fn operation_removed(&mut self, id: &str) {
        let mapped = self.mapped(id);
        let method = self.method(id).cloned();
        let mut message = format!("`{id}` is removed");
        if mapped.is_some() {
            message += "; connector.yaml still maps it, so `generate` stops";
        }
        if let Some(method) = &method {
            message += &format!(
                "; `{}` in {} becomes a method the trait does not have, so the crate stops compiling",
                method.name,
                Self::method_at(method)
            );
        }
        let severity = if mapped.is_some() || method.is_some() {
            Severity::Blocking
        } else {
            Severity::Info
        };
        let mut item = Item::new(severity, Change::OperationRemoved, message);
        item.operation = Some(id.to_owned());
        if let Some(method) = &method {
            item.locations.push(Self::method_at(method));
        }
        self.push(item, mapped.into_iter().collect());
    }

    fn operation_changed(&mut self, change: &super::diff::OperationChange) {
        let id = &change.id;
        let mut parts = Vec::new();
        if let Some((from, to)) = &change.moved {
            parts.push(format!("moved from `{from}` to `{to}`"));
        }
        for (name, required) in &change.params_added {
            parts.push(format!(
                "new {} parameter `{name}`",
                if *required { "required" } else { "optional" }
            ));
        }
        for name in &change.params_removed {
            parts.push(format!("parameter `{name}` removed"));
        }
        for name in &change.params_changed {
            parts.push(format!("parameter `{name}` changed"));
        }
        if change.body_changed {
            parts.push("the request body's schema changed".to_owned());
        }
        if change.answer_changed {
            parts.push("the answer's schema changed".to_owned());
        }
        let mapped = self.mapped(id);
        let ours = mapped.is_some() || self.method(id).is_some();
        let severity = if ours { Severity::Look } else { Severity::Info };
        let mut item = Item::new(
            severity,
            Change::OperationChanged,
            format!("`{id}`: {}", parts.join(", ")),
        );
        item.operation = Some(id.clone());
        if let Some(method) = self.method(id) {
            item.locations.push(Self::method_at(method));
        }
        self.push(item, mapped.into_iter().collect());
    }

    /// Operations of the new protocol that answer with (`answer`) or take (`!answer`) a type.
    fn users(&self, type_name: &str, answer: bool) -> Vec<String> {
        self.new
            .operations
            .iter()
            .filter(|op| {
                let shape = if answer {
                    op.success.shape.as_ref()
                } else {
                    op.body.as_ref().map(|b| &b.shape)
                };
                let mut reached = BTreeSet::new();
                if let Some(shape) = shape {
                    types_of(self.new, shape, &mut reached);
                }
                reached.contains(type_name)
            })
            .map(|op| op.id.clone())
            .collect()
    }

    fn field_span(&self, type_name: &str, field: &str) -> Option<Span> {
        self.uses
            .mapped
            .get(type_name)?
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, s)| s.clone())
    }

    fn type_changed(&mut self, name: &str, change: &TypeChange) {
        for (field, required) in &change.fields_added {
            self.field_added(name, field, *required, Change::FieldAdded);
        }
        for field in &change.now_required {
            self.field_added(name, field, true, Change::FieldRequired);
        }
        for field in &change.fields_removed {
            self.field_removed(name, field);
        }
        for field in &change.reshaped {
            let span = self.field_span(name, field);
            let severity = if span.is_some() {
                Severity::Look
            } else {
                Severity::Info
            };
            let message = format!(
                "`{name}.{field}` changed its type{}",
                if span.is_some() {
                    "; check its mapping"
                } else {
                    ""
                }
            );
            let mut item = Item::new(severity, Change::FieldChanged, message);
            item.schema = Some(name.to_owned());
            item.field = Some(field.clone());
            self.push(item, span.into_iter().collect());
        }
        if !change.values_added.is_empty() {
            self.values_added(name, &change.values_added);
        }
        for value in &change.values_removed {
            self.value_removed(name, value);
        }
        if change.replaced {
            let mut item = Item::new(
                Severity::Look,
                Change::TypeReplaced,
                format!("`{name}` is now a different kind of schema"),
            );
            item.schema = Some(name.to_owned());
            self.push(item, vec![]);
        }
    }

    fn field_added(&mut self, type_name: &str, field: &str, required: bool, change: Change) {
        let kind = if required { "required" } else { "optional" };
        let what = match change {
            Change::FieldRequired => format!("`{type_name}.{field}` is now required"),
            _ => format!("`{type_name}` has a new {kind} field `{field}`"),
        };
        let produced = self.uses.produced.get(type_name).cloned();
        let echoed = self
            .uses
            .echoed
            .get(type_name)
            .is_some_and(|e| e.contains(field));
        let implemented: Vec<String> = self
            .users(type_name, true)
            .into_iter()
            .filter(|op| self.mapped(op).is_none() && self.method(op).is_some())
            .collect();
        let takers: Vec<String> = self
            .users(type_name, false)
            .into_iter()
            .filter(|op| self.mapped(op).is_some() || self.method(op).is_some())
            .collect();
        let (severity, message, spans) = if self.field_span(type_name, field).is_some() {
            (
                Severity::Info,
                format!("{what}; connector.yaml already maps it"),
                vec![],
            )
        } else if echoed {
            (
                Severity::Info,
                format!("{what}; the server echoes it from the request"),
                vec![],
            )
        } else if let Some(op) = produced {
            let span = self.mapped(&op).into_iter().collect();
            if required {
                (
                    Severity::Blocking,
                    format!("{what} and connector.yaml does not set it in `{op}`"),
                    span,
                )
            } else {
                (
                    Severity::Look,
                    format!("{what}: connector.yaml could map it in `{op}`"),
                    span,
                )
            }
        } else if !implemented.is_empty() && required {
            (
                Severity::Look,
                format!(
                    "{what}: src/handlers.rs must set it in {}",
                    implemented.join(", ")
                ),
                vec![],
            )
        } else if !takers.is_empty() {
            (
                Severity::Look,
                format!(
                    "{what}: {} receives it and could forward it to the provider",
                    takers.join(", ")
                ),
                vec![],
            )
        } else {
            (Severity::Info, what, vec![])
        };
        let mut item = Item::new(severity, change, message);
        item.schema = Some(type_name.to_owned());
        item.field = Some(field.to_owned());
        if let Some(method) = implemented.first().and_then(|op| self.method(op)) {
            item.locations.push(Self::method_at(method));
        }
        self.push(item, spans);
    }

    fn field_removed(&mut self, type_name: &str, field: &str) {
        let span = self.field_span(type_name, field);
        let (severity, message) = match &span {
            Some(_) => (
                Severity::Blocking,
                format!("`{type_name}.{field}` is removed and connector.yaml maps it"),
            ),
            None => (Severity::Info, format!("`{type_name}.{field}` is removed")),
        };
        let mut item = Item::new(severity, Change::FieldRemoved, message);
        item.schema = Some(type_name.to_owned());
        item.field = Some(field.to_owned());
        self.push(item, span.into_iter().collect());
    }

    /// One item per enum rule (rules shared through a YAML anchor count once).
    fn values_added(&mut self, enum_type: &str, values: &[String]) {
        let mut groups: BTreeMap<usize, RuleGroup> = BTreeMap::new();
        for rule in self.uses.rules.iter().filter(|r| r.enum_type == enum_type) {
            let group = groups.entry(rule.span.start).or_insert_with(|| RuleGroup {
                rules: Vec::new(),
                span: rule.span.clone(),
                targets: rule.targets.iter().map(|(v, _)| v.clone()).collect(),
                fallback: rule.fallback.clone(),
            });
            group
                .rules
                .push(format!("{}.{}", rule.operation, rule.field));
        }
        let listed = |values: &[String]| {
            values
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if groups.is_empty() {
            let message = format!("`{enum_type}` has new values {}", listed(values));
            let mut item = Item::new(Severity::Info, Change::EnumValueAdded, message);
            item.schema = Some(enum_type.to_owned());
            item.values = values.to_vec();
            return self.push(item, vec![]);
        }
        for RuleGroup {
            rules,
            span,
            targets,
            fallback,
        } in groups.into_values()
        {
            let rules = rules.join(", ");
            let (produced, missing): (Vec<String>, Vec<String>) =
                values.iter().cloned().partition(|v| targets.contains(v));
            if !produced.is_empty() {
                let message = format!(
                    "`{enum_type}` has new values {} that {rules} already produce",
                    listed(&produced)
                );
                let mut item = Item::new(Severity::Info, Change::EnumValueAdded, message);
                item.schema = Some(enum_type.to_owned());
                item.values = produced;
                self.push(item, vec![span.clone()]);
            }
            if !missing.is_empty() {
                let absorbed = match &fallback {
                    Some(fallback) => format!("provider values that mean them go to the fallback `{fallback}`"),
                    None => "the rule has no fallback, so provider values that mean them fail the record".to_owned(),
                };
                let message = format!(
                    "`{enum_type}` has new values {} that no rule of {rules} produces: {absorbed}",
                    listed(&missing)
                );
                let mut item = Item::new(Severity::Look, Change::EnumValueAdded, message);
                item.schema = Some(enum_type.to_owned());
                item.values = missing;
                self.push(item, vec![span]);
            }
        }
    }

    fn value_removed(&mut self, enum_type: &str, value: &str) {
        let spans: Vec<(String, Span)> = self
            .uses
            .rules
            .iter()
            .filter(|r| r.enum_type == enum_type)
            .flat_map(|r| {
                let rule = format!("{}.{}", r.operation, r.field);
                r.targets
                    .iter()
                    .filter(|(v, _)| v == value)
                    .map(move |(_, s)| (rule.clone(), s.clone()))
            })
            .collect();
        let (severity, message) = if spans.is_empty() {
            (
                Severity::Info,
                format!("`{enum_type}` no longer has the value `{value}`"),
            )
        } else {
            let rules: BTreeSet<&str> = spans.iter().map(|(r, _)| r.as_str()).collect();
            (
                Severity::Blocking,
                format!(
                    "`{enum_type}` no longer has the value `{value}`, which {} map to",
                    rules.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
        };
        let mut item = Item::new(severity, Change::EnumValueRemoved, message);
        item.schema = Some(enum_type.to_owned());
        item.values = vec![value.to_owned()];
        self.push(item, spans.into_iter().map(|(_, s)| s).collect());
    }

    /// What the mapping checks say against the new protocol, beyond the items above.
    fn mapping_errors(&mut self) {
        let (Some(mapping), Some(source)) = (self.connector.mapping, self.connector.mapping_source)
        else {
            return;
        };
        let known: BTreeSet<usize> = self
            .items
            .iter()
            .flat_map(|i| i.spans.iter().copied())
            .collect();
        let before: BTreeSet<String> = crate::mapping::validate(mapping, self.old, &source.name)
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| d.message)
            .collect();
        for diagnostic in crate::mapping::validate(mapping, self.new, &source.name) {
            if !diagnostic.is_error() || before.contains(&diagnostic.message) {
                continue;
            }
            let span = diagnostic.location.as_ref().map(|l| l.span.clone());
            if span.as_ref().is_some_and(|s| known.contains(&s.start)) {
                continue;
            }
            let mut message = format!(
                "connector.yaml does not check against the new protocol: {}",
                diagnostic.message
            );
            if let Some(help) = &diagnostic.help {
                message += &format!(" ({help})");
            }
            let item = Item::new(Severity::Blocking, Change::MappingError, message);
            self.push(item, span.into_iter().collect());
        }
    }
}
