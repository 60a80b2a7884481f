//! A list endpoint's records, paging, page size, time filter and order, each by explicit
//! rules with the evidence that fired. No rule fires by default: an undecided paging is a
//! low-confidence guess that keeps the operation a stub.

use super::lexicon::*;
use super::{ListGuess, OpGuess, Order, PagingGuess, PagingKind, SinceGuess, TimeFormat};
use crate::draft::model::{Endpoint, Location, Schema, Type};

/// Arrays that are never the records.
const NOT_RECORDS: &[&str] = &[
    "links", "_links", "errors", "warnings", "messages", "expand", "href",
];

/// Where the records are: (path, record schema, confidence).
pub fn records<'a>(response: Schema<'a>) -> Option<(String, Schema<'a>, f64)> {
    if response.ty() == Type::Array {
        let items = response.items()?;
        return is_object(items).then(|| (".".to_owned(), items, 0.95));
    }
    let mut found: Vec<(String, Schema<'a>, usize)> = Vec::new();
    let mut queue = vec![(String::new(), response, 0usize)];
    while let Some((prefix, schema, depth)) = queue.pop() {
        for (name, property) in schema.properties() {
            if NOT_RECORDS.contains(&name) {
                continue;
            }
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            match property.ty() {
                Type::Array => {
                    if let Some(items) = property.items().filter(|i| is_object(*i)) {
                        found.push((path, items, depth));
                    }
                }
                Type::Object if depth < 1 => queue.push((path, property, depth + 1)),
                _ => {}
            }
        }
    }
    found.sort_by_key(|(path, _, depth)| (*depth, !is_one_of(path, RECORD_ARRAYS), path.clone()));
    let (path, items, depth) = found.first()?.clone();
    let confidence = match (found.len(), is_one_of(&path, RECORD_ARRAYS)) {
        (1, _) if depth == 0 => 0.95,
        (_, true) => 0.9,
        (1, false) => 0.85,
        _ => 0.6,
    };
    Some((path, items, confidence))
}

fn is_object(schema: Schema) -> bool {
    matches!(schema.ty(), Type::Object) || !schema.properties().is_empty()
}

pub fn detect(endpoint: &Endpoint, guess: &mut OpGuess) {
    if guess.id == "getAccountBalances" {
        return;
    }
    let Some(response) = endpoint.response else {
        guess.block(
            "RESPONSE",
            "the document gives no success response schema: say where the records are",
        );
        return;
    };
    let Some((records_path, record, records_confidence)) = records(response) else {
        guess.block("RECORDS", "the success response has no list of records");
        return;
    };
    guess
        .evidence
        .insert("records".into(), format!("{}/responses", endpoint.pointer));
    if endpoint.method == "POST" {
        let code = if endpoint.body.as_ref().is_some_and(|b| b.is_form()) {
            "FORM"
        } else {
            "BODY"
        };
        guess.block(code, format!("{} {} reads the list with a request body, which the mapping's list requests cannot send", endpoint.method, endpoint.path));
    }
    let fields = body_fields(response, &records_path);
    let paging = paging(endpoint, record, &fields);
    if paging.confidence < 0.5 {
        guess.todo.push(format!(
            "paging: {}; confirm how the provider pages",
            paging.evidence
        ));
    }
    if matches!(
        paging.kind,
        PagingKind::HeaderCursor | PagingKind::BodyCursorPost
    ) {
        guess.block(
            "PAGING",
            format!(
                "paging by {}: the mapping language has no such paging",
                paging.kind.name()
            ),
        );
    }
    guess
        .evidence
        .insert("paging".into(), paging.evidence.clone());
    let (since, since_candidate) = since(endpoint, guess.id);
    if let Some(s) = &since {
        guess.evidence.insert("since".into(), s.evidence.clone());
    }
    if let Some((_, why)) = &since_candidate {
        guess.todo.push(why.clone());
    }
    time_window(endpoint, guess);
    required_params(endpoint, guess, &paging, since.as_ref());
    let (order, order_confidence, sort_query) = order(endpoint);
    guess.query.extend(sort_query);
    guess.list = Some(ListGuess {
        records: records_path,
        records_confidence,
        page_size: page_size(endpoint),
        paging,
        since,
        since_candidate,
        order,
        order_confidence,
    });
}

/// Body fields outside the records, to depth 3: paging tokens, totals, links.
fn body_fields<'a>(response: Schema<'a>, records: &str) -> Vec<(String, Schema<'a>)> {
    let mut found = Vec::new();
    let mut queue = vec![(String::new(), response, 0usize)];
    while let Some((prefix, schema, depth)) = queue.pop() {
        for (name, property) in schema.properties() {
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            if path == records {
                continue;
            }
            if property.ty() == Type::Object && depth < 2 {
                queue.push((path.clone(), property, depth + 1));
            }
            found.push((path, property));
        }
    }
    found.sort_by(|a, b| {
        a.0.split('.')
            .count()
            .cmp(&b.0.split('.').count())
            .then_with(|| a.0.cmp(&b.0))
    });
    found
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn find_field<'a>(fields: &[(String, Schema<'a>)], names: &[&str], ty: &[Type]) -> Option<String> {
    fields
        .iter()
        .find(|(path, schema)| {
            is_one_of(last_segment(path), names)
                && (ty.is_empty() || ty.contains(&schema.ty()) || schema.ty() == Type::Unknown)
        })
        .map(|(path, _)| path.clone())
}

/// Query parameters, and for list reads through POST, the body's fields.
fn params<'a>(endpoint: &Endpoint<'a>) -> Vec<(String, Schema<'a>, String)> {
    let mut found: Vec<(String, Schema<'a>, String)> = endpoint
        .params
        .iter()
        .filter(|p| p.location == Location::Query)
        .map(|p| (p.name.clone(), p.schema, p.text.clone()))
        .collect();
    if endpoint.method == "POST"
        && let Some(body) = &endpoint.body
    {
        found.extend(
            body.properties()
                .into_iter()
                .map(|(n, s, _)| (n, s, s.text())),
        );
    }
    found
}

fn paging(endpoint: &Endpoint, record: Schema, fields: &[(String, Schema)]) -> PagingGuess {
    let params = params(endpoint);
    let param = |names: &[&str], types: &[Type]| {
        params
            .iter()
            .find(|(n, s, _)| {
                is_one_of(n, names)
                    && (types.is_empty() || types.contains(&s.ty()) || s.ty() == Type::Unknown)
            })
            .cloned()
    };
    let has_more = find_field(fields, HAS_MORE_FIELDS, &[Type::Boolean]);
    let none = PagingGuess {
        kind: PagingKind::None,
        param: None,
        from: None,
        has_more: None,
        first: None,
        path: None,
        confidence: 0.0,
        evidence: String::new(),
    };
    let post = endpoint.method == "POST";
    let cursor_names: Vec<&str> = BODY_CURSOR_PARAMS
        .iter()
        .chain(RECORD_CURSOR_PARAMS)
        .copied()
        .collect();
    let mut unresolved_cursor = None;
    if let Some((name, _, text)) = param(&cursor_names, &[Type::String, Type::Integer]) {
        if let Some(from) = find_field(fields, BODY_CURSOR_FIELDS, &[Type::String, Type::Integer]) {
            let kind = if post {
                PagingKind::BodyCursorPost
            } else {
                PagingKind::CursorBody
            };
            return PagingGuess {
                kind,
                param: Some(name.clone()),
                from: Some(from.clone()),
                has_more,
                confidence: 0.85,
                evidence: format!("the `{name}` parameter takes the body's `{from}`"),
                ..none
            };
        }
        let id = ["id", "token", "Id", "uuid"]
            .iter()
            .find(|f| record.property(f).is_some());
        if let (true, Some(id)) = (is_one_of(&name, RECORD_CURSOR_PARAMS), id) {
            let confidence = if has_more.is_some()
                || contains_any(&text, &["id", "object", "cursor", "token"])
            {
                0.9
            } else {
                0.75
            };
            return PagingGuess {
                kind: PagingKind::CursorRecord,
                param: Some(name.clone()),
                from: Some((*id).to_owned()),
                has_more: has_more.clone(),
                confidence,
                evidence: format!("the `{name}` parameter takes the last record's `{id}`"),
                ..none
            };
        }
        unresolved_cursor = Some(name);
    }
    let link = [
        "_links.next.href",
        "links.next.href",
        "links.next",
        "_links.next",
        "paging.next",
        "pagination.next",
    ];
    let next_url = fields
        .iter()
        .find(|(path, s)| link.contains(&path.as_str()) && s.ty() != Type::Object)
        .map(|(p, _)| p.clone())
        .or_else(|| find_field(fields, NEXT_URL_FIELDS, &[Type::String]));
    if let Some(path) = next_url {
        return PagingGuess {
            kind: PagingKind::NextUrl,
            path: Some(path.clone()),
            confidence: 0.8,
            evidence: format!("the body's `{path}` links the next page"),
            ..none
        };
    }
    if endpoint
        .response_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("link"))
    {
        return PagingGuess {
            kind: PagingKind::LinkHeader,
            confidence: 0.85,
            evidence: "the response declares a `Link` header".into(),
            ..none
        };
    }
    if let Some((name, schema, text)) =
        param(PAGE_PARAMS, &[Type::Integer, Type::Number, Type::String])
    {
        let (first, confidence, why) = first_page(schema, &text);
        let total = find_field(fields, TOTAL_PAGES_FIELDS, &[Type::Integer, Type::Number]);
        return PagingGuess {
            kind: PagingKind::PageNumber,
            param: Some(name.clone()),
            first: Some(first),
            path: total,
            confidence,
            evidence: format!("the `{name}` parameter numbers pages ({why})"),
            ..none
        };
    }
    if let Some((name, _, _)) = param(OFFSET_PARAMS, &[Type::Integer, Type::Number]) {
        let total = find_field(fields, TOTAL_FIELDS, &[Type::Integer, Type::Number]);
        return PagingGuess {
            kind: PagingKind::Offset,
            param: Some(name.clone()),
            path: total,
            confidence: 0.85,
            evidence: format!("the `{name}` parameter skips records"),
            ..none
        };
    }
    if let Some(header) = endpoint
        .response_headers
        .iter()
        .find(|h| contains_any(&h.to_lowercase(), &["cursor", "next"]))
    {
        return PagingGuess {
            kind: PagingKind::HeaderCursor,
            param: None,
            from: Some(header.clone()),
            confidence: 0.6,
            evidence: format!("the response's `{header}` header"),
            ..none
        };
    }
    if let Some(name) = unresolved_cursor {
        return PagingGuess {
            kind: PagingKind::CursorBody,
            param: Some(name.clone()),
            confidence: 0.3,
            evidence: format!(
                "the `{name}` parameter is a cursor, but neither a body field nor a record field is named as its source"
            ),
            ..none
        };
    }
    let hints_of_more = has_more.is_some() || find_field(fields, TOTAL_FIELDS, &[]).is_some();
    PagingGuess {
        kind: PagingKind::None,
        confidence: if hints_of_more { 0.35 } else { 0.65 },
        evidence: if hints_of_more {
            "no paging parameter, yet the body tells of more records".into()
        } else {
            "no paging parameter".into()
        },
        ..none
    }
}

/// Whether pages count from 0 or 1, from the schema, its default, or its description.
fn first_page(schema: Schema, text: &str) -> (u64, f64, &'static str) {
    let text = format!("{text} {}", schema.text());
    match schema.minimum() {
        Some(0.0) => return (0, 0.9, "its minimum is 0"),
        Some(1.0) => return (1, 0.9, "its minimum is 1"),
        _ => {}
    }
    match schema
        .default_value()
        .and_then(|d| d.as_u64().or_else(|| d.as_str()?.parse().ok()))
    {
        Some(0) => return (0, 0.85, "its default is 0"),
        Some(1) => return (1, 0.85, "its default is 1"),
        _ => {}
    }
    if contains_any(
        &text,
        &[
            "zero-based",
            "0-based",
            "zero based",
            "starts at 0",
            "starting at 0",
            "starting from 0",
            "start from 0",
            "first page is 0",
            "begins at 0",
            "index of the page, starting",
        ],
    ) {
        return (0, 0.8, "its description counts from 0");
    }
    if contains_any(
        &text,
        &[
            "1-based",
            "one-based",
            "starts at 1",
            "starting at 1",
            "starting from 1",
            "first page is 1",
            "begins at 1",
            "defaults to 1",
            "default is 1",
            "default: 1",
        ],
    ) {
        return (1, 0.8, "its description counts from 1");
    }
    (
        1,
        0.45,
        "the first page's number is not documented; 1 is assumed",
    )
}

fn page_size(endpoint: &Endpoint) -> Option<(String, u32)> {
    let params = params(endpoint);
    let (name, schema, _) = params.iter().find(|(n, s, _)| {
        is_one_of(n, PAGE_SIZE_PARAMS)
            && matches!(
                s.ty(),
                Type::Integer | Type::Number | Type::String | Type::Unknown
            )
    })?;
    let maximum = schema
        .maximum()
        .filter(|m| *m >= 1.0)
        .map_or(100.0, |m| m.min(100.0));
    Some((name.clone(), maximum as u32))
}

/// The provider's filter for Formance's `createdAtFrom` (lists of accounts and
/// beneficiaries) or `updatedAtFrom` (transactions), and one seen but not safe to use.
fn since(endpoint: &Endpoint, id: &str) -> (Option<SinceGuess>, Option<(SinceGuess, String)>) {
    let mut found: Vec<(u8, SinceGuess)> = Vec::new();
    for (name, schema, text) in params(endpoint) {
        for (param, sub) in expand(&name, schema) {
            if let Some(candidate) = classify(&param, sub, &text) {
                found.push(candidate);
            }
        }
    }
    let transactions = id == "getTransactions";
    // Updated-time filters are safe for both (a creation is a change); created-time filters
    // would miss transactions that changed later.
    let rank = |kind: u8| match (transactions, kind) {
        (true, UPDATED) => 0,
        (true, _) => 9,
        (false, CREATED) => 0,
        (false, GENERIC) => 1,
        (false, _) => 2,
    };
    found.sort_by_key(|(kind, g)| {
        (
            rank(*kind),
            !g.inclusive,
            (g.confidence * -100.0) as i64,
            g.param.clone(),
        )
    });
    match found.into_iter().next() {
        Some((kind, guess)) if transactions && kind != UPDATED => {
            let why = format!(
                "since: `{}` filters by creation time, and Formance asks for transactions by update time; left out so that changed transactions are not missed (the connector filters itself)",
                guess.param
            );
            (None, Some((guess, why)))
        }
        Some((_, guess)) => (Some(guess), None),
        None => (None, None),
    }
}

const UPDATED: u8 = 0;
const CREATED: u8 = 1;
const GENERIC: u8 = 2;

/// A deepObject parameter (`created` with `gte`, `gt`, ...) as its bracketed names.
fn expand<'a>(name: &str, schema: Schema<'a>) -> Vec<(String, Schema<'a>)> {
    let props = schema.properties();
    if props.is_empty() {
        return vec![(name.to_owned(), schema)];
    }
    props
        .into_iter()
        .map(|(sub, s)| (format!("{name}[{sub}]"), s))
        .collect()
}

fn classify(param: &str, schema: Schema, text: &str) -> Option<(u8, SinceGuess)> {
    let squashed = squash(param);
    let upper = ["to", "until", "before", "end", "lte", "lt", "max", "till"];
    if upper.iter().any(|u| squashed.ends_with(u))
        || contains_any(
            &squashed,
            &[
                "settle",
                "complet",
                "expir",
                "due",
                "birth",
                "valuedate",
                "cutoff",
                "effective",
                "paid",
                "arrival",
            ],
        )
    {
        return None;
    }
    let lower_words = [
        "gte",
        "from",
        "since",
        "after",
        "start",
        "begin",
        "min",
        "onorafter",
        "gt",
        "newerthan",
    ];
    let has_lower = lower_words.iter().any(|w| squashed.contains(w));
    let kind = if contains_any(&squashed, &["updat", "modif", "chang", "lastupdate"]) {
        UPDATED
    } else if contains_any(&squashed, &["creat"]) {
        CREATED
    } else {
        GENERIC
    };
    let schema_text = format!("{text} {}", schema.text());
    let (format, format_confidence) = match (schema.ty(), schema.format()) {
        (Type::Integer | Type::Number, _)
            if contains_any(&schema_text, &["millisecond"]) || squashed.ends_with("ms") =>
        {
            (TimeFormat::UnixMillis, 0.85)
        }
        (Type::Integer | Type::Number, _) => (TimeFormat::UnixSeconds, 0.85),
        (_, Some("date-time")) => (TimeFormat::Rfc3339, 0.9),
        (_, Some("date")) => (TimeFormat::Date, 0.9),
        (Type::String, _)
            if contains_any(
                &schema_text,
                &[
                    "yyyy-mm-ddt",
                    "rfc 3339",
                    "rfc3339",
                    "iso 8601",
                    "iso-8601",
                    "iso8601",
                    "date-time",
                    "datetime",
                    "timestamp",
                ],
            ) =>
        {
            (TimeFormat::Rfc3339, 0.7)
        }
        (Type::String, _) if contains_any(&schema_text, &["yyyy-mm-dd", "date"]) => {
            (TimeFormat::Date, 0.6)
        }
        (Type::String | Type::Unknown, _) if contains_any(&squashed, &["date", "time", "at"]) => {
            (TimeFormat::Rfc3339, 0.5)
        }
        _ => return None,
    };
    let time_like = contains_any(
        &squashed,
        &[
            "date", "time", "created", "updated", "modified", "changed", "since",
        ],
    ) || matches!(schema.format(), Some("date-time" | "date"))
        || (kind != GENERIC && has_lower);
    if !time_like || !has_lower {
        return None;
    }
    let exclusive = (squashed.ends_with("gt")
        || squashed.ends_with("after")
        || contains_any(&schema_text, &["strictly", "exclusive"]))
        && !contains_any(&schema_text, &["inclusive", "or equal"]);
    let confidence = match kind {
        GENERIC => 0.6,
        _ => 0.85,
    } * format_confidence
        / 0.9;
    Some((
        kind,
        SinceGuess {
            param: param.to_owned(),
            format,
            inclusive: !exclusive,
            confidence: (confidence * 100.0_f64).round() / 100.0,
            evidence: format!("the `{param}` parameter ({})", format.name()),
        },
    ))
}

/// A required upper bound on time (`end_date`, `createdUntil`) is a window the mapping
/// cannot send yet.
fn time_window(endpoint: &Endpoint, guess: &mut OpGuess) {
    for p in endpoint
        .params
        .iter()
        .filter(|p| p.required && p.location == Location::Query)
    {
        let squashed = squash(&p.name);
        let time = matches!(p.schema.format(), Some("date-time" | "date"))
            || contains_any(&squashed, &["date", "time", "created", "since", "until"]);
        if time {
            guess.block(
                "TIME",
                format!(
                    "the provider requires `{}`, a time window the mapping cannot send yet",
                    p.name
                ),
            );
        }
    }
}

/// Required query parameters nothing fills: written into the file for the author.
fn required_params(
    endpoint: &Endpoint,
    guess: &mut OpGuess,
    paging: &PagingGuess,
    since: Option<&SinceGuess>,
) {
    for p in endpoint
        .params
        .iter()
        .filter(|p| p.required && p.location == Location::Query)
    {
        let filled = paging.param.as_deref() == Some(p.name.as_str())
            || since.is_some_and(|s| s.param.starts_with(&p.name))
            || guess.blocked_by.iter().any(|c| c == "TIME")
                && contains_any(
                    &squash(&p.name),
                    &["date", "time", "created", "since", "until"],
                );
        if !filled && !guess.query.iter().any(|(n, _)| *n == p.name) {
            let value = p.schema.enum_values().first().cloned().or_else(|| {
                p.schema
                    .default_value()
                    .and_then(|d| d.as_str().map(str::to_owned))
            });
            match value {
                Some(v) => guess.query.push((p.name.clone(), v)),
                None => {
                    guess.query.push((p.name.clone(), "REPLACE_ME".into()));
                    guess.todo.push(format!(
                        "the provider requires the `{}` query parameter: write its value",
                        p.name
                    ));
                }
            }
        }
    }
}

/// The provider's order by time, from a sort parameter (set to ascending when it has one) or
/// from the description.
fn order(endpoint: &Endpoint) -> (Order, f64, Vec<(String, String)>) {
    for p in endpoint
        .params
        .iter()
        .filter(|p| p.location == Location::Query)
    {
        let values = p.schema.enum_values();
        let direction = is_one_of(
            &p.name,
            &[
                "sort_order",
                "sortOrder",
                "order_asc_desc",
                "direction",
                "sort_direction",
                "sortDirection",
                "order",
            ],
        );
        if direction
            && let Some(asc) = values
                .iter()
                .find(|v| is_one_of(v, &["asc", "ascending", "oldest_first", "oldest"]))
        {
            return (Order::OldestFirst, 0.8, vec![(p.name.clone(), asc.clone())]);
        }
    }
    let text = &endpoint.text;
    if contains_any(
        text,
        &[
            "newest first",
            "reverse chronological",
            "most recent first",
            "most recently created first",
            "the most recent",
            "descending order",
            "sorted in descending",
            "newest to oldest",
        ],
    ) {
        return (Order::NewestFirst, 0.7, Vec::new());
    }
    if contains_any(
        text,
        &[
            "oldest first",
            "chronological order",
            "ascending order",
            "oldest to newest",
            "sorted in ascending",
        ],
    ) {
        return (Order::OldestFirst, 0.6, Vec::new());
    }
    (Order::Unordered, 0.5, Vec::new())
}
