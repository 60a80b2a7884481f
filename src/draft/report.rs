//! `draft-report.json`: the public, machine-read account of every guess. Its shape is a
//! contract with the tools that read it; keys are written sorted, so the bytes are stable.

use serde_json::{Map, Value, json};

use super::detect::*;

pub fn report(drafted: &Drafted) -> String {
    let mut operations = Map::new();
    for op in &drafted.operations {
        operations.insert(op.id.to_owned(), operation(op));
    }
    let report = json!({ "auth": auth(&drafted.auth), "operations": operations });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

fn auth(auth: &AuthGuess) -> Value {
    let mut out = Map::new();
    let (kind, header, token_url) = match &auth.kind {
        AuthKind::Bearer => ("bearer", None, None),
        AuthKind::ApiKey { name, .. } => ("api_key", Some(name.clone()), None),
        AuthKind::Basic => ("basic", None, None),
        AuthKind::OAuth2 { token_url } => ("oauth2", None, token_url.clone()),
        AuthKind::Login { header, path } => ("login", Some(header.clone()), Some(path.clone())),
        AuthKind::Unknown => ("unknown", None, None),
    };
    out.insert("kind".into(), kind.into());
    if let Some(header) = header {
        out.insert("header".into(), header.into());
    }
    if let Some(url) = token_url {
        out.insert("token_url".into(), url.into());
    }
    out.insert("confidence".into(), auth.confidence.into());
    out.insert("evidence".into(), auth.evidence.clone().into());
    Value::Object(out)
}

fn operation(op: &OpGuess) -> Value {
    let decision = match op.decision {
        Decision::Mapped => "mapped",
        Decision::Stub => "stub",
        Decision::None => "none",
    };
    let mut out = Map::new();
    out.insert("decision".into(), decision.into());
    out.insert("method".into(), op.method.clone().into());
    out.insert("path".into(), op.path.clone().into());
    out.insert("confidence".into(), op.confidence.into());
    out.insert(
        "candidates".into(),
        op.candidates
            .iter()
            .map(|c| json!({"method": c.method, "path": c.path, "score": c.score}))
            .collect::<Vec<_>>()
            .into(),
    );
    if let Some(list) = &op.list {
        out.insert("records".into(), list.records.clone().into());
        out.insert("paging".into(), paging(&list.paging));
        out.insert(
            "since".into(),
            list.since.as_ref().map_or(Value::Null, since),
        );
        out.insert("order".into(), list.order.name().into());
    } else if let Some(record) = &op.record {
        out.insert("record".into(), record.clone().into());
    }
    let mut fields = Map::new();
    for field in &op.fields {
        fields.insert(field.field.to_owned(), field_value(field));
    }
    out.insert("fields".into(), Value::Object(fields));
    if op.is_initiation() {
        let mut body = Map::new();
        for entry in &op.body {
            let value = match &entry.value {
                BodyValue::Field(field) => json!({"key": entry.key, "from": field}),
                BodyValue::Amount { format } => json!({"key": entry.key, "format": format.name()}),
                BodyValue::Currency { lower } => {
                    json!({"key": entry.key, "case": if *lower { "lower" } else { "upper" }})
                }
            };
            let name = match &entry.value {
                BodyValue::Field(field) => (*field).to_owned(),
                BodyValue::Amount { .. } => "amount".into(),
                BodyValue::Currency { .. } => "currency".into(),
            };
            let mut value = value;
            value["confidence"] = entry.confidence.into();
            body.insert(name, value);
        }
        out.insert("body".into(), Value::Object(body));
        out.insert("idempotency".into(), idempotency(op.idempotency.as_ref()));
    }
    out.insert("blocked_by".into(), op.blocked_by.clone().into());
    out.insert("todo".into(), op.todo.clone().into());
    out.insert(
        "evidence".into(),
        op.evidence
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect::<Map<_, _>>()
            .into(),
    );
    Value::Object(out)
}

fn paging(p: &PagingGuess) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), p.kind.name().into());
    let put = |out: &mut Map<String, Value>, key: &str, value: &Option<String>| {
        if let Some(v) = value {
            out.insert(key.into(), v.clone().into());
        }
    };
    put(&mut out, "param", &p.param);
    put(&mut out, "from", &p.from);
    put(&mut out, "has_more", &p.has_more);
    if let Some(first) = p.first {
        out.insert("first".into(), first.into());
    }
    put(&mut out, "path", &p.path);
    out.insert("confidence".into(), p.confidence.into());
    Value::Object(out)
}

fn since(s: &SinceGuess) -> Value {
    json!({"param": s.param, "format": s.format.name(), "inclusive": s.inclusive, "confidence": s.confidence})
}

fn field_value(field: &FieldGuess) -> Value {
    let mut value = match &field.value {
        FieldValue::Path(path) => json!({"path": path}),
        FieldValue::Time { path, format } => json!({"path": path, "time": format.name()}),
        FieldValue::Amount {
            path,
            currency,
            format,
        } => json!({"path": path, "currency": currency, "format": format.name()}),
        FieldValue::Currency { path, lower } => {
            json!({"path": path, "case": if *lower { "lower" } else { "upper" }})
        }
        FieldValue::Enum { path, map } => {
            json!({"path": path, "map": map.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect::<Map<_, _>>()})
        }
        FieldValue::Const(value) => json!({"const": value}),
        FieldValue::Now => json!({"now": true}),
        FieldValue::Template(template) => json!({"template": template}),
        FieldValue::Each { path, fields } => {
            json!({"each": path, "fields": fields.iter().map(|f| (f.field.to_owned(), field_value(f))).collect::<Map<_, _>>()})
        }
    };
    value["confidence"] = field.confidence.into();
    value
}

fn idempotency(found: Option<&Idempotency>) -> Value {
    match found {
        Some(Idempotency::Header {
            name, confidence, ..
        }) => json!({"header": name, "confidence": confidence}),
        Some(Idempotency::Body {
            field,
            format,
            confidence,
            ..
        }) => {
            let mut v = json!({"body": field, "confidence": confidence});
            if let Some(format) = format {
                v["format"] = format.clone().into();
            }
            v
        }
        _ => Value::Null,
    }
}
