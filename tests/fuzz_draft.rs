//! Robustness of `draft` and `check --against-spec`: whatever the provider's document holds,
//! the answer is a draft or diagnostics, never a panic, and every located diagnostic lies
//! inside its file. Raise the case count with `PROPTEST_CASES=2000 cargo test --test fuzz_draft`.

use connector_gen::diagnostics::SourceFile;
use connector_gen::draft;
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("fixtures/draft/cursorbank.yaml"),
    include_str!("fixtures/draft/pagebank.json"),
    include_str!("fixtures/draft/swaggerbank.yaml"),
    include_str!("fixtures/draft/nokeybank.yaml"),
];

fn check(text: String) -> Result<(), TestCaseError> {
    let source = SourceFile::new("p.yaml", text);
    match draft::draft(std::slice::from_ref(&source), "acme", None) {
        Ok(drafted) => {
            prop_assert!(serde_json::from_str::<serde_json::Value>(&drafted.report).is_ok());
        }
        Err(diagnostics) => {
            prop_assert!(!diagnostics.is_empty());
            for d in diagnostics {
                if let Some(location) = d.location {
                    prop_assert!(location.span.end <= source.text.len(), "{:?}", location);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cut_documents_never_panic(seed in 0..SEEDS.len(), cut in 0usize..6000) {
        let text = SEEDS[seed];
        let mut end = cut.min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        check(text[..end].to_owned())?;
    }

    #[test]
    fn mutated_documents_never_panic(seed in 0..SEEDS.len(), at in 0usize..6000, insert in "[\\[\\]{}:,\"'#&*!|> \\n$a-z0-9-]{0,8}") {
        let text = SEEDS[seed];
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        check(format!("{}{insert}{}", &text[..at], &text[at..]))?;
    }

    #[test]
    fn references_anywhere_never_panic(seed in 0..SEEDS.len(), target in "#/(components/schemas/[A-Za-z]{1,8}|paths|definitions/x|)(/[a-z~01]{0,4}){0,3}") {
        let text = SEEDS[seed].replace("#/components/schemas/Transaction", &target).replace("#/components/schemas/Money", &target);
        check(text)?;
    }
}

#[test]
fn self_referencing_schemas_terminate() {
    let text = "openapi: 3.0.0\npaths:\n  /v1/transactions:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: { $ref: '#/components/schemas/A' }\ncomponents:\n  schemas:\n    A: { allOf: [{ $ref: '#/components/schemas/B' }] }\n    B: { allOf: [{ $ref: '#/components/schemas/A' }], properties: { data: { type: array, items: { $ref: '#/components/schemas/A' } } } }\n";
    let drafted = draft::draft(&[SourceFile::new("p.yaml", text)], "acme", None).unwrap();
    assert!(drafted.report.contains("getTransactions"));
}
