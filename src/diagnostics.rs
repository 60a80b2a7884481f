//! Diagnostics shared by every pipeline stage: collected, never thrown at the first problem,
//! and rendered the way rustc does (message, `--> file:line:col`, the line with a caret, help).

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor::WriteColor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One input file, kept whole so that diagnostics can quote the offending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// Byte offset of a 1-based line and column (in characters), clamped to the text.
    pub fn offset(&self, line: usize, col: usize) -> usize {
        let mut start = 0;
        for _ in 1..line {
            match self.text[start..].find('\n') {
                Some(i) => start += i + 1,
                None => return self.text.len(),
            }
        }
        let rest = &self.text[start..];
        let line_end = rest.find('\n').unwrap_or(rest.len());
        rest[..line_end]
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(start + line_end, |(i, _)| start + i)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where a diagnostic points: a byte range in a file, and for specs also the JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub span: Range<usize>,
    pub pointer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Boxed: diagnostics travel in `Result`s, which should stay small.
    pub location: Option<Box<Location>>,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            location: None,
            label: None,
            help: None,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(message)
        }
    }

    pub fn at(mut self, file: &str, span: Range<usize>) -> Self {
        let pointer = self.location.take().and_then(|l| l.pointer);
        self.location = Some(Box::new(Location {
            file: file.to_owned(),
            span,
            pointer,
        }));
        self
    }

    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        let location = self.location.get_or_insert_with(|| {
            Box::new(Location {
                file: String::new(),
                span: 0..0,
                pointer: None,
            })
        });
        location.pointer = Some(pointer.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `help: did you mean ...?` for a misspelt word, when a candidate is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate a misspelt word was probably meant as, when one is close enough. Also tells
/// which consequences of a misspelling not to report again (a key "missing" because it was
/// misspelt), as rustc does.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Renders diagnostics rustc-style into any colour-aware writer.
pub struct Renderer<'a> {
    files: &'a [SourceFile],
}

impl<'a> Renderer<'a> {
    pub fn new(files: &'a [SourceFile]) -> Self {
        Self { files }
    }

    pub fn emit(&self, out: &mut dyn WriteColor, diagnostic: &Diagnostic) -> std::io::Result<()> {
        let mut db = SimpleFiles::new();
        let ids: Vec<_> = self
            .files
            .iter()
            .map(|f| db.add(f.name.as_str(), f.text.as_str()))
            .collect();
        let mut report = match diagnostic.severity {
            Severity::Error => Report::error(),
            Severity::Warning => Report::warning(),
        }
        .with_message(&diagnostic.message);
        let mut notes = Vec::new();
        if let Some(location) = &diagnostic.location {
            match self.files.iter().position(|f| f.name == location.file) {
                Some(index) => {
                    let label = Label::primary(ids[index], location.span.clone());
                    let label = match &diagnostic.label {
                        Some(text) => label.with_message(text),
                        None => label,
                    };
                    report = report.with_labels(vec![label]);
                }
                None if !location.file.is_empty() => notes.push(format!("in {}", location.file)),
                None => {}
            }
            if let Some(pointer) = &location.pointer {
                notes.push(format!("at {pointer}"));
            }
        }
        if let Some(help) = &diagnostic.help {
            notes.push(format!("help: {help}"));
        }
        report = report.with_notes(notes);
        let config = term::Config {
            chars: term::Chars::ascii(),
            ..term::Config::default()
        };
        term::emit(out, &config, &db, &report).map_err(std::io::Error::other)
    }

    pub fn to_plain_string(&self, diagnostics: &[Diagnostic]) -> String {
        let mut out = term::termcolor::NoColor::new(Vec::new());
        for diagnostic in diagnostics {
            // Writing into a Vec cannot fail.
            let _ = self.emit(&mut out, diagnostic);
        }
        String::from_utf8_lossy(&out.into_inner()).into_owned()
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}
