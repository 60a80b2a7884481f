//! Diagnostics of the bank-shaped parts of the mapping language (`for_each`, `from_list`, time
//! windows, `filter`, `switch`, `absent`, `empty`, zones, `provider_key`, payment `steps`),
//! through the real binary: for every class of mistake the exit code, the message, the exact
//! `--> connector.yaml:LINE:COL` with its caret, and the help.
//!
//! The cases start from the two bank-shaped examples (they must pass as they are) and make one
//! small textual edit each; expected positions are computed from the edited text.

mod harness;

use harness::*;

/// A bank shaped like Modulr and Banking Circle: lists per account inside capped windows, local
/// times, a credit flag, references as provider keys.
const NORDBANK: &str = include_str!("../generated-examples/nordbank/connector.yaml");
/// Wallets like Mangopay: fan-out over an inline user list, balances from the wallet list,
/// payments whose body needs the wallet's owner (a step).
const WALLETPAY: &str = include_str!("../generated-examples/walletpay/connector.yaml");

const SPAN_HELP: &str = "days `d`, hours `h`, minutes `m` or seconds `s`";

#[test]
fn the_bank_shaped_examples_pass() {
    check(NORDBANK).expect_code(0);
    check(WALLETPAY).expect_code(0);
}

// ---- fan-out ----------------------------------------------------------------------------------

#[test]
fn for_each_names_a_mapped_list_and_suggests_one() {
    let text = replace_once(NORDBANK, "for_each: getAccounts", "for_each: getAcounts");
    check(&text)
        .only_error()
        .expect_message("`for_each` names `getAcounts`, which connector.yaml does not map")
        .expect_at(pos(&text, "getAcounts"))
        .expect_help("did you mean `getAccounts`?");

    let text = replace_once(
        NORDBANK,
        "for_each: getAccounts",
        "for_each: getAccountBalances",
    );
    check(&text)
        .only_error()
        .expect_message("`for_each` names `getAccountBalances`, which is not a list")
        .expect_at(pos_in(&text, "for_each:", "getAccountBalances"))
        .expect_help("name a mapped list operation, such as `getAccounts`");
}

#[test]
fn a_list_cannot_be_fanned_out_over_itself() {
    let text = replace_once(
        NORDBANK,
        "for_each: getAccounts",
        "for_each: getTransactions",
    );
    check(&text)
        .only_error()
        .expect_message("`getTransactions` is fanned out over itself, through `getTransactions`")
        .expect_at(pos_in(&text, "for_each:", "getTransactions"))
        .expect_help("a list's parents come from another list that does not depend on it");
}

#[test]
fn parent_values_need_a_fan_out() {
    let text = replace_once(
        NORDBANK,
        "      path: /api/beneficiaries\n",
        "      path: /api/accounts/{parent.id}/beneficiaries\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`getBeneficiaries` has no parent record: `parent` is for lists fanned out with `for_each`",
        )
        .expect_at(pos(&text, "/api/accounts/{parent.id}/beneficiaries"));

    let text = replace_once(
        NORDBANK,
        "      ownerName: name\n",
        "      ownerName: { parent: name }\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`getBeneficiaries` has no parent record: `parent` is for lists fanned out with `for_each`",
        )
        .expect_at(pos(&text, "parent: name"));
}

#[test]
fn a_fanned_out_request_still_has_only_its_operations_parameters() {
    let text = replace_once(
        NORDBANK,
        "/api/accounts/{parent.id}/transactions",
        "/api/accounts/{parent.id}/transactions/{accountId}",
    );
    check(&text)
        .only_error()
        .expect_message("`getTransactions` has no parameter `accountId`")
        .expect_at({
            let (line, column) = pos(&text, "transactions/{accountId}");
            (line, column + "transactions/".len())
        });
}

#[test]
fn a_dotted_placeholder_in_a_list_request_points_at_the_placeholder() {
    let text = replace_once(
        WALLETPAY,
        "/v2/wallets/{parent.Id}/transactions",
        "/v2/wallets/{wallet.Id}/transactions",
    );
    check(&text)
        .only_error()
        .expect_message("a request placeholder is a parameter (`{accountId}`) or, in a fan-out, the parent's value (`{parent.id}`)")
        .expect_at(pos(&text, "{wallet.Id}"))
        .expect_help("dotted placeholders read a payment's `steps`, which lists do not have");
}

#[test]
fn from_list_sends_no_request_of_its_own() {
    let transactions = WALLETPAY.find("  getTransactions:").unwrap();
    let (head, tail) = WALLETPAY.split_at(transactions);
    let text = format!(
        "{head}{}",
        tail.replacen(
            "    records: .\n",
            "    records: .\n    from_list: { list: getAccounts, where: { Id: x } }\n",
            1
        )
    );
    check(&text)
        .only_error()
        .expect_message("an operation answered `from_list` sends no request of its own")
        .expect_at(pos(
            &text,
            "from_list: { list: getAccounts, where: { Id: x } }",
        ))
        .expect_label("conflicts with `request`");
}

// ---- time windows -----------------------------------------------------------------------------

#[test]
fn a_window_needs_both_ends_a_cap_and_a_start() {
    let text = replace_once(NORDBANK, "      to: toDate\n", "");
    check(&text)
        .only_error()
        .expect_message("a time window needs `to`: the parameter of the window's end")
        .expect_at(pos(&text, "max_span: 31d"))
        .expect_help("e.g. `to: toDate`");

    let text = replace_once(NORDBANK, "      start: 2025-01-01\n", "");
    check(&text)
        .only_error()
        .expect_message(
            "a time window needs `start`: where the first poll starts, when Formance sends no filter",
        )
        .expect_at(pos(&text, "to: toDate"));
}

#[test]
fn window_spans_and_starts_say_what_they_take() {
    let text = replace_once(NORDBANK, "max_span: 31d", "max_span: 31x");
    check(&text)
        .only_error()
        .expect_message("`since.max_span` must be a span of time such as `31d`, `12h` or `90s`")
        .expect_at(pos(&text, "31x"))
        .expect_help(SPAN_HELP);

    let text = replace_once(NORDBANK, "start: 2025-01-01", "start: 2025-13-01");
    check(&text)
        .only_error()
        .expect_message("`2025-13-01` is not a date")
        .expect_at(pos(&text, "2025-13-01"))
        .expect_help(
            "write the date as `YYYY-MM-DD`, e.g. `2020-01-01`, or how far back, e.g. `730d`",
        );

    let text = replace_once(NORDBANK, "start: 2025-01-01", "start: soon");
    check(&text)
        .only_error()
        .expect_message("`since.start` must be a span of time such as `31d`, `12h` or `90s`")
        .expect_at(pos(&text, "soon"));
}

// ---- record values ----------------------------------------------------------------------------

#[test]
fn a_filter_with_an_unknown_key_is_one_error() {
    let text = replace_once(
        NORDBANK,
        "exclude: { type: [CARD_AUTH] }",
        "drop: { type: [CARD_AUTH] }",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `drop` in `filter`")
        .expect_at(pos(&text, "drop:"))
        .expect_label("expected one of: exclude, only");

    let text = replace_once(
        NORDBANK,
        "exclude: { type: [CARD_AUTH] }",
        "exclude: { type: [{ a: 1 }] }",
    );
    check(&text)
        .only_error()
        .expect_message("a filter value must be a single value")
        .expect_at(pos(&text, "{ a: 1 }"));
}

#[test]
fn a_switch_needs_what_it_is_on() {
    let text = replace_once(
        NORDBANK,
        "      sourceAccountID:\n        switch:\n          on: credit\n",
        "      sourceAccountID:\n        switch:\n",
    );
    check(&text)
        .only_error()
        .expect_message("missing key `on`: the value that picks the case, e.g. `on: credit`")
        .expect_at(pos_in(&text, "sourceAccountID:", "cases:"));
}

#[test]
fn a_required_field_cannot_be_absent() {
    let text = replace_once(
        NORDBANK,
        "      status:\n        path: status\n        enum:\n          map: { PENDING",
        "      status:\n        absent: true\n        enum:\n          map: { PENDING",
    );
    let run = check(&text);
    run.error("cannot be absent")
        .expect_message("`status` is required by the protocol; it cannot be absent")
        .expect_help("give it a value in every case, or a `default`");
}

#[test]
fn empty_takes_missing() {
    let text = replace_once(
        WALLETPAY,
        "{ path: DebitedWalletId, empty: missing }",
        "{ path: DebitedWalletId, empty: none }",
    );
    check(&text)
        .only_error()
        .expect_message("`empty` takes `missing`")
        .expect_at(pos(&text, "none }"))
        .expect_help("`empty: missing` counts an empty string as no value");
}

#[test]
fn zones_are_iana_names() {
    let text = replace_once(NORDBANK, "zone: Europe/Oslo", "zone: Europe/Olso");
    check(&text)
        .only_error()
        .expect_message("`Europe/Olso` is not an IANA time zone")
        .expect_at(pos(&text, "Europe/Olso"))
        .expect_help("write a name of the tz database such as `Europe/Oslo` or `America/New_York`");
}

// ---- payments ---------------------------------------------------------------------------------

#[test]
fn provider_key_lengths_must_agree() {
    let shape = "provider_key: { min_length: 6, max_length: 18, charset: alphanumeric }";
    let text = NORDBANK.replacen(
        shape,
        "provider_key: { min_length: 20, max_length: 18, charset: alphanumeric }",
        1,
    );
    check(&text)
        .only_error()
        .expect_message("`provider_key.min_length` is more than its `max_length`")
        .expect_at(pos(&text, "{ min_length: 20"));
}

const WALLET_STEP: &str = "      - name: wallet\n        request: { path: \"/v2/wallets/{sourceAccountId}\" }\n    request:\n      path: /v2/transfers\n";

#[test]
fn step_names_are_words() {
    let text = replace_once(
        WALLETPAY,
        WALLET_STEP,
        &WALLET_STEP.replace("name: wallet", "name: Wallet"),
    );
    let run = check(&text);
    run.error("must be a word")
        .expect_message(
            "step name `Wallet` must be a word: a lower-case letter, then letters, digits or `_`",
        )
        .expect_at(pos(&text, "Wallet\n"));
}

#[test]
fn a_step_needs_its_request() {
    let text = replace_once(
        WALLETPAY,
        WALLET_STEP,
        "      - name: wallet\n    request:\n      path: /v2/transfers\n",
    );
    check(&text)
        .only_error()
        .expect_message("missing key `request`: the provider call, e.g. `request: { path: \"/v2/wallets/{sourceAccountId}\" }`")
        .expect_at(pos_in(&text, "createTransfer:", "name: wallet"));
}

#[test]
fn a_step_name_cannot_shadow_a_request_field() {
    let text = replace_once(
        WALLETPAY,
        WALLET_STEP,
        &WALLET_STEP.replace("name: wallet", "name: amount"),
    );
    check(&text)
        .error("is already a value of")
        .expect_message("step name `amount` is already a value of `TransferRequest`")
        .expect_at(pos(&text, "amount\n"))
        .expect_help("name the step after what it fetches, e.g. `wallet` or `quote`");
}

#[test]
fn a_misspelt_step_is_suggested() {
    let transfer = WALLETPAY.find("  createTransfer:").unwrap();
    let (head, tail) = WALLETPAY.split_at(transfer);
    let text = format!(
        "{head}{}",
        tail.replacen("AuthorId: wallet.Owners[0]", "AuthorId: wallt.Owners[0]", 1)
    );
    check(&text)
        .only_error()
        .expect_message("`TransferRequest` has no field `wallt`")
        .expect_at(pos(&text, "wallt.Owners[0]"))
        .expect_help("did you mean `wallet`?");
}

// ---- unions -----------------------------------------------------------------------------------

/// Nordbank's beneficiaries as a union of two requests (`request` replaced by `with`).
fn beneficiaries_as(with: &str) -> String {
    replace_once(
        NORDBANK,
        "    request:\n      path: /api/beneficiaries\n",
        with,
    )
}

#[test]
fn a_union_of_requests_passes() {
    let text = beneficiaries_as(
        "    union:\n      - request: { path: /api/beneficiaries, query: { kind: iban } }\n        set: { scheme: sepa }\n      - request: { path: /api/beneficiaries, query: { kind: local } }\n        set: { scheme: local }\n",
    );
    check(&text).expect_code(0);
}

#[test]
fn a_union_replaces_the_request() {
    let text = beneficiaries_as(
        "    request:\n      path: /api/beneficiaries\n    union:\n      - request: { path: /api/a }\n      - request: { path: /api/b }\n",
    );
    check(&text)
        .only_error()
        .expect_message("a `union` lists its requests; the operation has no `request` of its own")
        .expect_at(pos_in(&text, "getBeneficiaries:", "request:"))
        .expect_label("conflicts with `union`");
}

#[test]
fn a_union_needs_two_requests_each_with_its_request() {
    let text = beneficiaries_as("    union:\n      - request: { path: /api/a }\n");
    check(&text)
        .only_error()
        .expect_message("a `union` needs at least two requests")
        .expect_help("one request is written `request: { path: ... }` without a `union`");

    let text = beneficiaries_as(
        "    union:\n      - request: { path: /api/a }\n      - set: { scheme: local }\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "missing key `request`: the provider request, e.g. `request: { path: /v1/refunds }`",
        )
        .expect_at(pos(&text, "set: { scheme: local }"));

    let text = beneficiaries_as("    union: { request: { path: /api/a } }\n");
    check(&text)
        .only_error()
        .expect_message("`union` must be a list of requests, found a mapping");
}

#[test]
fn union_constants_are_single_values() {
    let text = beneficiaries_as(
        "    union:\n      - request: { path: /api/a }\n        set: { scheme: [a, b] }\n      - request: { path: /api/b }\n",
    );
    check(&text)
        .only_error()
        .expect_message("a `set` value must be a single value")
        .expect_at(pos(&text, "[a, b]"));
}

#[test]
fn every_request_of_a_union_is_checked() {
    let text = beneficiaries_as(
        "    union:\n      - request: { path: /api/a }\n      - request: { path: \"/api/b/{accountID}\" }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`getBeneficiaries` has no parameter `accountID`")
        .expect_at({
            let (line, column) = pos(&text, "/api/b/{accountID}");
            (line, column + "/api/b/".len())
        });
}

#[test]
fn a_union_is_for_lists() {
    let text = replace_once(
        NORDBANK,
        "    request:\n      path: /api/accounts/{accountId}\n",
        "    union:\n      - request: { path: \"/api/accounts/{accountId}\" }\n      - request: { path: \"/api/cards/{accountId}\" }\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`getAccountBalances` answers one object: a `union` of lists does not apply",
        )
        .expect_at(pos_in(&text, "getAccountBalances:", "request:"));
}

// ---- joins ------------------------------------------------------------------------------------

/// Nordbank's transactions with `join` (its entries) after `records`.
fn transactions_joining(entries: &str) -> String {
    let transactions = NORDBANK.find("  getTransactions:").unwrap();
    let (head, tail) = NORDBANK.split_at(transactions);
    format!(
        "{head}{}",
        tail.replacen(
            "    records: content\n",
            &format!("    records: content\n    join:\n{entries}"),
            1
        )
    )
}

#[test]
fn a_join_of_a_record_value_passes() {
    let text = transactions_joining(
        "      - name: counterparty\n        request: { path: \"/api/beneficiaries/{counterpartyAccountId}\" }\n",
    );
    let text = text.replacen(
        "fields: [description, counterpartyName]",
        "fields: { description: description, iban: counterparty.iban }",
        1,
    );
    check(&text).expect_code(0);
}

#[test]
fn a_join_reads_the_record_not_the_parent() {
    let text = transactions_joining(
        "      - name: owner\n        request: { path: \"/api/owners/{parent.id}\" }\n",
    );
    check(&text)
        .only_error()
        .expect_message("a join's request reads the record: `{PATH}`, not the parent")
        .expect_at(pos(&text, "\"/api/owners/{parent.id}\""));
}

#[test]
fn joins_are_named_calls() {
    let text = transactions_joining("      - request: { path: \"/api/x/{id}\" }\n");
    check(&text)
        .only_error()
        .expect_message(
            "missing key `name`: what later values call its answer, e.g. `name: wallet` for `wallet.owner`",
        );
    let text = transactions_joining("      name: x\n");
    check(&text)
        .only_error()
        .expect_message("`join` must be a list of calls, found a mapping");
}

// ---- switch by sign ---------------------------------------------------------------------------

/// Nordbank's transaction source switched by the sign of the amount instead of the flag.
fn source_by_sign(switch: &str) -> String {
    replace_once(
        NORDBANK,
        "      sourceAccountID:\n        switch:\n          on: credit\n          cases:\n            \"true\": counterpartyAccountId\n            \"false\": { parent: id }\n",
        &format!("      sourceAccountID:\n        switch: {switch}\n"),
    )
}

#[test]
fn a_switch_by_sign_passes() {
    let text = source_by_sign(
        "{ on: amount, by: sign, cases: { negative: { parent: id }, positive: counterpartyAccountId } }",
    );
    check(&text).expect_code(0);
}

#[test]
fn a_switch_is_by_sign_or_by_text() {
    let text = source_by_sign("{ on: amount, by: size, cases: { negative: { parent: id } } }");
    check(&text)
        .only_error()
        .expect_message("`switch.by` takes `sign`")
        .expect_at(pos(&text, "size, cases"));
    let text = source_by_sign("{ on: amount, by: sign, cases: { minus: { parent: id } } }");
    check(&text)
        .only_error()
        .expect_message(
            "`minus` is not a sign: the cases of `by: sign` are negative, zero and positive",
        )
        .expect_at(pos(&text, "{ minus:"))
        .expect_help("use `default` for the signs without a case of their own");
}
