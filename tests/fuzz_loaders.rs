//! Robustness of the loaders: whatever text arrives, every stage answers with a result or with
//! diagnostics, never a panic, and every diagnostic that points into a file points inside it
//! (on a character boundary) and renders.
//!
//! Case counts keep the whole file well under 20 s in a debug build on two cores; raise them
//! locally with `PROPTEST_CASES=5000 cargo test --test fuzz_loaders` when hunting.

use connector_gen::diagnostics::{Diagnostic, Renderer, SourceFile};
use connector_gen::spec::{self, BUNDLED, BUNDLED_NAME};
use connector_gen::{generate, load_protocol, mapping, yaml};
use proptest::prelude::*;

const SPEC_NAME: &str = "spec.yaml";
const MAPPING_NAME: &str = "connector.yaml";

/// A mapping that uses every part of format v1, so that mutations reach every reader.
const VALID_MAPPING: &str = "\
# A provider mapping.
version: 1
name: acme-bank_2
upstream:
  base_url: ${env:ACME_BASE_URL}
dependencies:
  reqwest:
    version: \"0.12\"
    default-features: false
    features: [json, rustls-tls]
  uuid: \"1\"
";

/// The examples' mappings use the rest of the format (auth, operations, paging, conversions).
const EXAMPLES: &[(&str, &str)] = &[
    (
        "cursorpay",
        include_str!("../generated-examples/cursorpay/connector.yaml"),
    ),
    (
        "pageworks",
        include_str!("../generated-examples/pageworks/connector.yaml"),
    ),
];

/// One of the mappings above, chosen by the test case.
fn base_mapping(choice: usize) -> &'static str {
    match choice % (EXAMPLES.len() + 1) {
        0 => VALID_MAPPING,
        n => EXAMPLES[n - 1].1,
    }
}

// ---- invariants -------------------------------------------------------------------------------

/// Every located diagnostic lies inside one of `files`, on character boundaries, and renders
/// with its message (a span the renderer rejects would print nothing at all).
fn check_diagnostics(
    files: &[SourceFile],
    diagnostics: &[Diagnostic],
) -> Result<(), TestCaseError> {
    prop_assert!(
        diagnostics.iter().any(Diagnostic::is_error),
        "an Err must carry at least one error: {diagnostics:?}"
    );
    check_located(files, diagnostics)
}

/// The location invariants alone, for the warnings that come with a success.
fn check_located(files: &[SourceFile], diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    let renderer = Renderer::new(files);
    for diagnostic in diagnostics {
        if let Some(location) = &diagnostic.location {
            let file = files
                .iter()
                .find(|f| f.name == location.file)
                .ok_or_else(|| TestCaseError::fail(format!("unknown file: {diagnostic:?}")))?;
            let span = &location.span;
            prop_assert!(span.start <= span.end, "reversed span: {diagnostic:?}");
            prop_assert!(
                span.end <= file.text.len(),
                "span past the end ({}): {diagnostic:?}",
                file.text.len()
            );
            prop_assert!(
                file.text.is_char_boundary(span.start) && file.text.is_char_boundary(span.end),
                "span splits a character: {diagnostic:?}"
            );
            let _ = file.line_col(span.start);
        }
        let rendered = renderer.to_plain_string(std::slice::from_ref(diagnostic));
        let first_line = diagnostic.message.lines().next().unwrap_or_default();
        prop_assert!(
            rendered.starts_with(&format!("{}: {first_line}", diagnostic.severity)),
            "did not render: {diagnostic:?}\n{rendered}"
        );
        if let Some(location) = &diagnostic.location
            && !location.file.is_empty()
            && files.iter().any(|f| f.name == location.file)
        {
            let (line, col) = files
                .iter()
                .find(|f| f.name == location.file)
                .unwrap()
                .line_col(location.span.start);
            prop_assert!(
                rendered.contains(&format!("--> {}:{line}:{col}", location.file)),
                "rendered position differs from line_col {line}:{col}: {diagnostic:?}\n{rendered}"
            );
        }
    }
    Ok(())
}

/// Runs every loader on `text` (as the spec and as the mapping) and checks what comes back.
fn run_every_loader(text: &str) -> Result<(), TestCaseError> {
    let as_spec = SourceFile::new(SPEC_NAME, text);
    let as_mapping = SourceFile::new(MAPPING_NAME, text);
    let valid_mapping = SourceFile::new(MAPPING_NAME, VALID_MAPPING);

    if let Err(d) = yaml::parse(&as_mapping) {
        check_diagnostics(std::slice::from_ref(&as_mapping), &[d])?;
    }
    if let Err(d) = mapping::load(&as_mapping) {
        check_diagnostics(std::slice::from_ref(&as_mapping), &d)?;
    }
    if let Err(d) = spec::parse(&as_spec) {
        check_diagnostics(std::slice::from_ref(&as_spec), &[d])?;
    }
    if let Err(d) = load_protocol(&as_spec) {
        check_diagnostics(std::slice::from_ref(&as_spec), &d)?;
    }
    // Nearly every random text fails loading before rendering, so this stays cheap.
    let files = [as_spec.clone(), valid_mapping.clone()];
    match generate(&as_spec, &valid_mapping) {
        Ok(generated) => check_located(&files, &generated.warnings),
        Err(d) => check_diagnostics(&files, &d),
    }
}

fn generate_and_check(spec_text: &str, mapping_text: &str) -> Result<(), TestCaseError> {
    let spec = SourceFile::new(SPEC_NAME, spec_text);
    let mapping = SourceFile::new(MAPPING_NAME, mapping_text);
    match generate(&spec, &mapping) {
        Ok(generated) => check_located(&[spec, mapping], &generated.warnings),
        Err(d) => check_diagnostics(&[spec, mapping], &d),
    }
}

// ---- structured mutations ---------------------------------------------------------------------

/// Text that stresses YAML and the position arithmetic: indicators, anchors, tags, tabs, CR,
/// a byte-order mark and multi-byte characters.
const TOKENS: &[&str] = &[
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "&a ",
    "*a",
    "*b",
    "!!str ",
    "!!binary ",
    "!custom ",
    "|",
    ">",
    "'",
    "\"",
    "\"\\u00e9\"",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "? ",
    "~",
    "null",
    "true",
    "0x1F",
    "1e400",
    "-0",
    "[]",
    "{}",
    "${",
    "${env:}",
    "${env:X}",
    "$ref: '#/components/schemas/Nope'",
    "é",
    "日本",
    "🦀",
    "\u{feff}",
    "\u{0085}",
    "\u{2028}",
    "\0",
    "<<: *a",
    "Title",
    "type: object",
    "oneOf: []",
];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Adds (positive) or removes (negative) leading spaces.
    Reindent(usize, i8),
    /// Replaces the value after `key:` (or after `- `, or the whole line) with `[]`.
    ScalarToList(usize),
    /// Cuts the text at a byte (moved back to a character boundary).
    Truncate(usize),
    Insert(usize, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), -6i8..=6).prop_map(|(i, d)| Mutation::Reindent(i, d)),
        any::<usize>().prop_map(Mutation::ScalarToList),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::sample::select(TOKENS))
            .prop_map(|(i, t)| Mutation::Insert(i, t)),
    ]
}

/// A position in `0..len`, from any number; shrinks towards the start.
fn pick(raw: usize, len: usize) -> usize {
    raw % len
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    match mutation {
        Mutation::DeleteLine(i) => {
            lines.remove(pick(*i, lines.len()));
        }
        Mutation::DuplicateLine(i) => {
            let at = pick(*i, lines.len());
            lines.insert(at, lines[at].clone());
        }
        Mutation::Reindent(i, delta) => {
            let at = pick(*i, lines.len());
            let line = &mut lines[at];
            if *delta >= 0 {
                line.insert_str(0, &" ".repeat(*delta as usize));
            } else {
                let blanks = line.len() - line.trim_start_matches(' ').len();
                line.drain(..blanks.min(delta.unsigned_abs() as usize));
            }
        }
        Mutation::ScalarToList(i) => {
            let at = pick(*i, lines.len());
            let line = &mut lines[at];
            let indent = line.len() - line.trim_start().len();
            *line = match line.find(": ") {
                Some(colon) => format!("{}: []", &line[..colon]),
                None if line.trim_start().starts_with("- ") => {
                    format!("{}- []", &line[..indent])
                }
                None => format!("{}[]", &line[..indent]),
            };
        }
        Mutation::Truncate(i) => {
            let mut at = pick(*i, text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return text[..at].to_owned();
        }
        Mutation::Insert(i, token) => {
            let boundaries: Vec<usize> = text
                .char_indices()
                .map(|(at, _)| at)
                .chain([text.len()])
                .collect();
            let at = boundaries[pick(*i, boundaries.len())];
            return format!("{}{token}{}", &text[..at], &text[at..]);
        }
    }
    lines.join("\n")
}

/// Up to `max` mutations; the test applies them, so a failure prints the short list.
fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..=max)
}

fn mutate(base: &str, mutations: &[Mutation]) -> String {
    mutations
        .iter()
        .fold(base.to_owned(), |text, m| apply(&text, m))
}

/// `cases`, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        // Shrinking a spec of 700 lines can take long; the first failure is printed anyway.
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that YAML gives meaning to, so that random strings are not just one big scalar.
const YAMLISH: &str = "[ -~\t\n\r\u{feff}\u{85}é日🦀]{0,160}";

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        run_every_loader(&text)?;
    }

    #[test]
    fn yaml_like_strings_never_panic(text in YAMLISH) {
        run_every_loader(&text)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        run_every_loader(&String::from_utf8_lossy(&bytes))?;
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Loading alone is cheap, so the mapping reader gets many more cases than `generate`.
    #[test]
    fn mutated_mapping_loads_or_reports(base in any::<usize>(), m in mutations(4)) {
        let source = SourceFile::new(MAPPING_NAME, mutate(base_mapping(base), &m));
        if let Err(d) = mapping::load(&source) {
            check_diagnostics(&[source], &d)?;
        }
    }
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn mutated_spec_never_panics_and_diagnostics_stay_in_the_file(m in mutations(3)) {
        generate_and_check(&mutate(BUNDLED, &m), VALID_MAPPING)?;
    }
}

proptest! {
    #![proptest_config(config(100))]

    #[test]
    fn mutated_mapping_never_panics_and_diagnostics_stay_in_the_file(
        base in any::<usize>(),
        m in mutations(4),
    ) {
        // The bundled spec is valid, so whatever is reported is about the mapping.
        generate_and_check(BUNDLED, &mutate(base_mapping(base), &m))?;
    }

    #[test]
    fn both_mutated_never_panic(
        spec in mutations(2),
        base in any::<usize>(),
        mapping in mutations(2),
    ) {
        generate_and_check(&mutate(BUNDLED, &spec), &mutate(base_mapping(base), &mapping))?;
    }
}

// ---- fixed cases ------------------------------------------------------------------------------

#[test]
fn the_unmutated_inputs_generate() {
    let spec = SourceFile::new(BUNDLED_NAME, BUNDLED);
    for base in 0..=EXAMPLES.len() {
        let mapping = SourceFile::new(MAPPING_NAME, base_mapping(base));
        if let Err(d) = generate(&spec, &mapping) {
            let files = [spec.clone(), mapping];
            panic!("{}", Renderer::new(&files).to_plain_string(&d));
        }
    }
}

#[test]
fn mutations_change_the_text() {
    let first = 0;
    assert_eq!(apply("a: 1\nb: 2", &Mutation::DeleteLine(first)), "b: 2");
    assert_eq!(
        apply("a: 1\nb: 2", &Mutation::DuplicateLine(first)),
        "a: 1\na: 1\nb: 2"
    );
    assert_eq!(apply("  a: 1", &Mutation::Reindent(first, -1)), " a: 1");
    assert_eq!(apply("a: 1", &Mutation::Reindent(first, 2)), "  a: 1");
    assert_eq!(apply("  a: 1", &Mutation::ScalarToList(first)), "  a: []");
    assert_eq!(apply("  - x", &Mutation::ScalarToList(first)), "  - []");
    assert_eq!(apply("aé", &Mutation::Truncate(2)), "a");
    assert_eq!(apply("ab", &Mutation::Insert(first, "🦀")), "🦀ab");
}

/// Hand-picked corners: empty input, byte-order marks, several documents, directives, aliases,
/// complex keys and multi-byte characters next to errors.
#[test]
fn edge_inputs_are_handled() {
    for text in [
        "",
        "\u{feff}",
        "\u{feff}a: [",
        "\u{feff}version: 1\nname: é\n",
        "a: 'é\n",
        "é: [\n",
        "\t",
        "---\n---\n",
        "a: 1\n---\nb: [\n",
        "%YAML 1.2\n---\na: 1\n",
        "*a",
        "&a [*a]",
        "a: &a [1]\nb: *a\nc: *zz\n",
        "? [a]\n: b\n",
        "openapi: 3.0.3\ninfo: {title: t, version: v}\npaths: {}\n",
        "openapi: 3.0.3\ninfo: {title: t, version: v}\npaths: {/a: {get: {}}}\n",
    ] {
        run_every_loader(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}

// ---- inputs proptest found, kept as regression tests ------------------------------------------

fn bundled_with(from: &str, to: &str) -> String {
    assert_eq!(BUNDLED.matches(from).count(), 1, "{from:?} must be unique");
    BUNDLED.replacen(from, to, 1)
}

fn line_of(source: &SourceFile, diagnostic: &Diagnostic) -> usize {
    let location = diagnostic.location.as_ref().expect("a location");
    assert_eq!(location.file, source.name, "{diagnostic:?}");
    source.line_col(location.span.start).0
}

/// openapiv3 panicked ("somehow this parsed successfully the second time") on a field given
/// twice: its untagged `ReferenceOr` retries through `serde_json::Value`, where the duplicate
/// collapses and the second attempt succeeds.
#[test]
fn a_spec_key_given_twice_is_reported_not_a_panic() {
    let text = bundled_with(
        "      name: accountId\n",
        "      name: accountId\n      name: accountId\n",
    );
    let spec = SourceFile::new(SPEC_NAME, text.clone());
    let mapping = SourceFile::new(MAPPING_NAME, VALID_MAPPING);
    let diagnostics = generate(&spec, &mapping).expect_err("a duplicate key");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let first = text[..text.find("      name: accountId").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert_eq!(
        diagnostics[0].message,
        format!("key `name` is given twice (first on line {first})")
    );
    assert_eq!(line_of(&spec, &diagnostics[0]), first + 1);
    assert_eq!(
        diagnostics[0].location.as_ref().unwrap().pointer.as_deref(),
        Some("#/components/parameters/AccountId/name")
    );
    check_diagnostics(&[spec, mapping], &diagnostics).unwrap();
}

/// serde_yaml hands openapiv3 the entries before a syntax error, so the same panic came from a
/// document that is not even valid YAML (`Page:` deleted: its keys repeat those of `PageSize`).
#[test]
fn entries_before_a_syntax_error_do_not_reach_openapiv3() {
    let text = bundled_with("    Page:\n", "").replacen("    Sort:\n", "    []\n", 1);
    let spec = SourceFile::new(SPEC_NAME, text);
    let diagnostics = load_protocol(&spec).expect_err("invalid YAML");
    assert!(
        diagnostics[0].message.starts_with("invalid YAML: "),
        "{diagnostics:?}"
    );
    check_diagnostics(&[spec], &diagnostics).unwrap();
}

/// libyaml accepts a quoted scalar continued at column 1; yaml-rust2, which places every spec
/// diagnostic, does not. Lowering problems then came out with no file and no position.
#[test]
fn yaml_only_libyaml_accepts_is_rejected_with_a_position() {
    let text = bundled_with(
        "        default:\n          $ref: '#/components/responses/ErrorResponse'\n\n  /accounts/{accountId}",
        "        default:\n          $ref: '\n#/components/responses/ErrorResponse'\n\n  /accounts/{accountId}",
    );
    let spec = SourceFile::new(SPEC_NAME, text.clone());
    let diagnostics = load_protocol(&spec).expect_err("rejected");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(
        diagnostics[0].message,
        "invalid YAML: invalid indentation in quoted scalar"
    );
    // At the opening quote of the scalar whose continuation is not indented.
    let quote = text.find("'\n#/components").unwrap();
    let location = diagnostics[0].location.as_ref().unwrap();
    assert_eq!(spec.line_col(location.span.start), spec.line_col(quote));
    check_diagnostics(&[spec], &diagnostics).unwrap();
}

/// A scalar's span was its parsed length from its start, which ran into the middle of the BOM
/// here ("a\r\t" folds to "a ").
#[test]
fn scalar_spans_end_on_a_character_boundary() {
    let source = SourceFile::new(MAPPING_NAME, "a\r\t\u{feff}");
    let diagnostics = mapping::load(&source).expect_err("not a mapping");
    check_diagnostics(&[source], &diagnostics).unwrap();
}

/// yaml-rust2's `Parser::load` recursed once per level and overflowed the stack.
#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let flow = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let block: String = (0..1_000)
        .map(|i| format!("{}- ", " ".repeat(2 * i)))
        .collect::<Vec<_>>()
        .join("\n")
        + "1";
    for (text, message) in [
        // yaml-rust2 limits flow collections itself.
        (flow, "invalid YAML: recursion limit exceeded"),
        (block, "invalid YAML: nested more than 128 levels deep"),
    ] {
        let source = SourceFile::new(MAPPING_NAME, text);
        let error = yaml::parse(&source).expect_err("too deep");
        assert_eq!(error.message, message);
        run_every_loader(&source.text).unwrap();
    }
    // 128 levels are fine.
    let source = SourceFile::new(
        MAPPING_NAME,
        format!("{}1{}", "[".repeat(128), "]".repeat(128)),
    );
    yaml::parse(&source).expect("128 levels");
}
