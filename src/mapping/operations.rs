//! The `operations:` section: per protocol operation, the upstream request, where the records
//! are, how to page, order and filter them, and how each protocol field is computed.

use std::collections::BTreeMap;

use super::reader::{Entries, Reader, json};
use super::{
    AmountFormat, Conversion, CursorSource, Expr, FieldMapping, ListMapping, OperationMapping,
    Order, PageSize, Paging, Path, RequestTemplate, Sign, Since, Source, Step, Template,
    TemplatePart, TimeFormat,
};
use crate::yaml::{Node, Value};

const OPERATION_KEYS: &[&str] = &[
    "request",
    "records",
    "record",
    "paging",
    "page_size",
    "max_pages",
    "order",
    "since",
    "fields",
];
const REQUEST_KEYS: &[&str] = &["method", "path", "query", "headers"];
const PAGING_KINDS: &[&str] = &[
    "none",
    "cursor",
    "next_url",
    "link_header",
    "page_number",
    "offset",
];
const CURSOR_KEYS: &[&str] = &["param", "from_record", "from_body", "has_more"];
const PAGE_NUMBER_KEYS: &[&str] = &["param", "first", "total_pages"];
const OFFSET_KEYS: &[&str] = &["param", "total"];
const PAGE_SIZE_KEYS: &[&str] = &["param", "value"];
const SINCE_KEYS: &[&str] = &["param", "format", "inclusive"];
const ORDERS: &[&str] = &["oldest_first", "newest_first", "unordered"];
const SOURCES: &[&str] = &[
    "path", "const", "template", "first_of", "param", "now", "each", "metadata", "rust",
];
const MODIFIERS: &[&str] = &["default", "time", "amount", "currency", "enum", "fields"];
const AMOUNT_KEYS: &[&str] = &["currency", "format", "sign"];
const ENUM_KEYS: &[&str] = &["map", "fallback"];
const METADATA_KEYS: &[&str] = &["fields", "flatten"];
const TIME_FORMATS: &[&str] = &["rfc3339", "unix_seconds", "unix_millis"];
const PATTERN_KEYS: &[&str] = &["pattern", "utc_offset"];
const DEFAULT_MAX_PAGES: u32 = 10_000;

pub(super) fn operations(reader: &mut Reader, node: &Node) -> BTreeMap<String, OperationMapping> {
    let Some(pairs) = reader.pairs(node, "`operations`") else {
        return BTreeMap::new();
    };
    pairs
        .into_iter()
        .filter_map(|(key, value)| {
            let id = key.as_str()?.to_owned();
            let mapping = operation(reader, value, key.span.clone(), &id)?;
            Some((id, mapping))
        })
        .collect()
}

fn operation(
    reader: &mut Reader,
    node: &Node,
    span: super::Span,
    id: &str,
) -> Option<OperationMapping> {
    let what = format!("operation `{id}`");
    let entries = reader.entries(node, &what, OPERATION_KEYS)?;
    let request = reader.required(
        &entries,
        "request",
        "the provider request: `request: { path: /v1/... }`",
    );
    let request = request.and_then(|n| request_template(reader, n));
    let list = list(reader, &entries);
    let record = match entries.get("record") {
        Some(n) => path_of(reader, n, "`record`")?,
        None => Path {
            text: ".".into(),
            steps: Vec::new(),
        },
    };
    let fields = match entries.get("fields") {
        Some(n) => fields(reader, n)?,
        None => Vec::new(),
    };
    Some(OperationMapping {
        span,
        request: request?,
        list: list?,
        record,
        fields,
    })
}

fn request_template(reader: &mut Reader, node: &Node) -> Option<RequestTemplate> {
    let entries = reader.entries(node, "`request`", REQUEST_KEYS)?;
    let method = match entries.get("method") {
        Some(n) => {
            let method = reader.string(n, "`request.method`")?.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                reader.fail(
                    n,
                    "`request.method` must be GET, POST, PUT, PATCH or DELETE",
                );
                return None;
            }
            method
        }
        None => "GET".to_owned(),
    };
    let path_node = reader.required(&entries, "path", "the request path, e.g. `/v1/accounts`")?;
    let path = request_text(reader, path_node, "`request.path`")?;
    if !path.text.starts_with('/') {
        reader.fail(
            path_node,
            "`request.path` must start with `/` (it is appended to the base URL)",
        );
    }
    let query = entries
        .get("query")
        .map(|n| template_pairs(reader, n, "`request.query`"))
        .unwrap_or_default();
    let headers = entries
        .get("headers")
        .map(|n| template_pairs(reader, n, "`request.headers`"))
        .unwrap_or_default();
    Some(RequestTemplate {
        method,
        path,
        query,
        headers,
    })
}

fn template_pairs(reader: &mut Reader, node: &Node, what: &str) -> Vec<(String, Template)> {
    let Some(pairs) = reader.pairs(node, what) else {
        return Vec::new();
    };
    pairs
        .into_iter()
        .filter_map(|(key, value)| {
            Some((key.as_str()?.to_owned(), request_text(reader, value, what)?))
        })
        .collect()
}

/// Request text: `{name}` placeholders are the protocol request's parameters.
fn request_text(reader: &mut Reader, node: &Node, what: &str) -> Option<Template> {
    let text = reader.string(node, what)?;
    let template = parse_template(&text, true)
        .map_err(|e| reader.fail(node, format!("{what}: {e}")))
        .ok()?;
    Some(template)
}

// ---- lists ------------------------------------------------------------------------------------

fn list(reader: &mut Reader, entries: &Entries) -> Option<Option<ListMapping>> {
    let list_keys = [
        "records",
        "paging",
        "page_size",
        "max_pages",
        "order",
        "since",
    ];
    if !list_keys.iter().any(|k| entries.has(k)) {
        return Some(None);
    }
    let records = reader.required(
        entries,
        "records",
        "where the list is in the response, e.g. `data` (`.` for the body)",
    );
    let records = records.and_then(|n| path_of(reader, n, "`records`"));
    let paging = match entries.get("paging") {
        Some(n) => paging(reader, n),
        None => Some(Paging::None),
    };
    let page_size = match entries.get("page_size") {
        Some(n) => page_size(reader, n).map(Some),
        None => Some(None),
    };
    let max_pages = match entries.get("max_pages") {
        Some(n) => reader
            .integer(n, "`max_pages`", 1..=1_000_000)
            .map(|v| v as u32),
        None => Some(DEFAULT_MAX_PAGES),
    };
    let order = match entries.get("order") {
        Some(n) => order(reader, n),
        None => {
            let diagnostic = reader
                .at(
                    entries.key_span("records"),
                    "missing key `order`: the provider's order of records by time",
                )
                .with_help("write `order: oldest_first`, `newest_first` or `unordered`");
            reader.push(diagnostic);
            None
        }
    };
    let since = match entries.get("since") {
        Some(n) => since(reader, n).map(Some),
        None => Some(None),
    };
    Some(Some(ListMapping {
        span: entries.key_span("records"),
        records: records?,
        paging: paging?,
        page_size: page_size?,
        max_pages: max_pages?,
        order: order?,
        since: since?,
    }))
}

fn paging(reader: &mut Reader, node: &Node) -> Option<Paging> {
    if let Some(kind) = node.as_str() {
        return match kind {
            "none" => Some(Paging::None),
            "link_header" => Some(Paging::LinkHeader),
            _ => {
                let mut diagnostic =
                    reader.at(node.span.clone(), format!("unknown paging `{kind}`"));
                diagnostic =
                    diagnostic.with_label(format!("expected one of: {}", PAGING_KINDS.join(", ")));
                if let Some(help) =
                    crate::diagnostics::did_you_mean(kind, PAGING_KINDS.iter().copied())
                {
                    diagnostic = diagnostic.with_help(help);
                }
                reader.push(diagnostic);
                None
            }
        };
    }
    let entries = reader.entries(node, "`paging`", PAGING_KINDS)?;
    let kinds: Vec<&str> = entries.keys().collect();
    let [kind] = kinds.as_slice() else {
        reader.fail(
            node,
            format!("`paging` takes exactly one of: {}", PAGING_KINDS.join(", ")),
        );
        return None;
    };
    let value = entries.get(kind)?;
    match *kind {
        "none" => Some(Paging::None),
        "link_header" => Some(Paging::LinkHeader),
        "next_url" => Some(Paging::NextUrl {
            path: path_of(reader, value, "`paging.next_url`")?,
        }),
        "cursor" => {
            let fields = reader.entries(value, "`paging.cursor`", CURSOR_KEYS)?;
            let param = reader.required(
                &fields,
                "param",
                "the query parameter that takes the cursor",
            );
            let param = param.and_then(|n| reader.string(n, "`cursor.param`"));
            let next = match (fields.get("from_record"), fields.get("from_body")) {
                (Some(n), None) => {
                    CursorSource::LastRecord(path_of(reader, n, "`cursor.from_record`")?)
                }
                (None, Some(n)) => CursorSource::Body(path_of(reader, n, "`cursor.from_body`")?),
                _ => {
                    let diagnostic = reader
                        .at(value.span.clone(), "`paging.cursor` needs exactly one of `from_record` or `from_body`")
                        .with_help("`from_record: id` takes the last record's `id`; `from_body: meta.next` a field of the body");
                    reader.push(diagnostic);
                    return None;
                }
            };
            let has_more = match fields.get("has_more") {
                Some(n) => Some(path_of(reader, n, "`cursor.has_more`")?),
                None => None,
            };
            Some(Paging::Cursor {
                param: param?,
                next,
                has_more,
            })
        }
        "page_number" => {
            let fields = reader.entries(value, "`paging.page_number`", PAGE_NUMBER_KEYS)?;
            let param = reader.required(&fields, "param", "the page number's query parameter");
            let param = param.and_then(|n| reader.string(n, "`page_number.param`"));
            let first = match fields.get("first") {
                Some(n) => reader.integer(n, "`page_number.first`", 0..=1)?,
                None => 1,
            };
            let total_pages = match fields.get("total_pages") {
                Some(n) => Some(path_of(reader, n, "`page_number.total_pages`")?),
                None => None,
            };
            Some(Paging::PageNumber {
                param: param?,
                first,
                total_pages,
            })
        }
        _ => {
            let fields = reader.entries(value, "`paging.offset`", OFFSET_KEYS)?;
            let param = reader.required(&fields, "param", "the offset's query parameter");
            let param = param.and_then(|n| reader.string(n, "`offset.param`"));
            let total = match fields.get("total") {
                Some(n) => Some(path_of(reader, n, "`offset.total`")?),
                None => None,
            };
            Some(Paging::Offset {
                param: param?,
                total,
            })
        }
    }
}

fn page_size(reader: &mut Reader, node: &Node) -> Option<PageSize> {
    let entries = reader.entries(node, "`page_size`", PAGE_SIZE_KEYS)?;
    let param = reader.required(&entries, "param", "the page size's query parameter");
    let param = param.and_then(|n| reader.string(n, "`page_size.param`"));
    let value = reader.required(&entries, "value", "how many records to ask for per page");
    let value = value.and_then(|n| reader.integer(n, "`page_size.value`", 1..=10_000));
    Some(PageSize {
        param: param?,
        value: value? as u32,
    })
}

fn order(reader: &mut Reader, node: &Node) -> Option<Order> {
    match node.as_str() {
        Some("oldest_first") => Some(Order::OldestFirst),
        Some("newest_first") => Some(Order::NewestFirst),
        Some("unordered") => Some(Order::Unordered),
        other => {
            let mut diagnostic = reader
                .at(
                    node.span.clone(),
                    format!("unknown order `{}`", other.unwrap_or_default()),
                )
                .with_label(format!("expected one of: {}", ORDERS.join(", ")));
            if let Some(help) =
                other.and_then(|o| crate::diagnostics::did_you_mean(o, ORDERS.iter().copied()))
            {
                diagnostic = diagnostic.with_help(help);
            }
            reader.push(diagnostic);
            None
        }
    }
}

fn since(reader: &mut Reader, node: &Node) -> Option<Since> {
    let entries = reader.entries(node, "`since`", SINCE_KEYS)?;
    let param = reader.required(
        &entries,
        "param",
        "the provider's query parameter for the time filter",
    );
    let param = param.and_then(|n| reader.string(n, "`since.param`"));
    let format = reader.required(
        &entries,
        "format",
        "how the provider writes the time: rfc3339, unix_seconds, ...",
    );
    let format = format.and_then(|n| time_format(reader, n));
    let inclusive = match entries.get("inclusive") {
        Some(n) => reader.boolean(n, "`since.inclusive`")?,
        None => true,
    };
    Some(Since {
        param: param?,
        format: format?,
        inclusive,
    })
}

fn time_format(reader: &mut Reader, node: &Node) -> Option<TimeFormat> {
    if let Some(name) = node.as_str() {
        return match name {
            "rfc3339" => Some(TimeFormat::Rfc3339),
            "unix_seconds" => Some(TimeFormat::UnixSeconds),
            "unix_millis" => Some(TimeFormat::UnixMillis),
            _ => {
                let mut diagnostic = reader
                    .at(node.span.clone(), format!("unknown time format `{name}`"))
                    .with_label("expected rfc3339, unix_seconds, unix_millis or { pattern: ..., utc_offset: ... }");
                if let Some(help) =
                    crate::diagnostics::did_you_mean(name, TIME_FORMATS.iter().copied())
                {
                    diagnostic = diagnostic.with_help(help);
                }
                reader.push(diagnostic);
                None
            }
        };
    }
    let entries = reader.entries(node, "a time format", PATTERN_KEYS)?;
    let pattern = reader.required(
        &entries,
        "pattern",
        "a chrono pattern such as `%d/%m/%Y %H:%M`",
    )?;
    let pattern_text = reader.string(pattern, "`pattern`")?;
    let has_zone =
        pattern_text.contains("%z") || pattern_text.contains("%:z") || pattern_text.contains("%#z");
    let utc_offset_seconds = match entries.get("utc_offset") {
        Some(n) => Some(utc_offset(reader, n)?),
        None if has_zone => None,
        None => {
            let diagnostic = reader
                .at(
                    pattern.span.clone(),
                    "the pattern has no zone (`%z`), so the zone must be given",
                )
                .with_help("add `utc_offset: \"+00:00\"` (or the provider's offset)");
            reader.push(diagnostic);
            return None;
        }
    };
    Some(TimeFormat::Pattern {
        pattern: pattern_text,
        utc_offset_seconds,
    })
}

fn utc_offset(reader: &mut Reader, node: &Node) -> Option<i32> {
    let text = node.as_str().unwrap_or_default();
    let parsed = (|| {
        let (sign, rest) = match text.as_bytes().first()? {
            b'+' => (1, &text[1..]),
            b'-' => (-1, &text[1..]),
            _ => return None,
        };
        let (hours, minutes) = rest.split_once(':')?;
        let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
        (hours <= 14 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
    })();
    if parsed.is_none() {
        reader.fail(node, "`utc_offset` must look like `+02:00` or `-05:30`");
    }
    parsed
}

// ---- fields -----------------------------------------------------------------------------------

fn fields(reader: &mut Reader, node: &Node) -> Option<Vec<FieldMapping>> {
    let pairs = reader.pairs(node, "`fields`")?;
    Some(
        pairs
            .into_iter()
            .filter_map(|(key, value)| {
                let field = key.as_str()?.to_owned();
                Some(FieldMapping {
                    field,
                    span: key.span.clone(),
                    value: expr(reader, value)?,
                })
            })
            .collect(),
    )
}

fn expr(reader: &mut Reader, node: &Node) -> Option<Expr> {
    if let Value::Scalar { .. } = &node.value {
        let path = path_of(reader, node, "a field path")?;
        return Some(Expr {
            span: node.span.clone(),
            source: Source::Path(path),
            default: None,
            conversion: None,
        });
    }
    let allowed: Vec<&str> = SOURCES.iter().chain(MODIFIERS).copied().collect();
    let entries = reader.entries(node, "a field mapping", &allowed)?;
    let sources: Vec<&str> = entries.keys().filter(|k| SOURCES.contains(k)).collect();
    let [kind] = sources.as_slice() else {
        let diagnostic = reader
            .at(
                node.span.clone(),
                format!(
                    "a field mapping takes exactly one source, found {}",
                    sources.len()
                ),
            )
            .with_help(format!("sources: {}", SOURCES.join(", ")));
        reader.push(diagnostic);
        return None;
    };
    let value = entries.get(kind)?;
    let source = match *kind {
        "path" => Source::Path(path_of(reader, value, "`path`")?),
        "const" => Source::Const(json(value)),
        "template" => {
            let text = reader.string(value, "`template`")?;
            Source::Template(
                parse_template(&text, false)
                    .map_err(|e| reader.fail(value, format!("`template`: {e}")))
                    .ok()?,
            )
        }
        "first_of" => {
            let items = reader.list(value, "`first_of`")?;
            let exprs: Vec<Expr> = items.iter().filter_map(|item| expr(reader, item)).collect();
            if exprs.len() != items.len() {
                return None;
            }
            Source::FirstOf(exprs)
        }
        "param" => Source::Param(reader.string(value, "`param`")?),
        "now" => {
            reader.boolean(value, "`now`").filter(|b| *b)?;
            Source::Now
        }
        "each" => {
            let path = path_of(reader, value, "`each`")?;
            let Some(fields_node) = entries.get("fields") else {
                reader.fail(node, "`each` needs `fields`: how every element is mapped");
                return None;
            };
            Source::Each {
                path,
                fields: fields(reader, fields_node)?,
            }
        }
        "metadata" => metadata(reader, value)?,
        _ => {
            let function = reader.string(value, "`rust`")?;
            let valid = !function.is_empty()
                && function.split("::").all(|part| {
                    part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !valid {
                reader.fail(
                    value,
                    "`rust` must name a function, e.g. `crate::handlers::transaction_amount`",
                );
                return None;
            }
            Source::Rust(function)
        }
    };
    if entries.has("fields") && *kind != "each" {
        reader.fail(node, "`fields` goes with `each`");
    }
    let default = entries.get("default").map(json);
    let conversion = conversion(reader, &entries)?;
    Some(Expr {
        span: node.span.clone(),
        source,
        default,
        conversion,
    })
}

fn conversion(reader: &mut Reader, entries: &Entries) -> Option<Option<Conversion>> {
    let present: Vec<&str> = ["time", "amount", "currency", "enum"]
        .into_iter()
        .filter(|k| entries.has(k))
        .collect();
    let kind = match present.as_slice() {
        [] => return Some(None),
        [kind] => *kind,
        _ => {
            reader.fail(
                entries.node,
                format!(
                    "a field takes one conversion at most, found {}",
                    present.join(", ")
                ),
            );
            return None;
        }
    };
    let value = entries.get(kind)?;
    let conversion = match kind {
        "time" => Conversion::Time(time_format(reader, value)?),
        "currency" => {
            reader.boolean(value, "`currency`").filter(|b| *b)?;
            Conversion::Currency
        }
        "amount" => {
            let fields = reader.entries(value, "`amount`", AMOUNT_KEYS)?;
            let currency = reader.required(
                &fields,
                "currency",
                "where the amount's currency is, e.g. `currency: currency`",
            );
            let currency = currency.and_then(|n| expr(reader, n));
            let format = match fields.get("format").map(|n| (n, n.as_str())) {
                None | Some((_, Some("decimal"))) => Some(AmountFormat::Decimal),
                Some((_, Some("minor_units"))) => Some(AmountFormat::MinorUnits),
                Some((n, _)) => {
                    reader.fail(n, "`amount.format` must be `decimal` or `minor_units`");
                    None
                }
            };
            let sign = match fields.get("sign").map(|n| (n, n.as_str())) {
                None | Some((_, Some("keep"))) => Some(Sign::Keep),
                Some((_, Some("absolute"))) => Some(Sign::Absolute),
                Some((_, Some("negate"))) => Some(Sign::Negate),
                Some((n, _)) => {
                    reader.fail(n, "`amount.sign` must be `keep`, `absolute` or `negate`");
                    None
                }
            };
            Conversion::Amount {
                currency: Box::new(currency?),
                format: format?,
                sign: sign?,
            }
        }
        _ => {
            let fields = reader.entries(value, "`enum`", ENUM_KEYS)?;
            let map_node = reader.required(
                &fields,
                "map",
                "upstream value -> protocol value, e.g. `map: { succeeded: SUCCEEDED }`",
            )?;
            let pairs = reader.pairs(map_node, "`enum.map`")?;
            let map = pairs
                .into_iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str()?.to_owned(),
                        reader.string(v, "a protocol value")?,
                    ))
                })
                .collect();
            let fallback = match fields.get("fallback") {
                Some(n) => Some(reader.string(n, "`enum.fallback`")?),
                None => None,
            };
            Conversion::Enum {
                map,
                fallback,
                span: value.span.clone(),
            }
        }
    };
    Some(Some(conversion))
}

fn metadata(reader: &mut Reader, node: &Node) -> Option<Source> {
    let entries = reader.entries(node, "`metadata`", METADATA_KEYS)?;
    let mut named = |key: &str| -> Option<Vec<(String, Path)>> {
        let Some(list) = entries.get(key) else {
            return Some(Vec::new());
        };
        match &list.value {
            Value::Sequence(items) => items
                .iter()
                .map(|item| path_of(reader, item, "a metadata path").map(|p| (p.text.clone(), p)))
                .collect(),
            _ => reader
                .pairs(list, &format!("`metadata.{key}`"))?
                .into_iter()
                .map(|(k, v)| {
                    Some((
                        k.as_str()?.to_owned(),
                        path_of(reader, v, "a metadata path")?,
                    ))
                })
                .collect(),
        }
    };
    let fields = named("fields");
    let flatten = named("flatten");
    Some(Source::Metadata {
        fields: fields?,
        flatten: flatten?,
    })
}

// ---- paths and templates ----------------------------------------------------------------------

fn path_of(reader: &mut Reader, node: &Node, what: &str) -> Option<Path> {
    let text = reader.string(node, what)?;
    match parse_path(&text) {
        Ok(path) => Some(path),
        Err(problem) => {
            let diagnostic = reader
                .at(node.span.clone(), format!("{what}: `{text}` is not a path: {problem}"))
                .with_help("write keys joined by `.`, `[n]` for an element, `[]` for every element; `.` is the whole value");
            reader.push(diagnostic);
            None
        }
    }
}

pub(crate) fn parse_path(text: &str) -> Result<Path, String> {
    let trimmed = text.trim();
    let mut steps = Vec::new();
    if trimmed != "." && !trimmed.is_empty() {
        for segment in trimmed.split('.') {
            let (key, mut rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
            if !key.is_empty() {
                if !key
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_-$@:".contains(c))
                {
                    return Err(format!("`{key}` has characters a key cannot have here"));
                }
                steps.push(Step::Key(key.to_owned()));
            } else if rest.is_empty() {
                return Err("an empty key".to_owned());
            }
            while let Some(inner) = rest.strip_prefix('[') {
                let close = inner.find(']').ok_or("a `[` without `]`")?;
                let index = &inner[..close];
                steps.push(if index.is_empty() {
                    Step::Each
                } else {
                    Step::Index(
                        index
                            .parse()
                            .map_err(|_| format!("`[{index}]` is not an index"))?,
                    )
                });
                rest = &inner[close + 1..];
            }
            if !rest.is_empty() {
                return Err(format!("unexpected `{rest}`"));
            }
        }
    }
    Ok(Path {
        text: trimmed.to_owned(),
        steps,
    })
}

/// `{name}` placeholders: the request's parameters when `params_only`, else record paths, with
/// `{param.name}` for parameters.
pub(crate) fn parse_template(text: &str, params_only: bool) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Text(rest[..open].to_owned()));
        }
        let close = rest[open..].find('}').ok_or("a `{` without `}`")? + open;
        let name = rest[open + 1..close].trim();
        if name.is_empty() {
            return Err("an empty `{}`".to_owned());
        }
        parts.push(match name.strip_prefix("param.") {
            Some(param) => TemplatePart::Param(param.to_owned()),
            None if params_only => TemplatePart::Param(name.to_owned()),
            None => TemplatePart::Value(parse_path(name)?),
        });
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err("a `}` without `{`".to_owned());
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_owned()));
    }
    Ok(Template {
        text: text.to_owned(),
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_keys_indexes_and_flattening() {
        let path = parse_path("data[].entries[0].id").unwrap();
        assert_eq!(
            path.steps,
            [
                Step::Key("data".into()),
                Step::Each,
                Step::Key("entries".into()),
                Step::Index(0),
                Step::Key("id".into())
            ]
        );
        assert!(parse_path(".").unwrap().steps.is_empty());
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[x]").is_err());
        assert!(parse_path("a[0").is_err());
    }

    #[test]
    fn templates_split_text_values_and_params() {
        let template = parse_template("acct-{id}/{param.accountId}", false).unwrap();
        assert_eq!(template.parts.len(), 4);
        assert_eq!(template.parts[3], TemplatePart::Param("accountId".into()));
        let request = parse_template("/v1/accounts/{accountId}/balance", true).unwrap();
        assert_eq!(request.parts[1], TemplatePart::Param("accountId".into()));
        assert!(parse_template("oops {id", false).is_err());
    }
}
