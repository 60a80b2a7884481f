//! The harness of the diagnostics suites: runs the real `connector-gen` binary on a mapping and
//! reads what it printed back as diagnostics (message, `--> file:line:col`, caret, help).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_connector-gen");
pub const MAPPING: &str = "connector.yaml";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One rendered diagnostic: `error: ...` or `warning: ...`, `--> file:line:col`, the snippet,
/// the `= help: ...` note.
#[derive(Debug, Clone)]
pub struct Reported {
    pub error: bool,
    pub message: String,
    pub location: Option<String>,
    pub help: Option<String>,
    pub lines: Vec<String>,
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .output()
        .expect("run connector-gen");
    Run {
        code: status.code().expect("exit code (not killed by a signal)"),
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    }
}

/// `connector-gen check --mapping connector.yaml`, with the bundled spec.
pub fn check(mapping: &str) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(MAPPING), mapping).unwrap();
    run_in(dir.path(), &["check", "--mapping", MAPPING])
}

/// `connector-gen check` against a spec of the test's own.
pub fn check_with_spec(mapping: &str, spec: &str) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(MAPPING), mapping).unwrap();
    std::fs::write(dir.path().join("spec.yaml"), spec).unwrap();
    run_in(
        dir.path(),
        &["check", "--mapping", MAPPING, "--spec", "spec.yaml"],
    )
}

impl Run {
    pub fn diagnostics(&self) -> Vec<Reported> {
        let mut reports: Vec<Reported> = Vec::new();
        for line in self.stderr.lines() {
            if line.starts_with("error: stopped with ") {
                continue;
            }
            let started = match (line.strip_prefix("error: "), line.strip_prefix("warning: ")) {
                (Some(message), _) => Some((true, message)),
                (_, Some(message)) => Some((false, message)),
                _ => None,
            };
            if let Some((error, message)) = started {
                reports.push(Reported {
                    error,
                    message: message.to_owned(),
                    location: None,
                    help: None,
                    lines: Vec::new(),
                });
                continue;
            }
            let Some(current) = reports.last_mut() else {
                continue;
            };
            let trimmed = line.trim_start();
            if let Some(location) = trimmed.strip_prefix("--> ") {
                current.location = Some(location.to_owned());
            } else if let Some(help) = trimmed.strip_prefix("= help: ") {
                current.help = Some(help.to_owned());
            }
            current.lines.push(line.to_owned());
        }
        reports
    }

    pub fn errors(&self) -> Vec<Reported> {
        self.diagnostics().into_iter().filter(|d| d.error).collect()
    }

    pub fn find(&self, error: bool, needle: &str) -> Reported {
        let found: Vec<_> = self
            .diagnostics()
            .into_iter()
            .filter(|d| d.error == error && d.message.contains(needle))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {} containing {needle:?}\n--- stderr ---\n{}",
            if error { "error" } else { "warning" },
            self.stderr
        );
        found.into_iter().next().unwrap()
    }

    /// The one error whose message contains `needle`.
    pub fn error(&self, needle: &str) -> Reported {
        self.find(true, needle)
    }

    /// The one warning whose message contains `needle`.
    pub fn warning(&self, needle: &str) -> Reported {
        self.find(false, needle)
    }

    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Exit 1, `count` errors printed, and the closing line agrees.
    pub fn expect_errors(&self, count: usize) -> &Self {
        self.expect_code(1);
        assert_eq!(
            self.errors().len(),
            count,
            "errors printed\n{}",
            self.stderr
        );
        let summary = format!(
            "error: stopped with {count} error{}",
            if count == 1 { "" } else { "s" }
        );
        assert!(
            self.stderr.lines().any(|l| l == summary),
            "missing {summary:?}\n{}",
            self.stderr
        );
        self
    }

    /// The one error, with its message exactly.
    pub fn only_error(&self) -> Reported {
        self.expect_errors(1);
        self.errors().remove(0)
    }
}

impl Reported {
    /// `--> connector.yaml:LINE:COL`, and the snippet quotes that line with a caret that starts
    /// under that column and stays on it (no span over several lines).
    pub fn expect_at(&self, (line, col): (usize, usize)) -> &Self {
        assert_eq!(
            self.location.as_deref(),
            Some(format!("{MAPPING}:{line}:{col}").as_str()),
            "location of {self:#?}"
        );
        let quoted = format!("{line} | ");
        let at = self
            .lines
            .iter()
            .position(|l| l.trim_start().starts_with(&quoted))
            .unwrap_or_else(|| panic!("the snippet does not quote line {line}: {self:#?}"));
        let source = &self.lines[at];
        let gutter = source.find(" | ").unwrap() + 3;
        assert!(
            !source[gutter..].starts_with("/ "),
            "a span over several lines: {self:#?}"
        );
        let carets = &self.lines[at + 1];
        let caret = carets
            .get(gutter..)
            .and_then(|c| c.find('^'))
            .unwrap_or_else(|| panic!("no caret under line {line}: {self:#?}"));
        let before: String = source[gutter..].chars().take(col - 1).collect();
        assert_eq!(
            caret,
            before.chars().count(),
            "caret column under line {line}: {self:#?}"
        );
        self
    }

    pub fn expect_message(&self, message: &str) -> &Self {
        assert_eq!(self.message, message, "message of {self:#?}");
        self
    }

    pub fn expect_help(&self, help: &str) -> &Self {
        assert_eq!(self.help.as_deref(), Some(help), "help of {self:#?}");
        self
    }

    pub fn expect_no_help(&self) -> &Self {
        assert_eq!(self.help, None, "help of {self:#?}");
        self
    }

    pub fn expect_label(&self, label: &str) -> &Self {
        assert!(
            self.lines.iter().any(|l| l.ends_with(label)),
            "label {label:?} in {self:#?}"
        );
        self
    }
}

/// `text` with its one occurrence of `from` replaced by `to`.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

/// 1-based line and column of `needle`'s first non-blank character; `needle` occurs once.
pub fn pos(text: &str, needle: &str) -> (usize, usize) {
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} must be unique");
    line_col(text, text.find(needle).unwrap(), needle)
}

/// Like `pos`, for the first `needle` after the one `anchor`.
pub fn pos_in(text: &str, anchor: &str, needle: &str) -> (usize, usize) {
    assert_eq!(text.matches(anchor).count(), 1, "{anchor:?} must be unique");
    let start = text.find(anchor).unwrap();
    let offset = start + text[start..].find(needle).expect("needle after anchor");
    line_col(text, offset, needle)
}

pub fn line_col(text: &str, offset: usize, needle: &str) -> (usize, usize) {
    let start = offset + (needle.len() - needle.trim_start().len());
    let line = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..start].chars().count() + 1)
}
