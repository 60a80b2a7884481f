//! The mapping checked against what it refers to: the protocol model (operations, fields,
//! enum values, parameters) and the generated crate (dependencies). Every problem is reported.

use super::{
    Conversion, Expr, FieldMapping, Mapping, OperationMapping, RequestTemplate, Source, Span,
    Template, TemplatePart,
};
use crate::diagnostics::{Diagnostic, closest, did_you_mean};
use crate::ir::{ObjectDef, Operation, ParamLocation, Protocol, Shape, StringFormat, TypeDef};
use crate::plan::{runtime_dependencies, same_release_series};

/// Every problem the mapping has beyond its own syntax: errors, then warnings.
pub fn validate(mapping: &Mapping, protocol: &Protocol, file: &str) -> Vec<Diagnostic> {
    let mut check = Checker {
        protocol,
        file,
        found: Vec::new(),
    };
    let runtime = runtime_dependencies();
    for (name, dependency) in &mapping.dependencies {
        let Some(known) = runtime.iter().find(|known| &known.name == name) else {
            continue;
        };
        if !known.optional {
            let diagnostic = check
                .error(
                    &dependency.span,
                    format!("`{name}` is already a dependency of every generated connector"),
                )
                .with_help(format!(
                    "remove it from `dependencies`; the generated crate's `{name}` is yours to use"
                ));
            check.found.push(diagnostic);
        } else if !same_release_series(&dependency.version, &known.version) {
            let diagnostic = check
                .error(
                    &dependency.span,
                    format!(
                        "the connector runtime uses `{name}` {}, not {}",
                        known.version, dependency.version
                    ),
                )
                .with_help(format!(
                    "write `version: \"{}\"`; your features are added to the runtime's",
                    known.version
                ));
            check.found.push(diagnostic);
        }
    }
    for (id, operation) in &mapping.operations {
        check.operation(id, operation);
        check.list_sources(id, operation, &mapping.operations);
    }
    check
        .found
        .sort_by_key(|d| (!d.is_error(), d.location.as_ref().map(|l| l.span.start)));
    check.found
}

struct Checker<'a> {
    protocol: &'a Protocol,
    file: &'a str,
    found: Vec<Diagnostic>,
}

/// A record or an element mapped with `each`; `params` are the protocol request's.
struct Scope<'a> {
    operation: &'a Operation,
    /// Whether the operation is fanned out over a parent list (`parent:` has a record).
    fanned_out: bool,
}

impl<'a> Checker<'a> {
    fn error(&self, span: &Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message).at(self.file, span.clone())
    }

    fn warning(&self, span: &Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::warning(message).at(self.file, span.clone())
    }

    fn push_with_suggestion<'c>(
        &mut self,
        mut diagnostic: Diagnostic,
        word: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) {
        if let Some(help) = did_you_mean(word, candidates) {
            diagnostic = diagnostic.with_help(help);
        }
        self.found.push(diagnostic);
    }

    fn operation(&mut self, id: &str, mapping: &OperationMapping) {
        for (text, span) in &mapping.todo {
            let diagnostic = self
                .warning(span, format!("todo in `{id}`: {text}"))
                .with_help("finish it, then remove the entry from `todo`");
            self.found.push(diagnostic);
        }
        let Some(operation) = self.protocol.operation(id) else {
            let diagnostic = self.error(
                &mapping.span,
                format!("the protocol has no operation `{id}`"),
            );
            let ids: Vec<&str> = self
                .protocol
                .operations
                .iter()
                .map(|op| op.id.as_str())
                .collect();
            self.push_with_suggestion(diagnostic, id, ids);
            return;
        };
        if operation.initiation.is_some() {
            self.initiation(id, operation, mapping);
            return;
        }
        if let Some(initiation) = &mapping.initiation {
            let diagnostic = self
                .error(&initiation.span, format!("`{id}` does not initiate a payment: `body`, `idempotency_key` and `lookup` do not apply"))
                .with_help("remove them; they are for payouts and transfers");
            self.found.push(diagnostic);
            return;
        }
        if operation.body.is_some() {
            let diagnostic = self
                .error(&mapping.span, format!("`{id}` takes a request body; mapping it declaratively is not supported yet"))
                .with_help("implement it in src/handlers.rs with `ctx.upstream()`, and remove it from `operations`");
            self.found.push(diagnostic);
            return;
        }
        self.initiation_sources(id, operation, mapping);
        let scope = Scope {
            operation,
            fanned_out: mapping.for_each.is_some(),
        };
        if mapping.from_list.is_none() {
            self.request_params(&mapping.request, &scope);
        }
        // The first request of a union is `request`, checked above.
        for member in mapping.union.iter().skip(1) {
            self.request_params(&member.request, &scope);
        }
        if let Some(first) = mapping.union.first()
            && mapping.list.is_none()
        {
            let diagnostic = self
                .error(
                    &first.span,
                    format!("`{id}` answers one object: a `union` of lists does not apply"),
                )
                .with_help(
                    "a `union` serves the records of several provider lists as one protocol list",
                );
            self.found.push(diagnostic);
        }
        let (target, is_list) = match &operation.success.shape {
            Some(Shape::Array(array)) => (self.protocol.object(&array.items), true),
            Some(shape) => (self.protocol.object(shape), false),
            None => (None, false),
        };
        let Some(target) = target else {
            let diagnostic = self.error(
                &mapping.span,
                format!("`{id}` does not answer with an object or a list of objects"),
            );
            self.found.push(diagnostic);
            return;
        };
        match (&mapping.list, is_list) {
            (None, true) => {
                let diagnostic = self
                    .error(&mapping.span, format!("`{id}` answers a list: say where the records are and how the provider orders them"))
                    .with_help("add `records: data` (the path to the array) and `order: oldest_first | newest_first | unordered`");
                self.found.push(diagnostic);
            }
            (Some(list), false) => {
                let diagnostic = self
                    .error(&list.span, format!("`{id}` answers a single object: `records`, `paging`, `order` and `since` do not apply"))
                    .with_help("use `record: path` to say where the object is in the response");
                self.found.push(diagnostic);
            }
            (Some(list), true) => {
                if let Some(since) = &list.since
                    && !operation.params.iter().any(|p| p.name.ends_with("AtFrom"))
                {
                    let diagnostic = self
                        .error(
                            &since.span,
                            format!(
                                "`{id}` has no time filter to translate into `{}`",
                                since.param
                            ),
                        )
                        .with_help(format!(
                            "remove `since`: the protocol's `{id}` takes no `createdAtFrom` or `updatedAtFrom`"
                        ));
                    self.found.push(diagnostic);
                }
            }
            (None, false) => {}
        }
        self.fields(&mapping.span, &mapping.fields, target, &scope, id, &[]);
    }

    /// A payout or transfer: the provider body from the request's fields, the answer mapped
    /// onto the created object, and a way to recover a crashed attempt without paying twice.
    fn initiation(&mut self, id: &str, operation: &Operation, mapping: &OperationMapping) {
        let Some(initiation) = &mapping.initiation else {
            let diagnostic = self
                .error(&mapping.span, format!("`{id}` initiates a payment: say how the provider's request body is built"))
                .with_help("add `body:` with the provider's fields, e.g. `amount: { path: amount, amount: { currency: currency, format: decimal } }`, and `idempotency_key: { header: Idempotency-Key }` if the provider takes one");
            self.found.push(diagnostic);
            return;
        };
        let Some((request_name, request)) = operation
            .body
            .as_ref()
            .and_then(|b| self.protocol.object(&b.shape))
        else {
            return;
        };
        if let Some(list) = &mapping.list {
            let diagnostic = self.error(&list.span, format!("`{id}` answers a single object: `records`, `paging`, `order` and `since` do not apply"));
            self.found.push(diagnostic);
        }
        // `providerKey`: the key as the provider takes it (Formance's, unless reshaped).
        let mut request_fields: Vec<&str> = request
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .chain(["providerKey"])
            .collect();
        // Each step reads the request and the steps before it; what follows reads them all.
        for step in &initiation.steps {
            self.request_template_fields(&step.request, request_name, &request_fields);
            if request_fields.contains(&step.name.as_str()) {
                let diagnostic = self
                    .error(
                        &step.name_span,
                        format!(
                            "step name `{}` is already a value of `{request_name}`",
                            step.name
                        ),
                    )
                    .with_help("name the step after what it fetches, e.g. `wallet` or `quote`");
                self.found.push(diagnostic);
            } else {
                request_fields.push(&step.name);
            }
        }
        let lookup = initiation.lookup.iter().map(|lookup| &lookup.request);
        // An initiation's placeholders name its request body's fields.
        for template in std::iter::once(&mapping.request).chain(lookup) {
            self.request_template_fields(template, request_name, &request_fields);
        }
        for field in &initiation.body {
            self.body_value(&field.value, request_name, &request_fields);
        }
        if let Some(target) = operation
            .success
            .shape
            .as_ref()
            .and_then(|s| self.protocol.object(s))
        {
            let key_field = operation.initiation.as_ref().map(|i| i.key_field.as_str());
            if let Some(mapped_key) = mapping
                .fields
                .iter()
                .find(|m| Some(m.field.as_str()) == key_field)
            {
                let diagnostic = self
                    .error(
                        &mapped_key.span,
                        format!(
                            "`{}` is the request's own key, echoed exactly; it cannot be mapped",
                            mapped_key.field
                        ),
                    )
                    .with_help(format!("remove `{}` from `fields`", mapped_key.field));
                self.found.push(diagnostic);
            }
            let scope = Scope {
                operation,
                fanned_out: false,
            };
            let mapped: Vec<FieldMapping> = mapping
                .fields
                .iter()
                .filter(|m| Some(m.field.as_str()) != key_field)
                .cloned()
                .collect();
            // Fields the request has are echoed when not mapped.
            self.fields(&mapping.span, &mapped, target, &scope, id, &request_fields);
        }
        if initiation.idempotency_key.is_none() && initiation.lookup.is_none() {
            let diagnostic = self
                .warning(&initiation.span, format!("`{id}` can pay twice: the provider is given no idempotency key and there is no `lookup`"))
                .with_help("if the connector stops after the provider accepted a payment and before its answer is stored, the retry cannot tell and pays again; add `idempotency_key: { header: Idempotency-Key }` (or `{ body: field }`) if the provider takes one, or `lookup:` with a request that finds the payment by the key you send it (e.g. `query: { reference: \"{idempotencyKey}\" }`)");
            self.found.push(diagnostic);
        }
    }

    /// An initiation's request template reads fields of the protocol request (and steps).
    fn request_template_fields(
        &mut self,
        template: &RequestTemplate,
        request_name: &str,
        fields: &[&str],
    ) {
        let names = placeholders(template)
            .into_iter()
            .chain(value_placeholders(template));
        for (name, span) in names {
            self.request_field(&span, &name, request_name, fields);
        }
    }

    fn request_field(&mut self, span: &Span, name: &str, request_name: &str, fields: &[&str]) {
        if !fields.contains(&name) {
            let diagnostic = self.error(span, format!("`{request_name}` has no field `{name}`"));
            self.push_with_suggestion(diagnostic, name, fields.iter().copied());
        }
    }

    /// A provider body value: read from the protocol request, written as the provider wants.
    fn body_value(&mut self, expr: &Expr, request_name: &str, fields: &[&str]) {
        match &expr.source {
            Source::Path(path) => {
                if let Some(super::Step::Key(first)) = path.steps.first() {
                    self.request_field(&expr.value_span, first, request_name, fields);
                }
            }
            Source::Template(template) => {
                for part in &template.parts {
                    if let TemplatePart::Value(path) = part
                        && let Some(super::Step::Key(first)) = path.steps.first()
                    {
                        self.request_field(&template.span, first, request_name, fields);
                    }
                }
            }
            Source::FirstOf(options) => {
                for option in options {
                    self.body_value(option, request_name, fields);
                }
            }
            Source::Const(_) | Source::Now => {}
            _ => {
                let diagnostic = self
                    .error(&expr.source_span, "a provider body value comes from `path`, `const`, `template`, `first_of` or `now`")
                    .with_help(format!("`path` reads a field of `{request_name}`, e.g. `path: amount`"));
                self.found.push(diagnostic);
            }
        }
        match &expr.conversion {
            Some(Conversion::Amount { currency, .. }) => {
                self.body_value(currency, request_name, fields)
            }
            Some(Conversion::Enum { .. }) => {
                let span = expr.conversion_span.as_ref().unwrap_or(&expr.span);
                let diagnostic = self
                    .error(
                        span,
                        "only `amount`, `currency` and `time` convert protocol values for the provider",
                    )
                    .with_help("write the provider's values with `const`, or a `template`");
                self.found.push(diagnostic);
            }
            _ => {}
        }
    }

    /// `initiation:` names the provider's reference of an initiated payment: only in the list
    /// that links transactions to initiations, and only for its related field.
    fn initiation_sources(&mut self, id: &str, operation: &Operation, mapping: &OperationMapping) {
        let link = self
            .protocol
            .link
            .as_ref()
            .filter(|link| link.operation == operation.id);
        for field in &mapping.fields {
            if !matches!(field.value.source, Source::Initiation(_)) {
                continue;
            }
            if link.is_some_and(|link| link.related_field == field.field) {
                continue;
            }
            let help = match &self.protocol.link {
                Some(link) => format!(
                    "use it as `{}: {{ initiation: PATH }}` in `{}`",
                    link.related_field, link.operation
                ),
                None => {
                    "the protocol has no list that links transactions to initiations".to_owned()
                }
            };
            let diagnostic = self
                .error(
                    &field.value.source_span,
                    format!("`initiation` does not apply to `{}` of `{id}`", field.field),
                )
                .with_help(help);
            self.found.push(diagnostic);
        }
    }

    fn request_params(&mut self, request: &RequestTemplate, scope: &Scope) {
        let names = placeholders(request);
        for (name, span) in &names {
            self.param(span, name, scope);
        }
        for (_, span) in value_placeholders(request) {
            let diagnostic = self
                .error(&span, "a request placeholder is a parameter (`{accountId}`) or, in a fan-out, the parent's value (`{parent.id}`)")
                .with_help("dotted placeholders read a payment's `steps`, which lists do not have");
            self.found.push(diagnostic);
        }
        if !scope.fanned_out {
            for span in parent_placeholders(request) {
                self.not_fanned_out(&span, &scope.operation.id);
            }
        }
        let params: Vec<&str> = scope
            .operation
            .params
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        // A misspelt placeholder was reported with this parameter as its fix.
        let meant: Vec<&str> = names
            .iter()
            .filter(|(name, _)| !params.contains(&name.as_str()))
            .filter_map(|(name, _)| closest(name, params.iter().copied()))
            .collect();
        for param in &scope.operation.params {
            if param.location == ParamLocation::Path
                && !names.iter().any(|(n, _)| *n == param.name)
                && !meant.contains(&param.name.as_str())
            {
                let diagnostic = self
                    .warning(
                        &request.path.span,
                        format!(
                            "`{}` never sends its `{}` parameter to the provider: every request gets the same answer",
                            scope.operation.id, param.name
                        ),
                    )
                    .with_help(format!(
                        "put `{{{}}}` in `request.path`, or in a `request.query` or `request.headers` value",
                        param.name
                    ));
                self.found.push(diagnostic);
            }
        }
    }

    fn not_fanned_out(&mut self, span: &Span, id: &str) {
        let diagnostic = self
            .error(span, format!("`{id}` has no parent record: `parent` is for lists fanned out with `for_each`"))
            .with_help("add `for_each: OPERATION` (the list whose every record the request is sent for), or read the record itself");
        self.found.push(diagnostic);
    }

    /// `for_each` and `from_list` name mapped list operations, never in a loop, whose
    /// requests do not depend on a protocol request they are walked without.
    fn list_sources(
        &mut self,
        id: &str,
        mapping: &OperationMapping,
        all: &std::collections::BTreeMap<String, OperationMapping>,
    ) {
        let Some(operation) = self.protocol.operation(id) else {
            return;
        };
        if let Some(for_each) = &mapping.for_each {
            if mapping.list.is_none() {
                let diagnostic = self
                    .error(
                        &for_each.span,
                        format!("`{id}` is not a list: `for_each` does not apply"),
                    )
                    .with_help(
                        "`for_each` walks a list's request once for every record of another list",
                    );
                self.found.push(diagnostic);
            }
            match &for_each.parent {
                super::ParentList::Operation { id: parent, span } => {
                    self.listed_operation(parent, span, id, all, "`for_each`");
                    let mut seen = vec![id];
                    let mut next = Some(parent.as_str());
                    while let Some(current) = next {
                        if seen.contains(&current) {
                            let diagnostic = self
                                .error(span, format!("`{id}` is fanned out over itself, through `{current}`"))
                                .with_help("a list's parents come from another list that does not depend on it");
                            self.found.push(diagnostic);
                            break;
                        }
                        seen.push(current);
                        next = all
                            .get(current)
                            .and_then(|m| m.for_each.as_ref())
                            .and_then(|f| match &f.parent {
                                super::ParentList::Operation { id, .. } => Some(id.as_str()),
                                super::ParentList::Inline(_) => None,
                            });
                    }
                }
                super::ParentList::Inline(list) => {
                    for (name, span) in placeholders(&list.request) {
                        let diagnostic = self
                            .error(&span, format!("`{{{name}}}`: a `for_each` list is walked without a protocol request, so it has no parameters"));
                        self.found.push(diagnostic);
                    }
                }
            }
        }
        if let Some(from_list) = &mapping.from_list {
            if mapping.list.is_some() {
                let diagnostic = self.error(
                    &from_list.span,
                    format!("`{id}` is a list: `from_list` is for operations answering one object"),
                );
                self.found.push(diagnostic);
            }
            self.listed_operation(
                &from_list.list,
                &from_list.list_span,
                id,
                all,
                "`from_list`",
            );
            let scope = Scope {
                operation,
                fanned_out: false,
            };
            for (_, template) in &from_list.matches {
                for part in &template.parts {
                    match part {
                        TemplatePart::Param(name) => {
                            self.param(&placeholder(template, name), name, &scope)
                        }
                        TemplatePart::Parent(_) => self.not_fanned_out(&template.span, id),
                        _ => {}
                    }
                }
            }
        }
    }

    /// `parent` names a mapped list whose request needs no protocol parameters.
    fn listed_operation(
        &mut self,
        parent: &str,
        span: &Span,
        id: &str,
        all: &std::collections::BTreeMap<String, OperationMapping>,
        what: &str,
    ) {
        let Some(mapping) = all.get(parent) else {
            let diagnostic = self.error(
                span,
                format!("{what} names `{parent}`, which connector.yaml does not map"),
            );
            let lists: Vec<&str> = all
                .iter()
                .filter(|(_, m)| m.list.is_some())
                .map(|(name, _)| name.as_str())
                .collect();
            self.push_with_suggestion(diagnostic, parent, lists);
            return;
        };
        if mapping.list.is_none() {
            let diagnostic = self
                .error(
                    span,
                    format!("{what} names `{parent}`, which is not a list"),
                )
                .with_help("name a mapped list operation, such as `getAccounts`");
            self.found.push(diagnostic);
            return;
        }
        if parent == id && what == "`from_list`" {
            return;
        }
        for (name, place) in placeholders(&mapping.request) {
            let diagnostic = self
                .error(&place, format!("`{parent}` is walked for `{id}` without a protocol request, so its request cannot use `{{{name}}}`"))
                .with_help("send the parameter only in operations Formance calls directly");
            self.found.push(diagnostic);
        }
    }

    fn param(&mut self, span: &Span, name: &str, scope: &Scope) {
        let params: Vec<&str> = scope
            .operation
            .params
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        if !params.contains(&name) {
            let diagnostic = self.error(
                span,
                format!("`{}` has no parameter `{name}`", scope.operation.id),
            );
            self.push_with_suggestion(diagnostic, name, params);
        }
    }

    fn fields(
        &mut self,
        span: &Span,
        fields: &[FieldMapping],
        (type_name, object): (&str, &ObjectDef),
        scope: &Scope,
        what: &str,
        provided: &[&str],
    ) {
        let names: Vec<&str> = object.fields.iter().map(|f| f.name.as_str()).collect();
        for mapping in fields {
            match object.fields.iter().find(|f| f.name == mapping.field) {
                Some(field) => self.expr(
                    &mapping.value,
                    &field.shape,
                    &field.name,
                    scope,
                    &mapping.span,
                ),
                None => {
                    let diagnostic = self.error(
                        &mapping.span,
                        format!("`{type_name}` has no field `{}`", mapping.field),
                    );
                    self.push_with_suggestion(diagnostic, &mapping.field, names.iter().copied());
                }
            }
        }
        // A misspelt field was reported with the field it was meant as: not "never set" too.
        let meant: Vec<&str> = fields
            .iter()
            .filter(|m| !names.contains(&m.field.as_str()))
            .filter_map(|m| closest(&m.field, names.iter().copied()))
            .collect();
        for field in object.fields.iter().filter(|f| f.required) {
            if !fields.iter().any(|m| m.field == field.name)
                && !provided.contains(&field.name.as_str())
                && !meant.contains(&field.name.as_str())
            {
                let diagnostic = self
                    .error(
                        span,
                        format!(
                            "`{what}` never sets `{}`, which the protocol requires",
                            field.name
                        ),
                    )
                    .with_help(format!("add `{}: ...` under `fields`", field.name));
                self.found.push(diagnostic);
            }
        }
    }

    /// `key` is the field's key, where a missing conversion is reported.
    fn expr(&mut self, expr: &Expr, shape: &Shape, field: &str, scope: &Scope, key: &Span) {
        self.params(expr, scope);
        match &expr.source {
            Source::Switch {
                on, cases, default, ..
            } => {
                self.params(on, scope);
                if let Some(span) = &on.conversion_span {
                    let diagnostic = self
                        .error(
                            span,
                            "the value a `switch` is `on` is compared as text; it is not converted",
                        )
                        .with_help("convert in the cases instead");
                    self.found.push(diagnostic);
                }
                for case in cases.iter().map(|(_, case)| case).chain(default.as_deref()) {
                    let mut case = case.clone();
                    if case.conversion.is_none() {
                        case.conversion = expr.conversion.clone();
                        case.conversion_span = expr.conversion_span.clone();
                    }
                    self.expr(&case, shape, field, scope, key);
                }
                return;
            }
            Source::Absent => {
                let required = scope_field_required(self.protocol, scope, field);
                if required {
                    let diagnostic = self
                        .error(
                            &expr.source_span,
                            format!("`{field}` is required by the protocol; it cannot be absent"),
                        )
                        .with_help("give it a value in every case, or a `default`");
                    self.found.push(diagnostic);
                }
                return;
            }
            Source::Parent(_) if !scope.fanned_out => {
                self.not_fanned_out(&expr.source_span, &scope.operation.id);
            }
            Source::FirstOf(options) => {
                for option in options {
                    if let Some(span) = &option.conversion_span {
                        let diagnostic = self
                            .error(span, "a conversion inside `first_of` is never applied")
                            .with_help("put it next to `first_of`, where it converts whichever value is found");
                        self.found.push(diagnostic);
                    }
                }
            }
            Source::Each { fields, .. } => match shape {
                Shape::Array(array) => match self.protocol.object(&array.items) {
                    Some(target) => {
                        self.fields(&expr.source_span, fields, target, scope, field, &[])
                    }
                    None => {
                        let diagnostic = self.error(
                            &expr.source_span,
                            format!("`{field}` is not a list of objects; `each` does not apply"),
                        );
                        self.found.push(diagnostic);
                    }
                },
                _ => {
                    let diagnostic = self
                        .error(
                            &expr.source_span,
                            format!("`{field}` is not a list; `each` does not apply"),
                        )
                        .with_help("`each` maps every element of a list field, such as `balances`");
                    self.found.push(diagnostic);
                }
            },
            Source::Items(items) => match shape {
                Shape::Array(array) => match self.protocol.object(&array.items) {
                    Some(target) => {
                        for item in items {
                            self.fields(&item.span, &item.fields, target, scope, field, &[]);
                        }
                    }
                    None => {
                        let diagnostic = self.error(
                            &expr.source_span,
                            format!("`{field}` is not a list of objects; `items` does not apply"),
                        );
                        self.found.push(diagnostic);
                    }
                },
                _ => {
                    let diagnostic = self
                        .error(
                            &expr.source_span,
                            format!("`{field}` is not a list; `items` does not apply"),
                        )
                        .with_help(
                            "`items` writes out the elements of a list field, such as `balances`",
                        );
                    self.found.push(diagnostic);
                }
            },
            _ => {}
        }
        let computed = match &expr.source {
            Source::Rust(_) => Some("`rust`: the function returns the field's final value"),
            Source::Each { .. } => Some("`each`: its `fields` build every element"),
            Source::Items(_) => Some("`items`: its entries build every element"),
            Source::Now => Some("`now`: it is the field's final value"),
            _ => None,
        };
        if let (Some(computed), Some(span), Some(conversion)) =
            (computed, &expr.conversion_span, &expr.conversion)
        {
            let name = match conversion {
                Conversion::Time(_) => "time",
                Conversion::Amount { .. } => "amount",
                Conversion::Currency { .. } => "currency",
                Conversion::Enum { .. } => "enum",
            };
            let diagnostic = self
                .error(span, format!("`{name}` does not apply to {computed}"))
                .with_help(format!("remove `{name}`"));
            self.found.push(diagnostic);
        }
        if matches!(
            expr.source,
            Source::Rust(_) | Source::Each { .. } | Source::Items(_)
        ) {
            return;
        }
        self.conversion(expr, shape, field, key);
    }

    /// The protocol parameters the expression reads, wherever they are.
    fn params(&mut self, expr: &Expr, scope: &Scope) {
        match &expr.source {
            Source::Param(name) => self.param(&expr.value_span, name, scope),
            Source::Template(template) => {
                for part in &template.parts {
                    match part {
                        TemplatePart::Param(name) => {
                            self.param(&placeholder(template, name), name, scope)
                        }
                        TemplatePart::Parent(_) if !scope.fanned_out => {
                            self.not_fanned_out(&template.span, &scope.operation.id)
                        }
                        _ => {}
                    }
                }
            }
            Source::FirstOf(options) => {
                for option in options {
                    self.params(option, scope);
                }
            }
            _ => {}
        }
        if let Some(Conversion::Amount { currency, .. }) = &expr.conversion {
            self.params(currency, scope);
        }
    }

    /// Whether the value can become the field's type, and says how when it cannot.
    fn conversion(&mut self, expr: &Expr, shape: &Shape, field: &str, key: &Span) {
        let resolved = self.protocol.resolve(shape);
        let conversion = expr.conversion.as_ref();
        // Where each kind of problem is clearest: a missing conversion at the field's key, one
        // that does not apply at its own key, a wrong source at the source.
        let at_conversion = expr.conversion_span.as_ref().unwrap_or(&expr.span);
        let problem: Option<(&Span, String, &str)> = match (&resolved, conversion) {
            (Shape::Named(name), conversion) => match self.protocol.types.get(name) {
                Some(TypeDef::Enum(def)) => match (conversion, &expr.source) {
                    (Some(conversion @ Conversion::Enum { .. }), _) => {
                        self.enum_targets(name, &def.values, conversion, field);
                        None
                    }
                    (None, Source::Const(serde_json::Value::String(value)))
                        if def.values.contains(value) =>
                    {
                        None
                    }
                    (None, Source::Const(value)) => Some((
                        &expr.value_span,
                        format!("`{value}` is not a {name} value"),
                        "use one of the protocol's values",
                    )),
                    (None, _) => Some((
                        key,
                        format!(
                            "`{field}` is a {name}: map the provider's values onto the protocol's"
                        ),
                        "add `enum: { map: { provider_value: PROTOCOL_VALUE }, fallback: OTHER }`",
                    )),
                    (Some(_), _) => Some((
                        at_conversion,
                        format!("`{field}` is a {name}: this conversion does not apply"),
                        "use `enum: { map: { provider_value: PROTOCOL_VALUE }, fallback: OTHER }`",
                    )),
                },
                _ => None,
            },
            (Shape::String(s), Some(Conversion::Time(_))) if s.format != StringFormat::Plain => {
                None
            }
            (Shape::String(s), None) if s.format != StringFormat::Plain => None,
            (Shape::String(s), Some(_)) if s.format != StringFormat::Plain => Some((
                at_conversion,
                format!("`{field}` is a date-time"),
                "use `time: rfc3339 | unix_seconds | unix_millis | { pattern, utc_offset }`",
            )),
            (Shape::String(_), Some(Conversion::Time(_))) => Some((
                at_conversion,
                format!("`{field}` is not a date-time; `time` does not apply"),
                "remove `time`",
            )),
            (Shape::String(_), None)
                if field == "amount" && !matches!(expr.source, Source::Const(_)) =>
            {
                Some((
                    key,
                    format!(
                        "`{field}` is in minor units: say how to convert the provider's amount"
                    ),
                    "add `amount: { currency: <path to the currency>, format: decimal | minor_units }`",
                ))
            }
            (Shape::String(_), None)
                if field == "currency" && !matches!(expr.source, Source::Const(_)) =>
            {
                Some((
                    key,
                    format!("`{field}` is a UMN currency (`EUR/2`): convert the provider's code"),
                    "add `currency: true`",
                ))
            }
            (Shape::String(_), Some(Conversion::Amount { .. })) if field != "amount" => Some((
                at_conversion,
                format!("`{field}` is not an amount; `amount` does not apply"),
                "remove `amount`",
            )),
            (Shape::String(_), Some(Conversion::Currency { .. })) if field != "currency" => Some((
                at_conversion,
                format!("`{field}` is not a currency; `currency` does not apply"),
                "remove `currency`",
            )),
            (Shape::String(_), Some(Conversion::Enum { .. })) => Some((
                at_conversion,
                format!("`{field}` is not an enum; `enum` does not apply"),
                "remove `enum`",
            )),
            (Shape::Map(_), _)
                if !matches!(
                    expr.source,
                    Source::Metadata { .. } | Source::Path(_) | Source::Const(_)
                ) =>
            {
                Some((
                    &expr.source_span,
                    format!("`{field}` is a string map"),
                    "use `metadata: { fields: [...], flatten: [...] }`",
                ))
            }
            (Shape::Array(_), _)
                if !matches!(expr.source, Source::Each { .. } | Source::Const(_)) =>
            {
                Some((
                    &expr.source_span,
                    format!("`{field}` is a list"),
                    "use `each: <path to the array>` with `fields`",
                ))
            }
            (_, Some(_)) if !matches!(resolved, Shape::String(_)) => Some((
                at_conversion,
                format!("`{field}` takes no conversion"),
                "remove the conversion",
            )),
            _ => None,
        };
        if matches!(expr.source, Source::Metadata { .. }) && !matches!(resolved, Shape::Map(_)) {
            let diagnostic = self.error(
                &expr.source_span,
                format!("`{field}` is not a map; `metadata` does not apply"),
            );
            self.found.push(diagnostic);
        }
        if matches!(expr.source, Source::Now)
            && !matches!(&resolved, Shape::String(s) if s.format == StringFormat::DateTime)
        {
            let diagnostic = self.error(
                &expr.source_span,
                format!("`{field}` is not a date-time; `now` does not apply"),
            );
            self.found.push(diagnostic);
        }
        if let Some((span, message, help)) = problem {
            let diagnostic = self.error(span, message).with_help(help);
            self.found.push(diagnostic);
        }
        if let Some(Conversion::Amount { currency, .. }) = conversion
            && let Source::Const(value) = &currency.source
            && !value.is_string()
        {
            let diagnostic = self.error(
                &currency.value_span,
                "an amount's currency must be a currency code",
            );
            self.found.push(diagnostic);
        }
    }

    fn enum_targets(
        &mut self,
        name: &str,
        values: &[String],
        conversion: &Conversion,
        field: &str,
    ) {
        let Conversion::Enum {
            map,
            fallback,
            span,
            target_spans,
        } = conversion
        else {
            return;
        };
        let candidates: Vec<&str> = values.iter().map(String::as_str).collect();
        let targets = map.iter().map(|(_, v)| v).chain(fallback);
        for (index, target) in targets.enumerate() {
            if !values.contains(target) {
                let at = target_spans.get(index).unwrap_or(span);
                let diagnostic = self.error(at, format!("`{target}` is not a {name} value"));
                self.push_with_suggestion(diagnostic, target, candidates.iter().copied());
            }
        }
        // Protocol values no provider value becomes are not warned about: a provider rarely
        // has them all, and nothing is to be done. `check --coverage` shows them.
        if fallback.is_none() {
            let diagnostic = self
                .warning(span, format!("`{field}` has no `fallback`: an unknown provider value fails the whole request"))
                .with_help("add `fallback: OTHER` (or another protocol value)");
            self.found.push(diagnostic);
        }
    }
}

/// Whether `field` of the operation's record is one the protocol requires (a field of an
/// `each` element counts as optional here: its owner's check covers it).
fn scope_field_required(protocol: &Protocol, scope: &Scope, field: &str) -> bool {
    let record = match &scope.operation.success.shape {
        Some(Shape::Array(array)) => protocol.object(&array.items),
        Some(shape) => protocol.object(shape),
        None => None,
    };
    record.is_some_and(|(_, object)| {
        object
            .fields
            .iter()
            .any(|f| f.name == field && f.required && !f.nullable)
    })
}

/// Where a request's templates read the parent record (`{parent.id}`).
fn parent_placeholders(request: &RequestTemplate) -> Vec<Span> {
    request
        .templates()
        .filter(|t| {
            t.parts
                .iter()
                .any(|part| matches!(part, TemplatePart::Parent(_)))
        })
        .map(|t| t.span.clone())
        .collect()
}

/// Every dotted `{name.path}` placeholder of a request (a path into what a payment's steps
/// added): its first key, and the template it is in.
fn value_placeholders(request: &RequestTemplate) -> Vec<(String, Span)> {
    request
        .templates()
        .flat_map(|t| t.parts.iter().map(move |part| (part, t)))
        .filter_map(|(part, t)| match part {
            TemplatePart::Value(path) => match path.steps.first() {
                Some(super::Step::Key(first)) => Some((first.clone(), placeholder(t, &path.text))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Every `{name}` placeholder of a request's path, query and headers, with where it is.
fn placeholders(request: &RequestTemplate) -> Vec<(String, Span)> {
    request
        .templates()
        .flat_map(|t| t.parts.iter().map(move |part| (part, t)))
        .filter_map(|(part, t)| match part {
            TemplatePart::Param(name) => Some((name.clone(), placeholder(t, name))),
            _ => None,
        })
        .collect()
}

/// Where `{name}` (or `{param.name}`) is in the file: exact when the template is a plain or a
/// quoted scalar without escapes, else the whole template.
fn placeholder(template: &Template, name: &str) -> Span {
    let (text, span) = (&template.text, &template.span);
    let offset = match span.len() {
        n if n == text.len() => 0,
        n if n == text.len() + 2 => 1,
        _ => return span.clone(),
    };
    let mut found = None;
    let mut from = 0;
    while let Some(open) = text[from..].find('{').map(|i| i + from) {
        let Some(close) = text[open..].find('}').map(|i| i + open) else {
            break;
        };
        let inner = text[open + 1..close].trim();
        if inner.strip_prefix("param.") == Some(name) {
            found = Some((open, close));
            break;
        }
        if inner == name && found.is_none() {
            found = Some((open, close));
        }
        from = close + 1;
    }
    match found {
        Some((open, close)) => {
            let start = span.start + offset + open;
            start..span.start + offset + close + 1
        }
        None => span.clone(),
    }
}
