//! Diagnostics of the mapping language's `operations:`, `auth`, `currencies` and connection
//! settings, through the real binary (`connector-gen check` / `generate`): for every class of
//! mistake the exit code, the message, the exact `--> connector.yaml:LINE:COL` (with the caret
//! under that column) and the `= help:` line.
//!
//! Every case starts from a valid mapping (the Cursorpay example, copied below so that the tests
//! do not depend on the example's directory) and makes one small textual edit; expected
//! positions are computed from the edited text, so they stay exact when the base moves.

mod harness;

use harness::*;

/// generated-examples/cursorpay/connector.yaml, as of the `operations:` section's introduction.
const BASE: &str = r#"# Cursorpay: a provider shaped like many card processors. Cursor paging (`starting_after` the
# last record's id), newest first, Unix-second timestamps (whole seconds: many ties), decimal
# amounts with the sign telling the direction, lower-case currency codes.
version: 1
name: cursorpay
upstream:
  base_url: ${env:CURSORPAY_BASE_URL}
  auth:
    bearer: ${env:CURSORPAY_API_KEY}
  timeout: 10s
  retry:
    attempts: 4
    deadline: 20s

operations:
  getAccounts:
    request:
      path: /v1/accounts
    records: data
    paging:
      cursor: { param: starting_after, from_record: id, has_more: has_more }
    page_size: { param: limit, value: 100 }
    order: newest_first
    since: { param: "created[gte]", format: unix_seconds }
    fields:
      id: id
      accountName: name
      createdAt: { path: created, time: unix_seconds }
      metadata:
        metadata:
          fields: [country, default_currency]
          flatten: [settings]

  getAccountBalances:
    request:
      path: /v1/accounts/{accountId}/balance
    fields:
      id: { template: "{account}-balance" }
      accountID: account
      at: { now: true }
      balances:
        each: available
        fields:
          amount: { path: amount, amount: { currency: currency, format: decimal } }
          currency: { path: currency, currency: true }

  getBeneficiaries:
    request:
      path: /v1/recipients
    records: data
    paging:
      cursor: { param: starting_after, from_record: id, has_more: has_more }
    page_size: { param: limit, value: 100 }
    order: newest_first
    since: { param: "created[gte]", format: unix_seconds }
    fields:
      id: id
      ownerName: name
      createdAt: { path: created, time: unix_seconds }
      metadata:
        metadata:
          fields: [email]

  getTransactions:
    request:
      path: /v1/transactions
    records: data
    paging:
      cursor: { param: starting_after, from_record: id, has_more: has_more }
    page_size: { param: limit, value: 100 }
    order: newest_first
    since: { param: "updated[gte]", format: unix_seconds }
    fields:
      id: id
      createdAt: { path: created, time: unix_seconds }
      updatedAt: { path: updated, time: unix_seconds }
      amount:
        path: amount
        amount: { currency: currency, format: decimal, sign: absolute }
      currency: { path: currency, currency: true }
      type:
        path: type
        enum:
          map: { payment: PAYIN, payout: PAYOUT, transfer: TRANSFER, refund: OTHER, adjustment: OTHER }
          fallback: OTHER
      status:
        path: status
        enum:
          map: { succeeded: SUCCEEDED, pending: PENDING, failed: FAILED, canceled: CANCELLED }
          fallback: OTHER
      sourceAccountID: source
      destinationAccountID: destination
      metadata:
        metadata:
          fields: [description]
"#;

// ---- editing the base -------------------------------------------------------------------------

/// The base with its one occurrence of `from` replaced by `to`.
fn edit(from: &str, to: &str) -> String {
    replace_once(BASE, from, to)
}

/// The base with the first `from` after its one `anchor` replaced by `to`.
fn edit_in(anchor: &str, from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(anchor).count(),
        1,
        "{anchor:?} must occur once"
    );
    let start = BASE.find(anchor).unwrap();
    let offset = start
        + BASE[start..]
            .find(from)
            .unwrap_or_else(|| panic!("{from:?} after {anchor:?}"));
    format!("{}{to}{}", &BASE[..offset], &BASE[offset + from.len()..])
}

const PATH_HELP: &str = "write keys joined by `.`, `[n]` for an element, `[]` for every element; `.` is the whole value";
const FLATTEN_HELP: &str = "take one element with `[0]`, or map every element of a list field with `each: PATH` and `fields`";
const SECRET_HELP: &str = "write `${env:NAME}` and set NAME where the connector runs";

// ---- the base ---------------------------------------------------------------------------------

/// Every case edits the base: it must pass, or the cases prove nothing. It passes quietly: the
/// provider has fewer statuses than the protocol, which is nothing to act on.
#[test]
fn the_base_mapping_passes_without_warnings() {
    let run = check(BASE);
    run.expect_code(0);
    assert_eq!(run.stdout, "connector.yaml: no problems found\n");
    assert_eq!(run.stderr, "");
}

// ---- operations and protocol fields -----------------------------------------------------------

#[test]
fn unknown_operation_id_suggests_the_protocols() {
    let text = edit("  getAccounts:\n", "  getAcounts:\n");
    check(&text)
        .only_error()
        .expect_message("the protocol has no operation `getAcounts`")
        .expect_at(pos(&text, "getAcounts:"))
        .expect_help("did you mean `getAccounts`?");
}

#[test]
fn unknown_protocol_field_suggests_the_right_one() {
    let text = edit("      accountName: name\n", "      acountName: name\n");
    // One mistake, one error: not also "never sets `accountName`", which is its consequence.
    check(&text)
        .only_error()
        .expect_message("`Account` has no field `acountName`")
        .expect_at(pos(&text, "acountName"))
        .expect_help("did you mean `accountName`?");
    // A required field missing for another reason still is reported.
    let text = edit_in("  getAccounts:", "      id: id\n", "");
    let text = replace_once(
        &text,
        "      accountName: name\n",
        "      acountName: name\n",
    );
    let run = check(&text);
    run.expect_errors(2);
    run.error("never sets")
        .expect_message("`getAccounts` never sets `id`, which the protocol requires")
        .expect_at(pos(&text, "  getAccounts:"))
        .expect_help("add `id: ...` under `fields`");
}

#[test]
fn a_required_field_never_set_names_the_operation_and_the_field() {
    let text = edit_in(
        "  getTransactions:",
        "      createdAt: { path: created, time: unix_seconds }\n",
        "",
    );
    check(&text)
        .only_error()
        .expect_message("`getTransactions` never sets `createdAt`, which the protocol requires")
        .expect_at(pos(&text, "  getTransactions:"))
        .expect_help("add `createdAt: ...` under `fields`");

    // Inside `each`: at the `each` key.
    let text = edit(
        "          currency: { path: currency, currency: true }\n",
        "",
    );
    check(&text)
        .only_error()
        .expect_message("`balances` never sets `currency`, which the protocol requires")
        .expect_at(pos(&text, "each: available"))
        .expect_help("add `currency: ...` under `fields`");
}

// ---- payment initiations ----------------------------------------------------------------------

/// A payout mapping that passes; the tests below break one thing in it.
const PAYOUT: &str = r#"
  createPayout:
    request:
      path: /v1/payouts
    idempotency_key: { header: Idempotency-Key }
    body:
      amount: { path: amount, amount: { currency: currency, format: decimal } }
      currency: { path: currency, currency: lower }
      reference: idempotencyKey
    fields:
      id: id
      status: { const: PENDING }
      createdAt: { path: created, time: unix_seconds }
    lookup:
      request:
        path: /v1/payouts
        query: { reference: "{idempotencyKey}" }
      records: data
"#;

fn with_payout(from: &str, to: &str) -> String {
    format!("{BASE}{}", replace_once(PAYOUT, from, to))
}

#[test]
fn a_payout_mapping_with_a_key_and_a_lookup_passes() {
    let run = check(&format!("{BASE}{PAYOUT}"));
    run.expect_code(0);
    assert!(
        run.diagnostics()
            .iter()
            .all(|d| !d.message.contains("createPayout")),
        "{}",
        run.stderr
    );
}

#[test]
fn an_initiation_without_a_body_says_how_to_build_one() {
    let text = format!(
        "{BASE}\n  createPayout:\n    request:\n      method: POST\n      path: /v1/payouts\n    fields:\n      id: id\n"
    );
    check(&text)
        .only_error()
        .expect_message(
            "`createPayout` initiates a payment: say how the provider's request body is built",
        )
        .expect_at(pos(&text, "createPayout:"))
        .expect_help("add `body:` with the provider's fields, e.g. `amount: { path: amount, amount: { currency: currency, format: decimal } }`, and `idempotency_key: { header: Idempotency-Key }` if the provider takes one");
}

#[test]
fn a_body_value_from_an_unknown_request_field_suggests_the_right_one() {
    let text = with_payout("reference: idempotencyKey", "reference: idempotencyKy");
    check(&text)
        .only_error()
        .expect_message("`PayoutRequest` has no field `idempotencyKy`")
        .expect_at(pos(&text, "idempotencyKy"))
        .expect_help("did you mean `idempotencyKey`?");
}

#[test]
fn a_lookup_placeholder_must_name_a_request_field() {
    let text = with_payout("\"{idempotencyKey}\"", "\"{key}\"");
    check(&text)
        .only_error()
        .expect_message("`PayoutRequest` has no field `key`")
        .expect_at(pos(&text, "{key}"));
}

#[test]
fn an_initiation_without_key_or_lookup_is_warned_about_paying_twice() {
    let without_key = replace_once(
        PAYOUT,
        "    idempotency_key: { header: Idempotency-Key }\n",
        "",
    );
    let cut = without_key.find("    lookup:").unwrap();
    let text = format!("{BASE}{}", &without_key[..cut]);
    let run = check(&text);
    run.expect_code(0);
    run.warning("can pay twice")
        .expect_message("`createPayout` can pay twice: the provider is given no idempotency key and there is no `lookup`")
        .expect_at(pos(&text, "body:"));
}

#[test]
fn the_echoed_key_cannot_be_mapped() {
    let text = with_payout(
        "      id: id\n",
        "      id: id\n      idempotencyKey: reference\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`idempotencyKey` is the request's own key, echoed exactly; it cannot be mapped",
        )
        .expect_at(pos(&text, "idempotencyKey: reference"));
}

#[test]
fn an_initiation_must_map_what_the_request_cannot_echo() {
    let text = with_payout("      status: { const: PENDING }\n", "");
    check(&text)
        .only_error()
        .expect_message("`createPayout` never sets `status`, which the protocol requires");
}

#[test]
fn a_body_on_an_operation_that_pays_nothing_is_an_error() {
    let text = edit_in(
        "getAccounts:",
        "      path: /v1/accounts\n",
        "      path: /v1/accounts\n    body:\n      a: b\n",
    );
    check(&text)
        .only_error()
        .expect_message("`getAccounts` does not initiate a payment: `body`, `idempotency_key` and `lookup` do not apply")
        .expect_at(pos(&text, "body:"));
}

#[test]
fn initiation_sources_only_fill_the_related_transaction() {
    let text = edit_in(
        "getTransactions:",
        "      id: id\n",
        "      id: { initiation: id }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`initiation` does not apply to `id` of `getTransactions`")
        .expect_help("use it as `relatedTransactionID: { initiation: PATH }` in `getTransactions`");
}

// ---- request ----------------------------------------------------------------------------------

#[test]
fn misspelt_request_key_suggests_the_right_one() {
    let text = edit("      path: /v1/accounts\n", "      pth: /v1/accounts\n");
    // Not also "missing key `path`": the misspelling is the one mistake.
    check(&text)
        .only_error()
        .expect_message("unknown key `pth` in `request`")
        .expect_at(pos(&text, "pth:"))
        .expect_label("expected one of: method, path, query, headers")
        .expect_help("did you mean `path`?");
    // Without a key that could be it, the key is missing.
    let text = edit("      path: /v1/accounts\n", "      query: { x: y }\n");
    check(&text)
        .only_error()
        .expect_message("missing key `path`: the request path, e.g. `/v1/accounts`")
        .expect_at(pos(&text, "query:"))
        .expect_label("`path` belongs here");
}

#[test]
fn request_path_must_start_with_a_slash() {
    let text = edit("      path: /v1/accounts\n", "      path: v1/accounts\n");
    check(&text)
        .only_error()
        .expect_message("`request.path` must start with `/` (it is appended to the base URL)")
        .expect_at(pos(&text, "v1/accounts\n"))
        .expect_no_help();
}

#[test]
fn request_path_placeholder_must_name_a_protocol_parameter() {
    let text = edit("{accountId}/balance", "{acountId}/balance");
    let run = check(&text);
    // At the placeholder itself, not at the operation; and not also a warning that
    // `accountId` is never sent, which is the same mistake.
    run.only_error()
        .expect_message("`getAccountBalances` has no parameter `acountId`")
        .expect_at(pos(&text, "{acountId}"))
        .expect_help("did you mean `accountId`?");
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // Without the placeholder, the parameter is never sent.
    let text = edit("{accountId}/balance", "balance");
    check(&text)
        .expect_code(0)
        .warning("never sends")
        .expect_message("`getAccountBalances` never sends its `accountId` parameter to the provider: every request gets the same answer")
        .expect_at(pos(&text, "/v1/accounts/balance"))
        .expect_help("put `{accountId}` in `request.path`, or in a `request.query` or `request.headers` value");
}

#[test]
fn request_path_with_unbalanced_braces() {
    let text = edit("{accountId}/balance", "{accountId/balance");
    check(&text)
        .only_error()
        .expect_message("`request.path`: a `{` without `}`")
        .expect_at(pos(&text, "/v1/accounts/{accountId/balance"));
}

// ---- records, paging, order, since ------------------------------------------------------------

#[test]
fn misspelt_paging_keys_suggest_the_right_ones() {
    // A key of `paging.cursor`.
    let text = edit_in(
        "  getAccounts:",
        "cursor: { param: starting_after",
        "cursor: { parm: starting_after",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `parm` in `paging.cursor`")
        .expect_at(pos(&text, "parm"))
        .expect_help("did you mean `param`?");

    // The paging kind, as a key: one error, not a second one saying that no kind is given.
    let text = edit_in("  getAccounts:", "      cursor: {", "      cursr: {");
    check(&text)
        .only_error()
        .expect_message("unknown key `cursr` in `paging`")
        .expect_at(pos(&text, "cursr"))
        .expect_label("expected one of: none, cursor, next_url, link_header, page_number, offset")
        .expect_help("did you mean `cursor`?");
}

#[test]
fn unknown_paging_kind_suggests_the_right_one() {
    let text = edit_in(
        "  getAccounts:",
        "    paging:\n      cursor: { param: starting_after, from_record: id, has_more: has_more }\n",
        "    paging: link_headr\n",
    );
    check(&text)
        .only_error()
        .expect_message("unknown paging `link_headr`")
        .expect_at(pos(&text, "link_headr"))
        .expect_label("expected one of: none, cursor, next_url, link_header, page_number, offset")
        .expect_help("did you mean `link_header`?");
}

#[test]
fn two_paging_kinds_point_at_the_second() {
    let text = edit_in(
        "  getAccounts:",
        "has_more: has_more }\n",
        "has_more: has_more }\n      offset: { param: offset }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`paging` takes one kind, found `cursor` and `offset`")
        .expect_at(pos(&text, "offset: { param: offset }"))
        .expect_label("conflicts with `cursor`")
        .expect_help("keep the one the provider uses");
}

#[test]
fn cursor_needs_exactly_one_of_from_record_and_from_body() {
    let text = edit_in("  getAccounts:", "from_record: id, ", "");
    check(&text)
        .only_error()
        .expect_message(
            "`paging.cursor` needs `from_record` or `from_body`: where the next cursor comes from",
        )
        .expect_at(pos(&text, "cursor: { param: starting_after, has_more"))
        .expect_help("`from_record: id` takes the last record's `id`; `from_body: meta.next` a field of the body");

    let text = edit_in(
        "  getAccounts:",
        "from_record: id, ",
        "from_record: id, from_body: next, ",
    );
    check(&text)
        .only_error()
        .expect_message("`paging.cursor` takes `from_record` or `from_body`, not both")
        .expect_at(pos(&text, "from_body: next"))
        .expect_label("conflicts with `from_record`");
}

#[test]
fn unknown_order_suggests_the_right_one() {
    let text = edit_in(
        "  getAccounts:",
        "order: newest_first",
        "order: newest_frist",
    );
    check(&text)
        .only_error()
        .expect_message("unknown order `newest_frist`")
        .expect_at(pos(&text, "newest_frist"))
        .expect_label("expected one of: oldest_first, newest_first, unordered")
        .expect_help("did you mean `newest_first`?");
}

#[test]
fn a_list_without_order_is_an_error_at_records() {
    let text = edit_in("  getAccounts:", "    order: newest_first\n", "");
    check(&text)
        .only_error()
        .expect_message("missing key `order`: the provider's order of records by time")
        .expect_at(pos_in(&text, "  getAccounts:", "records: data"))
        .expect_help("write `order: oldest_first`, `newest_first` or `unordered`");
}

#[test]
fn records_on_a_single_object_operation() {
    let text = edit(
        "      path: /v1/accounts/{accountId}/balance\n",
        "      path: /v1/accounts/{accountId}/balance\n    records: data\n    order: newest_first\n",
    );
    check(&text)
        .only_error()
        .expect_message("`getAccountBalances` answers a single object: `records`, `paging`, `order` and `since` do not apply")
        .expect_at(pos_in(&text, "  getAccountBalances:", "records: data"))
        .expect_help("use `record: path` to say where the object is in the response");
}

#[test]
fn a_list_operation_needs_records() {
    // Nothing about the list at all: the protocol says it is one.
    let list = "    records: data\n    paging:\n      cursor: { param: starting_after, from_record: id, has_more: has_more }\n    page_size: { param: limit, value: 100 }\n    order: newest_first\n    since: { param: \"created[gte]\", format: unix_seconds }\n";
    let text = edit_in("  getAccounts:", list, "");
    check(&text)
        .only_error()
        .expect_message("`getAccounts` answers a list: say where the records are and how the provider orders them")
        .expect_at(pos(&text, "  getAccounts:"))
        .expect_help("add `records: data` (the path to the array) and `order: oldest_first | newest_first | unordered`");

    // Paging without `records`: at the first list key.
    let text = edit_in("  getAccounts:", "    records: data\n", "");
    check(&text)
        .only_error()
        .expect_message("`paging` is for list operations, which need `records`")
        .expect_at(pos_in(&text, "  getAccounts:", "paging:"))
        .expect_help("add `records: PATH`, where the list is in the response, e.g. `data` (`.` for the body)");
}

/// rustc-style: a misspelt key is one error, with the key it was probably meant as; what
/// follows from that key missing is the same mistake and is not reported again.
#[test]
fn a_misspelt_key_is_one_error_not_also_its_consequences() {
    let cases = [
        (
            edit_in(
                "  getAccounts:",
                "    records: data\n",
                "    recrods: data\n",
            ),
            "recrods",
            "unknown key `recrods` in operation `getAccounts`",
            "records",
        ),
        (
            edit_in(
                "  getAccounts:",
                "    order: newest_first\n",
                "    ordr: newest_first\n",
            ),
            "ordr",
            "unknown key `ordr` in operation `getAccounts`",
            "order",
        ),
        (
            edit_in("  getAccounts:", "from_record: id", "from_recrod: id"),
            "from_recrod",
            "unknown key `from_recrod` in `paging.cursor`",
            "from_record",
        ),
        (
            edit(
                "bearer: ${env:CURSORPAY_API_KEY}",
                "api_key: { haeder: X-Api-Key, value: \"${env:KEY}\" }",
            ),
            "haeder",
            "unknown key `haeder` in `auth.api_key`",
            "header",
        ),
        (
            with_payout("    body:\n", "    bdy:\n"),
            "bdy",
            "unknown key `bdy` in operation `createPayout`",
            "body",
        ),
    ];
    for (text, misspelt, message, meant) in cases {
        check(&text)
            .only_error()
            .expect_message(message)
            .expect_at(pos(&text, misspelt))
            .expect_help(&format!("did you mean `{meant}`?"));
    }
}

#[test]
fn records_may_flatten_nested_lists() {
    let text = edit_in(
        "  getAccounts:",
        "records: data",
        "records: \"data[].accounts\"",
    );
    check(&text).expect_code(0);
}

#[test]
fn misspelt_since_key_suggests_the_right_one() {
    let text = edit_in(
        "  getAccounts:",
        "format: unix_seconds }",
        "formt: unix_seconds }",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `formt` in `since`")
        .expect_at(pos(&text, "formt"))
        .expect_label("expected one of: param, from, format, inclusive, to, max_span, start")
        .expect_help("did you mean `format`?");
    let text = edit_in("  getAccounts:", ", format: unix_seconds }", " }");
    check(&text)
        .only_error()
        .expect_message(
            "missing key `format`: how the provider writes the time: rfc3339, unix_seconds, ...",
        )
        .expect_at(pos(&text, "{ param: \"created[gte]\" }"));
}

#[test]
fn since_on_an_operation_without_a_time_filter() {
    let spec = connector_gen::spec::BUNDLED;
    let anchor = "operationId: getBeneficiaries";
    assert_eq!(spec.matches(anchor).count(), 1);
    let start = spec.find(anchor).unwrap();
    let filter = "        - $ref: '#/components/parameters/CreatedAtFrom'\n";
    let at = start
        + spec[start..]
            .find(filter)
            .expect("getBeneficiaries' filter");
    let spec = format!("{}{}", &spec[..at], &spec[at + filter.len()..]);

    let run = check_with_spec(BASE, &spec);
    run.only_error()
        .expect_message("`getBeneficiaries` has no time filter to translate into `created[gte]`")
        .expect_at(pos_in(BASE, "  getBeneficiaries:", "since:"))
        .expect_help("remove `since`: the protocol's `getBeneficiaries` takes no `createdAtFrom` or `updatedAtFrom`");
}

// ---- times ------------------------------------------------------------------------------------

#[test]
fn unknown_time_format_suggests_the_right_one() {
    let text = edit_in("  getAccounts:", "time: unix_seconds", "time: unix_second");
    check(&text)
        .only_error()
        .expect_message("unknown time format `unix_second`")
        .expect_at(pos(&text, "unix_second }"))
        .expect_label(
            "expected rfc3339, unix_seconds, unix_millis or { pattern: ..., utc_offset: ... }",
        )
        .expect_help("did you mean `unix_seconds`?");

    // The same words in `since`.
    let text = edit_in(
        "  getTransactions:",
        "format: unix_seconds }",
        "format: unix_milis }",
    );
    check(&text)
        .only_error()
        .expect_message("unknown time format `unix_milis`")
        .expect_at(pos(&text, "unix_milis"))
        .expect_help("did you mean `unix_millis`?");
}

#[test]
fn a_pattern_without_zone_needs_a_utc_offset() {
    let text = edit_in(
        "  getAccounts:",
        "time: unix_seconds",
        "time: { pattern: \"%d/%m/%Y %H:%M\" }",
    );
    check(&text)
        .only_error()
        .expect_message("the pattern has no zone (`%z`), so the zone must be given")
        .expect_at(pos(&text, "\"%d/%m/%Y"))
        .expect_help(
            "add `zone: Europe/Oslo` (the provider's zone, daylight saving included) or `utc_offset: \"+00:00\"`",
        );

    // With the offset, or with the zone in the pattern, it is fine.
    for time in [
        "time: { pattern: \"%d/%m/%Y %H:%M\", utc_offset: \"+02:00\" }",
        "time: { pattern: \"%d/%m/%Y %H:%M %z\" }",
    ] {
        let text = edit_in("  getAccounts:", "time: unix_seconds", time);
        check(&text).expect_code(0);
    }
}

#[test]
fn a_bad_utc_offset_shows_the_expected_form() {
    let text = edit_in(
        "  getAccounts:",
        "time: unix_seconds",
        "time: { pattern: \"%d/%m/%Y %H:%M\", utc_offset: \"+2\" }",
    );
    check(&text)
        .only_error()
        .expect_message("`utc_offset` must look like `+02:00` or `-05:30`")
        .expect_at(pos(&text, "\"+2\""));
}

#[test]
fn time_on_a_field_that_is_not_a_date() {
    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id: { path: id, time: rfc3339 }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`id` is not a date-time; `time` does not apply")
        .expect_at(pos(&text, "time: rfc3339"))
        .expect_help("remove `time`");
}

// ---- enums ------------------------------------------------------------------------------------

#[test]
fn enum_value_not_in_the_protocol_suggests_the_right_one() {
    let text = edit("succeeded: SUCCEEDED", "succeeded: SUCCEDED");
    let run = check(&text);
    run.only_error()
        .expect_message("`SUCCEDED` is not a TransactionStatus value")
        .expect_at(pos(&text, "SUCCEDED"))
        .expect_help("did you mean `SUCCEEDED`?");

    let text = edit_in("      status:", "fallback: OTHER", "fallback: OTHR");
    check(&text)
        .only_error()
        .expect_message("`OTHR` is not a TransactionStatus value")
        .expect_at(pos(&text, "OTHR"))
        .expect_help("did you mean `OTHER`?");
}

#[test]
fn a_missing_fallback_is_the_one_enum_warning() {
    let text = edit_in("      status:", "          fallback: OTHER\n", "");
    let run = check(&text);
    run.expect_code(0);
    assert_eq!(run.stdout, "connector.yaml: no errors, 1 warning\n");
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    run.warning("no `fallback`")
        .expect_message(
            "`status` has no `fallback`: an unknown provider value fails the whole request",
        )
        .expect_at(pos_in(&text, "      status:", "enum:"))
        .expect_help("add `fallback: OTHER` (or another protocol value)");
}

#[test]
fn a_mistake_in_a_yaml_alias_is_reported_once() {
    // The same status mapping, aliased into a payout and a transfer: one warning, not two.
    let status =
        "      status: &status\n        path: status\n        enum: { map: { paid: SUCCEEDED } }\n";
    let payout = PAYOUT.replace("      status: { const: PENDING }\n", status);
    let transfer = PAYOUT
        .replace("createPayout", "createTransfer")
        .replace("/v1/payouts", "/v1/transfers")
        .replace(
            "      status: { const: PENDING }\n",
            "      status: *status\n",
        );
    let text = format!("{BASE}{payout}{transfer}");
    let run = check(&text);
    run.expect_code(0);
    assert_eq!(
        run.stdout, "connector.yaml: no errors, 1 warning\n",
        "{}",
        run.stderr
    );
    run.warning("no `fallback`")
        .expect_at(pos_in(&text, "      status: &status", "enum:"));
}

#[test]
fn coverage_lists_every_protocol_value_and_the_provider_values_that_become_it() {
    let text = edit_in("      status:", "          fallback: OTHER\n", "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MAPPING), &text).unwrap();
    let run = run_in(dir.path(), &["check", "--mapping", MAPPING, "--coverage"]);
    run.expect_code(0);
    let (line, col) = pos_in(&text, "      type:", "enum:");
    let (status_line, status_col) = pos_in(&text, "      status:", "enum:");
    let expected = format!(
        "connector.yaml: no errors, 1 warning

getTransactions.type (TransactionType), connector.yaml:{line}:{col}
  PAYIN     <- `payment`
  PAYOUT    <- `payout`
  TRANSFER  <- `transfer`
  OTHER     <- `refund`, `adjustment`, any other value (fallback)

getTransactions.status (TransactionStatus), connector.yaml:{status_line}:{status_col}
  PENDING           <- `pending`
  SUCCEEDED         <- `succeeded`
  FAILED            <- `failed`
  CANCELLED         <- `canceled`
  EXPIRED           <- (none)
  REFUNDED          <- (none)
  REFUNDED_FAILURE  <- (none)
  REFUND_REVERSED   <- (none)
  DISPUTE           <- (none)
  DISPUTE_WON       <- (none)
  DISPUTE_LOST      <- (none)
  AUTHORISATION     <- (none)
  CAPTURE           <- (none)
  CAPTURE_FAILED    <- (none)
  OTHER             <- (none)
  any other value fails the request: there is no `fallback`
"
    );
    assert_eq!(run.stdout, expected);
    // Without the flag, the table is not printed.
    assert_eq!(
        check(&text).stdout,
        "connector.yaml: no errors, 1 warning\n"
    );
}

#[test]
fn an_enum_field_needs_an_enum_mapping() {
    let text = edit_in(
        "      status:",
        "        path: status\n        enum:\n          map: { succeeded: SUCCEEDED, pending: PENDING, failed: FAILED, canceled: CANCELLED }\n          fallback: OTHER\n",
        "        path: status\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`status` is a TransactionStatus: map the provider's values onto the protocol's",
        )
        .expect_at(pos(&text, "      status:"))
        .expect_help("add `enum: { map: { provider_value: PROTOCOL_VALUE }, fallback: OTHER }`");
}

#[test]
fn misspelt_enum_key_suggests_the_right_one() {
    let text = edit_in("      status:", "fallback: OTHER", "falback: OTHER");
    check(&text)
        .only_error()
        .expect_message("unknown key `falback` in `enum`")
        .expect_at(pos(&text, "falback"))
        .expect_help("did you mean `fallback`?");
}

// ---- amounts and currencies -------------------------------------------------------------------

#[test]
fn amount_without_an_amount_conversion() {
    let text = edit(
        "      amount:\n        path: amount\n        amount: { currency: currency, format: decimal, sign: absolute }\n",
        "      amount: amount\n",
    );
    check(&text)
        .only_error()
        .expect_message("`amount` is in minor units: say how to convert the provider's amount")
        .expect_at(pos(&text, "      amount: amount"))
        .expect_help(
            "add `amount: { currency: <path to the currency>, format: decimal | minor_units }`",
        );
}

#[test]
fn currency_without_currency_true() {
    let text = edit_in(
        "  getTransactions:",
        "      currency: { path: currency, currency: true }\n",
        "      currency: currency\n",
    );
    check(&text)
        .only_error()
        .expect_message("`currency` is a UMN currency (`EUR/2`): convert the provider's code")
        .expect_at(pos(&text, "      currency: currency\n"))
        .expect_help("add `currency: true`");

    let text = edit_in(
        "  getTransactions:",
        "      currency: { path: currency, currency: true }\n",
        "      currency: { path: currency, currency: false }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`currency: false` converts nothing")
        .expect_at(pos(&text, "false"))
        .expect_help("write `currency: true` to turn the provider's code into the protocol's `EUR/2`, or remove it");
}

#[test]
fn misspelt_amount_words_suggest_the_right_ones() {
    let text = edit(
        "format: decimal, sign: absolute",
        "format: decimals, sign: absolute",
    );
    check(&text)
        .only_error()
        .expect_message("unknown amount format `decimals`")
        .expect_at(pos(&text, "decimals"))
        .expect_label("expected one of: decimal, minor_units, decimal_number, minor_units_number")
        .expect_help("did you mean `decimal`?");

    let text = edit(
        "format: decimal, sign: absolute",
        "format: decimal, sign: absolut",
    );
    check(&text)
        .only_error()
        .expect_message("unknown amount sign `absolut`")
        .expect_at(pos(&text, "absolut }"))
        .expect_help("did you mean `absolute`?");

    let text = edit(
        "format: decimal, sign: absolute",
        "format: decimal, sgn: absolute",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `sgn` in `amount`")
        .expect_at(pos(&text, "sgn"))
        .expect_help("did you mean `sign`?");
}

#[test]
fn currencies_are_upper_case_codes_with_a_sane_precision() {
    let text = edit(
        "\noperations:\n",
        "\ncurrencies:\n  usdc: 6\n  BTC: 40\n\noperations:\n",
    );
    let run = check(&text);
    run.expect_errors(2);
    run.error("is not a currency code")
        .expect_message("`usdc` is not a currency code")
        .expect_at(pos(&text, "usdc"))
        .expect_help("write the code in upper case: `USDC`");
    run.error("precision")
        .expect_message("a currency precision must be a whole number from 0 to 36")
        .expect_at(pos(&text, "40"))
        .expect_no_help();
}

// ---- field mappings ---------------------------------------------------------------------------

#[test]
fn misspelt_field_mapping_keys_suggest_the_right_ones() {
    // A misspelt source: one error, not a second one saying that there is no source.
    let text = edit_in(
        "  getAccounts:",
        "createdAt: { path: created",
        "createdAt: { pth: created",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `pth` in a field mapping")
        .expect_at(pos(&text, "pth"))
        .expect_help("did you mean `path`?");

    // A misspelt conversion.
    let text = edit_in(
        "  getTransactions:",
        "currency: { path: currency, currency: true }",
        "currency: { path: currency, curency: true }",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `curency` in a field mapping")
        .expect_at(pos(&text, "curency"))
        .expect_help("did you mean `currency`?");
}

#[test]
fn a_field_mapping_without_a_source() {
    let text = edit_in(
        "  getAccounts:",
        "createdAt: { path: created, time",
        "createdAt: { time",
    );
    check(&text)
        .only_error()
        .expect_message("a field mapping needs a source")
        .expect_at(pos(&text, "{ time: unix_seconds }"))
        .expect_help(
            "sources: path, const, template, first_of, param, now, each, items, metadata, rust, initiation, parent, switch, absent",
        );
}

#[test]
fn two_sources_in_one_field_mapping_point_at_the_second() {
    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id:\n        path: id\n        const: acct\n",
    );
    check(&text)
        .only_error()
        .expect_message("a field mapping takes one source, found `path` and `const`")
        .expect_at(pos(&text, "const: acct"))
        .expect_label("conflicts with `path`")
        .expect_help("keep one; `first_of: [...]` takes the first of several that is present");
}

#[test]
fn two_conversions_in_one_field_mapping_point_at_the_second() {
    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id: { path: id, time: rfc3339, currency: true }\n",
    );
    check(&text)
        .only_error()
        .expect_message("a field takes one conversion at most, found `time` and `currency`")
        .expect_at(pos(&text, "currency: true }\n      accountName"))
        .expect_label("conflicts with `time`");
}

const BALANCES_EACH: &str = "        each: available\n        fields:\n          amount: { path: amount, amount: { currency: currency, format: decimal } }\n          currency: { path: currency, currency: true }\n";

#[test]
fn a_list_can_be_built_from_one_object() {
    // `each` over an object makes one element of it; `items` writes the elements out.
    let text = edit("        each: available\n", "        each: .\n");
    check(&text).expect_code(0);
    let items = "        items:\n          - amount: { path: balance, amount: { currency: currency, format: decimal } }\n            currency: { path: currency, currency: true }\n          - amount: { path: held, amount: { currency: { const: EUR }, format: minor_units } }\n            currency: { const: EUR/2 }\n";
    check(&edit(BALANCES_EACH, items)).expect_code(0);
    let inline = "        items: [{ amount: { path: balance, amount: { currency: currency } }, currency: { path: currency, currency: true } }]\n";
    check(&edit(BALANCES_EACH, inline)).expect_code(0);
}

#[test]
fn items_that_can_only_fail_are_refused() {
    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id: { items: [{ x: y }] }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`id` is not a list; `items` does not apply")
        .expect_at(pos(&text, "items: [{ x: y }]"))
        .expect_help("`items` writes out the elements of a list field, such as `balances`");

    let text = edit(BALANCES_EACH, "        items: []\n");
    check(&text)
        .only_error()
        .expect_message("`items` lists no entry: the list would always be empty")
        .expect_at(pos(&text, "[]"));

    let text = edit(BALANCES_EACH, "        items: [balance]\n");
    check(&text)
        .only_error()
        .expect_message("an `items` entry maps the element's fields, found a scalar")
        .expect_at(pos(&text, "balance]"));

    // Each entry is a whole element: the protocol's required fields, checked one by one.
    let text = edit(
        BALANCES_EACH,
        "        items:\n          - amount: { path: balance, amount: { currency: currency } }\n            currency: { path: currency, currency: true }\n          - amount: { path: held, amount: { currency: currency } }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`balances` never sets `currency`, which the protocol requires")
        .expect_at(pos(&text, "amount: { path: held"));

    let text = edit(
        BALANCES_EACH,
        "        items: [{ amount: balance, currency: { path: currency, currency: true } }]\n",
    );
    check(&text)
        .only_error()
        .expect_message("`amount` is in minor units: say how to convert the provider's amount")
        .expect_at(pos(&text, "amount: balance"));
}

#[test]
fn each_on_a_field_that_is_not_a_list() {
    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id: { each: data, fields: { x: y } }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`id` is not a list; `each` does not apply")
        .expect_at(pos(&text, "each: data"))
        .expect_help("`each` maps every element of a list field, such as `balances`");
}

#[test]
fn each_and_fields_go_together() {
    let text = edit(
        "        each: available\n        fields:\n",
        "        each: available\n        felds:\n",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `felds` in a field mapping")
        .expect_at(pos(&text, "felds"))
        .expect_help("did you mean `fields`?");
    let text = edit(
        "        each: available\n        fields:\n",
        "        each: available\n        other:\n",
    );
    check(&text)
        .error("needs `fields`")
        .expect_message("`each` needs `fields`: how every element is mapped")
        .expect_at(pos(&text, "each: available"))
        .expect_help("add `fields: { id: id, ... }` next to `each`");

    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id: { path: id, fields: { x: y } }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`fields` goes with `each`")
        .expect_at(pos(&text, "fields: { x: y }"))
        .expect_help(
            "`each: PATH` with `fields` maps every element of a list; elsewhere, remove `fields`",
        );
}

#[test]
fn param_source_must_name_a_protocol_parameter() {
    let text = edit(
        "      accountID: account\n",
        "      accountID: { param: acountId }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`getAccountBalances` has no parameter `acountId`")
        .expect_at(pos(&text, "acountId"))
        .expect_help("did you mean `accountId`?");

    // In a template: at the placeholder.
    let text = edit("\"{account}-balance\"", "\"{param.acountId}-balance\"");
    check(&text)
        .only_error()
        .expect_message("`getAccountBalances` has no parameter `acountId`")
        .expect_at(pos(&text, "{param.acountId}"))
        .expect_help("did you mean `accountId`?");
}

#[test]
fn malformed_paths_say_what_is_wrong() {
    for (path, problem) in [
        (
            "data..id",
            "an empty key (two `.` in a row, or a `.` at an end)",
        ),
        ("a[x]", "`[x]` is not an index"),
        ("\"a[0\"", "a `[` without `]`"),
        ("a b", "`a b` has characters a key cannot have here"),
    ] {
        let text = edit_in(
            "  getAccounts:",
            "      id: id\n",
            &format!("      id: {path}\n"),
        );
        let shown = path.trim_matches('"');
        check(&text)
            .only_error()
            .expect_message(&format!("`{shown}` is not a valid path: {problem}"))
            .expect_at(pos(&text, &format!("id: {path}\n")[4..]))
            .expect_label("a field path")
            .expect_help(PATH_HELP);
    }
}

#[test]
fn templates_with_unbalanced_braces() {
    for (template, problem) in [
        ("\"{account-balance\"", "a `{` without `}`"),
        ("\"account}-balance\"", "a `}` without `{`"),
        ("\"{}-balance\"", "an empty `{}`"),
    ] {
        let text = edit("\"{account}-balance\"", template);
        check(&text)
            .only_error()
            .expect_message(&format!("`template`: {problem}"))
            .expect_at(pos(&text, template));
    }
}

#[test]
fn flattening_is_only_for_records() {
    let cases = [
        // A field path.
        (
            "      id: id\n",
            "      id: \"data[].id\"\n",
            "\"data[].id\"",
            "data[].id",
        ),
        // A metadata path.
        (
            "fields: [country, default_currency]",
            "fields: [country, \"settings[].name\"]",
            "\"settings[].name\"",
            "settings[].name",
        ),
        // The cursor.
        (
            "from_record: id,",
            "from_record: \"data[].id\",",
            "\"data[].id\"",
            "data[].id",
        ),
    ];
    for (from, to, at, path) in cases {
        let text = edit_in("  getAccounts:", from, to);
        check(&text)
            .only_error()
            .expect_message(&format!(
                "`{path}` flattens a list with `[]`, which only `records` can do"
            ))
            .expect_at(pos(&text, at))
            .expect_help(FLATTEN_HELP);
    }

    // A template's placeholder, and `each`'s path.
    let text = edit("\"{account}-balance\"", "\"{accounts[].id}-balance\"");
    check(&text)
        .only_error()
        .expect_message("`accounts[].id` flattens a list with `[]`, which only `records` can do")
        .expect_at(pos(&text, "\"{accounts[].id}"));
    let text = edit("each: available", "each: \"accounts[].available\"");
    check(&text)
        .only_error()
        .expect_message(
            "`accounts[].available` flattens a list with `[]`, which only `records` can do",
        )
        .expect_at(pos(&text, "\"accounts[].available\""));
}

#[test]
fn first_of_takes_one_conversion_for_all_its_options() {
    // The conversion next to `first_of` converts whichever option is found.
    let text = edit(
        "        path: amount\n        amount: { currency",
        "        first_of: [amount, amount_decimal]\n        amount: { currency",
    );
    check(&text).expect_code(0);

    // One inside an option would never be applied.
    let text = edit(
        "        path: amount\n        amount: { currency",
        "        first_of: [amount, { path: created, time: unix_seconds }]\n        amount: { currency",
    );
    check(&text)
        .only_error()
        .expect_message("a conversion inside `first_of` is never applied")
        .expect_at(pos(&text, "time: unix_seconds }]"))
        .expect_help("put it next to `first_of`, where it converts whichever value is found");
}

#[test]
fn computed_sources_take_no_conversion() {
    let text = edit(
        "      at: { now: true }\n",
        "      at: { now: true, time: rfc3339 }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`time` does not apply to `now`: it is the field's final value")
        .expect_at(pos(&text, "time: rfc3339"))
        .expect_help("remove `time`");

    let text = edit_in(
        "  getAccounts:",
        "      id: id\n",
        "      id: { rust: crate::handlers::account_id, currency: true }\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`currency` does not apply to `rust`: the function returns the field's final value",
        )
        .expect_at(pos(&text, "currency: true }\n      accountName"))
        .expect_help("remove `currency`");

    let text = edit("      at: { now: true }\n", "      at: { now: false }\n");
    check(&text)
        .only_error()
        .expect_message("`now: false` gives the field no value")
        .expect_at(pos(&text, "false"))
        .expect_help("write `now: true` for the time the connector answers, or use another source");
}

// ---- auth and connection settings -------------------------------------------------------------

#[test]
fn secrets_must_come_from_the_environment() {
    let cases = [
        ("bearer: sk_live_123", "sk_live_123", "`auth.bearer`"),
        (
            "basic: { username: me, password: hunter2 }",
            "hunter2",
            "`auth.basic.password`",
        ),
        (
            "oauth2:\n      token_url: https://auth.example.com/token\n      client_id: me\n      client_secret: s3cret",
            "s3cret",
            "`auth.oauth2.client_secret`",
        ),
        (
            "api_key: { header: X-Api-Key, value: k3y }",
            "k3y",
            "`auth.api_key.value`",
        ),
    ];
    for (auth, secret, what) in cases {
        let text = edit("bearer: ${env:CURSORPAY_API_KEY}", auth);
        check(&text)
            .only_error()
            .expect_message(&format!(
                "{what} is a secret and cannot be written in the file"
            ))
            .expect_at(pos(&text, secret))
            .expect_help(SECRET_HELP);
    }

    // Written as references, the same settings pass (quoted inside `{ ... }`, where YAML reads
    // `{` as the start of a mapping).
    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "basic: { username: me, password: \"${env:CURSORPAY_PASSWORD}\" }",
    );
    check(&text).expect_code(0);
}

#[test]
fn references_compose_inside_longer_settings() {
    // One variable in several settings, text around references, a token endpoint on the base
    // URL, a header and a secret written as templates: all of it passes.
    let text = edit(
        "  base_url: ${env:CURSORPAY_BASE_URL}\n  auth:\n    bearer: ${env:CURSORPAY_API_KEY}\n",
        "  base_url: \"${env:BANK_URL}/api/v2\"\n  headers:\n    X-Tenant: \"tenant-${env:TENANT}\"\n    X-Api-Token: \"Token ${env:KEY}\"\n  auth:\n    oauth2:\n      token_url: \"${env:BANK_URL}/oauth/token\"\n      client_id: \"${env:TENANT}-client\"\n      client_secret: \"s-${env:SECRET}\"\n",
    );
    check(&text).expect_code(0);
    let text = edit(
        "  auth:\n    bearer: ${env:CURSORPAY_API_KEY}\n",
        "  auth:\n    oauth2: { token_url: /oauth/token, client_id: me, client_secret: \"${env:SECRET}\" }\n",
    );
    check(&text).expect_code(0);
}

#[test]
fn a_bad_reference_inside_a_setting_is_an_error_at_its_column() {
    for (written, reference) in [
        ("\"${env:bank_url}/api\"", "${env:bank_url}"),
        ("\"https://${BANK_HOST}/api\"", "${BANK_HOST}"),
        ("\"${env:BANK_URL}/${env:Oops}\"", "${env:Oops}"),
        ("\"${env:BANK_URL}/api/${env:VERSION\"", "${env:VERSION"),
    ] {
        let text = edit(
            "base_url: ${env:CURSORPAY_BASE_URL}",
            &format!("base_url: {written}"),
        );
        check(&text)
            .only_error()
            .expect_message(&format!("`{reference}` is not a valid reference"))
            .expect_at(pos(&text, reference))
            .expect_help("write `${env:NAME}` with NAME in upper case, digits and `_`");
    }
    // In a header value and in a secret too.
    let text = edit(
        "  timeout: 10s\n",
        "  headers: { X-Tenant: \"t-${env:tenant}\" }\n  timeout: 10s\n",
    );
    check(&text)
        .only_error()
        .expect_message("`${env:tenant}` is not a valid reference")
        .expect_at(pos(&text, "${env:tenant}"));
    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "bearer: \"Token ${KEY}\"",
    );
    check(&text)
        .only_error()
        .expect_message("`${KEY}` is not a valid reference")
        .expect_at(pos(&text, "${KEY}"));
}

#[test]
fn composed_urls_must_start_as_urls_and_secrets_need_a_reference() {
    let text = edit(
        "base_url: ${env:CURSORPAY_BASE_URL}",
        "base_url: \"api.${env:BANK_HOST}\"",
    );
    check(&text)
        .only_error()
        .expect_message("`api.${env:BANK_HOST}` is not an http(s) URL")
        .expect_at(pos(&text, "\"api."));
    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "oauth2: { token_url: oauth/token, client_id: me, client_secret: \"${env:SECRET}\" }",
    );
    check(&text)
        .only_error()
        .expect_message("`oauth/token` is not an http(s) URL or a path on the base URL")
        .expect_at(pos(&text, "oauth/token"))
        .expect_help("write `https://...`, `/path` (appended to `upstream.base_url`), or start with `${env:NAME}`");
    // A template of text only is no reference: the secret would be in the file.
    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "bearer: \"Token abc123\"",
    );
    check(&text)
        .only_error()
        .expect_message("`auth.bearer` is a secret and cannot be written in the file")
        .expect_at(pos(&text, "\"Token abc123\""));
    let text = edit(
        "  timeout: 10s\n",
        "  headers: { X-Api-Token: \"Token abc123\" }\n  timeout: 10s\n",
    );
    check(&text)
        .only_error()
        .expect_message("`X-Api-Token` looks like a credential and cannot be written in the file")
        .expect_at(pos(&text, "\"Token abc123\""));
}

#[test]
fn a_reference_where_the_environment_is_not_read_is_an_error() {
    let text = edit(
        "      path: /v1/recipients\n",
        "      path: /v1/recipients\n      query: { tenant: \"${env:TENANT}\" }\n",
    );
    check(&text)
        .only_error()
        .expect_message("`request.query` does not read the environment: `${env:TENANT}` would be sent as written")
        .expect_at(pos(&text, "${env:TENANT}"))
        .expect_help("`${env:NAME}` works in `upstream.base_url`, `upstream.headers` values and `upstream.auth` values");
    let text = edit(
        "      id: { template: \"{account}-balance\" }",
        "      id: { template: \"{account}-${env:SUFFIX}\" }",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`template` does not read the environment: `${env:SUFFIX}` would be sent as written",
        )
        .expect_at(pos(&text, "${env:SUFFIX}"));
    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "oauth2: { token_url: /token, client_id: me, client_secret: \"${env:S}\", scope: \"${env:SCOPE}\" }",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`auth.oauth2.scope` does not read the environment: `${env:SCOPE}` would be sent as written",
        )
        .expect_at(pos(&text, "${env:SCOPE}"));
}

#[test]
fn auth_takes_one_kind() {
    let text = edit(
        "    bearer: ${env:CURSORPAY_API_KEY}\n",
        "    bearer: ${env:CURSORPAY_API_KEY}\n    basic:\n      username: me\n      password: ${env:CURSORPAY_PASSWORD}\n",
    );
    check(&text)
        .only_error()
        .expect_message("`upstream.auth` takes one kind, found `bearer` and `basic`")
        .expect_at(pos(&text, "basic:"))
        .expect_label("conflicts with `bearer`")
        .expect_help("keep the one the provider expects");

    let text = edit("    bearer: ${env", "    baerer: ${env");
    check(&text)
        .only_error()
        .expect_message("unknown key `baerer` in `upstream.auth`")
        .expect_at(pos(&text, "baerer"))
        .expect_help("did you mean `bearer`?");
}

#[test]
fn api_key_goes_in_a_header_or_the_query() {
    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "api_key:\n      header: X-Api-Key\n      query: api_key\n      value: ${env:CURSORPAY_API_KEY}",
    );
    check(&text)
        .only_error()
        .expect_message("`auth.api_key` takes `header` or `query`, not both")
        .expect_at(pos(&text, "query: api_key"))
        .expect_label("conflicts with `header`")
        .expect_help("keep the one the provider reads the key from");

    let text = edit(
        "bearer: ${env:CURSORPAY_API_KEY}",
        "api_key:\n      value: ${env:CURSORPAY_API_KEY}",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`auth.api_key` needs `header: NAME` or `query: NAME`: where the key is sent",
        )
        .expect_at(pos(&text, "api_key:"))
        .expect_help("e.g. `header: X-Api-Key`");
}

#[test]
fn timeouts_and_retries_are_checked_together() {
    let text = edit("  timeout: 10s\n", "  timeout: 10\n");
    check(&text)
        .only_error()
        .expect_message("`upstream.timeout` must be a duration such as `500ms`, `10s` or `2m`")
        .expect_at(pos(&text, "10\n"));

    let text = edit("    attempts: 4\n", "    attempts: 0\n");
    check(&text)
        .only_error()
        .expect_message("`retry.attempts` must be a whole number from 1 to 20")
        .expect_at(pos(&text, "0\n    deadline"));

    // A bad timeout does not hide a bad retry.
    let text = replace_once(
        &edit("  timeout: 10s\n", "  timeout: 10\n"),
        "    deadline: 20s\n",
        "    deadline: soon\n",
    );
    let run = check(&text);
    run.expect_errors(2);
    run.error("`upstream.timeout`")
        .expect_at(pos(&text, "10\n"));
    run.error("`retry.deadline` must be a duration")
        .expect_at(pos(&text, "soon"));
}

#[test]
fn rate_limits_are_checked_with_their_places() {
    let with = |limit: &str| {
        edit(
            "  timeout: 10s\n",
            &format!("  timeout: 10s\n  rate_limit: {limit}\n"),
        )
    };
    let text = with("{ requests: 10, per: 1s, burst: 5 }");
    check(&text).expect_code(0);
    let text = with("{ requests: 10, burst: 5 }");
    check(&text)
        .only_error()
        .expect_message("missing key `per`: the provider's window, e.g. `1s` or `1m`")
        .expect_at(pos(&text, "{ requests: 10, burst"));
    let text = with("{ requests: 0, per: 1s }");
    check(&text)
        .only_error()
        .expect_message("`rate_limit.requests` must be a whole number from 1 to 1000000")
        .expect_at(pos(&text, "0, per"));
    let text = with("{ requests: 10, per: 1 }");
    check(&text)
        .only_error()
        .expect_message("`rate_limit.per` must be a duration such as `500ms`, `10s` or `2m`")
        .expect_at(pos(&text, "1 }"));
    let text = with("{ requests: 10, per: 1s, bursts: 2 }");
    check(&text)
        .only_error()
        .expect_message("unknown key `bursts` in `upstream.rate_limit`")
        .expect_at(pos(&text, "bursts"))
        .expect_help("did you mean `burst`?");
}

// ---- every problem in one run; generate refuses ------------------------------------------------

/// Six independent mistakes, one in each section: auth, timeout, currencies, a request, paging
/// order, a field's time format.
fn six_mistakes() -> String {
    let mut text = edit("bearer: ${env:CURSORPAY_API_KEY}", "bearer: sk_live_123");
    for (from, to) in [
        ("  timeout: 10s\n", "  timeout: 10\n"),
        (
            "\noperations:\n",
            "\ncurrencies:\n  usdc: 6\n\noperations:\n",
        ),
        (
            "      path: /v1/recipients\n",
            "      path: v1/recipients\n",
        ),
    ] {
        text = replace_once(&text, from, to);
    }
    let start = text.find("  getTransactions:").unwrap();
    let order = start + text[start..].find("order: newest_first").unwrap();
    text.replace_range(order..order + "order: newest_first".len(), "order: newest");
    let time = text
        .find("updatedAt: { path: updated, time: unix_seconds }")
        .unwrap();
    text.replace_range(
        time..time + "updatedAt: { path: updated, time: unix_seconds }".len(),
        "updatedAt: { path: updated, time: unix_ms }",
    );
    text
}

#[test]
fn every_mistake_of_a_file_is_reported_in_one_run_in_file_order() {
    let text = six_mistakes();
    let run = check(&text);
    run.expect_errors(6);
    let expected = [
        (
            "`auth.bearer` is a secret and cannot be written in the file",
            pos(&text, "sk_live_123"),
        ),
        (
            "`upstream.timeout` must be a duration such as `500ms`, `10s` or `2m`",
            pos(&text, "10\n"),
        ),
        ("`usdc` is not a currency code", pos(&text, "usdc")),
        (
            "`request.path` must start with `/` (it is appended to the base URL)",
            pos(&text, "v1/recipients"),
        ),
        ("unknown order `newest`", pos(&text, "newest\n")),
        ("unknown time format `unix_ms`", pos(&text, "unix_ms")),
    ];
    let errors = run.errors();
    for (reported, (message, at)) in errors.iter().zip(expected) {
        reported.expect_message(message).expect_at(at);
    }
    let lines: Vec<_> = expected.iter().map(|(_, (line, _))| *line).collect();
    assert!(lines.is_sorted(), "{lines:?}");
}

#[test]
fn generate_refuses_and_writes_nothing() {
    for (text, errors) in [
        (six_mistakes(), 6),
        (edit("  getAccounts:\n", "  getAcounts:\n"), 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MAPPING), &text).unwrap();
        let run = run_in(
            dir.path(),
            &["generate", "--mapping", MAPPING, "--out", "out"],
        );
        run.expect_errors(errors);
        assert_eq!(run.stdout, "", "generate printed changes");
        assert!(!dir.path().join("out").exists(), "generate wrote files");
    }
    // The same file is fine once fixed: the refusal is about the mistakes.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MAPPING), BASE).unwrap();
    let run = run_in(
        dir.path(),
        &["generate", "--mapping", MAPPING, "--out", "out"],
    );
    run.expect_code(0);
    assert!(dir.path().join("out/Cargo.toml").exists());
}

#[test]
fn syntax_and_protocol_mistakes_of_different_operations_are_reported_together() {
    // One operation fails to load (a misspelt key); another loads but names a field the
    // protocol does not have. Both are reported in the same run.
    let text = edit("      accountName: name\n", "      acountName: name\n");
    let text = replace_once(
        &text,
        "    order: newest_first\n    since: { param: \"updated[gte]\"",
        "    ordr: newest_first\n    since: { param: \"updated[gte]\"",
    );
    let run = check(&text);
    run.expect_errors(2);
    run.error("has no field")
        .expect_message("`Account` has no field `acountName`")
        .expect_at(pos(&text, "acountName"));
    run.error("unknown key `ordr`")
        .expect_at(pos(&text, "ordr"));
}

// ---- skeletons ----------------------------------------------------------------------------------

/// `new --template card|bank` writes every operation as a commented-out sketch: the file passes
/// `check` and `generate --check` as written (src/render/templates.rs checks that it also passes
/// with every part uncommented, mapping all six operations).
#[test]
fn new_writes_a_commented_skeleton_of_every_operation_that_passes_check() {
    for template in ["card", "bank"] {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("acme-bank");
        let run = run_in(
            parent.path(),
            &["new", dir.to_str().unwrap(), "--template", template],
        );
        run.expect_code(0);
        let text = std::fs::read_to_string(dir.join(MAPPING)).unwrap();
        assert!(
            text.contains("  base_url: ${env:ACME_BANK_BASE_URL}\n"),
            "{text}"
        );
        for operation in [
            "getAccounts",
            "getAccountBalances",
            "getBeneficiaries",
            "getTransactions",
            "createPayout",
            "createTransfer",
        ] {
            assert!(
                text.contains(&format!("\n  # {operation}:\n")),
                "{template}: {operation}\n{text}"
            );
        }
        assert!(text.contains("\n  # auth:\n"), "{text}");
        let run = run_in(&dir, &["check"]);
        run.expect_code(0);
        assert_eq!(run.stdout, "connector.yaml: no problems found\n");
        run_in(&dir, &["generate", "--check"]).expect_code(0);
    }
    let parent = tempfile::tempdir().unwrap();
    let run = run_in(parent.path(), &["new", "acme", "--template", "wallet"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("[possible values: minimal, card, bank]"),
        "{}",
        run.stderr
    );
    assert!(!parent.path().join("acme").exists());
    let help = run_in(parent.path(), &["new", "--help"]);
    assert!(
        help.stdout.contains("--template <TEMPLATE>"),
        "{}",
        help.stdout
    );
    assert!(
        help.stdout
            .contains("card and bank sketch all six operations"),
        "{}",
        help.stdout
    );
}

// ---- login auth and form bodies ---------------------------------------------------------------

/// A Currencycloud-shaped login that passes; the tests below break one thing in it.
const LOGIN: &str = r#"    login:
      url: /v2/authenticate/api
      body_encoding: form
      body:
        login_id: ${env:CC_LOGIN_ID}
        api_key: ${env:CC_API_KEY}
      token: auth_token
      expires_after: 25m
      header: X-Auth-Token
"#;

fn with_login(from: &str, to: &str) -> String {
    edit(
        "    bearer: ${env:CURSORPAY_API_KEY}\n",
        &replace_once(LOGIN, from, to),
    )
}

#[test]
fn login_auth_of_each_provider_shape_passes() {
    check(&edit("    bearer: ${env:CURSORPAY_API_KEY}\n", LOGIN)).expect_code(0);
    // Moneycorp: a JSON body, the token nested, sent as a bearer token (the default).
    let moneycorp = "    login:\n      url: \"${env:MC_BASE}/login/authenticate\"\n      body:\n        loginId: ${env:MC_LOGIN_ID}\n        apiKey: ${env:MC_API_KEY}\n      token: data.accessToken\n      expires_after: 14m\n";
    check(&edit("    bearer: ${env:CURSORPAY_API_KEY}\n", moneycorp)).expect_code(0);
    // Banking Circle: HTTP basic, no body, the lifetime in the answer.
    let banking_circle = "    login:\n      url: https://authorizationsandbox.bankingcircleconnect.com/api/v1/authorizations/authorize\n      method: get\n      basic: { username: \"${env:BC_USER}\", password: \"${env:BC_PASSWORD}\" }\n      token: access_token\n      expires_in: expires_in\n";
    check(&edit(
        "    bearer: ${env:CURSORPAY_API_KEY}\n",
        banking_circle,
    ))
    .expect_code(0);
}

#[test]
fn a_login_without_a_token_path_says_where_to_find_it() {
    let text = with_login("      token: auth_token\n", "");
    check(&text)
        .only_error()
        .expect_message(
            "missing key `token`: where the token is in the login answer, e.g. `token: data.accessToken`",
        )
        .expect_at(pos(&text, "url: /v2/authenticate/api"));
}

#[test]
fn a_login_token_path_must_be_dotted_keys() {
    for bad in ["data..token", "data[0].token", "\"\""] {
        let text = with_login("token: auth_token", &format!("token: {bad}"));
        check(&text)
            .only_error()
            .expect_at(pos(&text, bad))
            .expect_help("write object keys separated by dots, e.g. `data.accessToken`");
    }
    let text = with_login("expires_after: 25m", "expires_in: data[].ttl");
    check(&text)
        .only_error()
        .expect_message("`auth.login.expires_in`: `data[].ttl` is not a path into the login answer")
        .expect_at(pos(&text, "data[].ttl"));
}

#[test]
fn a_login_header_must_be_a_header_name() {
    let text = with_login("header: X-Auth-Token", "header: \"X Auth Token\"");
    check(&text)
        .only_error()
        .expect_message("`X Auth Token` is not a valid HTTP header name")
        .expect_at(pos(&text, "\"X Auth Token\""))
        .expect_help("write the header the provider reads the token from, e.g. `X-Auth-Token`");
    let text = with_login(
        "      header: X-Auth-Token\n",
        "      header: X-Auth-Token\n      prefix: \"${env:SCHEME} \"\n",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`auth.login.prefix` does not read the environment: `${env:SCHEME}` would be sent as written",
        )
        .expect_at(pos(&text, "${env:SCHEME}"));
}

#[test]
fn an_unknown_body_encoding_suggests_the_known_ones() {
    let text = with_login("body_encoding: form", "body_encoding: from");
    check(&text)
        .only_error()
        .expect_message("unknown body encoding `from`")
        .expect_at(pos(&text, "from\n"))
        .expect_label("expected one of: json, form")
        .expect_help("did you mean `form`?");
    // Without a body there is nothing to encode.
    let text = with_login(
        "      body:\n        login_id: ${env:CC_LOGIN_ID}\n        api_key: ${env:CC_API_KEY}\n",
        "",
    );
    check(&text)
        .only_error()
        .expect_message(
            "`body_encoding` says how `body` is written, and `auth.login` has no `body`",
        )
        .expect_at(pos(&text, "body_encoding"));
}

#[test]
fn login_credentials_must_come_from_the_environment() {
    let text = with_login("api_key: ${env:CC_API_KEY}", "api_key: abc123");
    check(&text)
        .only_error()
        .expect_message("`api_key` looks like a credential and cannot be written in the file")
        .expect_at(pos(&text, "abc123"))
        .expect_help(SECRET_HELP);
    let text = with_login(
        "      token: auth_token\n",
        "      basic: { username: me, password: hunter2 }\n      token: auth_token\n",
    );
    check(&text)
        .only_error()
        .expect_message("`auth.login.basic.password` is a secret and cannot be written in the file")
        .expect_at(pos(&text, "hunter2"));
}

#[test]
fn a_login_url_must_be_a_url_or_a_path() {
    let text = with_login("url: /v2/authenticate/api", "url: v2/authenticate/api");
    check(&text)
        .only_error()
        .expect_message("`v2/authenticate/api` is not an http(s) URL or a path on the base URL")
        .expect_at(pos(&text, "v2/authenticate/api"));
    let text = with_login(
        "      url: /v2/authenticate/api\n",
        "      url: /v2/authenticate/api\n      method: PATCH\n",
    );
    check(&text)
        .only_error()
        .expect_message("`auth.login.method` must be GET, POST or PUT")
        .expect_at(pos(&text, "PATCH"));
    let text = with_login(
        "      token: auth_token\n",
        "      token: auth_token\n      tokn_header: x\n",
    );
    check(&text)
        .only_error()
        .expect_message("unknown key `tokn_header` in `auth.login`")
        .expect_at(pos(&text, "tokn_header"));
}

#[test]
fn a_form_payout_body_passes_and_its_keys_nest_with_dots() {
    let form = with_payout(
        "    body:\n",
        "    body_encoding: form\n    body:\n      metadata.order_id: idempotencyKey\n",
    );
    let run = check(&form);
    run.expect_code(0);
    let text = with_payout(
        "    body:\n",
        "    body_encoding: form\n    body:\n      \"metadata[order_id]\": idempotencyKey\n",
    );
    check(&text)
        .only_error()
        .expect_message("`metadata[order_id]` has brackets, which a form body writes itself")
        .expect_at(pos(&text, "\"metadata[order_id]\""))
        .expect_help("write nesting with dots (`metadata.order_id`): it is sent as `a[b]=...`");
    let text = with_payout("    body:\n", "    body_encoding: xml\n    body:\n");
    check(&text)
        .only_error()
        .expect_message("unknown body encoding `xml`")
        .expect_at(pos(&text, "xml"));
    // On an operation that pays nothing, `body_encoding` is misplaced like `body` is.
    let text = edit_in(
        "  getAccounts:",
        "    records: data\n",
        "    records: data\n    body_encoding: form\n",
    );
    check(&text)
        .only_error()
        .expect_message("`body_encoding` is for payment initiations, which need `body`")
        .expect_at(pos(&text, "body_encoding"));
}
