//! What changed between two protocol models, as plain data: operations, their parameters,
//! bodies and answers, object fields and enum values. Says nothing yet about a connector.

use std::collections::{BTreeMap, BTreeSet};

use crate::ir::{Operation, Protocol, Shape, TypeDef};

#[derive(Debug, Default)]
pub struct ProtocolDiff {
    pub added_operations: Vec<String>,
    pub removed_operations: Vec<String>,
    pub changed_operations: Vec<OperationChange>,
    /// By type name, for types in both versions.
    pub changed_types: BTreeMap<String, TypeChange>,
}

#[derive(Debug, Default)]
pub struct OperationChange {
    pub id: String,
    /// `method path` -> `method path`, when it moved.
    pub moved: Option<(String, String)>,
    pub params_added: Vec<(String, bool)>,
    pub params_removed: Vec<String>,
    pub params_changed: Vec<String>,
    pub body_changed: bool,
    pub answer_changed: bool,
}

impl OperationChange {
    fn is_empty(&self) -> bool {
        self.moved.is_none()
            && self.params_added.is_empty()
            && self.params_removed.is_empty()
            && self.params_changed.is_empty()
            && !self.body_changed
            && !self.answer_changed
    }
}

#[derive(Debug, Default)]
pub struct TypeChange {
    /// (field, required)
    pub fields_added: Vec<(String, bool)>,
    pub fields_removed: Vec<String>,
    /// Fields that became required.
    pub now_required: Vec<String>,
    /// Fields whose shape changed.
    pub reshaped: Vec<String>,
    pub values_added: Vec<String>,
    pub values_removed: Vec<String>,
    /// An object became an enum, or the other way round.
    pub replaced: bool,
}

pub fn diff(old: &Protocol, new: &Protocol) -> ProtocolDiff {
    let ids =
        |p: &Protocol| -> BTreeSet<String> { p.operations.iter().map(|o| o.id.clone()).collect() };
    let (old_ids, new_ids) = (ids(old), ids(new));
    let spec_order = |set: &BTreeSet<String>, p: &Protocol| -> Vec<String> {
        p.operations
            .iter()
            .filter(|o| set.contains(&o.id))
            .map(|o| o.id.clone())
            .collect()
    };
    let added: BTreeSet<String> = new_ids.difference(&old_ids).cloned().collect();
    let removed: BTreeSet<String> = old_ids.difference(&new_ids).cloned().collect();
    let changed_operations = new
        .operations
        .iter()
        .filter_map(|op| {
            old.operation(&op.id)
                .map(|before| operation_change(before, op))
        })
        .filter(|change| !change.is_empty())
        .collect();
    let changed_types = new
        .types
        .iter()
        .filter_map(|(name, after)| {
            let before = old.types.get(name)?;
            let change = type_change(before, after);
            (!is_unchanged(&change)).then(|| (name.clone(), change))
        })
        .collect();
    ProtocolDiff {
        added_operations: spec_order(&added, new),
        removed_operations: spec_order(&removed, old),
        changed_operations,
        changed_types,
    }
}

fn operation_change(before: &Operation, after: &Operation) -> OperationChange {
    let place = |op: &Operation| format!("{} {}", op.method.as_str(), op.path);
    let param = |op: &Operation, name: &str| op.params.iter().find(|p| p.name == name).cloned();
    let mut change = OperationChange {
        id: after.id.clone(),
        moved: (place(before) != place(after)).then(|| (place(before), place(after))),
        body_changed: before.body != after.body,
        answer_changed: before.success.shape != after.success.shape,
        ..OperationChange::default()
    };
    for p in &after.params {
        match param(before, &p.name) {
            None => change.params_added.push((p.name.clone(), p.required)),
            Some(old)
                if old.shape != p.shape
                    || old.required != p.required
                    || old.location != p.location =>
            {
                change.params_changed.push(p.name.clone())
            }
            Some(_) => {}
        }
    }
    for p in &before.params {
        if param(after, &p.name).is_none() {
            change.params_removed.push(p.name.clone());
        }
    }
    change
}

fn type_change(before: &TypeDef, after: &TypeDef) -> TypeChange {
    let mut change = TypeChange::default();
    match (before, after) {
        (TypeDef::Object(old), TypeDef::Object(new)) => {
            for field in &new.fields {
                match old.fields.iter().find(|f| f.name == field.name) {
                    None => change
                        .fields_added
                        .push((field.name.clone(), field.required)),
                    Some(was) => {
                        if field.required && !was.required {
                            change.now_required.push(field.name.clone());
                        }
                        if field.shape != was.shape || field.nullable != was.nullable {
                            change.reshaped.push(field.name.clone());
                        }
                    }
                }
            }
            change.fields_removed = old
                .fields
                .iter()
                .filter(|f| !new.fields.iter().any(|n| n.name == f.name))
                .map(|f| f.name.clone())
                .collect();
        }
        (TypeDef::Enum(old), TypeDef::Enum(new)) => {
            change.values_added = new
                .values
                .iter()
                .filter(|v| !old.values.contains(v))
                .cloned()
                .collect();
            change.values_removed = old
                .values
                .iter()
                .filter(|v| !new.values.contains(v))
                .cloned()
                .collect();
        }
        (TypeDef::Alias(old), TypeDef::Alias(new)) => change.replaced = old.shape != new.shape,
        _ => change.replaced = true,
    }
    change
}

fn is_unchanged(change: &TypeChange) -> bool {
    change.fields_added.is_empty()
        && change.fields_removed.is_empty()
        && change.now_required.is_empty()
        && change.reshaped.is_empty()
        && change.values_added.is_empty()
        && change.values_removed.is_empty()
        && !change.replaced
}

/// Every named type a shape reaches (objects' fields, arrays, maps, aliases).
pub fn types_of(protocol: &Protocol, shape: &Shape, out: &mut BTreeSet<String>) {
    match shape {
        Shape::Named(name) => {
            if !out.insert(name.clone()) {
                return;
            }
            match protocol.types.get(name) {
                Some(TypeDef::Object(object)) => {
                    for field in &object.fields {
                        types_of(protocol, &field.shape, out);
                    }
                }
                Some(TypeDef::Alias(alias)) => types_of(protocol, &alias.shape, out),
                _ => {}
            }
        }
        Shape::Array(array) => types_of(protocol, &array.items, out),
        Shape::Map(inner) => types_of(protocol, inner, out),
        _ => {}
    }
}
