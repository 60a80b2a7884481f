//! A small Generic connector served by the mock HTTP server, correct by default, with the
//! flaws `verify` must catch switched on one at a time: ties served as they are, descending
//! order, an enum value outside the spec, an exclusive time filter, a short page before the
//! end, a change without a new `updatedAt`, no authentication, a replay that pays twice, an
//! unlinked payment transaction.
//!
//! Data: 3 accounts, 2 beneficiaries, 60 transactions in bursts of 10 sharing one second.
//! Correct tie-breaking adds the record's own number in nanoseconds to its second, so a
//! served time depends on the record alone.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::formance::{format_rfc3339_nanos, parse_rfc3339};
use super::mock_http::{MockServer, Request, Response, lock};

pub const FAKE_KEY: &str = "fake-connector-key";
/// 2026-03-01T12:00:00Z.
const EPOCH: i64 = 1_772_366_400;
const NANOS: i128 = 1_000_000_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct Flaws {
    pub ties_as_is: bool,
    pub descending: bool,
    pub bad_enum: bool,
    pub exclusive_filter: bool,
    pub short_page: bool,
    pub silent_change: bool,
    pub no_auth: bool,
    pub replay_pays_twice: bool,
    pub unlinked: bool,
}

#[derive(Clone, Debug)]
struct Record {
    n: u32,
    second: i64,
    json: Value,
}

struct Payment {
    body: Value,
    answer: Value,
}

#[derive(Default)]
struct State {
    accounts: Vec<Record>,
    beneficiaries: Vec<Record>,
    transactions: Vec<Record>,
    payments: HashMap<String, Payment>,
    next_payment: u32,
    changed: bool,
}

pub struct FakeConnector {
    pub server: MockServer,
}

impl FakeConnector {
    pub fn start(flaws: Flaws) -> FakeConnector {
        let state = Arc::new(Mutex::new(seed(flaws)));
        let server = MockServer::from_fn(move |request| handle(&state, flaws, request));
        FakeConnector { server }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

fn seed(flaws: Flaws) -> State {
    let mut state = State::default();
    for n in 1..=3u32 {
        let second = EPOCH + i64::from(n);
        let json = json!({"id": format!("acc_{n}"), "accountName": format!("Account {n}")});
        state.accounts.push(Record { n, second, json });
    }
    for n in 1..=2u32 {
        let second = EPOCH + 10 + i64::from(n);
        let json = json!({"id": format!("ben_{n}"), "ownerName": format!("Owner {n}")});
        state.beneficiaries.push(Record { n, second, json });
    }
    for n in 1..=60u32 {
        let second = EPOCH + 100 + i64::from((n - 1) / 10);
        let status = if flaws.bad_enum && n == 25 {
            "SETTLED"
        } else {
            "SUCCEEDED"
        };
        let json = json!({
            "id": format!("tx_{n:03}"),
            "amount": (n * 100).to_string(),
            "currency": "EUR/2",
            "type": "PAYIN",
            "status": status,
            "destinationAccountID": "acc_1",
            "metadata": {"n": n.to_string()},
        });
        state.transactions.push(Record { n, second, json });
    }
    state
}

fn error(status: u16, title: &str, detail: &str) -> Response {
    Response::json(status, &json!({"Title": title, "Detail": detail}))
}

fn handle(state: &Mutex<State>, flaws: Flaws, request: &Request) -> Response {
    if !flaws.no_auth && request.bearer() != Some(FAKE_KEY) {
        return error(401, "Unauthorized", "a valid bearer token is required");
    }
    let segments = request.segments();
    let mut state = lock(state);
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", [list]) if list == "accounts" => {
            list_page(&state.accounts, "createdAt", flaws, request)
        }
        ("GET", [list]) if list == "beneficiaries" => {
            list_page(&state.beneficiaries, "createdAt", flaws, request)
        }
        ("GET", [list]) if list == "transactions" => {
            if flaws.silent_change
                && request.query_param("updatedAtFrom").is_some()
                && !state.changed
            {
                state.changed = true;
                state.transactions[0].json["status"] = json!("FAILED");
            }
            list_page(&state.transactions, "updatedAt", flaws, request)
        }
        ("GET", [accounts, id, balances]) if accounts == "accounts" && balances == "balances" => {
            Response::json(
                200,
                &json!({
                    "id": format!("bal_{id}"),
                    "accountID": id,
                    "at": format_rfc3339_nanos(i128::from(EPOCH + 1000) * NANOS),
                    "balances": [{"amount": "100000", "currency": "EUR/2"}],
                }),
            )
        }
        ("POST", [kind]) if kind == "payouts" || kind == "transfers" => {
            initiate(&mut state, flaws, kind, request)
        }
        _ => error(404, "Not Found", "no such route"),
    }
}

fn served_time(record: &Record, flaws: Flaws) -> i128 {
    let tie = if flaws.ties_as_is {
        0
    } else {
        i128::from(record.n)
    };
    i128::from(record.second) * NANOS + tie
}

fn list_page(records: &[Record], field: &str, flaws: Flaws, request: &Request) -> Response {
    let number = |name: &str, default: usize| {
        request
            .query_param(name)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let (page, page_size) = (number("page", 1).max(1), number("pageSize", 100).max(1));
    let from_param = format!("{field}From");
    let from = match request.query_param(&from_param) {
        None => None,
        Some(text) => match parse_rfc3339(text) {
            Some(nanos) => Some(nanos.div_euclid(NANOS) as i64),
            None => return error(400, "Bad Request", &format!("{from_param} is not RFC 3339")),
        },
    };
    let mut selected: Vec<&Record> = records
        .iter()
        .filter(|r| match from {
            None => true,
            Some(from) if flaws.exclusive_filter => r.second > from,
            Some(from) => r.second >= from,
        })
        .collect();
    selected.sort_by_key(|r| (served_time(r, flaws), r.n));
    if flaws.descending {
        selected.reverse();
    }
    let start = (page - 1) * page_size;
    let mut items: Vec<Value> = selected
        .iter()
        .skip(start)
        .take(page_size)
        .map(|r| {
            let mut item = r.json.clone();
            let time = format_rfc3339_nanos(served_time(r, flaws));
            item["createdAt"] = json!(time);
            if field == "updatedAt" {
                item["updatedAt"] = json!(time);
            }
            item
        })
        .collect();
    if flaws.short_page && page == 1 && items.len() == page_size && selected.len() > page_size {
        items.pop();
    }
    Response::json(200, &Value::Array(items))
}

fn initiate(state: &mut State, flaws: Flaws, kind: &str, request: &Request) -> Response {
    let Some(body) = request.json() else {
        return error(400, "Bad Request", "the body is not JSON");
    };
    let Some(key) = body["idempotencyKey"].as_str().map(str::to_owned) else {
        return error(400, "Bad Request", "idempotencyKey is required");
    };
    if let Some(payment) = state.payments.get(&key) {
        if payment.body != body {
            return error(
                409,
                "Conflict",
                "idempotencyKey was used with another request",
            );
        }
        if !flaws.replay_pays_twice {
            return Response::json(201, &payment.answer);
        }
    }
    state.next_payment += 1;
    let n = state.next_payment;
    let (prefix, kind_value) = if kind == "payouts" {
        ("po", "PAYOUT")
    } else {
        ("tr", "TRANSFER")
    };
    let id = format!("{prefix}_{n}");
    let second = state
        .transactions
        .iter()
        .map(|r| r.second)
        .max()
        .unwrap_or(EPOCH)
        + 1;
    let created = format_rfc3339_nanos(i128::from(second) * NANOS);
    let mut transaction = json!({
        "id": format!("tx_{id}"),
        "amount": body["amount"],
        "currency": body["currency"],
        "type": kind_value,
        "status": "PENDING",
        "sourceAccountID": body["sourceAccountId"],
    });
    if !flaws.unlinked {
        transaction["relatedTransactionID"] = json!(key);
    }
    let record_n = 1000 + n;
    state.transactions.push(Record {
        n: record_n,
        second,
        json: transaction,
    });
    let mut answer = body.clone();
    answer["id"] = json!(id);
    answer["status"] = json!("PENDING");
    answer["createdAt"] = json!(created);
    state.payments.insert(
        key,
        Payment {
            body,
            answer: answer.clone(),
        },
    );
    Response::json(201, &answer)
}
