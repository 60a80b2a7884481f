//! A YAML tree that remembers where every node came from, so that diagnostics can point at the
//! exact line and column of a mapping key or of the spec construct a JSON pointer names.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostics::{Diagnostic, SourceFile};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar as written; `quoted` tells `"1"` (a string) from `1`.
    Scalar {
        text: String,
        quoted: bool,
    },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }

    /// How many nodes this one holds, itself included.
    pub fn size(&self) -> usize {
        1 + match &self.value {
            Value::Scalar { .. } => 0,
            Value::Sequence(items) => items.iter().map(Node::size).sum(),
            Value::Mapping(entries) => entries.iter().map(|(k, v)| k.size() + v.size()).sum(),
        }
    }

    /// The node a JSON pointer (`#/paths/~1payouts/post`) names, if it exists.
    pub fn find(&self, pointer: &str) -> Option<&Node> {
        let path = pointer.trim_start_matches('#');
        let mut node = self;
        for raw in path.split('/').skip(1) {
            let token = raw.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Mapping(entries) => entries
                    .iter()
                    .find(|(key, _)| key.as_str() == Some(token.as_str()))
                    .map(|(_, value)| value)?,
                Value::Sequence(items) => items.get(token.parse::<usize>().ok()?)?,
                Value::Scalar { .. } => return None,
            };
        }
        Some(node)
    }

    /// The deepest existing node on the way to `pointer`: where to point when the rest is missing.
    pub fn find_nearest(&self, pointer: &str) -> &Node {
        let mut prefix = pointer.trim_end_matches('/').to_owned();
        loop {
            if let Some(node) = self.find(&prefix) {
                return node;
            }
            match prefix.rfind('/') {
                Some(cut) => prefix.truncate(cut),
                None => return self,
            }
        }
    }
}

/// Deeper nesting is refused (as serde_yaml does past 128): no real file needs it, and dropping
/// or walking a deeper tree recurses as deep.
const MAX_DEPTH: usize = 128;

/// Nodes that aliases may copy in all: a few aliases of aliases ("billion laughs") would
/// otherwise expand into more memory than the machine has.
const MAX_ALIASED_NODES: usize = 100_000;

/// Parses one YAML document. An empty file is an empty mapping.
pub fn parse(file: &SourceFile) -> Result<Node, Diagnostic> {
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        line_start: Cell::new((1, 0)),
        aliased: 0,
    };
    let mut parser = Parser::new_from_str(&file.text);
    // Event by event rather than `Parser::load`, which recurses once per nesting level and
    // overflowed the stack on deeply nested input; the first document only, as `load` did.
    loop {
        let (event, marker) = parser.next_token().map_err(|error| {
            let offset = builder.offset(error.marker());
            Diagnostic::error(format!("invalid YAML: {}", error.info()))
                .at(&file.name, offset..offset)
                .with_label("the YAML parser stopped here")
        })?;
        let last = matches!(event, Event::DocumentEnd | Event::StreamEnd);
        builder.on_event(event, marker);
        if builder.aliased > MAX_ALIASED_NODES {
            let offset = builder.offset(&marker);
            return Err(Diagnostic::error(format!(
                "invalid YAML: aliases expand to more than {MAX_ALIASED_NODES} nodes"
            ))
            .at(&file.name, offset..offset));
        }
        if builder.stack.len() > MAX_DEPTH {
            let offset = builder.offset(&marker);
            return Err(Diagnostic::error(format!(
                "invalid YAML: nested more than {MAX_DEPTH} levels deep"
            ))
            .at(&file.name, offset..offset));
        }
        if last {
            break;
        }
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Mapping(Vec::new()),
        span: 0..0,
    }))
}

struct Builder<'a> {
    file: &'a SourceFile,
    stack: Vec<(Node, Option<Node>, usize)>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    /// The 1-based line of the last position asked for, and the byte offset where it starts.
    line_start: Cell<(usize, usize)>,
    /// Nodes copied by aliases so far.
    aliased: usize,
}

impl Builder<'_> {
    /// Byte offset of a parser position (1-based line, 0-based column in characters). Events
    /// come in text order, so the line is searched from the previous event's line rather than
    /// from the top of the file, which made parsing a large spec quadratic.
    fn offset(&self, marker: &Marker) -> usize {
        let text = &self.file.text;
        let (mut line, mut start) = self.line_start.get();
        if marker.line() < line {
            (line, start) = (1, 0);
        }
        while line < marker.line() {
            match text[start..].find('\n') {
                Some(i) => {
                    start += i + 1;
                    line += 1;
                }
                None => return text.len(),
            }
        }
        self.line_start.set((line, start));
        let rest = &text[start..];
        let line_end = rest.find('\n').unwrap_or(rest.len());
        rest[..line_end]
            .char_indices()
            .nth(marker.col())
            .map_or(start + line_end, |(i, _)| start + i)
    }

    fn scalar_span(&self, start: usize, len: usize) -> Range<usize> {
        let line_end = self.file.text[start..]
            .find('\n')
            .map_or(self.file.text.len(), |i| start + i);
        // `len` is that of the parsed value, which differs from the source text's whenever
        // escapes, folding or a BOM are involved: keep the end on a character boundary.
        let mut end = (start + len.max(1)).min(line_end).max(start);
        while !self.file.text.is_char_boundary(end) {
            end -= 1;
        }
        start..end
    }

    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, pending_key, _)) => {
                // Collection events are marked where the parser noticed them, which can be past
                // their first entry; the first entry's own position is the honest start.
                parent.span.start = parent.span.start.min(node.span.start);
                match &mut parent.value {
                    Value::Sequence(items) => items.push(node),
                    Value::Mapping(entries) => match pending_key.take() {
                        Some(key) => entries.push((key, node)),
                        None => *pending_key = Some(node),
                    },
                    Value::Scalar { .. } => {}
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let start = self.offset(&marker);
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let span = self.scalar_span(start, text.len() + if quoted { 2 } else { 0 });
                self.push_value(
                    Node {
                        value: Value::Scalar { text, quoted },
                        span,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((
                    Node {
                        value: Value::Sequence(Vec::new()),
                        span: start..start,
                    },
                    None,
                    anchor,
                ));
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Node {
                        value: Value::Mapping(Vec::new()),
                        span: start..start,
                    },
                    None,
                    anchor,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, _, anchor)) = self.stack.pop() {
                    node.span.end = start.max(node.span.start);
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(anchor) => {
                self.aliased += self.anchors.get(&anchor).map_or(1, Node::size);
                if self.aliased > MAX_ALIASED_NODES {
                    return;
                }
                let node = self.anchors.get(&anchor).cloned().unwrap_or(Node {
                    value: Value::Scalar {
                        text: String::new(),
                        quoted: false,
                    },
                    span: start..start,
                });
                self.push_value(node, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Node {
        parse(&SourceFile::new("t.yaml", text)).expect("valid yaml")
    }

    #[test]
    fn keys_point_at_their_line_and_column() {
        let file = SourceFile::new("t.yaml", "version: 1\nupstream:\n  base_url: x\n");
        let root = parse(&file).unwrap();
        let Value::Mapping(entries) = &root.find("/upstream").unwrap().value else {
            panic!()
        };
        assert_eq!(file.line_col(entries[0].0.span.start), (3, 3));
        assert_eq!(root.find("/upstream/base_url").unwrap().as_str(), Some("x"));
    }

    #[test]
    fn pointers_unescape_slashes() {
        let root = parse_str("paths:\n  /a/b:\n    get: {}\n");
        assert!(root.find("#/paths/~1a~1b/get").is_some());
        assert!(root.find("#/paths/~1a~1b/post").is_none());
        assert_eq!(
            root.find_nearest("#/paths/~1a~1b/post/x").span,
            root.find("#/paths/~1a~1b").unwrap().span
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..8 {
            let previous = level - 1;
            text.push_str(&format!("a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"));
        }
        let error = parse(&SourceFile::new("bomb.yaml", text)).unwrap_err();
        assert!(
            error.message.contains("aliases expand"),
            "{}",
            error.message
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let file = SourceFile::new("t.yaml", "a: 1\nb: [1, 2\n");
        let error = parse(&file).unwrap_err();
        assert!(error.location.is_some());
    }
}
