//! `application/x-www-form-urlencoded` request bodies, nested the way Stripe and Currencycloud
//! read them: an object's fields in brackets (`metadata[order_id]=42`), an array's elements by
//! their index (`items[0][amount]=5`), every name and value percent-encoded.
//!
//! Strings go as they are, numbers as their JSON text, booleans as `true`/`false`; a null, an
//! empty object and an empty array send nothing.

use serde_json::Value;

/// The body as form text: `a=1&b%5Bc%5D=x+y` (`b[c]=x y`).
pub fn encode(body: &Value) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs(body) {
        form.append_pair(&name, &value);
    }
    form.finish()
}

/// The body's name-value pairs, in the body's order (names sorted, as JSON objects keep
/// them here), before percent-encoding. A body that is
/// not an object is one unnamed value, which a form cannot hold: it sends nothing.
pub fn pairs(body: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Value::Object(fields) = body {
        for (name, value) in fields {
            flatten(name.clone(), value, &mut found);
        }
    }
    found
}

fn flatten(name: String, value: &Value, found: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::String(text) => found.push((name, text.clone())),
        Value::Bool(flag) => found.push((name, flag.to_string())),
        Value::Number(number) => found.push((name, number.to_string())),
        Value::Object(fields) => {
            for (key, value) in fields {
                flatten(format!("{name}[{key}]"), value, found);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                flatten(format!("{name}[{index}]"), value, found);
            }
        }
    }
}

/// An object from dotted names and their text (`data.loginId` -> `{"data": {"loginId": ...}}`),
/// as connector.yaml writes bodies.
pub fn nest(fields: &[(String, String)]) -> Value {
    let mut body = Value::Object(serde_json::Map::new());
    for (name, value) in fields {
        let mut object = &mut body;
        let keys: Vec<&str> = name.split('.').collect();
        let Some((last, parents)) = keys.split_last() else {
            continue;
        };
        for key in parents {
            if !object.get(*key).is_some_and(Value::is_object) {
                object[*key] = Value::Object(serde_json::Map::new());
            }
            object = &mut object[*key];
        }
        object[*last] = Value::String(value.clone());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_and_arrays_take_brackets_and_indices() {
        let body = json!({
            "amount": 1250,
            "currency": "eur",
            "metadata": {"order_id": "42", "note": "a&b=c d"},
            "items": [{"sku": "x"}, {"sku": "y", "qty": 2}],
            "tags": ["one", "two"],
            "urgent": true,
            "skipped": null,
            "empty": {},
            "none": [],
        });
        assert_eq!(
            pairs(&body),
            [
                ("amount", "1250"),
                ("currency", "eur"),
                ("items[0][sku]", "x"),
                ("items[1][qty]", "2"),
                ("items[1][sku]", "y"),
                ("metadata[note]", "a&b=c d"),
                ("metadata[order_id]", "42"),
                ("tags[0]", "one"),
                ("tags[1]", "two"),
                ("urgent", "true"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(
            encode(&json!({"metadata": {"note": "a&b=c d/é"}, "n": 1})),
            "metadata%5Bnote%5D=a%26b%3Dc+d%2F%C3%A9&n=1"
        );
        assert_eq!(encode(&json!("alone")), "");
        assert_eq!(encode(&json!({})), "");
    }

    #[test]
    fn numbers_keep_their_text() {
        let body: Value =
            serde_json::from_str(r#"{"amount": 0.10, "big": 123456789012345678901234567890}"#)
                .unwrap();
        assert_eq!(
            encode(&body),
            "amount=0.10&big=123456789012345678901234567890"
        );
    }

    #[test]
    fn dotted_names_nest() {
        let body = nest(&[
            ("data.loginId".to_owned(), "me".to_owned()),
            ("data.apiKey".to_owned(), "k".to_owned()),
            ("flat".to_owned(), "f".to_owned()),
        ]);
        assert_eq!(
            body,
            json!({"data": {"loginId": "me", "apiKey": "k"}, "flat": "f"})
        );
    }

    /// A small deterministic generator: the runtime's tests build in generated crates too,
    /// which have no property-testing crate.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn text(&mut self) -> String {
            const CHARS: &[char] = &[
                'a', 'Z', '0', ' ', '&', '=', '+', '%', '?', '#', '/', '.', '-', '_', '~', 'é',
                '€', '"', '\'', '\n',
            ];
            (0..self.below(6))
                .map(|_| CHARS[self.below(CHARS.len() as u64) as usize])
                .collect()
        }

        fn key(&mut self) -> String {
            // Names hold no brackets: the mapping refuses them in form bodies.
            let key: String = self.text().replace(['[', ']'], "");
            if key.is_empty() { "k".to_owned() } else { key }
        }

        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth == 0 { 4 } else { 6 }) {
                0 => Value::String(self.text()),
                1 => json!(self.below(1_000_000)),
                2 => Value::Bool(self.below(2) == 0),
                3 => Value::Null,
                4 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
                _ => self.object(depth - 1),
            }
        }

        fn object(&mut self, depth: u32) -> Value {
            let mut fields = serde_json::Map::new();
            for _ in 0..self.below(5) {
                let key = self.key();
                let value = self.value(depth);
                fields.insert(key, value);
            }
            Value::Object(fields)
        }
    }

    /// The scalars of `value`, each with its path of keys (indices as text), in order.
    fn leaves(path: Vec<String>, value: &Value, found: &mut Vec<(Vec<String>, String)>) {
        match value {
            Value::Null => {}
            Value::String(text) => found.push((path, text.clone())),
            Value::Bool(_) | Value::Number(_) => found.push((path, value.to_string())),
            Value::Object(fields) => {
                for (key, value) in fields {
                    let mut path = path.clone();
                    path.push(key.clone());
                    leaves(path, value, found);
                }
            }
            Value::Array(items) => {
                for (index, value) in items.iter().enumerate() {
                    let mut path = path.clone();
                    path.push(index.to_string());
                    leaves(path, value, found);
                }
            }
        }
    }

    /// `a[b][0]` -> `["a", "b", "0"]`.
    fn split_name(name: &str) -> Vec<String> {
        let (head, rest) = name.split_once('[').unwrap_or((name, ""));
        let mut path = vec![head.to_owned()];
        if !rest.is_empty() {
            let inner = rest.strip_suffix(']').expect("a closing bracket");
            path.extend(inner.split("][").map(str::to_owned));
        }
        path
    }

    #[test]
    fn any_body_decodes_back_to_its_leaves() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2_000 {
            let body = rng.object(3);
            let text = encode(&body);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"%&=+*-._".contains(&b)),
                "{text}"
            );
            let decoded: Vec<(Vec<String>, String)> = form_urlencoded::parse(text.as_bytes())
                .map(|(name, value)| (split_name(&name), value.into_owned()))
                .collect();
            let mut expected = Vec::new();
            leaves(Vec::new(), &body, &mut expected);
            assert_eq!(decoded, expected, "{body} -> {text}");
        }
    }
}
