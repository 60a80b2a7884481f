//! End-to-end tests of the `walletpay` example, shaped like Mangopay: generated from its
//! connector.yaml, built, started against the Walletpay mock of
//! `tests/support/mock_wallets.rs` and polled exactly as Formance polls.
//!
//! Walletpay lists wallets and bank accounts per user, transactions per wallet (a transfer
//! under both of its wallets), writes money as minor-unit integers (some beyond 2^53), the side
//! of a transaction without a wallet as `""`, and wants the wallet's owner in every payment,
//! which the mapping's `steps` look up first. What is checked is the mock's ground truth.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use support::formance::{Kind, Poller, format_rfc3339_nanos};
use support::initiate::{created_id, initiate, post_once};
use support::mock_cursor::currency_exponent;
use support::mock_wallets::{Walletpay, WpNewTransaction, WpTransaction};
use support::sync_check::{
    EnumRule, NANOS, Truth, Want, base_url, check_never_plain_4xx, check_received,
    check_served_order, count_calls, example, only, sync, unix_now_nanos,
};
use support::{API_KEY, Server, fresh_store_path};

const CLIENT_ID: &str = "wp-client-e2e";
const API_SECRET: &str = "wp-secret-e2e";
/// The mapping's page size at the provider.
const PROVIDER_PAGE: usize = 100;

fn start(wp: &Walletpay) -> Server {
    start_with(wp, &[])
}

fn start_with(wp: &Walletpay, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("WALLETPAY_BASE_URL".to_owned(), wp.url()),
        ("WALLETPAY_CLIENT_ID".to_owned(), CLIENT_ID.to_owned()),
        ("WALLETPAY_API_KEY".to_owned(), API_SECRET.to_owned()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Server::start(&example("walletpay").binary, &env)
}

fn wp_operation(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v2", "users"] => "users",
        ["v2", "users", _, "wallets"] => "getAccounts",
        ["v2", "users", _, "bankaccounts"] => "getBeneficiaries",
        ["v2", "wallets", _, "transactions"] => "getTransactions",
        ["v2", "wallets", _] => "wallet",
        ["v2", "payouts", "bankwire"] | ["v2", "transfers"] => "payment",
        ["v2", "responses", _] => "lookup",
        _ => "unknown",
    }
}

fn umn(currency: &str) -> String {
    format!("{currency}/{}", currency_exponent(currency))
}

fn secs(s: i64) -> i128 {
    i128::from(s) * NANOS
}

// =============================================================================================
// Ground truth
// =============================================================================================

fn account_truth(wp: &Walletpay) -> Truth {
    wp.wallets()
        .into_iter()
        .map(|w| {
            let mut metadata = json!({"currency": w.currency, "owner": w.owner});
            if let Some(tag) = &w.tag {
                metadata["tag"] = json!(tag);
            }
            let json = json!({"id": w.id, "accountName": w.description, "metadata": metadata});
            (
                w.id,
                Want {
                    json,
                    times: vec![("createdAt", secs(w.created))],
                },
            )
        })
        .collect()
}

fn beneficiary_truth(wp: &Walletpay) -> Truth {
    wp.bank_accounts()
        .into_iter()
        .map(|b| {
            let json = json!({
                "id": b.id,
                "ownerName": b.owner_name,
                "metadata": {
                    "iban": b.iban,
                    "bic": b.bic,
                    "user": b.user_id,
                    "active": b.active.to_string(),
                },
            });
            (
                b.id,
                Want {
                    json,
                    times: vec![("createdAt", secs(b.created))],
                },
            )
        })
        .collect()
}

/// One transaction as the mapping converts it; `links` maps a payout's or transfer's id to
/// the idempotency key Formance made it with.
fn transaction_want(
    t: &WpTransaction,
    statuses: &EnumRule,
    links: &BTreeMap<String, String>,
) -> Want {
    let mut metadata = Map::new();
    metadata.insert("nature".to_owned(), json!(t.nature));
    metadata.insert("fees".to_owned(), json!(t.fees_amount.to_string()));
    metadata.insert("author".to_owned(), json!(t.author_id));
    if let Some(code) = &t.result_code {
        metadata.insert("resultCode".to_owned(), json!(code));
    }
    let kind = if t.nature == "REGULAR" {
        t.kind.as_str()
    } else {
        "OTHER"
    };
    let mut json = json!({
        "id": t.id,
        "amount": t.debited_amount.to_string(),
        "currency": umn(&t.currency),
        "type": kind,
        "status": statuses.apply(&t.status),
        "metadata": metadata,
    });
    if let Some(wallet) = &t.debited_wallet {
        json["sourceAccountID"] = json!(wallet);
    }
    if let Some(wallet) = &t.credited_wallet {
        json["destinationAccountID"] = json!(wallet);
    }
    if let Some(key) = links.get(&t.id) {
        json["relatedTransactionID"] = json!(key);
    }
    let times = vec![
        ("createdAt", secs(t.created)),
        ("updatedAt", secs(t.executed.unwrap_or(t.created))),
    ];
    Want { json, times }
}

fn transaction_truth(wp: &Walletpay, links: &BTreeMap<String, String>) -> Truth {
    let statuses = EnumRule::of(example("walletpay"), "status");
    wp.transactions()
        .iter()
        .map(|t| (t.id.clone(), transaction_want(t, &statuses, links)))
        .collect()
}

fn truth(wp: &Walletpay, links: &BTreeMap<String, String>) -> BTreeMap<Kind, Truth> {
    BTreeMap::from([
        (Kind::Accounts, account_truth(wp)),
        (Kind::Beneficiaries, beneficiary_truth(wp)),
        (Kind::Transactions, transaction_truth(wp, links)),
    ])
}

/// Users with wallets in several currencies and bank accounts, transactions in bursts of
/// ties inside one second, transfers listed under two wallets, refunds, pending records.
fn seed(wp: &Walletpay, users: usize, wallets_per_user: usize, per_wallet: usize) {
    wp.seed_users(users);
    wp.seed_wallets(wallets_per_user);
    wp.seed_bank_accounts(2);
    wp.seed_transactions(per_wallet);
}

// =============================================================================================
// Listing
// =============================================================================================

/// The balances of every wallet, answered from the list of wallets: one walk of the users
/// and their wallets for all of them, not a call per account.
#[track_caller]
fn check_balances(poller: &mut Poller, wp: &Walletpay, context: &str) {
    let wallets = wp.wallets();
    wp.reset_calls();
    for wallet in &wallets {
        let before = unix_now_nanos();
        let got = poller
            .balances(&wallet.id)
            .unwrap_or_else(|e| panic!("{context}: balances of {}: {e}", wallet.id));
        assert_eq!(got.account_id, wallet.id, "{context}");
        assert_eq!(got.id, format!("{}-balance", wallet.id), "{context}");
        assert!(
            got.at >= before.div_euclid(NANOS) * NANOS,
            "{context}: at {}",
            format_rfc3339_nanos(got.at)
        );
        let want = vec![(wallet.balance.to_string(), umn(&wallet.currency))];
        assert_eq!(got.balances, want, "{context}: balances of {}", wallet.id);
    }
    let calls = wp.call_log();
    let users = wp.users().len();
    assert!(
        calls.len() <= users + users.div_ceil(PROVIDER_PAGE) + 1,
        "{context}: {} provider calls for {} balances of {users} users' wallets",
        calls.len(),
        wallets.len()
    );
}

/// The most provider calls a full sync of `kind` may make. One walk is a call per parent and
/// provider page (a full last page takes one more call to tell), after the walk of the
/// parents (the users; for transactions the users and their wallets). When an answer comes
/// out short after the walk ended, the connector looks again for what changed, parents
/// included; Formance's sync ends with up to two such answers (its last batch, then one more
/// cycle from its new state). An unordered list (the provider sorts transactions by creation,
/// the protocol by the last change) is walked whole again each time: three walks.
fn call_bound(kind: Kind, wp: &Walletpay) -> usize {
    let users = wp.users();
    let pages = |n: usize| n / PROVIDER_PAGE + 1;
    let users_walk = pages(users.len());
    let wallets = wp.wallets();
    let per_user = |count: &dyn Fn(&str) -> usize| -> usize {
        users.iter().map(|u| pages(count(&u.id))).sum()
    };
    let wallets_walk =
        users_walk + per_user(&|user| wallets.iter().filter(|w| w.owner == user).count());
    match kind {
        Kind::Accounts => 3 * wallets_walk,
        Kind::Beneficiaries => {
            let accounts = wp.bank_accounts();
            3 * (users_walk
                + per_user(&|user| accounts.iter().filter(|b| b.user_id == user).count()))
        }
        Kind::Transactions => {
            let walk: usize = wallets
                .iter()
                .map(|w| pages(wp.wallet_transactions(&w.id, None, None, true).len()))
                .sum();
            3 * (wallets_walk + walk)
        }
    }
}

fn full_sync(wp: &Walletpay, page_size: usize, check_order: bool) {
    let truth = truth(wp, &BTreeMap::new());
    let server = start(wp);
    let mut poller = Poller::new(&base_url(&server), API_KEY, page_size);
    let context = format!("walletpay, page size {page_size}");
    wp.reset_calls();
    for kind in Kind::ALL {
        let requests = poller.requests();
        let cycles = sync(&mut poller, kind, &context);
        let made = wp.call_log();
        wp.reset_calls();
        let upstream = made.len();
        let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
        for call in &made {
            *by_operation.entry(wp_operation(&call.path)).or_default() += 1;
        }
        eprintln!("{context}: {kind:?}: calls by operation {by_operation:?}");
        let bound = call_bound(kind, wp);
        eprintln!(
            "{context}: {kind:?}: {} records, {cycles} cycles, {} connector requests, \
             {upstream} provider calls (bound {bound}), {} of them users",
            truth[&kind].len(),
            poller.requests() - requests,
            count_calls(&made, wp_operation, "users"),
        );
        assert!(
            upstream <= bound,
            "{context}: {kind:?}: {upstream} calls (bound {bound})"
        );
    }
    for kind in Kind::ALL {
        check_received(&poller, kind, &truth[&kind], &context);
    }
    check_balances(&mut poller, wp, &context);
    check_never_plain_4xx(&poller);
    if check_order {
        for kind in Kind::ALL {
            check_served_order(&server, kind, &truth[&kind], 100);
        }
    }
}

#[test]
fn walletpay_full_sync_at_page_sizes_100_and_7_loses_nothing_across_users_and_wallets() {
    let wp = Walletpay::start(31, CLIENT_ID, API_SECRET);
    seed(&wp, 12, 2, 40);
    let all = wp.transactions();
    assert!(
        all.iter()
            .any(|t| t.kind == "TRANSFER" && t.credited_wallet.is_some())
    );
    assert!(all.iter().any(|t| t.nature != "REGULAR"));
    assert!(
        all.iter().any(|t| t.debited_amount > 1 << 53),
        "amounts beyond f64's integers"
    );
    for page_size in [100, 7] {
        full_sync(&wp, page_size, page_size == 100);
    }
}

#[test]
fn walletpay_full_sync_at_page_size_1() {
    let wp = Walletpay::start(32, CLIENT_ID, API_SECRET);
    seed(&wp, 3, 2, 8);
    full_sync(&wp, 1, false);
}

#[test]
fn walletpay_delivers_what_arrived_or_changed_between_polls() {
    let wp = Walletpay::start(33, CLIENT_ID, API_SECRET);
    seed(&wp, 6, 2, 25);
    let server = start(&wp);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    let first = truth(&wp, &BTreeMap::new());
    for kind in Kind::ALL {
        sync(&mut poller, kind, "first sync");
        check_received(&poller, kind, &first[&kind], "first sync");
        poller.clear_records(kind);
    }

    // A day later: pending transactions succeed (their creation date stays, their last change
    // moves), a new user opens a wallet that receives money, an old wallet pays out.
    wp.advance(86_400);
    let pending: Vec<String> = wp
        .transactions()
        .into_iter()
        .filter(|t| t.status == "CREATED")
        .take(3)
        .map(|t| t.id)
        .collect();
    assert!(!pending.is_empty(), "the seed has pending transactions");
    for id in &pending {
        assert!(wp.update_transaction(id, "SUCCEEDED", None));
    }
    let user = wp.add_user(true, "Nora Berg", None);
    let wallet = wp.add_wallet(&user, "EUR", 0, None);
    let bank_account = wp.add_bank_account(&user, true, None);
    let old = wp.wallets()[0].clone();
    let arrived = [
        wp.add_transaction(WpNewTransaction {
            kind: "PAYIN".to_owned(),
            credited_wallet: Some(wallet.clone()),
            currency: "EUR".to_owned(),
            debited_amount: 9_007_199_254_740_993,
            ..WpNewTransaction::default()
        }),
        wp.add_transaction(WpNewTransaction {
            kind: "PAYOUT".to_owned(),
            debited_wallet: Some(old.id.clone()),
            currency: old.currency.clone(),
            debited_amount: 1_250,
            ..WpNewTransaction::default()
        }),
    ];
    let second = truth(&wp, &BTreeMap::new());
    let changed: BTreeSet<String> = arrived.iter().chain(&pending).cloned().collect();
    let want = BTreeMap::from([
        (
            Kind::Accounts,
            only(&second[&Kind::Accounts], &BTreeSet::from([wallet])),
        ),
        (
            Kind::Beneficiaries,
            only(
                &second[&Kind::Beneficiaries],
                &BTreeSet::from([bank_account]),
            ),
        ),
        (
            Kind::Transactions,
            only(&second[&Kind::Transactions], &changed),
        ),
    ]);
    wp.reset_calls();
    for kind in Kind::ALL {
        sync(&mut poller, kind, "second sync");
        wp.reset_calls();
        check_received(&poller, kind, &want[&kind], "second sync");
    }
    check_never_plain_4xx(&poller);
}

#[test]
fn walletpay_sync_survives_rate_limits_and_outages() {
    let wp = Walletpay::start(34, CLIENT_ID, API_SECRET);
    seed(&wp, 5, 2, 20);
    let truth = truth(&wp, &BTreeMap::new());
    let server = start(&wp);
    wp.fail_every("/v2/", 4, 429, Some(0));
    wp.fail_next("/v2/wallets/", 2, 503, None);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 7);
    for kind in Kind::ALL {
        sync(&mut poller, kind, "faults");
        check_received(&poller, kind, &truth[&kind], "faults");
    }
    check_never_plain_4xx(&poller);
}

// =============================================================================================
// Payments
// =============================================================================================

/// A wallet with a bank account of its owner's, and another wallet of the same currency.
fn payment_parties(wp: &Walletpay) -> (String, String, String, String) {
    let wallets = wp.wallets();
    let source = wallets[0].clone();
    wp.set_balance(&source.id, 1_000_000);
    let bank_account = wp.add_bank_account(&source.owner, true, None);
    let other = wp.add_wallet(&wallets[1].owner, &source.currency, 0, None);
    (source.id, umn(&source.currency), bank_account, other)
}

#[test]
fn walletpay_payments_look_up_the_owner_execute_once_and_link() {
    let wp = Walletpay::start(35, CLIENT_ID, API_SECRET);
    seed(&wp, 3, 1, 4);
    let (source, currency, bank_account, other) = payment_parties(&wp);
    let server = start(&wp);

    let payout_key = "formance:payout:0001";
    let body = json!({
        "idempotencyKey": payout_key,
        "amount": "1500",
        "currency": currency,
        "sourceAccountId": source,
        "destinationAccountId": bank_account,
        "description": "invoice 7",
    });
    let (status, paid) = initiate(&server, "/payouts", &body);
    let payout_id = created_id(status, &paid);
    assert_eq!(paid["status"], "PENDING", "{paid}");
    assert_eq!(paid["idempotencyKey"], payout_key);
    let payout = wp.transaction(&payout_id).expect("the provider's payout");
    let owner = wp.wallet(&source).unwrap().owner;
    assert_eq!(
        payout.author_id, owner,
        "the wallet's owner, looked up first"
    );
    assert_eq!(payout.debited_amount, 1500);
    assert_eq!(payout.tag.as_deref(), Some("invoice 7"));
    let provider_key = payout.idempotency_key.clone().expect("a key was sent");
    assert_ne!(
        provider_key, payout_key,
        "`:` is not allowed: the key is reshaped"
    );
    assert_eq!(wp.executions_for_key(&provider_key), 1);

    // The provider executes the transfer and answers 500: the retry finds it by its key.
    wp.fail_after_executing(1);
    let transfer_key = "6f1c2a9e-7b3d-4c5e-9f8a-0b1c2d3e4f50";
    let body = json!({
        "idempotencyKey": transfer_key,
        "amount": "700",
        "currency": currency,
        "sourceAccountId": source,
        "destinationAccountId": other,
    });
    let (status, moved) = initiate(&server, "/transfers", &body);
    let transfer_id = created_id(status, &moved);
    assert_eq!(
        wp.executions_for_key(transfer_key),
        1,
        "a UUID key fits the provider's rule and is sent as it is"
    );
    assert_eq!(wp.transfers().len(), 1);

    // A wallet the provider does not have: the step's 404 is a final 400, nothing is sent.
    let posts = wp.payment_posts();
    let body = json!({
        "idempotencyKey": "formance:payout:0002",
        "amount": "100",
        "currency": currency,
        "sourceAccountId": "9999999",
        "destinationAccountId": bank_account,
    });
    let answer = post_once(server.addr, "/payouts", &body).expect("an answer");
    assert_eq!(answer.0, 400, "{:?}", answer.1);
    assert_eq!(wp.payment_posts(), posts);

    wp.advance(60);
    wp.settle_payouts();
    let links = BTreeMap::from([
        (payout_id.clone(), payout_key.to_owned()),
        (transfer_id.clone(), transfer_key.to_owned()),
    ]);
    let truth = transaction_truth(&wp, &links);
    let mut poller = Poller::new(&base_url(&server), API_KEY, 10);
    sync(&mut poller, Kind::Transactions, "after payments");
    check_received(&poller, Kind::Transactions, &truth, "after payments");
    let served = |id: &str| {
        poller
            .record(Kind::Transactions, id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(served(&payout_id)["type"], "PAYOUT");
    assert_eq!(served(&transfer_id)["type"], "TRANSFER");
    assert_eq!(served(&transfer_id)["relatedTransactionID"], transfer_key);
}

#[test]
fn walletpay_a_restarted_connector_finds_the_payment_its_crashed_attempt_made() {
    let wp = Walletpay::start(36, CLIENT_ID, API_SECRET);
    seed(&wp, 2, 1, 2);
    let (source, currency, bank_account, _) = payment_parties(&wp);
    let store = fresh_store_path();
    let body = json!({
        "idempotencyKey": "formance:payout:restart",
        "amount": "300",
        "currency": currency,
        "sourceAccountId": source,
        "destinationAccountId": bank_account,
    });
    wp.fail_after_executing(1);
    let server = start_with(&wp, &[("CONNECTOR_STORE", &store)]);
    let first = post_once(server.addr, "/payouts", &body);
    assert!(
        first.as_ref().is_some_and(|(status, _)| *status >= 500),
        "{first:?}"
    );
    drop(server);
    let restarted = start_with(&wp, &[("CONNECTOR_STORE", &store)]);
    let (status, paid) = initiate(&restarted, "/payouts", &body);
    let id = created_id(status, &paid);
    assert_eq!(wp.payouts().len(), 1);
    assert_eq!(wp.payouts()[0].id, id);
}
