//! End-to-end: regenerating a crate that holds user code, across every published spec
//! version; warnings for user methods whose operation disappeared; protection of hand-edited
//! generated files; and `connector-gen new`.

mod support;

use std::fs;
use std::path::Path;

use serde_json::json;
use support::{Server, TestCrate, connector_gen, error_detail, spec_fixture, spec_history};

/// Files connector-gen creates once and must never touch again.
const USER_FILES: [&str; 5] = [
    "connector.yaml",
    "src/handlers.rs",
    "src/lib.rs",
    "src/main.rs",
    "src/extra.rs",
];

const HANDLERS: &str = r#"
use crate::generated::{Config, Connector, ConnectorError, Context, models, params::*};

pub struct Handlers {}

impl Handlers {
    pub fn new(config: &Config) -> Self {
        let _ = config;
        Self {}
    }
}

impl Connector for Handlers {
    async fn get_accounts(
        &self,
        _ctx: Context,
        params: GetAccountsParams,
    ) -> Result<Vec<models::Account>, ConnectorError> {
        Ok(vec![models::Account {
            id: crate::extra::account_id(params.page),
            account_name: "Main".to_owned(),
            created_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            metadata: None,
        }])
    }

    async fn get_account_balances(
        &self,
        _ctx: Context,
        params: GetAccountBalancesParams,
    ) -> Result<models::Balances, ConnectorError> {
        Err(ConnectorError::not_found(params.account_id))
    }
}
"#;

const EXTRA: &str = "//! A user module next to the generated code.\n\n\
pub fn account_id(page: i64) -> String {\n    format!(\"acc-{page}\")\n}\n";

fn user_files(krate: &TestCrate) -> Vec<Vec<u8>> {
    USER_FILES
        .iter()
        .map(|file| fs::read(krate.path(file)).unwrap())
        .collect()
}

#[test]
fn user_code_survives_every_published_spec_version_and_keeps_building() {
    let specs = spec_history();
    assert_eq!(specs.len(), 8, "expected 8 spec versions: {specs:?}");
    let krate = TestCrate::new("regeneration-walk", "regen-walk");
    krate.generate(Some(&specs[0]), &[]).assert_code(0);
    krate.write("src/handlers.rs", HANDLERS);
    krate.write("src/extra.rs", EXTRA);
    let lib = krate.read("src/lib.rs");
    assert!(lib.contains("pub mod handlers;"), "{lib}");
    krate.write("src/lib.rs", &format!("{lib}\npub mod extra;\n"));

    let mut binary = None;
    for spec in &specs {
        let version = spec.file_name().unwrap().to_string_lossy();
        let before = user_files(&krate);
        let run = krate.generate(Some(spec), &[]);
        assert_eq!(run.code, Some(0), "generate with {version}\n{run}");
        assert!(!run.stderr.contains("src/handlers.rs"), "{version}\n{run}");
        let after = user_files(&krate);
        for ((file, old), new) in USER_FILES.iter().zip(&before).zip(&after) {
            assert!(old == new, "{version}: generate changed the user's {file}");
        }
        // The spec really was applied: getPayoutStatus exists from 02 to 07 only.
        let has_payout_status = krate
            .read("src/generated/api.rs")
            .contains("fn get_payout_status(");
        let expected = !version.starts_with("01") && !version.starts_with("08");
        assert_eq!(has_payout_status, expected, "{version}");

        let check = krate.generate(Some(spec), &["--check"]);
        assert_eq!(
            check.code,
            Some(0),
            "generate --check right after generate, {version}\n{check}"
        );
        binary = Some(krate.build());
    }

    let server = Server::start(&binary.unwrap(), &krate.server_env());
    let response = server.get("/accounts?page=7");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.json(),
        json!([{"id": "acc-7", "accountName": "Main", "createdAt": "2026-01-02T03:04:05Z"}])
    );
    error_detail(&server.get("/transfers"), 405);
}

#[test]
fn a_method_whose_operation_was_removed_is_reported_with_its_location() {
    let krate = TestCrate::new("regeneration-stale", "regen-stale");
    krate
        .generate(Some(&spec_fixture("07")), &[])
        .assert_code(0);
    let handlers = r#"use crate::generated::{Config, Connector, ConnectorError, Context, models, params::*};

pub struct Handlers {}

impl Handlers {
    pub fn new(config: &Config) -> Self {
        let _ = config;
        Self {}
    }
}

impl Connector for Handlers {
    async fn get_payout_status(
        &self,
        _ctx: Context,
        params: GetPayoutStatusParams,
    ) -> Result<models::Payout, ConnectorError> {
        Err(ConnectorError::not_found(params.payout_id))
    }
}
"#;
    krate.write("src/handlers.rs", handlers);
    krate.build(); // valid user code for 07
    let line = handlers
        .lines()
        .position(|l| l.contains("fn get_payout_status"))
        .unwrap()
        + 1;

    let run = krate.generate(Some(&spec_fixture("08")), &[]);
    run.assert_code(0);
    assert!(run.stderr.contains("warning"), "{run}");
    assert!(run.stderr.contains("`get_payout_status`"), "{run}");
    assert!(
        run.stderr
            .contains(&format!("--> src/handlers.rs:{line}:14")),
        "expected the method's position at line {line}, column 14\n{run}"
    );
    assert!(
        !run.stderr.contains('\x1b'),
        "colour codes in piped stderr\n{run}"
    );
    assert_eq!(krate.read("src/handlers.rs"), handlers);
    assert!(
        !krate
            .read("src/generated/api.rs")
            .contains("get_payout_status")
    );
}

#[test]
fn hand_edited_generated_files_are_protected_until_forced() {
    let krate = TestCrate::new("regeneration-edit", "regen-edit");
    krate.generate(None, &[]).assert_code(0);
    let models = "src/generated/models.rs";
    let original = krate.read(models);
    let edited = format!("{original}\n// a local tweak\n");
    krate.write(models, &edited);

    let run = krate.generate(None, &[]);
    run.assert_code(1);
    assert!(run.stderr.contains(models), "{run}");
    assert_eq!(
        krate.read(models),
        edited,
        "generate overwrote a hand-edited file"
    );

    let check = krate.generate(None, &["--check"]);
    check.assert_code(1);
    assert!(check.stderr.contains(models), "{check}");

    krate.generate(None, &["--force"]).assert_code(0);
    assert_eq!(krate.read(models), original);
    krate.generate(None, &["--check"]).assert_code(0);
}

#[test]
fn new_scaffolds_a_crate_that_builds_and_serves() {
    let krate = TestCrate::empty("regeneration-new", "regen-new");
    connector_gen([
        "new".as_ref(),
        krate.dir.as_os_str(),
        "--name".as_ref(),
        "regen-new".as_ref(),
    ])
    .assert_code(0);
    let mapping = krate.read("connector.yaml");
    assert!(
        mapping.contains(&format!("${{env:{}}}", krate.base_url_env())),
        "{mapping}"
    );
    krate.generate(None, &["--check"]).assert_code(0);

    let server = Server::start(&krate.build(), &krate.server_env());
    assert_eq!(server.request("GET", "/healthz").send().status, 200);
    let detail = error_detail(&server.get("/accounts"), 501);
    assert_eq!(
        detail,
        "operation getAccounts is not implemented by this connector"
    );
}

#[test]
fn new_refuses_a_non_empty_directory_and_writes_nothing() {
    let dir = support::workspace().join("target/e2e/regeneration-new-occupied");
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();

    let run = connector_gen([
        "new".as_ref(),
        dir.as_os_str(),
        "--name".as_ref(),
        "occupied".as_ref(),
    ]);
    run.assert_code(2);
    assert!(run.stderr.contains("not empty"), "{run}");
    assert_eq!(listing(&dir), ["notes.txt"]);
    assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
