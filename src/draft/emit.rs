//! The drafted `connector.yaml`: mapped operations in the mapping language, each guess below
//! high confidence with a trailing comment; stubs and absent operations as comments that name
//! what is missing and the candidates.

use std::fmt::Write;

use super::detect::*;

pub fn mapping(drafted: &Drafted, name: &str, files: &[String]) -> String {
    let mut out = String::new();
    let env = crate::names::shouty(name);
    let _ = writeln!(
        out,
        "# Drafted by `connector-gen draft` from {}.",
        files.join(", ")
    );
    out.push_str(
        "# Guesses below high confidence end with `# confidence: evidence`; `todo:` entries are\n",
    );
    out.push_str(
        "# warnings of `connector-gen check` until removed. Operations not mapped are commented\n",
    );
    out.push_str("# stubs naming what is missing; draft-report.json has the details.\n");
    out.push_str("version: 1\n");
    let _ = writeln!(out, "name: {name}");
    out.push_str("upstream:\n");
    let documented = if drafted.base_url.is_empty() {
        String::new()
    } else {
        format!("  # documented: {}", drafted.base_url)
    };
    let _ = writeln!(out, "  base_url: ${{env:{env}_BASE_URL}}{documented}");
    auth(&mut out, &drafted.auth, &env);
    let mapped: Vec<&OpGuess> = drafted
        .operations
        .iter()
        .filter(|o| o.decision == Decision::Mapped)
        .collect();
    out.push_str(if mapped.is_empty() {
        "operations: {}\n"
    } else {
        "operations:\n"
    });
    for op in &drafted.operations {
        match op.decision {
            Decision::Mapped => operation(&mut out, op),
            Decision::Stub => stub(&mut out, op),
            Decision::None => absent(&mut out, op),
        }
    }
    out
}

fn comment(confidence: f64, evidence: &str) -> String {
    if confidence >= HIGH {
        String::new()
    } else {
        format!("  # {confidence:.2}: {}", one_line(evidence))
    }
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// A YAML scalar: plain when that reads back as the same string, else JSON-quoted.
pub fn scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '/')
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_owned()
    } else {
        serde_json::to_string(text).unwrap_or_default()
    }
}

fn auth(out: &mut String, auth: &AuthGuess, env: &str) {
    let note = comment(auth.confidence, &auth.evidence.join(", "));
    match &auth.kind {
        AuthKind::Bearer => {
            let _ = writeln!(out, "  auth:{note}\n    bearer: ${{env:{env}_API_KEY}}");
        }
        AuthKind::ApiKey { header, name } => {
            let place = if *header { "header" } else { "query" };
            let _ = writeln!(out, "  auth:{note}\n    api_key: {{ {place}: {}, value: \"${{env:{env}_API_KEY}}\" }}", scalar(name));
        }
        AuthKind::Basic => {
            let _ = writeln!(out, "  auth:{note}\n    basic: {{ username: \"${{env:{env}_USERNAME}}\", password: \"${{env:{env}_PASSWORD}}\" }}");
        }
        AuthKind::OAuth2 { token_url } => {
            let documented = token_url.as_deref().map(|u| format!("  # documented token URL: {u}")).unwrap_or_default();
            let _ = writeln!(out, "  auth:{note}\n    oauth2:{documented}\n      token_url: ${{env:{env}_TOKEN_URL}}\n      client_id: ${{env:{env}_CLIENT_ID}}\n      client_secret: ${{env:{env}_CLIENT_SECRET}}");
        }
        AuthKind::Login { header, path } => {
            let _ = writeln!(out, "  # auth: a login operation (POST {path}) issues the token sent as `{header}`;");
            out.push_str("  # the mapping language has no login auth yet (LOGIN). Until it has, the token is read\n");
            out.push_str("  # from the environment and must be renewed by hand when it expires.\n");
            let var = format!("{env}_{}", crate::names::shouty(header));
            let _ = writeln!(out, "  headers:\n    {}: ${{env:{var}}}", scalar(header));
        }
        AuthKind::Unknown => out.push_str("  # auth: the document declares no security scheme the mapping language has; add `auth:`\n"),
    }
    if !auth.extra_headers.is_empty() && !matches!(auth.kind, AuthKind::Login { .. }) {
        out.push_str("  headers:  # the provider wants these with every request as well\n");
        for header in &auth.extra_headers {
            let _ = writeln!(
                out,
                "    {}: ${{env:{env}_{}}}",
                scalar(header),
                crate::names::shouty(header)
            );
        }
    }
    for note in &auth.notes {
        let _ = writeln!(out, "  # {}", one_line(note));
    }
}

fn operation(out: &mut String, op: &OpGuess) {
    let note = comment(
        op.confidence,
        op.evidence.get("endpoint").map_or("", String::as_str),
    );
    let _ = writeln!(out, "  {}:{note}", op.id);
    out.push_str(&body_of(op));
}

/// The operation's entries, indented under its key.
fn body_of(op: &OpGuess) -> String {
    let mut out = String::new();
    request(&mut out, op);
    if let Some(list) = &op.list {
        list_entries(&mut out, list);
    }
    if let Some(record) = &op.record {
        let _ = writeln!(out, "    record: {}", scalar(record));
    }
    if op.is_initiation() {
        initiation(&mut out, op);
    }
    if !op.fields.is_empty() {
        out.push_str("    fields:\n");
        for field in &op.fields {
            field_entry(&mut out, field, 6);
        }
    }
    if let Some(lookup) = &op.lookup {
        let _ = writeln!(
            out,
            "    lookup:  # finds a payment an earlier attempt made, by the key sent in `{}`",
            lookup.query
        );
        let _ = writeln!(
            out,
            "      request:\n        path: {}\n        query: {{ {}: \"{{idempotencyKey}}\" }}",
            scalar(&lookup.path),
            scalar(&lookup.query)
        );
        if let Some(records) = &lookup.records {
            let _ = writeln!(out, "      records: {}", scalar(records));
        }
    }
    if !op.todo.is_empty() {
        out.push_str("    todo:\n");
        for todo in &op.todo {
            let _ = writeln!(out, "      - {}", scalar(&one_line(todo)));
        }
    }
    out
}

fn request(out: &mut String, op: &OpGuess) {
    if let Some(parent) = op.for_each {
        let _ = writeln!(out, "    for_each: {parent}");
    }
    out.push_str("    request:\n");
    let method = op.method.as_deref().unwrap_or("GET");
    let default = if op.is_initiation() { "POST" } else { "GET" };
    if method != default {
        let _ = writeln!(out, "      method: {method}");
    }
    let path = op
        .request_path
        .as_deref()
        .or(op.path.as_deref())
        .unwrap_or("/");
    let _ = writeln!(out, "      path: {}", scalar(path));
    if !op.query.is_empty() {
        out.push_str("      query:\n");
        for (name, value) in &op.query {
            let _ = writeln!(out, "        {}: {}", scalar(name), scalar(value));
        }
    }
}

fn list_entries(out: &mut String, list: &ListGuess) {
    let _ = writeln!(
        out,
        "    records: {}{}",
        scalar(&list.records),
        comment(
            list.records_confidence,
            "the first list of objects in the answer"
        )
    );
    let p = &list.paging;
    let note = comment(p.confidence, &p.evidence);
    let opt = |key: &str, value: &Option<String>| {
        value
            .as_ref()
            .map(|v| format!(", {key}: {}", scalar(v)))
            .unwrap_or_default()
    };
    let param = p.param.as_deref().map(scalar).unwrap_or_default();
    match p.kind {
        PagingKind::CursorRecord => {
            let _ = writeln!(
                out,
                "    paging:{note}\n      cursor: {{ param: {param}{}{} }}",
                opt("from_record", &p.from),
                opt("has_more", &p.has_more)
            );
        }
        PagingKind::CursorBody | PagingKind::BodyCursorPost => {
            let _ = writeln!(
                out,
                "    paging:{note}\n      cursor: {{ param: {param}{}{} }}",
                opt("from_body", &p.from),
                opt("has_more", &p.has_more)
            );
        }
        PagingKind::NextUrl => {
            let _ = writeln!(
                out,
                "    paging:{note}\n      next_url: {}",
                scalar(p.path.as_deref().unwrap_or("next"))
            );
        }
        PagingKind::LinkHeader => {
            let _ = writeln!(out, "    paging: link_header{note}");
        }
        PagingKind::PageNumber => {
            let _ = writeln!(
                out,
                "    paging:{note}\n      page_number: {{ param: {param}, first: {}{} }}",
                p.first.unwrap_or(1),
                opt("total_pages", &p.path)
            );
        }
        PagingKind::Offset => {
            let _ = writeln!(
                out,
                "    paging:{note}\n      offset: {{ param: {param}{} }}",
                opt("total", &p.path)
            );
        }
        PagingKind::HeaderCursor | PagingKind::None => {
            let _ = writeln!(out, "    paging: none{note}");
        }
    }
    if let Some((param, value)) = &list.page_size {
        let _ = writeln!(
            out,
            "    page_size: {{ param: {}, value: {value} }}",
            scalar(param)
        );
    }
    let _ = writeln!(
        out,
        "    order: {}{}",
        list.order.name(),
        comment(
            list.order_confidence,
            "from the sort parameter or the description; `unordered` is always safe"
        )
    );
    if let Some(since) = &list.since {
        let _ = writeln!(
            out,
            "    since: {}{}",
            since_value(since),
            comment(since.confidence, &since.evidence)
        );
    }
    if let Some((since, why)) = &list.since_candidate {
        let _ = writeln!(
            out,
            "    # since: {}  # {}",
            since_value(since),
            one_line(why)
        );
    }
}

fn since_value(since: &SinceGuess) -> String {
    let inclusive = if since.inclusive {
        ""
    } else {
        ", inclusive: false"
    };
    format!(
        "{{ param: {}, format: {}{inclusive} }}",
        scalar(&since.param),
        time(since.format)
    )
}

fn time(format: TimeFormat) -> String {
    match format {
        TimeFormat::Date => "{ pattern: \"%Y-%m-%d\", utc_offset: \"+00:00\" }".into(),
        other => other.name().into(),
    }
}

fn field_entry(out: &mut String, field: &FieldGuess, indent: usize) {
    let pad = " ".repeat(indent);
    let note = comment(field.confidence, &field.evidence);
    let name = field.field;
    match &field.value {
        FieldValue::Path(path) => {
            let _ = writeln!(out, "{pad}{name}: {}{note}", scalar(path));
        }
        FieldValue::Time { path, format } => {
            let _ = writeln!(
                out,
                "{pad}{name}: {{ path: {}, time: {} }}{note}",
                scalar(path),
                time(*format)
            );
        }
        FieldValue::Amount {
            path,
            currency,
            format,
        } => {
            let format = match format {
                AmountFormat::MinorUnits => "minor_units",
                _ => "decimal",
            };
            let _ = writeln!(
                out,
                "{pad}{name}: {{ path: {}, amount: {{ currency: {}, format: {format} }} }}{note}",
                scalar(path),
                scalar(currency)
            );
        }
        FieldValue::Currency { path, .. } => {
            let _ = writeln!(
                out,
                "{pad}{name}: {{ path: {}, currency: true }}{note}",
                scalar(path)
            );
        }
        FieldValue::Enum { path, map } => {
            let _ = writeln!(
                out,
                "{pad}{name}:{note}\n{pad}  path: {}\n{pad}  enum:",
                scalar(path)
            );
            if map.is_empty() {
                let _ = writeln!(out, "{pad}    map: {{}}");
            } else {
                let _ = writeln!(out, "{pad}    map:");
                for (from, to) in map {
                    let _ = writeln!(out, "{pad}      {}: {to}", scalar(from));
                }
            }
            let _ = writeln!(out, "{pad}    fallback: OTHER");
        }
        FieldValue::Const(value) => {
            let _ = writeln!(out, "{pad}{name}: {{ const: {} }}{note}", scalar(value));
        }
        FieldValue::Now => {
            let _ = writeln!(out, "{pad}{name}: {{ now: true }}{note}");
        }
        FieldValue::Template(template) => {
            let _ = writeln!(
                out,
                "{pad}{name}: {{ template: {} }}{note}",
                serde_json::to_string(template).unwrap_or_default()
            );
        }
        FieldValue::Each { path, fields } => {
            let _ = writeln!(
                out,
                "{pad}{name}:{note}\n{pad}  each: {}\n{pad}  fields:",
                scalar(path)
            );
            for inner in fields {
                field_entry(out, inner, indent + 4);
            }
        }
    }
}

fn initiation(out: &mut String, op: &OpGuess) {
    match &op.idempotency {
        Some(Idempotency::Header {
            name,
            confidence,
            evidence,
        }) => {
            let _ = writeln!(
                out,
                "    idempotency_key: {{ header: {} }}{}",
                scalar(name),
                comment(*confidence, evidence)
            );
        }
        Some(Idempotency::Body {
            field,
            confidence,
            evidence,
            ..
        }) => {
            let _ = writeln!(
                out,
                "    idempotency_key: {{ body: {} }}{}",
                scalar(field),
                comment(*confidence, evidence)
            );
        }
        _ => {}
    }
    out.push_str("    body:\n");
    for entry in &op.body {
        let note = comment(entry.confidence, &entry.evidence);
        let key = scalar(&entry.key);
        let _ = match &entry.value {
            BodyValue::Field(field) => writeln!(out, "      {key}: {field}{note}"),
            BodyValue::Amount { format } => writeln!(
                out,
                "      {key}: {{ path: amount, amount: {{ currency: currency, format: {} }} }}{note}",
                format.name()
            ),
            BodyValue::Currency { lower } => writeln!(
                out,
                "      {key}: {{ path: currency, currency: {} }}{note}",
                if *lower { "lower" } else { "true" }
            ),
        };
    }
}

fn stub(out: &mut String, op: &OpGuess) {
    let blocked = if op.blocked_by.is_empty() {
        String::new()
    } else {
        format!(" (needs {})", op.blocked_by.join(", "))
    };
    let _ = writeln!(out, "  # {}: a stub, not mapped{blocked}.", op.id);
    candidates(out, op);
    for line in body_of(op).lines() {
        let _ = writeln!(out, "  # {line}");
    }
}

fn absent(out: &mut String, op: &OpGuess) {
    let _ = writeln!(
        out,
        "  # {}: not found in the document; the provider seems not to offer it.",
        op.id
    );
    candidates(out, op);
}

fn candidates(out: &mut String, op: &OpGuess) {
    if op.candidates.is_empty() {
        return;
    }
    let list: Vec<String> = op
        .candidates
        .iter()
        .map(|c| format!("{} {} ({:.2})", c.method, c.path, c.score))
        .collect();
    let _ = writeln!(out, "  #   candidates: {}", list.join(", "));
}
