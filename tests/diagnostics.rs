//! What a user sees when an input is wrong: every class of problem in the mapping file and in
//! the spec, run through the real binary (`connector-gen check`), with the exit code, the
//! message, the exact `--> file:line:col`, the caret under that column, the JSON pointer for
//! spec problems and the help where there is one.
//!
//! Spec cases start from the bundled spec (`connector_gen::spec::BUNDLED`) and make one small
//! textual edit; expected positions are found in the edited text, so they stay exact when the
//! bundled spec's prose moves lines around.

use std::path::Path;
use std::process::{Command, Output};

use connector_gen::spec::BUNDLED;

const BIN: &str = env!("CARGO_BIN_EXE_connector-gen");
const MAPPING: &str = "connector.yaml";
const SPEC: &str = "spec.yaml";
const VALID_MAPPING: &str = "version: 1\nname: acme\nupstream:\n  base_url: ${env:ACME_BASE_URL}\n";

// ---- running the binary -----------------------------------------------------------------------

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn diagnostics(&self) -> Vec<Reported> {
        parse_report(&self.stderr)
    }

    /// The one diagnostic whose message contains `needle`; fails if there is none or several.
    fn find(&self, needle: &str) -> Reported {
        let found: Vec<_> = self
            .diagnostics()
            .into_iter()
            .filter(|d| d.message.contains(needle))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one diagnostic containing {needle:?}\n--- stderr ---\n{}",
            self.stderr
        );
        found.into_iter().next().unwrap()
    }

    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The closing `error: stopped with N error(s)` line agrees with the diagnostics printed.
    fn expect_error_count(&self, count: usize) -> &Self {
        let printed = self.diagnostics().len();
        assert_eq!(printed, count, "diagnostics printed\n{}", self.stderr);
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
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        // termcolor would colour a pipe if only TERM were consulted; pin it so the tests see
        // what a user piping stderr into a file sees.
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

/// `connector-gen check` on a mapping, with the bundled spec or with `spec` written next to it.
fn check(mapping: &str, spec: Option<&str>) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join(MAPPING), mapping).unwrap();
    let mut args = vec!["check", "--mapping", MAPPING];
    if let Some(spec) = spec {
        std::fs::write(dir.path().join(SPEC), spec).unwrap();
        args.extend(["--spec", SPEC]);
    }
    run_in(dir.path(), &args)
}

fn check_spec(spec: &str) -> Run {
    check(VALID_MAPPING, Some(spec))
}

// ---- reading what it printed ------------------------------------------------------------------

/// One rendered diagnostic: `error: message`, `--> file:line:col`, the snippet, `= ...` notes.
#[derive(Debug, Clone)]
struct Reported {
    message: String,
    location: Option<String>,
    pointer: Option<String>,
    help: Option<String>,
    lines: Vec<String>,
}

fn parse_report(stderr: &str) -> Vec<Reported> {
    let mut reports: Vec<Reported> = Vec::new();
    for line in stderr.lines() {
        if line.starts_with("error: stopped with ") {
            continue;
        }
        if let Some(message) = line.strip_prefix("error: ") {
            reports.push(Reported {
                message: message.to_owned(),
                location: None,
                pointer: None,
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
        } else if let Some(pointer) = trimmed.strip_prefix("= at ") {
            current.pointer = Some(pointer.to_owned());
        } else if let Some(help) = trimmed.strip_prefix("= help: ") {
            current.help = Some(help.to_owned());
        }
        current.lines.push(line.to_owned());
    }
    reports
}

impl Reported {
    /// Asserts `--> file:line:col`, and that the snippet quotes that line with a single-line
    /// caret starting under that column.
    fn expect_at(&self, file: &str, line: usize, col: usize) -> &Self {
        assert_eq!(
            self.location.as_deref(),
            Some(format!("{file}:{line}:{col}").as_str()),
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
        if let Some(rest) = source[gutter..].strip_prefix("/ ") {
            // A label over several lines, drawn from the start of its first line: only blanks
            // may come before the column.
            let before: String = rest.chars().take(col - 1).collect();
            assert!(before.trim().is_empty(), "column {col} of {self:#?}");
            return self;
        }
        let carets = &self.lines[at + 1];
        assert!(
            carets.len() > gutter && carets[..gutter].trim() == "|",
            "no caret line under line {line}: {self:#?}"
        );
        let caret = carets[gutter..]
            .find('^')
            .unwrap_or_else(|| panic!("no caret under line {line}: {self:#?}"));
        let before: String = source[gutter..].chars().take(col - 1).collect();
        assert_eq!(
            caret,
            before.replace('\t', "    ").chars().count(),
            "caret column under line {line}: {self:#?}"
        );
        self
    }

    fn expect_pointer(&self, pointer: &str) -> &Self {
        assert_eq!(
            self.pointer.as_deref(),
            Some(pointer),
            "pointer of {self:#?}"
        );
        self
    }

    fn expect_help(&self, help: &str) -> &Self {
        assert_eq!(self.help.as_deref(), Some(help), "help of {self:#?}");
        self
    }

    fn expect_label(&self, label: &str) -> &Self {
        assert!(
            self.lines.iter().any(|l| l.ends_with(label)),
            "label {label:?} in {self:#?}"
        );
        self
    }

    /// The `expected one of: ...` label lists `key` (the list itself grows with the format).
    fn expect_listed(&self, key: &str) -> &Self {
        let listed = self
            .lines
            .iter()
            .find_map(|l| l.split_once("expected one of: ").map(|(_, keys)| keys))
            .unwrap_or_else(|| panic!("no `expected one of` label: {self:#?}"));
        assert!(
            listed.split(", ").any(|k| k == key),
            "`{key}` not listed in {self:#?}"
        );
        self
    }
}

// ---- editing the bundled spec -----------------------------------------------------------------

/// The bundled spec with the one occurrence of `from` replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    edits(&[(from, to)])
}

fn edits(changes: &[(&str, &str)]) -> String {
    let mut text = BUNDLED.to_owned();
    for (from, to) in changes {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} must occur exactly once in the bundled spec"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// 1-based line and column of the first non-blank character of the one occurrence of `needle`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    assert_eq!(text.matches(needle).count(), 1, "{needle:?} must be unique");
    let start = text.find(needle).unwrap();
    let start = start + (needle.len() - needle.trim_start().len());
    let line = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..start].chars().count() + 1)
}

// ---- control cases ----------------------------------------------------------------------------

#[test]
fn a_valid_mapping_passes_check() {
    let run = check(VALID_MAPPING, None);
    run.expect_code(0);
    assert_eq!(run.stdout, "connector.yaml: no problems found\n");
    assert_eq!(run.stderr, "");
}

/// The baseline every spec case edits must itself pass, or the spec cases prove nothing.
#[test]
fn the_unedited_bundled_spec_passes_check_from_a_file() {
    let run = check_spec(BUNDLED);
    run.expect_code(0);
    assert_eq!(run.stderr, "");
}

#[test]
fn generate_reports_the_same_diagnostics_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(MAPPING),
        "version: 1\nnmae: acme\nupstream:\n  base_url: https://x\n",
    )
    .unwrap();
    let run = run_in(
        dir.path(),
        &["generate", "--mapping", MAPPING, "--out", "out"],
    );
    run.expect_code(1).expect_error_count(1);
    run.find("unknown key `nmae`")
        .expect_at(MAPPING, 2, 1)
        .expect_help("did you mean `name`?");
    assert!(!dir.path().join("out").exists(), "generate wrote files");
}

#[test]
fn diagnostics_in_a_pipe_carry_no_colour_codes() {
    let run = check("version: 1\nnmae: acme\n", None);
    run.expect_code(1);
    assert!(
        !run.stderr.contains('\x1b'),
        "escape codes in piped stderr:\n{:?}",
        run.stderr
    );
}

// ---- mapping file -----------------------------------------------------------------------------

#[test]
fn mapping_yaml_syntax_error() {
    let run = check(
        "version: 1\nname: acme\nupstream:\n  base_url: \"https://unterminated\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("invalid YAML: while scanning a quoted scalar")
        .expect_at(MAPPING, 4, 13)
        .expect_label("the YAML parser stopped here");
}

#[test]
fn mapping_yaml_bad_indentation_points_at_the_colon() {
    let run = check("version: 1\nname: acme\n  oops: 1\n", None);
    run.expect_code(1).expect_error_count(1);
    run.find("invalid YAML: mapping values are not allowed")
        .expect_at(MAPPING, 3, 7);
}

#[test]
fn unknown_top_level_key_suggests_the_right_one() {
    let run = check(
        "version: 1\nnmae: acme\nupstream:\n  base_url: https://x\n",
        None,
    );
    // One mistake, one error: `name` is not reported missing as well.
    run.expect_code(1).expect_error_count(1);
    run.find("unknown key `nmae` in the mapping file")
        .expect_at(MAPPING, 2, 1)
        .expect_help("did you mean `name`?")
        .expect_listed("name");
    // Without a key that could be it, `name` is missing.
    let run = check("version: 1\nupstream:\n  base_url: https://x\n", None);
    run.expect_code(1).expect_error_count(1);
    run.find("missing key `name`").expect_at(MAPPING, 1, 1);
}

#[test]
fn unknown_key_without_a_close_match_has_no_suggestion() {
    let run = check(
        "version: 1\nname: acme\nupstream:\n  base_url: https://x\nzzz: 1\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    let found = run.find("unknown key `zzz`");
    found.expect_at(MAPPING, 5, 1);
    assert_eq!(found.help, None, "{found:#?}");
}

#[test]
fn unknown_nested_key_suggests_the_right_one() {
    let run = check(
        "version: 1\nname: acme\nupstream:\n  base_ulr: https://x\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("unknown key `base_ulr` in `upstream`")
        .expect_at(MAPPING, 4, 3)
        .expect_help("did you mean `base_url`?");
}

#[test]
fn unknown_key_in_a_dependency_suggests_the_right_one() {
    let run = check(
        &format!(
            "{VALID_MAPPING}dependencies:\n  reqwest:\n    version: \"0.12\"\n    featurs: [json]\n"
        ),
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("unknown key `featurs` in a dependency")
        .expect_at(MAPPING, 8, 5)
        .expect_help("did you mean `features`?");
}

#[test]
fn wrong_types_name_what_was_found() {
    let run = check("version: 1\nname: acme\nupstream: 5\n", None);
    run.expect_code(1).expect_error_count(1);
    run.find("`upstream` must be a mapping of keys to values, found a scalar")
        .expect_at(MAPPING, 3, 11);

    let run = check(
        "version: 1\nname: [acme]\nupstream:\n  base_url: https://x\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("`name` must be a string, found a list")
        .expect_at(MAPPING, 2, 7);

    let run = check("- version: 1\n", None);
    run.expect_code(1).expect_error_count(1);
    run.find("the mapping file must be a mapping of keys to values, found a list")
        .expect_at(MAPPING, 1, 1);
}

#[test]
fn missing_required_keys_are_each_reported() {
    let run = check("name: acme\n", None);
    run.expect_code(1).expect_error_count(2);
    run.find("missing key `version`")
        .expect_at(MAPPING, 1, 1)
        .expect_label("`version` belongs here");
    run.find("missing key `upstream`").expect_at(MAPPING, 1, 1);

    let run = check("", None);
    run.expect_code(1).expect_error_count(3);
    for key in ["version", "name", "upstream"] {
        let found = run.find(&format!("missing key `{key}`"));
        assert_eq!(found.location.as_deref(), Some("connector.yaml:1:1"));
    }
}

#[test]
fn a_newer_format_version_asks_for_an_upgrade() {
    let run = check(
        "version: 2\nname: acme\nupstream:\n  base_url: https://x\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("mapping format version 2 is newer than this connector-gen understands")
        .expect_at(MAPPING, 1, 10)
        .expect_help("this connector-gen reads version 1; upgrade connector-gen");

    let run = check(
        "version: one\nname: acme\nupstream:\n  base_url: https://x\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("`version` must be 1").expect_at(MAPPING, 1, 10);
}

#[test]
fn an_invalid_crate_name_says_what_is_allowed() {
    for (name, col) in [("Acme!", 7), ("1acme", 7), ("\"acme bank\"", 7)] {
        let run = check(
            &format!("version: 1\nname: {name}\nupstream:\n  base_url: https://x\n"),
            None,
        );
        run.expect_code(1).expect_error_count(1);
        run.find("cannot name a crate")
            .expect_at(MAPPING, 2, col)
            .expect_help(
                "use lower-case letters, digits, `-` and `_`, starting with a letter (at most 64)",
            );
    }
}

#[test]
fn bad_env_references_and_urls_are_explained() {
    for reference in ["${ACME}", "${env:acme}", "${env:}", "${ENV:ACME}"] {
        let run = check(
            &format!("version: 1\nname: acme\nupstream:\n  base_url: {reference}\n"),
            None,
        );
        run.expect_code(1).expect_error_count(1);
        run.find(&format!("`{reference}` is not a valid reference"))
            .expect_at(MAPPING, 4, 13)
            .expect_help("write `${env:NAME}` with NAME in upper case, digits and `_`");
    }

    let run = check(
        "version: 1\nname: acme\nupstream:\n  base_url: ftp://acme.example\n",
        None,
    );
    run.expect_code(1).expect_error_count(1);
    run.find("`ftp://acme.example` is not an http(s) URL")
        .expect_at(MAPPING, 4, 13);
}

#[test]
fn every_problem_of_a_mapping_is_reported_in_one_run_in_file_order() {
    let text = "\
version: 2
nmae: acme
name: Bad Name
upstream:
  base_ulr: https://x
extra: 1
";
    let run = check(text, None);
    run.expect_code(1).expect_error_count(5);
    let found: Vec<_> = run
        .diagnostics()
        .into_iter()
        .map(|d| (d.location.unwrap(), d.message))
        .collect();
    let expected = [
        ("connector.yaml:1:10", "mapping format version 2 is newer"),
        (
            "connector.yaml:2:1",
            "unknown key `nmae` in the mapping file",
        ),
        ("connector.yaml:3:7", "`Bad Name` cannot name a crate"),
        ("connector.yaml:5:3", "unknown key `base_ulr` in `upstream`"),
        (
            "connector.yaml:6:1",
            "unknown key `extra` in the mapping file",
        ),
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((location, message), (want_location, want_message)) in found.iter().zip(expected) {
        assert_eq!(location, want_location, "{found:#?}");
        assert!(message.starts_with(want_message), "{found:#?}");
    }
}

// ---- spec -------------------------------------------------------------------------------------

#[test]
fn spec_yaml_syntax_error_points_at_the_offending_colon() {
    let spec = edit(
        "  title: GENERIC connector API\n",
        "  title: GENERIC connector API: v2\n",
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, _) = position(&spec, "  title: GENERIC");
    run.find("mapping values are not allowed in this context")
        .expect_at(SPEC, line, 31);
}

/// libyaml notices an unclosed `[` only on a later line; the message keeps where it began.
#[test]
fn spec_yaml_syntax_error_names_where_the_unfinished_construct_began() {
    let spec = edit(
        "      in: path\n      description: The account's `id`, as served by `GET /accounts`.\n      required: true\n      schema:\n        type: string\n",
        "      in: path\n      description: The account's `id`, as served by `GET /accounts`.\n      required: true\n      schema:\n        type: [string\n",
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (open_line, open_col) = position(&spec, "[string");
    let found = run.find("did not find expected ',' or ']'");
    assert!(
        found.message.ends_with(&format!(
            ", while parsing a flow sequence at line {open_line} column {open_col}"
        )),
        "{found:#?}"
    );
    let (line, col) = position(&spec, "    PageSize:");
    found.expect_at(SPEC, line, col + "PageSize".len());
}

#[test]
fn spec_that_is_yaml_but_not_openapi_points_at_the_wrong_construct() {
    let start = BUNDLED.find("\npaths:\n").expect("paths") + 1;
    let end = BUNDLED
        .find("\n# ---------------------- COMPONENTS")
        .expect("components banner");
    let spec = format!(
        "{}paths:\n  - /accounts\n  - /payouts\n{}",
        &BUNDLED[..start],
        &BUNDLED[end..]
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(&spec, "  - /accounts");
    run.find("not a valid OpenAPI 3.0 document: paths: invalid type: sequence")
        .expect_at(SPEC, line, col);
}

#[test]
fn one_of_in_a_property_is_unsupported() {
    let spec = edit(
        "        scheme:\n          type: string\n",
        "        scheme:\n          oneOf:\n            - type: string\n            - type: integer\n",
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(&spec, "          oneOf:");
    run.find("`oneOf`, `anyOf`, `allOf` and `not` are not supported")
        .expect_at(SPEC, line, col)
        .expect_pointer("#/components/schemas/Transaction/properties/scheme");
}

/// openapiv3 reads `oneOf` next to other keywords as an untyped schema; the message must still
/// name `oneOf`, not "no `type`".
#[test]
fn one_of_mixed_with_properties_is_named_as_such() {
    let spec = edit(
        "    Balance:\n      type: object\n",
        "    Balance:\n      oneOf:\n        - type: string\n        - type: integer\n",
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(
        &spec,
        "      oneOf:\n        - type: string\n        - type: integer\n      description: The balance",
    );
    run.find("`oneOf`, `anyOf`, `allOf` and `not` are not supported")
        .expect_at(SPEC, line, col)
        .expect_pointer("#/components/schemas/Balance");
}

#[test]
fn a_spec_key_given_twice_names_both_lines() {
    let spec = edit(
        "      name: createdAtFrom\n",
        "      name: createdAtFrom\n      name: createdAt\n",
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (first, _) = position(&spec, "      name: createdAtFrom\n");
    let (again, col) = position(&spec, "      name: createdAt\n");
    run.find(&format!(
        "key `name` is given twice (first on line {first})"
    ))
    .expect_at(SPEC, again, col)
    .expect_pointer("#/components/parameters/CreatedAtFrom/name");
}

#[test]
fn a_cookie_parameter_is_unsupported_and_reported_once() {
    let spec = edit(
        "      name: page\n      in: query\n",
        "      name: page\n      in: cookie\n",
    );
    let run = check_spec(&spec);
    // `Page` is used by three operations; one diagnostic, at the component.
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(&spec, "      name: page\n");
    run.find("cookie parameters are not supported")
        .expect_at(SPEC, line, col)
        .expect_pointer("#/components/parameters/Page");
}

#[test]
fn an_operation_without_operation_id_is_unsupported() {
    let spec = edit("      operationId: getBeneficiaries\n", "");
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(&spec, "      summary: List beneficiaries");
    run.find("operation has no `operationId`")
        .expect_at(SPEC, line, col)
        .expect_pointer("#/paths/~1beneficiaries/get");
}

#[test]
fn a_ref_to_a_missing_schema_points_at_the_ref() {
    let spec = edit(
        "$ref: '#/components/schemas/Balance'\n",
        "$ref: '#/components/schemas/Balanse'\n",
    );
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(&spec, "$ref: '#/components/schemas/Balanse'");
    run.find("`$ref: #/components/schemas/Balanse` does not name a schema")
        .expect_at(SPEC, line, col)
        .expect_pointer("#/components/schemas/Balances/properties/balances/items");
}

#[test]
fn openapi_3_1_is_unsupported() {
    let spec = edit("openapi: 3.0.3\n", "openapi: 3.1.0\n");
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, _) = position(&spec, "openapi: 3.1.0");
    run.find("OpenAPI version `3.1.0` is not supported; expected 3.0.x")
        .expect_at(SPEC, line, 10)
        .expect_pointer("#/openapi");
}

#[test]
fn an_error_response_without_title_and_detail_is_unsupported() {
    let spec = edits(&[
        (
            "        - Title\n        - Detail\n",
            "        - Code\n        - Detail\n",
        ),
        (
            "        Title:\n          type: string\n          description: Short name",
            "        Code:\n          type: string\n          description: Short name",
        ),
    ]);
    let run = check_spec(&spec);
    run.expect_code(1).expect_error_count(1);
    let (line, col) = position(&spec, "            $ref: '#/components/schemas/Error'");
    run.find("error responses must be an object with string `Title` and `Detail`")
        .expect_at(SPEC, line, col)
        .expect_pointer("#/components/responses/ErrorResponse/content/application~1json/schema");
}

#[test]
fn spec_and_mapping_problems_are_reported_together() {
    let spec = edits(&[
        ("openapi: 3.0.3\n", "openapi: 3.1.0\n"),
        (
            "      name: page\n      in: query\n",
            "      name: page\n      in: cookie\n",
        ),
        ("      operationId: getBeneficiaries\n", ""),
    ]);
    let run = check(
        "version: 1\nnmae: acme\nupstream:\n  base_url: ${acme}\n",
        Some(&spec),
    );
    run.expect_code(1).expect_error_count(5);
    run.find("OpenAPI version `3.1.0`")
        .expect_at(SPEC, position(&spec, "openapi: 3.1.0").0, 10);
    let (line, col) = position(&spec, "      name: page\n");
    run.find("cookie parameters").expect_at(SPEC, line, col);
    let (line, col) = position(&spec, "      summary: List beneficiaries");
    run.find("no `operationId`").expect_at(SPEC, line, col);
    run.find("unknown key `nmae`")
        .expect_at(MAPPING, 2, 1)
        .expect_help("did you mean `name`?");
    run.find("`${acme}` is not a valid reference")
        .expect_at(MAPPING, 4, 13);
    // The spec's problems first, then the mapping's.
    let files: Vec<_> = run
        .diagnostics()
        .into_iter()
        .map(|d| d.location.unwrap().split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        files,
        [SPEC, SPEC, SPEC, MAPPING, MAPPING],
        "{}",
        run.stderr
    );
}

// ---- usage and I/O ----------------------------------------------------------------------------

#[test]
fn a_missing_mapping_file_is_a_usage_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        &["check", "--mapping", "nowhere/connector.yaml"],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .starts_with("error: cannot read nowhere/connector.yaml: "),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_spec_file_is_a_usage_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MAPPING), VALID_MAPPING).unwrap();
    let run = run_in(
        dir.path(),
        &["check", "--mapping", MAPPING, "--spec", "missing-spec.yaml"],
    );
    run.expect_code(2);
    assert!(
        run.stderr
            .starts_with("error: cannot read missing-spec.yaml: "),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MAPPING), VALID_MAPPING).unwrap();
    let run = run_in(dir.path(), &["check", "--mapping", MAPPING, "--bogus"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("unexpected argument '--bogus'"),
        "{}",
        run.stderr
    );
}
