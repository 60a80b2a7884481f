//! Finds the spec's payment initiations and the list their payments show up in again. Both are
//! recognised by shape, not by name: a POST whose body has a required string `idempotencyKey`
//! and whose answer is an object with an `id`; a list whose items have `relatedTransactionID`
//! and an enum `type`.

use super::{Initiation, LinkTarget, Method, ObjectDef, Operation, Protocol, Shape, TypeDef};

const KEY_FIELD: &str = "idempotencyKey";
const RELATED_FIELD: &str = "relatedTransactionID";
const TYPE_FIELD: &str = "type";

pub(super) fn mark(protocol: &mut Protocol) {
    let found: Vec<Option<Initiation>> = protocol
        .operations
        .iter()
        .map(|op| initiation(protocol, op))
        .collect();
    for (op, initiation) in protocol.operations.iter_mut().zip(found) {
        op.initiation = initiation;
    }
    if protocol.initiations().next().is_some() {
        protocol.link = link_target(protocol);
    }
    // A type the linked list cannot carry is no type at all.
    let link_types = match protocol
        .link
        .as_ref()
        .map(|link| protocol.types.get(&link.type_enum))
    {
        Some(Some(TypeDef::Enum(def))) => def.values.clone(),
        _ => Vec::new(),
    };
    for op in &mut protocol.operations {
        if let Some(initiation) = &mut op.initiation {
            initiation.transaction_type = initiation
                .transaction_type
                .take()
                .filter(|kind| link_types.contains(kind));
        }
    }
}

fn initiation(protocol: &Protocol, op: &Operation) -> Option<Initiation> {
    if op.method != Method::Post {
        return None;
    }
    let body = op.body.as_ref().filter(|body| body.required)?;
    let (_, request) = protocol.object(&body.shape)?;
    let is_required_text = |object: &ObjectDef, name: &str| {
        object.fields.iter().any(|f| {
            f.name == name && f.required && matches!(protocol.resolve(&f.shape), Shape::String(_))
        })
    };
    if !is_required_text(request, KEY_FIELD) {
        return None;
    }
    let (created_name, created) = protocol.object(op.success.shape.as_ref()?)?;
    if !is_required_text(created, "id") {
        return None;
    }
    let money = (is_required_text(request, "amount") && is_required_text(request, "currency"))
        .then(|| ("amount".to_owned(), "currency".to_owned()));
    Some(Initiation {
        key_field: KEY_FIELD.to_owned(),
        money,
        id_field: "id".to_owned(),
        transaction_type: Some(heck::ToShoutySnakeCase::to_shouty_snake_case(created_name)),
    })
}

fn link_target(protocol: &Protocol) -> Option<LinkTarget> {
    protocol.operations.iter().find_map(|op| {
        let Some(Shape::Array(array)) = &op.success.shape else {
            return None;
        };
        let (_, item) = protocol.object(&array.items)?;
        let related = item.fields.iter().find(|f| f.name == RELATED_FIELD)?;
        if !matches!(protocol.resolve(&related.shape), Shape::String(_)) {
            return None;
        }
        let kind = item.fields.iter().find(|f| f.name == TYPE_FIELD)?;
        let Shape::Named(type_enum) = &kind.shape else {
            return None;
        };
        matches!(protocol.types.get(type_enum), Some(TypeDef::Enum(_))).then(|| LinkTarget {
            operation: op.id.clone(),
            related_field: RELATED_FIELD.to_owned(),
            type_field: TYPE_FIELD.to_owned(),
            type_enum: type_enum.clone(),
        })
    })
}
