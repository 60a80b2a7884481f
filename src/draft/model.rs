//! The typed view of provider documents: endpoints with their parameters, bodies and success
//! responses, security schemes and servers, whatever the dialect. Schemas stay views into the
//! document, resolved on demand, so that a 4 MB document with thousands of mutually
//! referencing schemas is never expanded whole.

use serde_json::Value;

use super::load::{Dialect, Document, escape};

/// Every document of one provider, merged.
#[derive(Debug)]
pub struct Api<'a> {
    pub documents: &'a [Document],
    pub endpoints: Vec<Endpoint<'a>>,
    pub schemes: Vec<Scheme>,
    /// Per document: its first server's URL (Swagger: scheme, host and base path).
    pub servers: Vec<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    pub document: usize,
    pub method: String,
    pub path: String,
    /// `#/paths/~1v1~1payouts/post`.
    pub pointer: String,
    pub operation_id: String,
    pub tags: Vec<String>,
    /// Summary and description, lower case: read for signals, never copied.
    pub text: String,
    pub deprecated: bool,
    pub params: Vec<Param<'a>>,
    pub body: Option<Body<'a>>,
    pub response: Option<Schema<'a>>,
    pub response_headers: Vec<String>,
    /// The security requirements' scheme names, when the operation says.
    pub security: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Query,
    Path,
    Header,
    Cookie,
}

#[derive(Debug, Clone)]
pub struct Param<'a> {
    pub name: String,
    pub location: Location,
    pub required: bool,
    pub style: Option<String>,
    pub schema: Schema<'a>,
    pub text: String,
    pub pointer: String,
}

#[derive(Debug, Clone)]
pub struct Body<'a> {
    pub content_type: String,
    /// The body's schema; Swagger 2.0 `formData` parameters are `fields` instead.
    pub schema: Option<Schema<'a>>,
    pub fields: Vec<(String, Schema<'a>, bool)>,
    pub pointer: String,
}

impl<'a> Body<'a> {
    pub fn is_form(&self) -> bool {
        self.content_type.contains("form")
    }

    /// Top-level fields: name, schema, required.
    pub fn properties(&self) -> Vec<(String, Schema<'a>, bool)> {
        match self.schema {
            Some(schema) => {
                let required = schema.required();
                schema
                    .properties()
                    .into_iter()
                    .map(|(n, s)| (n.to_owned(), s, required.contains(&n)))
                    .collect()
            }
            None => self.fields.clone(),
        }
    }

    pub fn at(&self, path: &str) -> Option<Schema<'a>> {
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        let (_, schema, _) = self.properties().into_iter().find(|(n, _, _)| n == first)?;
        if rest.is_empty() {
            Some(schema)
        } else {
            schema.at(rest)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    pub name: String,
    pub pointer: String,
    pub kind: SchemeKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SchemeKind {
    Bearer,
    Basic,
    ApiKey {
        header: bool,
        name: String,
    },
    OAuth2 {
        token_url: Option<String>,
        client_credentials: bool,
    },
    Other,
}

/// A schema as written in one document: `$ref`s are followed when it is read.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    pub document: &'a Document,
    pub value: &'a Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Unknown,
}

/// `$ref` hops and `allOf`/`oneOf` nesting followed at most, which is what guards cycles.
const MAX_HOPS: usize = 24;
static EMPTY: Value = Value::Null;

impl<'a> Schema<'a> {
    pub fn new(document: &'a Document, value: &'a Value) -> Self {
        Schema { document, value }
    }

    /// The schema a `$ref` chain ends at; a broken or cyclic chain is an empty schema.
    pub fn resolved(self) -> Self {
        let mut value = self.value;
        for _ in 0..MAX_HOPS {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => match pointer_target(&self.document.root, reference) {
                    Some(target) => value = target,
                    None => {
                        return Schema {
                            value: &EMPTY,
                            ..self
                        };
                    }
                },
                None => return Schema { value, ..self },
            }
        }
        Schema {
            value: &EMPTY,
            ..self
        }
    }

    /// The schema and every `allOf`, `oneOf` and `anyOf` member, resolved, depth first.
    fn parts(self) -> Vec<Schema<'a>> {
        let mut found = Vec::new();
        let mut stack = vec![(self, 0usize)];
        while let Some((schema, depth)) = stack.pop() {
            let schema = schema.resolved();
            if depth > MAX_HOPS || found.len() > 64 {
                continue;
            }
            found.push(schema);
            for key in ["anyOf", "oneOf", "allOf"] {
                if let Some(Value::Array(items)) = schema.value.get(key) {
                    for item in items.iter().rev() {
                        stack.push((
                            Schema {
                                value: item,
                                ..schema
                            },
                            depth + 1,
                        ));
                    }
                }
            }
        }
        found
    }

    pub fn ty(self) -> Type {
        for part in self.parts() {
            let ty = match part.value.get("type") {
                Some(Value::String(name)) => type_named(name),
                Some(Value::Array(names)) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(type_named)
                    .find(|t| *t != Type::Unknown)
                    .unwrap_or(Type::Unknown),
                _ if part.value.get("properties").is_some() => Type::Object,
                _ if part.value.get("items").is_some() => Type::Array,
                _ => Type::Unknown,
            };
            if ty != Type::Unknown {
                return ty;
            }
        }
        Type::Unknown
    }

    pub fn format(self) -> Option<&'a str> {
        self.parts()
            .into_iter()
            .find_map(|p| p.value.get("format").and_then(Value::as_str))
    }

    /// Description, title and example, lower case: signals only.
    pub fn text(self) -> String {
        let mut text = String::new();
        for part in self.parts().into_iter().take(4) {
            for key in ["description", "title", "pattern"] {
                if let Some(t) = part.value.get(key).and_then(Value::as_str) {
                    text.push_str(&t.to_lowercase());
                    text.push(' ');
                }
            }
        }
        text
    }

    pub fn example(self) -> Option<&'a Value> {
        self.parts().into_iter().find_map(|p| {
            p.value.get("example").or_else(|| {
                p.value
                    .get("examples")
                    .and_then(Value::as_array)
                    .and_then(|e| e.first())
            })
        })
    }

    pub fn minimum(self) -> Option<f64> {
        self.parts()
            .into_iter()
            .find_map(|p| p.value.get("minimum").and_then(Value::as_f64))
    }

    pub fn maximum(self) -> Option<f64> {
        self.parts()
            .into_iter()
            .find_map(|p| p.value.get("maximum").and_then(Value::as_f64))
    }

    pub fn default_value(self) -> Option<&'a Value> {
        self.parts()
            .into_iter()
            .find_map(|p| p.value.get("default"))
    }

    pub fn enum_values(self) -> Vec<String> {
        let mut values = Vec::new();
        for part in self.parts() {
            if let Some(Value::Array(items)) = part.value.get("enum") {
                for item in items {
                    if let Some(text) = item.as_str()
                        && !values.iter().any(|v| v == text)
                    {
                        values.push(text.to_owned());
                    }
                }
            }
        }
        values
    }

    pub fn deprecated(self) -> bool {
        self.parts()
            .iter()
            .any(|p| p.value.get("deprecated") == Some(&Value::Bool(true)))
    }

    /// Properties of every part, the first part naming a property winning.
    pub fn properties(self) -> Vec<(&'a str, Schema<'a>)> {
        let mut found: Vec<(&'a str, Schema<'a>)> = Vec::new();
        for part in self.parts() {
            if let Some(Value::Object(props)) = part.value.get("properties") {
                for (name, value) in props {
                    if !found.iter().any(|(n, _)| *n == name) {
                        found.push((name.as_str(), Schema { value, ..part }));
                    }
                }
            }
        }
        found
    }

    pub fn property(self, name: &str) -> Option<Schema<'a>> {
        self.properties()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
    }

    pub fn required(self) -> Vec<&'a str> {
        let mut names = Vec::new();
        for part in self.parts() {
            if let Some(Value::Array(items)) = part.value.get("required") {
                names.extend(items.iter().filter_map(Value::as_str));
            }
        }
        names
    }

    pub fn items(self) -> Option<Schema<'a>> {
        self.parts().into_iter().find_map(|p| {
            p.value
                .get("items")
                .filter(|v| v.is_object())
                .map(|value| Schema { value, ..p })
        })
    }

    /// `additionalProperties` with string values: a string map such as `metadata`.
    pub fn is_string_map(self) -> bool {
        self.parts().into_iter().any(|p| {
            p.value
                .get("additionalProperties")
                .is_some_and(|v| Schema { value: v, ..p }.ty() == Type::String)
        })
    }

    /// The schema at a dotted path (`amount.value`; `[0]` and `[]` step into arrays).
    pub fn at(self, path: &str) -> Option<Schema<'a>> {
        let mut schema = self;
        if path == "." || path.is_empty() {
            return Some(schema);
        }
        for segment in path.split('.') {
            let (key, rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
            if !key.is_empty() {
                schema = schema.property(key)?;
            }
            for _ in rest.matches('[') {
                schema = schema.items()?;
            }
        }
        Some(schema)
    }
}

fn type_named(name: &str) -> Type {
    match name {
        "object" => Type::Object,
        "array" => Type::Array,
        "string" => Type::String,
        "integer" => Type::Integer,
        "number" => Type::Number,
        "boolean" => Type::Boolean,
        _ => Type::Unknown,
    }
}

/// A local reference (`#/components/schemas/X`); others name no value here.
pub fn pointer_target<'v>(root: &'v Value, reference: &str) -> Option<&'v Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

pub fn build(documents: &[Document]) -> Api<'_> {
    let mut api = Api {
        documents,
        endpoints: Vec::new(),
        schemes: Vec::new(),
        servers: Vec::new(),
    };
    for (index, document) in documents.iter().enumerate() {
        api.servers.push(server(document));
        for scheme in schemes(document) {
            if !api
                .schemes
                .iter()
                .any(|s| s.name == scheme.name && s.kind == scheme.kind)
            {
                api.schemes.push(scheme);
            }
        }
        api.endpoints.extend(endpoints(index, document));
    }
    api
}

fn server(document: &Document) -> Option<String> {
    let root = &document.root;
    match document.dialect {
        Dialect::Swagger2 => {
            let host = root.get("host")?.as_str()?;
            let scheme = root
                .get("schemes")
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(Value::as_str)
                .unwrap_or("https");
            let base = root.get("basePath").and_then(Value::as_str).unwrap_or("");
            Some(format!("{scheme}://{host}{}", base.trim_end_matches('/')))
        }
        _ => root
            .get("servers")?
            .as_array()?
            .first()?
            .get("url")?
            .as_str()
            .map(|u| u.trim_end_matches('/').to_owned()),
    }
}

fn schemes(document: &Document) -> Vec<Scheme> {
    let (map, prefix) = match document.dialect {
        Dialect::Swagger2 => (
            document.root.get("securityDefinitions"),
            "#/securityDefinitions",
        ),
        _ => (
            document.root.pointer("/components/securitySchemes"),
            "#/components/securitySchemes",
        ),
    };
    let Some(Value::Object(map)) = map else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, value)| {
            let value = Schema::new(document, value).resolved().value;
            Scheme {
                name: name.clone(),
                pointer: format!("{prefix}/{}", escape(name)),
                kind: scheme_kind(value),
                text: text_of(value),
            }
        })
        .collect()
}

fn scheme_kind(value: &Value) -> SchemeKind {
    let get = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
    match (get("type"), get("scheme").to_ascii_lowercase().as_str()) {
        ("http", "bearer") => SchemeKind::Bearer,
        ("http", "basic") | ("basic", _) => SchemeKind::Basic,
        ("apiKey", _) => SchemeKind::ApiKey {
            header: get("in") == "header",
            name: get("name").to_owned(),
        },
        ("oauth2", _) => {
            // 3.x: flows.clientCredentials.tokenUrl; 2.0: flow: application, tokenUrl.
            let credentials = value
                .pointer("/flows/clientCredentials")
                .or_else(|| (get("flow") == "application").then_some(value));
            let token_url = credentials
                .or_else(|| value.pointer("/flows/authorizationCode"))
                .or_else(|| (get("flow") == "accessCode").then_some(value))
                .and_then(|flow| flow.get("tokenUrl"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            SchemeKind::OAuth2 {
                token_url,
                client_credentials: credentials.is_some(),
            }
        }
        _ => SchemeKind::Other,
    }
}

fn text_of(value: &Value) -> String {
    ["summary", "description"]
        .iter()
        .filter_map(|key| value.get(*key).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn endpoints(index: usize, document: &Document) -> Vec<Endpoint<'_>> {
    let Some(Value::Object(paths)) = document.root.get("paths") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (path, item) in paths {
        let item = Schema::new(document, item).resolved().value;
        let shared = item.get("parameters");
        for method in METHODS {
            let Some(operation) = item.get(*method).filter(|o| o.is_object()) else {
                continue;
            };
            let pointer = format!("#/paths/{}/{method}", escape(path));
            found.push(endpoint(
                index, document, path, method, operation, shared, pointer,
            ));
        }
    }
    found
}

fn endpoint<'a>(
    index: usize,
    document: &'a Document,
    path: &str,
    method: &str,
    operation: &'a Value,
    shared: Option<&'a Value>,
    pointer: String,
) -> Endpoint<'a> {
    let get_str = |key: &str| operation.get(key).and_then(Value::as_str).unwrap_or("");
    let mut params = Vec::new();
    let mut form_fields = Vec::new();
    let mut swagger_body = None;
    let lists = [
        (shared, format!("#/paths/{}/parameters", escape(path))),
        (operation.get("parameters"), format!("{pointer}/parameters")),
    ];
    for (list, list_pointer) in lists {
        let Some(Value::Array(items)) = list else {
            continue;
        };
        for (i, raw) in items.iter().enumerate() {
            let value = Schema::new(document, raw).resolved().value;
            let item_pointer = format!("{list_pointer}/{i}");
            match parameter(document, value, item_pointer.clone()) {
                Some(Parsed::Param(param)) => {
                    params.retain(|p: &Param| {
                        !(p.name == param.name && p.location == param.location)
                    });
                    params.push(param);
                }
                Some(Parsed::Form(name, schema, required)) => {
                    form_fields.push((name, Schema::new(document, schema), required))
                }
                Some(Parsed::Body(schema)) => swagger_body = Some((schema, item_pointer)),
                None => {}
            }
        }
    }
    let consumes = operation
        .get("consumes")
        .or_else(|| document.root.get("consumes"))
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(Value::as_str)
        .unwrap_or("application/json");
    let body = match (request_body(document, operation, &pointer), swagger_body) {
        (Some(body), _) => Some(body),
        (None, Some((schema, pointer))) => Some(Body {
            content_type: consumes.to_owned(),
            schema: Some(schema),
            fields: Vec::new(),
            pointer,
        }),
        (None, None) if !form_fields.is_empty() => Some(Body {
            content_type: "application/x-www-form-urlencoded".into(),
            schema: None,
            fields: form_fields,
            pointer: format!("{pointer}/parameters"),
        }),
        _ => None,
    };
    let (response, response_headers) = success_response(document, operation);
    let security = operation
        .get("security")
        .and_then(Value::as_array)
        .map(|reqs| {
            reqs.iter()
                .filter_map(Value::as_object)
                .flat_map(|r| r.keys().cloned())
                .collect()
        });
    Endpoint {
        document: index,
        method: method.to_ascii_uppercase(),
        path: path.to_owned(),
        pointer,
        operation_id: get_str("operationId").to_owned(),
        tags: operation
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        text: text_of(operation),
        deprecated: operation.get("deprecated") == Some(&Value::Bool(true)),
        params,
        body,
        response,
        response_headers,
        security,
    }
}

enum Parsed<'a> {
    Param(Param<'a>),
    Form(String, &'a Value, bool),
    Body(Schema<'a>),
}

fn parameter<'a>(document: &'a Document, value: &'a Value, pointer: String) -> Option<Parsed<'a>> {
    let name = value.get("name")?.as_str()?.to_owned();
    let required = value.get("required") == Some(&Value::Bool(true));
    let location = match value.get("in")?.as_str()? {
        "query" => Location::Query,
        "path" => Location::Path,
        "header" => Location::Header,
        "cookie" => Location::Cookie,
        "formData" => return Some(Parsed::Form(name, value, required)),
        "body" => {
            let schema = value.get("schema").unwrap_or(&EMPTY);
            return Some(Parsed::Body(Schema::new(document, schema)));
        }
        _ => return None,
    };
    // 2.0 puts the type on the parameter itself; 3.x under `schema`.
    let schema = value.get("schema").unwrap_or(value);
    Some(Parsed::Param(Param {
        name,
        location,
        required,
        style: value
            .get("style")
            .and_then(Value::as_str)
            .map(str::to_owned),
        schema: Schema::new(document, schema),
        text: text_of(value),
        pointer,
    }))
}

fn request_body<'a>(
    document: &'a Document,
    operation: &'a Value,
    pointer: &str,
) -> Option<Body<'a>> {
    let body = Schema::new(document, operation.get("requestBody")?)
        .resolved()
        .value;
    let content = body.get("content")?.as_object()?;
    let (content_type, media) = content
        .iter()
        .find(|(k, _)| k.contains("json"))
        .or_else(|| content.iter().next())?;
    Some(Body {
        content_type: content_type.clone(),
        schema: Some(Schema::new(document, media.get("schema").unwrap_or(&EMPTY))),
        fields: Vec::new(),
        pointer: format!(
            "{pointer}/requestBody/content/{}/schema",
            escape(content_type)
        ),
    })
}

fn success_response<'a>(
    document: &'a Document,
    operation: &'a Value,
) -> (Option<Schema<'a>>, Vec<String>) {
    let Some(Value::Object(responses)) = operation.get("responses") else {
        return (None, Vec::new());
    };
    let mut codes: Vec<&String> = responses.keys().filter(|c| c.starts_with('2')).collect();
    codes.sort();
    let Some(response) = codes.first().and_then(|c| responses.get(*c)) else {
        return (None, Vec::new());
    };
    let response = Schema::new(document, response).resolved().value;
    let headers = response
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default();
    let schema = response.get("schema").or_else(|| {
        let content = response.get("content")?.as_object()?;
        content
            .iter()
            .find(|(k, _)| k.contains("json"))
            .or_else(|| content.iter().next())
            .and_then(|(_, media)| media.get("schema"))
    });
    (schema.map(|s| Schema::new(document, s)), headers)
}
