//! The `operations:` section: per protocol operation, the upstream request, where the records
//! are, how to page, order and filter them, and how each protocol field is computed.

use std::collections::BTreeMap;

use super::load::quoted_list;
use super::reader::{Entries, Reader, first_line, has_unknown_keys, json};
use super::{
    AmountFormat, BodyEncoding, BodyField, Conversion, CursorSource, Expr, FieldMapping, ForEach,
    FromList, InitiationMapping, InlineList, KeyCharset, KeyForwarding, KeyShape, ListMapping,
    Lookup, OperationMapping, Order, PageSize, Paging, ParentList, Path, PaymentStep, RecordFilter,
    RequestTemplate, Sign, Since, Source, Step, Template, TemplatePart, TimeFormat, TimeWindow,
    UnionMember, WindowStart,
};
use crate::diagnostics::did_you_mean;
use crate::yaml::{Node, Value};

const UNION_KEYS: &[&str] = &["request", "set"];
const OPERATION_KEYS: &[&str] = &[
    "request",
    "union",
    "join",
    "records",
    "record",
    "paging",
    "page_size",
    "max_pages",
    "order",
    "since",
    "fields",
    "body",
    "body_encoding",
    "idempotency_key",
    "lookup",
    "provider_key",
    "steps",
    "todo",
    "for_each",
    "from_list",
    "filter",
];
const INITIATION_KEYS: &[&str] = &[
    "body",
    "body_encoding",
    "idempotency_key",
    "lookup",
    "provider_key",
    "steps",
];
const STEP_KEYS: &[&str] = &["name", "request", "record"];
const PROVIDER_KEY_KEYS: &[&str] = &["min_length", "max_length", "charset"];
const KEY_FORWARDING_KINDS: &[&str] = &["header", "body"];
const LOOKUP_KEYS: &[&str] = &["request", "records", "record"];
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
const SINCE_KEYS: &[&str] = &[
    "param",
    "from",
    "format",
    "inclusive",
    "to",
    "max_span",
    "start",
];
const FOR_EACH_KEYS: &[&str] = &[
    "list",
    "request",
    "records",
    "paging",
    "page_size",
    "max_pages",
];
const FROM_LIST_KEYS: &[&str] = &["list", "where"];
const FILTER_KEYS: &[&str] = &["exclude", "only"];
const SWITCH_KEYS: &[&str] = &["on", "by", "cases", "default"];
/// The cases of `switch: { by: sign }`.
const SIGN_CASES: &[&str] = &["negative", "zero", "positive"];
const ORDERS: &[&str] = &["oldest_first", "newest_first", "unordered"];
const SOURCES: &[&str] = &[
    "path",
    "const",
    "template",
    "first_of",
    "param",
    "now",
    "each",
    "items",
    "metadata",
    "rust",
    "initiation",
    "parent",
    "switch",
    "absent",
];
const MODIFIERS: &[&str] = &[
    "default", "empty", "time", "amount", "currency", "enum", "fields",
];
const CONVERSIONS: &[&str] = &["time", "amount", "currency", "enum"];
const AMOUNT_KEYS: &[&str] = &["currency", "format", "sign"];
const ENUM_KEYS: &[&str] = &["map", "fallback"];
const METADATA_KEYS: &[&str] = &["fields", "flatten"];
const TIME_FORMATS: &[&str] = &["rfc3339", "unix_seconds", "unix_millis"];
const PATTERN_KEYS: &[&str] = &["pattern", "utc_offset", "zone"];
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
    // An operation with problems of its own is left out of the later checks, which would
    // only repeat them (a field that failed to load is not "never set").
    let before = reader.diagnostics.len();
    let operation = read_operation(reader, node, span, id)?;
    reader.diagnostics[before..]
        .iter()
        .all(|d| !d.is_error())
        .then_some(operation)
}

fn read_operation(
    reader: &mut Reader,
    node: &Node,
    span: super::Span,
    id: &str,
) -> Option<OperationMapping> {
    let what = format!("operation `{id}`");
    let entries = reader.entries(node, &what, OPERATION_KEYS)?;
    let from_list = match entries.get("from_list") {
        Some(n) => from_list(reader, n, entries.key_span("from_list")).map(Some),
        None => Some(None),
    };
    let mut union = Some(Vec::new());
    let request = if entries.has("from_list") {
        if entries.has("request") {
            reader.conflict(
                &entries,
                &["request", "from_list"],
                "an operation answered `from_list` sends no request of its own".to_owned(),
                "keep `from_list` to pick the record out of the list's, or `request` to ask the provider",
            );
        }
        Some(RequestTemplate::none())
    } else if let Some(node) = entries.get("union") {
        if entries.has("request") {
            reader.conflict(
                &entries,
                &["union", "request"],
                "a `union` lists its requests; the operation has no `request` of its own"
                    .to_owned(),
                "move the request into the `union`'s list, with the constants its records get",
            );
        }
        union = union_members(reader, node);
        union
            .as_ref()
            .and_then(|members| members.first())
            .map(|first| first.request.clone())
    } else {
        let request = reader.required(
            &entries,
            "request",
            "the provider request: `request: { path: /v1/... }`",
        );
        // A payment initiation (it has a `body`) is sent with POST unless the file says otherwise.
        let method = if entries.has("body") { "POST" } else { "GET" };
        request.and_then(|n| request_template(reader, n, method))
    };
    let for_each = match entries.get("for_each") {
        Some(n) => for_each(reader, n, entries.key_span("for_each")).map(Some),
        None => Some(None),
    };
    let list = list(reader, &entries);
    let record = match entries.get("record") {
        Some(n) => path_of(reader, n, "`record`")?,
        None => Path::whole(),
    };
    let fields = match entries.get("fields") {
        Some(n) => fields(reader, n)?,
        None => Vec::new(),
    };
    let initiation = initiation(reader, &entries)?;
    let todo = match entries.get("todo") {
        Some(n) => todo(reader, n)?,
        None => Vec::new(),
    };
    Some(OperationMapping {
        span,
        todo,
        request: request?,
        union: union?,
        for_each: for_each?,
        from_list: from_list?,
        list: list?,
        record,
        fields,
        initiation,
    })
}

/// `union: [{ request: {...}, set: { status: PENDING } }, ...]`: one list from several
/// provider requests, each record given its request's constants.
fn union_members(reader: &mut Reader, node: &Node) -> Option<Vec<UnionMember>> {
    let Value::Sequence(items) = &node.value else {
        reader.fail(
            node,
            format!("`union` must be a list of requests, found {}", node.kind()),
        );
        return None;
    };
    if items.len() < 2 {
        let diagnostic = reader
            .at(node.span.clone(), "a `union` needs at least two requests")
            .with_help("one request is written `request: { path: ... }` without a `union`");
        reader.push(diagnostic);
        return None;
    }
    all(items
        .iter()
        .map(|item| union_member(reader, item))
        .collect())
}

fn union_member(reader: &mut Reader, node: &Node) -> Option<UnionMember> {
    let entries = reader.entries(node, "a `union` request", UNION_KEYS)?;
    let request = reader
        .required(
            &entries,
            "request",
            "the provider request, e.g. `request: { path: /v1/refunds }`",
        )
        .and_then(|n| request_template(reader, n, "GET"));
    let constants = match entries.get("set") {
        Some(set) => {
            let pairs = reader.pairs(set, "`set`")?;
            all(pairs
                .into_iter()
                .map(|(key, value)| {
                    let key = reader.string(key, "a `set` key")?;
                    Some((key, scalar_text(reader, value, "a `set` value")?))
                })
                .collect())
        }
        None => Some(Vec::new()),
    };
    Some(UnionMember {
        span: entries.key_span("request"),
        request: request?,
        constants: constants?,
    })
}

/// `todo: TEXT` or a list of them: work left on the operation, a warning until removed.
fn todo(reader: &mut Reader, node: &Node) -> Option<Vec<(String, super::Span)>> {
    let items = match &node.value {
        Value::Sequence(items) => items.iter().collect::<Vec<_>>(),
        _ => vec![node],
    };
    let mut found = Vec::new();
    for item in items {
        found.push((reader.string(item, "a `todo`")?, item.span.clone()));
    }
    Some(found)
}

fn request_template(
    reader: &mut Reader,
    node: &Node,
    default_method: &str,
) -> Option<RequestTemplate> {
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
        None => default_method.to_owned(),
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
            let name = key.as_str()?.to_owned();
            let help = "credentials go in `upstream.auth` (e.g. `api_key: { query: NAME, value: \"${env:VAR}\" }`)";
            if reader.literal_secret(&name, value, help) {
                return None;
            }
            Some((name, request_text(reader, value, what)?))
        })
        .collect()
}

/// Request text: `{name}` placeholders are the protocol request's parameters.
fn request_text(reader: &mut Reader, node: &Node, what: &str) -> Option<Template> {
    let text = reader.string(node, what)?;
    if reader.unread_reference(node, &text, what) {
        return None;
    }
    let template = parse_template(&text, true, node.span.clone())
        .map_err(|e| reader.fail(node, format!("{what}: {e}")))
        .ok()?;
    Some(template)
}

// ---- initiations -----------------------------------------------------------------------------

/// `body`, `idempotency_key` and `lookup`, which only payment initiations have.
fn initiation(reader: &mut Reader, entries: &Entries) -> Option<Option<InitiationMapping>> {
    let given = entries.among(INITIATION_KEYS);
    let Some(first) = given.first() else {
        return Some(None);
    };
    let Some(body_node) = entries.get("body") else {
        if entries.misspelt("body") {
            return None;
        }
        let diagnostic = reader
            .at(
                entries.key_span(first),
                format!("`{first}` is for payment initiations, which need `body`"),
            )
            .with_help("add `body:` with the provider's fields, e.g. `amount: { path: amount, amount: { currency: currency, format: decimal } }`");
        reader.push(diagnostic);
        return None;
    };
    let encoding = match entries.get("body_encoding") {
        Some(n) => body_encoding(reader, n),
        None => Some(BodyEncoding::Json),
    };
    let body = body(reader, body_node).and_then(|fields| {
        let keys: Vec<_> = fields
            .iter()
            .map(|f| (f.key.join("."), f.span.clone()))
            .collect();
        (encoding != Some(BodyEncoding::Form) || form_keys(reader, &keys)).then_some(fields)
    });
    let idempotency_key = match entries.get("idempotency_key") {
        Some(n) => key_forwarding(reader, n).map(Some),
        None => Some(None),
    };
    let lookup = match entries.get("lookup") {
        Some(n) => lookup(reader, n, entries.key_span("lookup")).map(Some),
        None => Some(None),
    };
    let provider_key = match entries.get("provider_key") {
        Some(n) => provider_key(reader, n).map(Some),
        None => Some(None),
    };
    let steps = match entries.get("steps") {
        Some(n) => payment_steps(reader, n),
        None => Some(Vec::new()),
    };
    Some(Some(InitiationMapping {
        span: entries.key_span("body"),
        body: body?,
        encoding: encoding?,
        idempotency_key: idempotency_key?,
        lookup: lookup?,
        provider_key: provider_key?,
        steps: steps?,
    }))
}

/// `steps: [{ name: wallet, request: { path: "/wallets/{sourceAccountId}" }, record: data }]`:
/// provider calls made before the payment, each answer readable as `NAME.path` afterwards.
fn payment_steps(reader: &mut Reader, node: &Node) -> Option<Vec<PaymentStep>> {
    calls(reader, node, "steps")
}

/// The named provider calls of `steps` or `join`.
fn calls(reader: &mut Reader, node: &Node, key: &str) -> Option<Vec<PaymentStep>> {
    let Value::Sequence(items) = &node.value else {
        reader.fail(
            node,
            format!("`{key}` must be a list of calls, found {}", node.kind()),
        );
        return None;
    };
    if items.is_empty() {
        reader.fail(
            node,
            format!("`{key}` is empty: give at least one call, or remove it"),
        );
        return None;
    }
    all(items
        .iter()
        .map(|item| payment_step(reader, item))
        .collect())
}

fn payment_step(reader: &mut Reader, node: &Node) -> Option<PaymentStep> {
    let entries = reader.entries(node, "a step", STEP_KEYS)?;
    let name_node = reader.required(
        &entries,
        "name",
        "what later values call its answer, e.g. `name: wallet` for `wallet.owner`",
    );
    let name = name_node.and_then(|n| {
        let name = reader.string(n, "a step's `name`")?;
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            reader.fail(
                n,
                format!("step name `{name}` must be a word: a lower-case letter, then letters, digits or `_`"),
            );
            return None;
        }
        Some(name)
    });
    let request = reader
        .required(
            &entries,
            "request",
            "the provider call, e.g. `request: { path: \"/v2/wallets/{sourceAccountId}\" }`",
        )
        .and_then(|n| request_template(reader, n, "GET"));
    let record = match entries.get("record") {
        Some(n) => path_of(reader, n, "a step's `record`"),
        None => Some(Path::whole()),
    };
    Some(PaymentStep {
        span: node.span.clone(),
        name: name?,
        name_span: name_node?.span.clone(),
        request: request?,
        record: record?,
    })
}

/// `provider_key: { max_length: 18, charset: alphanumeric }`, or `provider_key: uuid`.
fn provider_key(reader: &mut Reader, node: &Node) -> Option<KeyShape> {
    if node.as_str() == Some("uuid") {
        return Some(KeyShape {
            min_length: 36,
            max_length: 36,
            charset: KeyCharset::Uuid,
        });
    }
    let entries = reader.entries(node, "`provider_key`", PROVIDER_KEY_KEYS)?;
    let max_length = reader
        .required(
            &entries,
            "max_length",
            "the longest key the provider takes, e.g. `max_length: 18`",
        )
        .and_then(|n| reader.integer(n, "`provider_key.max_length`", 8..=255));
    let min_length = match entries.get("min_length") {
        Some(n) => reader.integer(n, "`provider_key.min_length`", 1..=52),
        None => Some(1),
    };
    let charset = match entries.get("charset") {
        Some(n) => named(
            reader,
            n,
            "key charset",
            &[
                ("any", KeyCharset::Any),
                ("alphanumeric", KeyCharset::Alphanumeric),
                ("hex", KeyCharset::Hex),
            ],
        ),
        None => Some(KeyCharset::Any),
    };
    let (min_length, max_length) = (min_length? as usize, max_length? as usize);
    if min_length > max_length {
        reader.fail(
            node,
            "`provider_key.min_length` is more than its `max_length`",
        );
        return None;
    }
    Some(KeyShape {
        min_length,
        max_length,
        charset: charset?,
    })
}

/// The provider's body: dotted keys (`amount.value`) to expressions over the protocol request.
fn body(reader: &mut Reader, node: &Node) -> Option<Vec<BodyField>> {
    let pairs = reader.pairs(node, "`body`")?;
    let before = reader.diagnostics.len();
    let fields: Vec<BodyField> = pairs
        .into_iter()
        .filter_map(|(key, value)| {
            let text = key.as_str()?;
            let dotted = dotted_key(reader, key, text)?;
            Some(BodyField {
                key: dotted,
                span: key.span.clone(),
                value: expr(reader, value)?,
            })
        })
        .collect();
    (reader.diagnostics.len() == before).then_some(fields)
}

/// `body_encoding: json | form`.
pub(super) fn body_encoding(reader: &mut Reader, node: &Node) -> Option<BodyEncoding> {
    named(
        reader,
        node,
        "body encoding",
        &[("json", BodyEncoding::Json), ("form", BodyEncoding::Form)],
    )
}

/// A form body's names nest with dots; a bracket in one would be read as nesting by the
/// provider. True when every key is fine.
pub(super) fn form_keys(reader: &mut Reader, keys: &[(String, super::Span)]) -> bool {
    let mut fine = true;
    for (key, span) in keys {
        if key.contains(['[', ']']) {
            let nested: String = key.replace(['[', ']'], ".").replace("..", ".");
            let diagnostic = reader
                .at(
                    span.clone(),
                    format!("`{key}` has brackets, which a form body writes itself"),
                )
                .with_help(format!(
                    "write nesting with dots (`{}`): it is sent as `a[b]=...`",
                    nested.trim_end_matches('.')
                ));
            reader.push(diagnostic);
            fine = false;
        }
    }
    fine
}

pub(super) fn dotted_key(reader: &mut Reader, node: &Node, text: &str) -> Option<Vec<String>> {
    let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        reader.fail(
            node,
            format!(
                "`{text}` is not a body key: write names separated by dots, like `amount.value`"
            ),
        );
        return None;
    }
    Some(parts)
}

fn key_forwarding(reader: &mut Reader, node: &Node) -> Option<KeyForwarding> {
    let entries = reader.entries(node, "`idempotency_key`", KEY_FORWARDING_KINDS)?;
    let kind = reader.one_kind(
        &entries,
        KEY_FORWARDING_KINDS,
        "`idempotency_key`",
        "the provider takes the key in one place: a header or a body field",
    )?;
    let value = entries.get(kind)?;
    let text = reader.string(value, &format!("`idempotency_key.{kind}`"))?;
    match kind {
        "header" => {
            let valid = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                reader.fail(
                    value,
                    "`idempotency_key.header` must be a header name, like `Idempotency-Key`",
                );
                return None;
            }
            Some(KeyForwarding::Header(text))
        }
        _ => dotted_key(reader, value, &text).map(KeyForwarding::Body),
    }
}

fn lookup(reader: &mut Reader, node: &Node, span: super::Span) -> Option<Lookup> {
    let entries = reader.entries(node, "`lookup`", LOOKUP_KEYS)?;
    let request = reader.required(
        &entries,
        "request",
        "the provider request that finds the payment, e.g. `request: { path: /v1/payouts, query: { reference: \"{idempotencyKey}\" } }`",
    );
    let request = request.and_then(|n| request_template(reader, n, "GET"));
    let records = match entries.get("records") {
        Some(n) => records_path(reader, n).map(Some),
        None => Some(None),
    };
    let record = match entries.get("record") {
        Some(n) => path_of(reader, n, "`lookup.record`"),
        None => Some(Path::whole()),
    };
    if entries.has("records") && entries.has("record") {
        reader.conflict(
            &entries,
            &["records", "record"],
            "`lookup` takes `records` (a list whose first record is the payment) or `record`, not both".to_owned(),
            "keep one",
        );
        return None;
    }
    Some(Lookup {
        span,
        request: request?,
        records: records?,
        record: record?,
    })
}

// ---- lists ------------------------------------------------------------------------------------

fn list(reader: &mut Reader, entries: &Entries) -> Option<Option<ListMapping>> {
    let list_keys = [
        "records",
        "join",
        "paging",
        "page_size",
        "max_pages",
        "order",
        "since",
        "filter",
    ];
    let given = entries.among(&list_keys);
    let Some(first) = given.first() else {
        return Some(None);
    };
    let records = entries.get("records");
    if records.is_none() && !entries.misspelt("records") {
        let diagnostic = reader
            .at(
                entries.key_span(first),
                format!("`{first}` is for list operations, which need `records`"),
            )
            .with_help("add `records: PATH`, where the list is in the response, e.g. `data` (`.` for the body)");
        reader.push(diagnostic);
    }
    let records = records.and_then(|n| records_path(reader, n));
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
        None if entries.misspelt("order") => None,
        None => {
            let anchor = if entries.has("records") {
                "records"
            } else {
                first
            };
            let diagnostic = reader
                .at(
                    entries.key_span(anchor),
                    "missing key `order`: the provider's order of records by time",
                )
                .with_help("write `order: oldest_first`, `newest_first` or `unordered`");
            reader.push(diagnostic);
            None
        }
    };
    let since = match entries.get("since") {
        Some(n) => since(reader, n, entries.key_span("since")).map(Some),
        None => Some(None),
    };
    let filter = match entries.get("filter") {
        Some(n) => record_filter(reader, n),
        None => Some(RecordFilter::default()),
    };
    let joins = match entries.get("join") {
        Some(n) => joins(reader, n),
        None => Some(Vec::new()),
    };
    Some(Some(ListMapping {
        span: entries.key_span("records"),
        records: records?,
        paging: paging?,
        page_size: page_size?,
        max_pages: max_pages?,
        order: order?,
        since: since?,
        filter: filter?,
        joins: joins?,
    }))
}

/// `join: [{ name: recipient, request: { path: "/recipients/{targetAccount}" } }]`: a call
/// per record whose placeholders read the record (`{PATH}`), its answer readable as
/// `NAME.path` by the fields.
fn joins(reader: &mut Reader, node: &Node) -> Option<Vec<PaymentStep>> {
    let mut joins = calls(reader, node, "join")?;
    for join in &mut joins {
        for template in join.request.templates_mut() {
            for part in &mut template.parts {
                match part {
                    TemplatePart::Param(name) => {
                        let path = Path {
                            text: name.clone(),
                            steps: vec![Step::Key(name.clone())],
                        };
                        *part = TemplatePart::Value(path);
                    }
                    TemplatePart::Parent(_) => {
                        let diagnostic = reader
                            .at(template.span.clone(), "a join's request reads the record: `{PATH}`, not the parent")
                            .with_help("read the parent's value into the record's fields instead, or join on a value of the record");
                        reader.push(diagnostic);
                        return None;
                    }
                    TemplatePart::Text(_) | TemplatePart::Value(_) => {}
                }
            }
        }
    }
    Some(joins)
}

/// `filter: { exclude: { type: [CARD_AUTH] }, only: { ... } }`.
fn record_filter(reader: &mut Reader, node: &Node) -> Option<RecordFilter> {
    let entries = reader.entries(node, "`filter`", FILTER_KEYS)?;
    if entries.among(FILTER_KEYS).is_empty() {
        // An unknown key was reported already: saying what is missing would repeat it.
        if matches!(&entries.node.value, Value::Mapping(pairs) if !pairs.is_empty()) {
            return None;
        }
        let diagnostic = reader
            .at(node.span.clone(), "`filter` needs `exclude` or `only`")
            .with_help("e.g. `filter: { exclude: { status: [HELD] } }` leaves out records whose `status` is HELD");
        reader.push(diagnostic);
        return None;
    }
    let mut rules = |key: &str| -> Option<Vec<(Path, Vec<String>)>> {
        let Some(rules) = entries.get(key) else {
            return Some(Vec::new());
        };
        let pairs = reader.pairs(rules, &format!("`filter.{key}`"))?;
        all(pairs
            .into_iter()
            .map(|(path, values)| {
                let path = path_of(reader, path, "a filter path")?;
                let values = match &values.value {
                    Value::Sequence(items) => all(items
                        .iter()
                        .map(|item| scalar_text(reader, item, "a filter value"))
                        .collect())?,
                    _ => vec![scalar_text(reader, values, "a filter value")?],
                };
                Some((path, values))
            })
            .collect())
    };
    let exclude = rules("exclude");
    let only = rules("only");
    Some(RecordFilter {
        exclude: exclude?,
        only: only?,
    })
}

/// A scalar's text as the runtime compares it: `true`, `12`, `HELD`.
fn scalar_text(reader: &mut Reader, node: &Node, what: &str) -> Option<String> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => {
            reader.fail(node, format!("{what} must be a single value"));
            None
        }
    }
}

/// `for_each: getAccounts`, or a provider list of its own: `{ request, records, paging, ... }`.
fn for_each(reader: &mut Reader, node: &Node, span: super::Span) -> Option<ForEach> {
    if let Some(id) = node.as_str() {
        return Some(ForEach {
            span,
            parent: ParentList::Operation {
                id: id.to_owned(),
                span: node.span.clone(),
            },
        });
    }
    let entries = reader.entries(node, "`for_each`", FOR_EACH_KEYS)?;
    if let Some(list) = entries.get("list") {
        let inline = entries.among(&["request", "records", "paging", "page_size", "max_pages"]);
        if !inline.is_empty() {
            let mut keys = vec!["list"];
            keys.extend(inline);
            reader.conflict(
                &entries,
                &keys,
                "`for_each` takes a mapped list (`list`) or a provider list of its own (`request`, `records`, ...), not both".to_owned(),
                "keep `list: OPERATION` to walk a mapped list's records",
            );
            return None;
        }
        return Some(ForEach {
            span,
            parent: ParentList::Operation {
                id: reader.string(list, "`for_each.list`")?,
                span: list.span.clone(),
            },
        });
    }
    let request = reader
        .required(
            &entries,
            "request",
            "the parents' list request, e.g. `request: { path: /v2/users }`",
        )
        .and_then(|n| request_template(reader, n, "GET"));
    let records = reader
        .required(
            &entries,
            "records",
            "where the parents are in the answer, e.g. `records: data`",
        )
        .and_then(|n| records_path(reader, n));
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
            .integer(n, "`for_each.max_pages`", 1..=1_000_000)
            .map(|v| v as u32),
        None => Some(DEFAULT_MAX_PAGES),
    };
    Some(ForEach {
        span: span.clone(),
        parent: ParentList::Inline(Box::new(InlineList {
            request: request?,
            list: ListMapping {
                span,
                records: records?,
                paging: paging?,
                page_size: page_size?,
                max_pages: max_pages?,
                order: Order::Unordered,
                since: None,
                filter: RecordFilter::default(),
                joins: Vec::new(),
            },
        })),
    })
}

/// `from_list: { list: getAccounts, where: { id: "{accountId}" } }`.
fn from_list(reader: &mut Reader, node: &Node, span: super::Span) -> Option<FromList> {
    let entries = reader.entries(node, "`from_list`", FROM_LIST_KEYS)?;
    let list_node = reader.required(
        &entries,
        "list",
        "the mapped list the answer is in, e.g. `list: getAccounts`",
    );
    let list = list_node.and_then(|n| reader.string(n, "`from_list.list`"));
    let matches = reader
        .required(
            &entries,
            "where",
            "which record: `where: { id: \"{accountId}\" }`",
        )
        .and_then(|n| reader.pairs(n, "`from_list.where`"))
        .and_then(|pairs| {
            all(pairs
                .into_iter()
                .map(|(path, value)| {
                    let path = path_of(reader, path, "a record path")?;
                    Some((path, request_text(reader, value, "`from_list.where`")?))
                })
                .collect())
        });
    Some(FromList {
        span,
        list: list?,
        list_span: list_node?.span.clone(),
        matches: matches?,
    })
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
                if let Some(help) = did_you_mean(kind, PAGING_KINDS.iter().copied()) {
                    diagnostic = diagnostic.with_help(help);
                }
                reader.push(diagnostic);
                None
            }
        };
    }
    let entries = reader.entries(node, "`paging`", PAGING_KINDS)?;
    let kind = reader.one_kind(
        &entries,
        PAGING_KINDS,
        "`paging`",
        "keep the one the provider uses",
    )?;
    let value = entries.get(kind)?;
    match kind {
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
                (None, None) if fields.misspelt("from_record") || fields.misspelt("from_body") => {
                    return None;
                }
                (None, None) => {
                    let diagnostic = reader
                        .at(entries.key_span(kind), "`paging.cursor` needs `from_record` or `from_body`: where the next cursor comes from")
                        .with_help("`from_record: id` takes the last record's `id`; `from_body: meta.next` a field of the body");
                    reader.push(diagnostic);
                    return None;
                }
                (Some(_), Some(_)) => {
                    reader.conflict(
                        &fields,
                        &fields.among(&["from_record", "from_body"]),
                        "`paging.cursor` takes `from_record` or `from_body`, not both".to_owned(),
                        "`from_record: id` takes the last record's `id`; `from_body: meta.next` a field of the body",
                    );
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
            if let Some(help) = other.and_then(|o| did_you_mean(o, ORDERS.iter().copied())) {
                diagnostic = diagnostic.with_help(help);
            }
            reader.push(diagnostic);
            None
        }
    }
}

fn since(reader: &mut Reader, node: &Node, span: super::Span) -> Option<Since> {
    let entries = reader.entries(node, "`since`", SINCE_KEYS)?;
    // `from` (with `to`) reads better for a window; it means what `param` does.
    let param = if entries.has("from") && entries.has("param") {
        reader.conflict(
            &entries,
            &["param", "from"],
            "`since` takes `param` or `from`, the same thing, not both".to_owned(),
            "keep `from` with `to`, or `param` alone",
        );
        None
    } else {
        let key = if entries.has("from") { "from" } else { "param" };
        reader
            .required(
                &entries,
                key,
                "the provider's query parameter for the time filter",
            )
            .and_then(|n| reader.string(n, &format!("`since.{key}`")))
    };
    let window = window(reader, &entries);
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
        span,
        param: param?,
        format: format?,
        inclusive,
        window: window?,
    })
}

/// `to`, `max_span` and `start` of a `since` whose provider needs both ends of a window.
fn window(reader: &mut Reader, entries: &Entries) -> Option<Option<TimeWindow>> {
    let given = entries.among(&["to", "max_span", "start"]);
    let Some(first) = given.first() else {
        return Some(None);
    };
    let mut missing = |key: &str, what: &str, help: &str| {
        if !entries.has(key) {
            let diagnostic = reader
                .at(
                    entries.key_span(first),
                    format!("a time window needs `{key}`: {what}"),
                )
                .with_help(help.to_owned());
            reader.push(diagnostic);
        }
    };
    missing(
        "to",
        "the parameter of the window's end",
        "e.g. `to: toDate`",
    );
    missing(
        "max_span",
        "the longest window the provider accepts",
        "e.g. `max_span: 31d`; without a cap, the filter needs no `to`",
    );
    missing(
        "start",
        "where the first poll starts, when Formance sends no filter",
        "a date (`start: 2020-01-01`) or how far back (`start: 730d`); nothing before it is ever listed",
    );
    let to = entries
        .get("to")
        .and_then(|n| reader.string(n, "`since.to`"));
    let max_span = entries
        .get("max_span")
        .and_then(|n| reader.span_secs(n, "`since.max_span`"));
    let start = entries.get("start").and_then(|n| window_start(reader, n));
    Some(Some(TimeWindow {
        to: to?,
        max_span_secs: max_span?,
        start: start?,
    }))
}

/// `2020-01-01` (UTC midnight) or `730d` before now.
fn window_start(reader: &mut Reader, node: &Node) -> Option<WindowStart> {
    let text = reader.string(node, "`since.start`")?;
    if let Ok(date) = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Some(WindowStart::At(
            date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp(),
        ));
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) && text.contains('-') {
        let diagnostic = reader
            .at(node.span.clone(), format!("`{text}` is not a date"))
            .with_help(
                "write the date as `YYYY-MM-DD`, e.g. `2020-01-01`, or how far back, e.g. `730d`",
            );
        reader.push(diagnostic);
        return None;
    }
    reader
        .span_secs(node, "`since.start`")
        .map(WindowStart::Ago)
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
                if let Some(help) = did_you_mean(name, TIME_FORMATS.iter().copied()) {
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
    if let Some(zone) = entries.get("zone") {
        return zoned(reader, &entries, zone, pattern_text, has_zone);
    }
    let utc_offset_seconds = match entries.get("utc_offset") {
        Some(n) => Some(utc_offset(reader, n)?),
        None if has_zone => None,
        None => {
            let diagnostic = reader
                .at(
                    pattern.span.clone(),
                    "the pattern has no zone (`%z`), so the zone must be given",
                )
                .with_help("add `zone: Europe/Oslo` (the provider's zone, daylight saving included) or `utc_offset: \"+00:00\"`");
            reader.push(diagnostic);
            return None;
        }
    };
    Some(TimeFormat::Pattern {
        pattern: pattern_text,
        utc_offset_seconds,
    })
}

/// `zone: Europe/Oslo`: local times of a named zone.
fn zoned(
    reader: &mut Reader,
    entries: &Entries,
    zone: &Node,
    pattern: String,
    has_zone: bool,
) -> Option<TimeFormat> {
    if entries.has("utc_offset") {
        reader.conflict(
            entries,
            &["zone", "utc_offset"],
            "a time format takes `zone` or `utc_offset`, not both".to_owned(),
            "keep `zone` when the provider's clock follows daylight saving",
        );
        return None;
    }
    if has_zone {
        reader.fail(
            zone,
            "the pattern has its own offset (`%z`), so `zone` would never be used",
        );
        return None;
    }
    let name = reader.string(zone, "`zone`")?;
    if name.parse::<chrono_tz::Tz>().is_err() {
        let diagnostic = reader
            .at(
                zone.span.clone(),
                format!("`{name}` is not an IANA time zone"),
            )
            .with_help(
                "write a name of the tz database such as `Europe/Oslo` or `America/New_York`",
            );
        reader.push(diagnostic);
        return None;
    }
    Some(TimeFormat::Zoned {
        pattern,
        zone: name,
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
            source_span: node.span.clone(),
            value_span: node.span.clone(),
            conversion_span: None,
            source: Source::Path(path),
            default: None,
            empty_is_missing: false,
            conversion: None,
        });
    }
    let allowed: Vec<&str> = SOURCES.iter().chain(MODIFIERS).copied().collect();
    let entries = reader.entries(node, "a field mapping", &allowed)?;
    let sources = entries.among(SOURCES);
    let kind = match sources.as_slice() {
        [kind] => Some(*kind),
        // A misspelt kind was already reported, as an unknown key with a did-you-mean.
        [] if has_unknown_keys(node, &allowed) => None,
        [] => {
            let diagnostic = reader
                .at(node.span.clone(), "a field mapping needs a source")
                .with_help(format!("sources: {}", SOURCES.join(", ")));
            reader.push(diagnostic);
            None
        }
        _ => {
            reader.conflict(
                &entries,
                &sources,
                format!(
                    "a field mapping takes one source, found {}",
                    quoted_list(&sources)
                ),
                "keep one; `first_of: [...]` takes the first of several that is present",
            );
            None
        }
    };
    // The source and the modifiers are all read before giving up, to report every problem.
    let source = kind.and_then(|kind| source(reader, &entries, kind));
    if entries.has("fields") && kind.is_some_and(|kind| kind != "each") {
        let diagnostic = reader
            .at(entries.key_span("fields"), "`fields` goes with `each`")
            .with_help("`each: PATH` with `fields` maps every element of a list; elsewhere, remove `fields`");
        reader.push(diagnostic);
    }
    let default = entries.get("default").map(json);
    let empty_is_missing = match entries.get("empty") {
        Some(n) if n.as_str() == Some("missing") => true,
        Some(n) => {
            let diagnostic = reader
                .at(n.span.clone(), "`empty` takes `missing`")
                .with_help("`empty: missing` counts an empty string as no value");
            reader.push(diagnostic);
            false
        }
        None => false,
    };
    let conversion = conversion(reader, &entries);
    let kind = kind?;
    let conversion = conversion?;
    Some(Expr {
        span: node.span.clone(),
        source_span: entries.key_span(kind),
        value_span: entries.get(kind)?.span.clone(),
        conversion_span: CONVERSIONS
            .iter()
            .find(|k| entries.has(k))
            .map(|k| entries.key_span(k)),
        source: source?,
        default,
        empty_is_missing,
        conversion,
    })
}

fn source(reader: &mut Reader, entries: &Entries, kind: &str) -> Option<Source> {
    let value = entries.get(kind)?;
    Some(match kind {
        "path" => Source::Path(path_of(reader, value, "`path`")?),
        "const" => {
            let constant = json(value);
            if let Some(text) = constant.as_str()
                && reader.unread_reference(value, text, "`const`")
            {
                return None;
            }
            Source::Const(constant)
        }
        "template" => {
            let text = reader.string(value, "`template`")?;
            if reader.unread_reference(value, &text, "`template`") {
                return None;
            }
            let template = parse_template(&text, false, value.span.clone())
                .map_err(|e| reader.fail(value, format!("`template`: {e}")))
                .ok()?;
            for part in &template.parts {
                if let TemplatePart::Value(path) = part
                    && path.steps.contains(&Step::Each)
                {
                    flattening(reader, value.span.clone(), path);
                }
            }
            Source::Template(template)
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
            if reader.boolean(value, "`now`")? {
                Source::Now
            } else {
                let diagnostic = reader
                    .at(value.span.clone(), "`now: false` gives the field no value")
                    .with_help("write `now: true` for the time the connector answers, or use another source");
                reader.push(diagnostic);
                return None;
            }
        }
        "each" => {
            let path = path_of(reader, value, "`each`");
            let Some(fields_node) = entries.get("fields") else {
                if entries.misspelt("fields") {
                    return None;
                }
                let diagnostic = reader
                    .at(
                        entries.key_span("each"),
                        "`each` needs `fields`: how every element is mapped",
                    )
                    .with_help("add `fields: { id: id, ... }` next to `each`");
                reader.push(diagnostic);
                return None;
            };
            let fields = fields(reader, fields_node);
            Source::Each {
                path: path?,
                fields: fields?,
            }
        }
        "items" => items(reader, value)?,
        "metadata" => metadata(reader, value)?,
        "initiation" => Source::Initiation(path_of(reader, value, "`initiation`")?),
        "parent" => Source::Parent(path_of(reader, value, "`parent`")?),
        "switch" => switch(reader, value)?,
        "absent" => {
            if !reader.boolean(value, "`absent`")? {
                reader.fail(
                    value,
                    "`absent: false` says nothing; write `absent: true` or another source",
                );
                return None;
            }
            Source::Absent
        }
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
    })
}

/// `switch: { on: credit, cases: { true: ..., false: ... }, default: ... }`.
fn switch(reader: &mut Reader, node: &Node) -> Option<Source> {
    let entries = reader.entries(node, "`switch`", SWITCH_KEYS)?;
    let on = reader
        .required(
            &entries,
            "on",
            "the value that picks the case, e.g. `on: credit`",
        )
        .and_then(|n| expr(reader, n));
    let cases = reader
        .required(
            &entries,
            "cases",
            "the value for each text of `on`, e.g. `cases: { true: account }`",
        )
        .and_then(|n| reader.pairs(n, "`switch.cases`"))
        .and_then(|pairs| {
            all(pairs
                .into_iter()
                .map(|(key, value)| {
                    let text = scalar_text(reader, key, "a case")?;
                    Some((text, expr(reader, value)?))
                })
                .collect())
        });
    let default = entries.get("default").map(|n| expr(reader, n));
    let default = match default {
        Some(expr) => Some(Box::new(expr?)),
        None => None,
    };
    let by_sign = match entries.get("by") {
        None => false,
        Some(by) if by.as_str() == Some("sign") => true,
        Some(by) => {
            let diagnostic = reader
                .at(by.span.clone(), "`switch.by` takes `sign`")
                .with_help("`by: sign` picks the case `negative`, `zero` or `positive` by the sign of `on`'s number; without `by`, cases are `on`'s text");
            reader.push(diagnostic);
            return None;
        }
    };
    let cases = cases?;
    if by_sign
        && let Some(case_node) = entries.get("cases")
        && let Some((text, _)) = cases
            .iter()
            .find(|(text, _)| !SIGN_CASES.contains(&text.as_str()))
    {
        let diagnostic = reader
            .at(case_node.span.clone(), format!("`{text}` is not a sign: the cases of `by: sign` are negative, zero and positive"))
            .with_help("use `default` for the signs without a case of their own");
        reader.push(diagnostic);
        return None;
    }
    Some(Source::Switch {
        on: Box::new(on?),
        by_sign,
        cases,
        default,
    })
}

fn conversion(reader: &mut Reader, entries: &Entries) -> Option<Option<Conversion>> {
    let present = entries.among(CONVERSIONS);
    let kind = match present.as_slice() {
        [] => return Some(None),
        [kind] => *kind,
        _ => {
            reader.conflict(
                entries,
                &present,
                format!(
                    "a field takes one conversion at most, found {}",
                    quoted_list(&present)
                ),
                "keep the one the protocol field needs",
            );
            return None;
        }
    };
    let value = entries.get(kind)?;
    let conversion = match kind {
        "time" => Conversion::Time(time_format(reader, value)?),
        "currency" => {
            if value.as_str() == Some("lower") {
                return Some(Some(Conversion::Currency { lower: true }));
            }
            if !reader.boolean(value, "`currency`")? {
                let diagnostic = reader
                    .at(value.span.clone(), "`currency: false` converts nothing")
                    .with_help("write `currency: true` to turn the provider's code into the protocol's `EUR/2`, or remove it");
                reader.push(diagnostic);
                return None;
            }
            Conversion::Currency { lower: false }
        }
        "amount" => {
            let fields = reader.entries(value, "`amount`", AMOUNT_KEYS)?;
            let currency = reader.required(
                &fields,
                "currency",
                "where the amount's currency is, e.g. `currency: currency`",
            );
            let currency = currency.and_then(|n| expr(reader, n));
            let format = fields
                .get("format")
                .map_or(Some(AmountFormat::Decimal), |n| {
                    named(
                        reader,
                        n,
                        "amount format",
                        &[
                            ("decimal", AmountFormat::Decimal),
                            ("minor_units", AmountFormat::MinorUnits),
                            ("decimal_number", AmountFormat::DecimalNumber),
                            ("minor_units_number", AmountFormat::MinorUnitsNumber),
                        ],
                    )
                });
            let sign = fields.get("sign").map_or(Some(Sign::Keep), |n| {
                named(
                    reader,
                    n,
                    "amount sign",
                    &[
                        ("keep", Sign::Keep),
                        ("absolute", Sign::Absolute),
                        ("negate", Sign::Negate),
                    ],
                )
            });
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
            );
            let pairs = map_node.and_then(|n| reader.pairs(n, "`enum.map`"));
            let mut map = Vec::new();
            let mut target_spans = Vec::new();
            for (k, v) in pairs.unwrap_or_default() {
                if let (Some(from), Some(to)) = (k.as_str(), reader.string(v, "a protocol value")) {
                    map.push((from.to_owned(), to));
                    target_spans.push(v.span.clone());
                }
            }
            let fallback = match fields.get("fallback") {
                Some(n) => {
                    target_spans.push(n.span.clone());
                    Some(reader.string(n, "`enum.fallback`")?)
                }
                None => None,
            };
            map_node?;
            Conversion::Enum {
                map,
                fallback,
                span: entries.key_span(kind),
                target_spans,
            }
        }
    };
    Some(Some(conversion))
}

/// One of a closed set of words, with a did-you-mean when it is misspelt.
pub(super) fn named<T: Copy>(
    reader: &mut Reader,
    node: &Node,
    what: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    let text = node.as_str().unwrap_or_default();
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return Some(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let mut diagnostic = reader
        .at(node.span.clone(), format!("unknown {what} `{text}`"))
        .with_label(format!("expected one of: {}", names.join(", ")));
    if let Some(help) = did_you_mean(text, names.iter().copied()) {
        diagnostic = diagnostic.with_help(help);
    }
    reader.push(diagnostic);
    None
}

/// `items: [{ field: ..., ... }, ...]`: a list written out, each entry a protocol element.
fn items(reader: &mut Reader, node: &Node) -> Option<Source> {
    let entries = reader.list(node, "`items`")?;
    if entries.is_empty() {
        let diagnostic = reader
            .at(
                node.span.clone(),
                "`items` lists no entry: the list would always be empty",
            )
            .with_help(
                "write one entry per element, e.g. `items: [{ amount: ..., currency: ... }]`",
            );
        reader.push(diagnostic);
        return None;
    }
    let mut items = Vec::new();
    for entry in entries {
        if !matches!(entry.value, Value::Mapping(_)) {
            reader.fail(
                entry,
                format!(
                    "an `items` entry maps the element's fields, found {}",
                    entry.kind()
                ),
            );
            continue;
        }
        items.extend(fields(reader, entry).map(|fields| super::ListItem {
            span: first_line(reader.text, entry.span.clone()),
            fields,
        }));
    }
    (items.len() == entries.len()).then_some(Source::Items(items))
}

fn metadata(reader: &mut Reader, node: &Node) -> Option<Source> {
    let entries = reader.entries(node, "`metadata`", METADATA_KEYS)?;
    let mut named = |key: &str| -> Option<Vec<(String, Path)>> {
        let Some(list) = entries.get(key) else {
            return Some(Vec::new());
        };
        match &list.value {
            Value::Sequence(items) => all(items
                .iter()
                .map(|item| path_of(reader, item, "a metadata path").map(|p| (p.text.clone(), p)))
                .collect()),
            _ => all(reader
                .pairs(list, &format!("`metadata.{key}`"))?
                .into_iter()
                .map(|(k, v)| {
                    Some((
                        k.as_str()?.to_owned(),
                        path_of(reader, v, "a metadata path")?,
                    ))
                })
                .collect()),
        }
    };
    let fields = named("fields");
    let flatten = named("flatten");
    Some(Source::Metadata {
        fields: fields?,
        flatten: flatten?,
    })
}

/// Every item, or `None` when one failed (each failure was reported as it was read).
fn all<T>(items: Vec<Option<T>>) -> Option<Vec<T>> {
    items.into_iter().collect()
}

// ---- paths and templates ----------------------------------------------------------------------

/// A path to one value: `[]` (every element) is refused, it only makes sense in `records`.
fn path_of(reader: &mut Reader, node: &Node, what: &str) -> Option<Path> {
    let path = any_path(reader, node, what)?;
    if path.steps.contains(&Step::Each) {
        flattening(reader, node.span.clone(), &path);
        return None;
    }
    Some(path)
}

/// Where a list operation's records are: `[]` steps flatten nested arrays.
fn records_path(reader: &mut Reader, node: &Node) -> Option<Path> {
    any_path(reader, node, "`records`")
}

fn any_path(reader: &mut Reader, node: &Node, what: &str) -> Option<Path> {
    let text = reader.string(node, what)?;
    match parse_path(&text) {
        Ok(path) => Some(path),
        Err(problem) => {
            let diagnostic = reader
                .at(node.span.clone(), format!("`{text}` is not a valid path: {problem}"))
                .with_label(what.to_owned())
                .with_help("write keys joined by `.`, `[n]` for an element, `[]` for every element; `.` is the whole value");
            reader.push(diagnostic);
            None
        }
    }
}

fn flattening(reader: &mut Reader, span: super::Span, path: &Path) {
    let diagnostic = reader
        .at(span, format!("`{}` flattens a list with `[]`, which only `records` can do", path.text))
        .with_help("take one element with `[0]`, or map every element of a list field with `each: PATH` and `fields`");
    reader.push(diagnostic);
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
                return Err("an empty key (two `.` in a row, or a `.` at an end)".to_owned());
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

/// `{name}` placeholders: the request's parameters when `params_only` (a dotted name is then
/// a path into what a payment's steps added), else record paths, with `{param.name}` for
/// parameters.
pub(crate) fn parse_template(
    text: &str,
    params_only: bool,
    span: super::Span,
) -> Result<Template, String> {
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
        parts.push(if let Some(param) = name.strip_prefix("param.") {
            TemplatePart::Param(param.to_owned())
        } else if let Some(path) = name.strip_prefix("parent.") {
            TemplatePart::Parent(parse_path(path)?)
        } else if params_only && !name.contains(['.', '[']) {
            TemplatePart::Param(name.to_owned())
        } else {
            TemplatePart::Value(parse_path(name)?)
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
        span,
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
        let template = parse_template("acct-{id}/{param.accountId}", false, 0..0).unwrap();
        assert_eq!(template.parts.len(), 4);
        assert_eq!(template.parts[3], TemplatePart::Param("accountId".into()));
        let request = parse_template("/v1/accounts/{accountId}/balance", true, 0..0).unwrap();
        assert_eq!(request.parts[1], TemplatePart::Param("accountId".into()));
        assert!(parse_template("oops {id", false, 0..0).is_err());
    }
}
