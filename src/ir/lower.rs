//! OpenAPI document -> protocol model. Every construct the generator cannot honour becomes a
//! diagnostic naming its JSON pointer; lowering goes on so that one run reports them all.

use std::collections::{BTreeMap, BTreeSet};

use openapiv3::{
    AdditionalProperties, IntegerFormat, OpenAPI, Parameter, ParameterSchemaOrContent, ReferenceOr,
    RequestBody, Response, Schema, SchemaKind, StatusCode, StringFormat as OaStringFormat, Type,
    VariantOrUnknownOrEmpty,
};

use super::*;
use crate::diagnostics::Diagnostic;
use crate::names;

const SCHEMAS: &str = "#/components/schemas/";
const PARAMETERS: &str = "#/components/parameters/";
const RESPONSES: &str = "#/components/responses/";
const REQUEST_BODIES: &str = "#/components/requestBodies/";
const MAX_REF_DEPTH: usize = 32;

pub fn lower(doc: &OpenAPI) -> Result<Protocol, Vec<Diagnostic>> {
    let mut lowering = Lowering {
        doc,
        types: BTreeMap::new(),
        in_progress: BTreeSet::new(),
        diagnostics: Vec::new(),
    };
    if !doc.openapi.starts_with("3.0.") {
        lowering.unsupported(
            "#/openapi",
            format!(
                "OpenAPI version `{}` is not supported; expected 3.0.x",
                doc.openapi
            ),
        );
    }
    if let Some(components) = &doc.components {
        for name in components.schemas.keys() {
            lowering.named_type(name);
        }
    }
    let operations = lowering.operations();
    lowering.check_names(&operations);
    // A shared component (`#/components/parameters/Page`) is lowered once per operation using
    // it; report it once, even when other operations' problems come in between.
    let mut seen = Vec::new();
    lowering.diagnostics.retain(|d| {
        let first = !seen.contains(d);
        if first {
            seen.push(d.clone());
        }
        first
    });
    if lowering.diagnostics.is_empty() {
        let mut protocol = Protocol {
            title: doc.info.title.clone(),
            version: doc.info.version.clone(),
            operations,
            types: lowering.types,
            link: None,
        };
        super::initiation::mark(&mut protocol);
        Ok(protocol)
    } else {
        Err(lowering.diagnostics)
    }
}

struct Lowering<'a> {
    doc: &'a OpenAPI,
    types: BTreeMap<String, TypeDef>,
    /// Named schemas being lowered right now, so that recursive schemas terminate.
    in_progress: BTreeSet<String>,
    diagnostics: Vec<Diagnostic>,
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl<'a> Lowering<'a> {
    fn unsupported(&mut self, pointer: &str, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(message).with_pointer(pointer));
    }

    // ---- operations -------------------------------------------------------------------------

    fn operations(&mut self) -> Vec<Operation> {
        let mut operations = Vec::new();
        for (path, item) in &self.doc.paths.paths {
            let pointer = format!("#/paths/{}", escape(path));
            let ReferenceOr::Item(item) = item else {
                self.unsupported(&pointer, "path items given by `$ref` are not supported");
                continue;
            };
            let unsupported_methods = [
                ("head", &item.head),
                ("options", &item.options),
                ("trace", &item.trace),
            ];
            for (method, op) in unsupported_methods {
                if op.is_some() {
                    self.unsupported(
                        &format!("{pointer}/{method}"),
                        format!("HTTP method `{method}` is not supported"),
                    );
                }
            }
            let methods = [
                (Method::Get, "get", &item.get),
                (Method::Post, "post", &item.post),
                (Method::Put, "put", &item.put),
                (Method::Patch, "patch", &item.patch),
                (Method::Delete, "delete", &item.delete),
            ];
            for (method, key, op) in methods {
                if let Some(op) = op {
                    let op_pointer = format!("{pointer}/{key}");
                    let shared = (&item.parameters[..], pointer.as_str());
                    if let Some(lowered) = self.operation(method, path, shared, op, &op_pointer) {
                        operations.push(lowered);
                    }
                }
            }
        }
        operations
    }

    fn operation(
        &mut self,
        method: Method,
        path: &str,
        (shared_params, path_pointer): (&'a [ReferenceOr<Parameter>], &str),
        op: &'a openapiv3::Operation,
        pointer: &str,
    ) -> Option<Operation> {
        let Some(id) = op.operation_id.clone() else {
            self.unsupported(
                pointer,
                "operation has no `operationId`; it names the generated handler method",
            );
            return None;
        };
        let mut params = Vec::new();
        let shared = shared_params
            .iter()
            .enumerate()
            .map(|(i, p)| (p, format!("{path_pointer}/parameters/{i}")));
        let own = op
            .parameters
            .iter()
            .enumerate()
            .map(|(i, p)| (p, format!("{pointer}/parameters/{i}")));
        for (param, param_pointer) in shared.chain(own) {
            if let Some(param) = self.param(param, &param_pointer, &id) {
                params.retain(|p: &Param| !(p.name == param.name && p.location == param.location));
                params.push(param);
            }
        }
        self.check_path_params(path, &params, pointer);
        let body = op
            .request_body
            .as_ref()
            .and_then(|body| self.body(body, &format!("{pointer}/requestBody"), &id));
        let success = self.success(&op.responses, &format!("{pointer}/responses"), &id)?;
        if let Some(default) = &op.responses.default {
            self.check_error_response(default, &format!("{pointer}/responses/default"));
        }
        Some(Operation {
            id,
            method,
            path: path.to_owned(),
            summary: op.summary.clone().or_else(|| op.description.clone()),
            params,
            body,
            success,
            pointer: pointer.to_owned(),
            initiation: None,
        })
    }

    fn check_path_params(&mut self, path: &str, params: &[Param], pointer: &str) {
        let in_template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}'))
            .map(|(name, _)| name)
            .collect();
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p.location == ParamLocation::Path)
            .map(|p| p.name.as_str())
            .collect();
        for missing in in_template.difference(&declared) {
            self.unsupported(
                pointer,
                format!("path template has `{{{missing}}}` but no path parameter `{missing}`"),
            );
        }
        for extra in declared.difference(&in_template) {
            self.unsupported(
                pointer,
                format!("path parameter `{extra}` does not appear in the path `{path}`"),
            );
        }
    }

    fn param(
        &mut self,
        param: &'a ReferenceOr<Parameter>,
        pointer: &str,
        op_id: &str,
    ) -> Option<Param> {
        let (param, pointer) = self.resolve(param, pointer, PARAMETERS, |c| &c.parameters)?;
        let (data, location) = match param {
            Parameter::Query { parameter_data, .. } => (parameter_data, ParamLocation::Query),
            Parameter::Path { parameter_data, .. } => (parameter_data, ParamLocation::Path),
            Parameter::Header { parameter_data, .. } => (parameter_data, ParamLocation::Header),
            Parameter::Cookie { .. } => {
                self.unsupported(&pointer, "cookie parameters are not supported");
                return None;
            }
        };
        let ParameterSchemaOrContent::Schema(schema) = &data.format else {
            self.unsupported(
                &pointer,
                "parameters described by `content` are not supported; use `schema`",
            );
            return None;
        };
        let hint = format!("{}{}", names::pascal(op_id), names::pascal(&data.name));
        let schema_pointer = format!("{pointer}/schema");
        let (shape, _) = self.shape(schema, &schema_pointer, &hint)?;
        if !self.is_scalar(&shape) {
            self.unsupported(
                &schema_pointer,
                format!(
                    "parameter `{}` must be a string, number, integer, boolean or string enum",
                    data.name
                ),
            );
            return None;
        }
        let default = match self.resolve_schema(schema, &schema_pointer) {
            Some((schema, _)) => schema
                .schema_data
                .default
                .as_ref()
                .and_then(|d| self.literal(d, &shape, &schema_pointer)),
            None => None,
        };
        if location == ParamLocation::Path && !data.required {
            self.unsupported(
                &pointer,
                format!("path parameter `{}` must be `required: true`", data.name),
            );
        }
        Some(Param {
            name: data.name.clone(),
            location,
            required: data.required,
            shape,
            default,
            doc: data.description.clone(),
        })
    }

    fn is_scalar(&self, shape: &Shape) -> bool {
        match shape {
            Shape::String(_) | Shape::Integer(_) | Shape::Number(_) | Shape::Boolean => true,
            Shape::Named(name) => match self.types.get(name) {
                Some(TypeDef::Enum(_)) => true,
                Some(TypeDef::Alias(alias)) => self.is_scalar(&alias.shape),
                _ => false,
            },
            _ => false,
        }
    }

    fn literal(
        &mut self,
        value: &serde_json::Value,
        shape: &Shape,
        pointer: &str,
    ) -> Option<Literal> {
        let literal = match (shape, value) {
            (Shape::Integer(_), serde_json::Value::Number(n)) => n.as_i64().map(Literal::Integer),
            (Shape::Number(_), serde_json::Value::Number(n)) => n.as_f64().map(Literal::Number),
            (Shape::Boolean, serde_json::Value::Bool(b)) => Some(Literal::Bool(*b)),
            (Shape::String(_), serde_json::Value::String(s)) => Some(Literal::String(s.clone())),
            (Shape::Named(name), serde_json::Value::String(s)) => match self.types.get(name) {
                Some(TypeDef::Enum(def)) if def.values.contains(s) => {
                    Some(Literal::String(s.clone()))
                }
                Some(TypeDef::Alias(AliasDef {
                    shape: Shape::String(_),
                    ..
                })) => Some(Literal::String(s.clone())),
                _ => None,
            },
            _ => None,
        };
        if literal.is_none() {
            self.unsupported(
                &format!("{pointer}/default"),
                format!("default `{value}` does not match the parameter's type"),
            );
        }
        literal
    }

    fn body(
        &mut self,
        body: &'a ReferenceOr<RequestBody>,
        pointer: &str,
        op_id: &str,
    ) -> Option<Body> {
        let (body, pointer) = self.resolve(body, pointer, REQUEST_BODIES, |c| &c.request_bodies)?;
        let Some(media) = body.content.get("application/json") else {
            self.unsupported(
                &format!("{pointer}/content"),
                "request bodies must have `application/json` content",
            );
            return None;
        };
        let schema_pointer = format!("{pointer}/content/application~1json/schema");
        let Some(schema) = &media.schema else {
            self.unsupported(&schema_pointer, "request body has no schema");
            return None;
        };
        let (shape, _) = self.shape(
            schema,
            &schema_pointer,
            &format!("{}Body", names::pascal(op_id)),
        )?;
        Some(Body {
            required: body.required,
            shape,
        })
    }

    fn success(
        &mut self,
        responses: &'a openapiv3::Responses,
        pointer: &str,
        op_id: &str,
    ) -> Option<Success> {
        let mut successes = responses
            .responses
            .iter()
            .filter_map(|(code, response)| match code {
                StatusCode::Code(code) if (200..300).contains(code) => Some((*code, response)),
                _ => None,
            });
        let Some((status, response)) = successes.next() else {
            self.unsupported(
                pointer,
                "operation has no 2xx response with an exact status code",
            );
            return None;
        };
        if successes.next().is_some() {
            self.unsupported(
                pointer,
                "operations with more than one 2xx response are not supported",
            );
            return None;
        }
        let response_pointer = format!("{pointer}/{status}");
        let (response, response_pointer) =
            self.resolve(response, &response_pointer, RESPONSES, |c| &c.responses)?;
        let shape = self.response_shape(
            response,
            &response_pointer,
            &format!("{}Response", names::pascal(op_id)),
        )?;
        Some(Success { status, shape })
    }

    fn response_shape(
        &mut self,
        response: &Response,
        pointer: &str,
        hint: &str,
    ) -> Option<Option<Shape>> {
        if response.content.is_empty() {
            return Some(None);
        }
        let Some(media) = response.content.get("application/json") else {
            self.unsupported(
                &format!("{pointer}/content"),
                "responses must have `application/json` content",
            );
            return None;
        };
        match &media.schema {
            None => Some(Some(Shape::Any)),
            Some(schema) => {
                let schema_pointer = format!("{pointer}/content/application~1json/schema");
                self.shape(schema, &schema_pointer, hint)
                    .map(|(shape, _)| Some(shape))
            }
        }
    }

    /// The server writes every error as `{Title, Detail}`; a spec asking for another shape
    /// would make those answers lie.
    fn check_error_response(&mut self, response: &'a ReferenceOr<Response>, pointer: &str) {
        let Some((response, pointer)) =
            self.resolve(response, pointer, RESPONSES, |c| &c.responses)
        else {
            return;
        };
        let Some(schema) = response
            .content
            .get("application/json")
            .and_then(|media| media.schema.as_ref())
        else {
            return;
        };
        let schema_pointer = format!("{pointer}/content/application~1json/schema");
        if !self
            .resolve_schema(schema, &schema_pointer)
            .is_some_and(|(schema, _)| is_title_detail(&schema))
        {
            self.unsupported(
                &schema_pointer,
                "error responses must be an object with string `Title` and `Detail`",
            );
        }
    }

    // ---- schemas ----------------------------------------------------------------------------

    /// Lowers a component schema into `types` (once) and returns its name.
    fn named_type(&mut self, name: &str) -> Option<()> {
        if self.types.contains_key(name) || self.in_progress.contains(name) {
            return Some(());
        }
        let components = self.doc.components.as_ref()?;
        let schema = components.schemas.get(name)?;
        let pointer = format!("{SCHEMAS}{}", escape(name));
        self.in_progress.insert(name.to_owned());
        let def = match schema {
            ReferenceOr::Reference { .. } => {
                self.shape(schema, &pointer, name).map(|(shape, nullable)| {
                    TypeDef::Alias(AliasDef {
                        doc: None,
                        shape,
                        nullable,
                    })
                })
            }
            ReferenceOr::Item(schema) => self.type_def(schema, &pointer, name),
        };
        self.in_progress.remove(name);
        self.types.insert(name.to_owned(), def?);
        Some(())
    }

    fn type_def(&mut self, schema: &Schema, pointer: &str, name: &str) -> Option<TypeDef> {
        let doc = schema.schema_data.description.clone();
        match &schema.schema_kind {
            SchemaKind::Type(Type::String(s)) if !s.enumeration.is_empty() => {
                let values: Vec<String> = s.enumeration.iter().flatten().cloned().collect();
                self.check_enum(&values, pointer);
                Some(TypeDef::Enum(EnumDef { doc, values }))
            }
            SchemaKind::Type(Type::Object(object)) if !object.properties.is_empty() => {
                let closed = matches!(
                    object.additional_properties,
                    Some(AdditionalProperties::Any(false))
                );
                if matches!(
                    object.additional_properties,
                    Some(AdditionalProperties::Schema(_))
                ) {
                    self.unsupported(
                        &format!("{pointer}/additionalProperties"),
                        "objects with both `properties` and typed `additionalProperties` are not supported",
                    );
                }
                let mut fields = Vec::new();
                for (field_name, field_schema) in &object.properties {
                    let field_pointer = format!("{pointer}/properties/{}", escape(field_name));
                    let hint = format!("{name}{}", names::pascal(field_name));
                    let schema = unbox(field_schema);
                    if let Some((shape, nullable)) = self.shape(&schema, &field_pointer, &hint) {
                        let doc = self
                            .resolve_schema(&schema, &field_pointer)
                            .and_then(|(s, _)| s.schema_data.description.clone());
                        fields.push(Field {
                            name: field_name.clone(),
                            shape,
                            required: object.required.contains(field_name),
                            nullable,
                            doc,
                        });
                    }
                }
                for required in &object.required {
                    if !object.properties.contains_key(required) {
                        self.unsupported(
                            &format!("{pointer}/required"),
                            format!("required property `{required}` is not defined"),
                        );
                    }
                }
                self.check_field_names(&fields, pointer);
                Some(TypeDef::Object(ObjectDef {
                    doc,
                    fields,
                    closed,
                }))
            }
            _ => {
                let shape = self.inline_shape(schema, pointer, name)?;
                Some(TypeDef::Alias(AliasDef {
                    doc,
                    shape,
                    nullable: schema.schema_data.nullable,
                }))
            }
        }
    }

    /// The shape of a schema used somewhere, and whether `null` is allowed there.
    fn shape(
        &mut self,
        schema: &ReferenceOr<Schema>,
        pointer: &str,
        hint: &str,
    ) -> Option<(Shape, bool)> {
        match schema {
            ReferenceOr::Reference { reference } => {
                let Some(name) = reference
                    .strip_prefix(SCHEMAS)
                    .filter(|n| self.component_schema(n).is_some())
                else {
                    self.unsupported(
                        pointer,
                        format!("`$ref: {reference}` does not name a schema under {SCHEMAS}"),
                    );
                    return None;
                };
                let name = name.to_owned();
                self.named_type(&name)?;
                let nullable = self
                    .resolve_schema(schema, pointer)
                    .is_some_and(|(s, _)| s.schema_data.nullable);
                Some((Shape::Named(name), nullable))
            }
            ReferenceOr::Item(item) => {
                let nullable = item.schema_data.nullable;
                let needs_name = match &item.schema_kind {
                    SchemaKind::Type(Type::String(s)) => !s.enumeration.is_empty(),
                    SchemaKind::Type(Type::Object(o)) => !o.properties.is_empty(),
                    _ => false,
                };
                if !needs_name {
                    return self
                        .inline_shape(item, pointer, hint)
                        .map(|shape| (shape, nullable));
                }
                if self.types.contains_key(hint) || self.in_progress.contains(hint) {
                    self.unsupported(
                        pointer,
                        format!("inline schema would be named `{hint}`, which is already taken"),
                    );
                    return None;
                }
                self.in_progress.insert(hint.to_owned());
                let def = self.type_def(item, pointer, hint);
                self.in_progress.remove(hint);
                self.types.insert(hint.to_owned(), def?);
                Some((Shape::Named(hint.to_owned()), nullable))
            }
        }
    }

    /// Shapes that need no name of their own: scalars, arrays, maps.
    fn inline_shape(&mut self, schema: &Schema, pointer: &str, hint: &str) -> Option<Shape> {
        match &schema.schema_kind {
            SchemaKind::Type(Type::String(s)) => {
                if s.pattern.is_some() {
                    self.unsupported(
                        &format!("{pointer}/pattern"),
                        "`pattern` constraints are not supported",
                    );
                }
                if !s.enumeration.is_empty() {
                    return self
                        .shape(&ReferenceOr::Item(schema.clone()), pointer, hint)
                        .map(|(shape, _)| shape);
                }
                let format = match &s.format {
                    VariantOrUnknownOrEmpty::Item(OaStringFormat::DateTime) => {
                        StringFormat::DateTime
                    }
                    VariantOrUnknownOrEmpty::Item(OaStringFormat::Date) => StringFormat::Date,
                    _ => StringFormat::Plain,
                };
                Some(Shape::String(StringShape {
                    format,
                    min_length: s.min_length,
                    max_length: s.max_length,
                }))
            }
            SchemaKind::Type(Type::Integer(i)) => {
                if !i.enumeration.is_empty() || i.multiple_of.is_some() {
                    self.unsupported(pointer, "integer `enum` and `multipleOf` are not supported");
                }
                let bits = match &i.format {
                    VariantOrUnknownOrEmpty::Item(IntegerFormat::Int32) => IntegerBits::I32,
                    _ => IntegerBits::I64,
                };
                let minimum = i.minimum.map(|m| {
                    if i.exclusive_minimum {
                        m.saturating_add(1)
                    } else {
                        m
                    }
                });
                let maximum = i.maximum.map(|m| {
                    if i.exclusive_maximum {
                        m.saturating_sub(1)
                    } else {
                        m
                    }
                });
                Some(Shape::Integer(IntegerShape {
                    bits,
                    minimum,
                    maximum,
                }))
            }
            SchemaKind::Type(Type::Number(n)) => {
                if !n.enumeration.is_empty() || n.multiple_of.is_some() {
                    self.unsupported(pointer, "number `enum` and `multipleOf` are not supported");
                }
                let bound =
                    |value: Option<f64>, exclusive| value.map(|value| Bound { value, exclusive });
                Some(Shape::Number(NumberShape {
                    minimum: bound(n.minimum, n.exclusive_minimum),
                    maximum: bound(n.maximum, n.exclusive_maximum),
                }))
            }
            SchemaKind::Type(Type::Boolean(_)) => Some(Shape::Boolean),
            SchemaKind::Type(Type::Array(a)) => {
                if a.unique_items {
                    self.unsupported(pointer, "`uniqueItems` is not supported");
                }
                let items = match &a.items {
                    Some(items) => {
                        self.shape(
                            &unbox(items),
                            &format!("{pointer}/items"),
                            &format!("{hint}Item"),
                        )?
                        .0
                    }
                    None => Shape::Any,
                };
                Some(Shape::Array(ArrayShape {
                    items: Box::new(items),
                    min_items: a.min_items,
                    max_items: a.max_items,
                }))
            }
            SchemaKind::Type(Type::Object(o)) if o.properties.is_empty() => {
                match &o.additional_properties {
                    Some(AdditionalProperties::Schema(values)) => {
                        let pointer = format!("{pointer}/additionalProperties");
                        let (values, _) = self.shape(values, &pointer, &format!("{hint}Value"))?;
                        Some(Shape::Map(Box::new(values)))
                    }
                    _ => Some(Shape::Map(Box::new(Shape::Any))),
                }
            }
            SchemaKind::Type(Type::Object(_)) => self
                .shape(&ReferenceOr::Item(schema.clone()), pointer, hint)
                .map(|(shape, _)| shape),
            SchemaKind::OneOf { .. }
            | SchemaKind::AnyOf { .. }
            | SchemaKind::AllOf { .. }
            | SchemaKind::Not { .. } => {
                self.unsupported(
                    pointer,
                    "`oneOf`, `anyOf`, `allOf` and `not` are not supported",
                );
                None
            }
            SchemaKind::Any(any) if *any == openapiv3::AnySchema::default() => Some(Shape::Any),
            // openapiv3 reads `oneOf` & co. mixed with other keywords as an untyped schema.
            SchemaKind::Any(any)
                if !(any.one_of.is_empty() && any.any_of.is_empty() && any.all_of.is_empty())
                    || any.not.is_some() =>
            {
                self.unsupported(
                    pointer,
                    "`oneOf`, `anyOf`, `allOf` and `not` are not supported",
                );
                None
            }
            SchemaKind::Any(any) => {
                let found = any
                    .typ
                    .as_deref()
                    .map_or("no `type`".to_owned(), |t| format!("`type: {t}`"));
                self.unsupported(
                    pointer,
                    format!("schema with {found} and these keywords is not supported"),
                );
                None
            }
        }
    }

    fn check_enum(&mut self, values: &[String], pointer: &str) {
        let mut seen = BTreeMap::new();
        for value in values {
            if let Some(previous) = seen.insert(names::pascal(value), value) {
                self.unsupported(
                    pointer,
                    format!("enum values `{previous}` and `{value}` map to the same Rust name"),
                );
            }
        }
    }

    fn check_field_names(&mut self, fields: &[Field], pointer: &str) {
        let mut seen = BTreeMap::new();
        for field in fields {
            if let Some(previous) = seen.insert(names::snake(&field.name), &field.name) {
                self.unsupported(
                    pointer,
                    format!(
                        "properties `{previous}` and `{}` map to the same Rust name",
                        field.name
                    ),
                );
            }
        }
    }

    fn check_names(&mut self, operations: &[Operation]) {
        let mut seen: BTreeMap<String, &Operation> = BTreeMap::new();
        for op in operations {
            if let Some(previous) = seen.insert(names::snake(&op.id), op) {
                self.unsupported(
                    &op.pointer,
                    format!(
                        "operationId `{}` clashes with `{}` at {}",
                        op.id, previous.id, previous.pointer
                    ),
                );
            }
        }
        let mut type_names: BTreeMap<String, &String> = BTreeMap::new();
        for name in self.types.keys() {
            if let Some(previous) = type_names.insert(names::pascal(name), name) {
                self.diagnostics.push(
                    Diagnostic::error(format!(
                        "schemas `{previous}` and `{name}` map to the same Rust type name"
                    ))
                    .with_pointer(format!("{SCHEMAS}{}", escape(name))),
                );
            }
        }
    }

    // ---- references -------------------------------------------------------------------------

    fn component_schema(&self, name: &str) -> Option<&'a ReferenceOr<Schema>> {
        self.doc.components.as_ref()?.schemas.get(name)
    }

    /// Follows `$ref`s to the schema itself.
    fn resolve_schema(
        &self,
        schema: &ReferenceOr<Schema>,
        pointer: &str,
    ) -> Option<(Schema, String)> {
        let mut current = schema.clone();
        let mut pointer = pointer.to_owned();
        for _ in 0..MAX_REF_DEPTH {
            match current {
                ReferenceOr::Item(schema) => return Some((schema, pointer)),
                ReferenceOr::Reference { reference } => {
                    let name = reference.strip_prefix(SCHEMAS)?;
                    current = self.component_schema(name)?.clone();
                    pointer = reference;
                }
            }
        }
        None
    }

    /// Follows `$ref`s of parameters, responses and request bodies into `components`.
    fn resolve<T>(
        &mut self,
        item: &'a ReferenceOr<T>,
        pointer: &str,
        prefix: &str,
        section: impl Fn(&'a openapiv3::Components) -> &'a indexmap::IndexMap<String, ReferenceOr<T>>,
    ) -> Option<(&'a T, String)> {
        let mut current = item;
        let mut pointer = pointer.to_owned();
        for _ in 0..MAX_REF_DEPTH {
            match current {
                ReferenceOr::Item(item) => return Some((item, pointer)),
                ReferenceOr::Reference { reference } => {
                    let target = reference.strip_prefix(prefix).and_then(|name| {
                        self.doc
                            .components
                            .as_ref()
                            .and_then(|c| section(c).get(name))
                    });
                    let Some(target) = target else {
                        self.unsupported(
                            &pointer,
                            format!("`$ref: {reference}` does not name an entry under {prefix}"),
                        );
                        return None;
                    };
                    current = target;
                    pointer = reference.clone();
                }
            }
        }
        self.unsupported(&pointer, "`$ref` chain is too long or circular");
        None
    }
}

fn is_title_detail(schema: &Schema) -> bool {
    let SchemaKind::Type(Type::Object(object)) = &schema.schema_kind else {
        return false;
    };
    let is_string = |key: &str| matches!(object.properties.get(key), Some(ReferenceOr::Item(s)) if matches!(s.schema_kind, SchemaKind::Type(Type::String(_))));
    is_string("Title")
        && is_string("Detail")
        && object
            .required
            .iter()
            .all(|r| r == "Title" || r == "Detail")
}

fn unbox(schema: &ReferenceOr<Box<Schema>>) -> ReferenceOr<Schema> {
    match schema {
        ReferenceOr::Reference { reference } => ReferenceOr::Reference {
            reference: reference.clone(),
        },
        ReferenceOr::Item(schema) => ReferenceOr::Item((**schema).clone()),
    }
}
