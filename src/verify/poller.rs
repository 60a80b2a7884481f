//! A blocking client that polls a Generic connector exactly as Formance does (see the
//! protocol's reference notes): the per-kind poll loop with its timestamp state, strict
//! decoding (one bad item fails the whole page), and Formance's retry classification. It
//! stores what it received by id, so that a caller can compare it with what the connector
//! serves, or a test with a mock provider's ground truth.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::decode::{self, DecodeError};
use super::http::{Client, HttpReply, error_body, is_retryable, path_escape, query_escape};
use super::time::{format_rfc3339_nanos, format_rfc3339_utc_seconds, parse_rfc3339};
use super::wire::{Kind, ListOp, Wire};

/// One decoded list item: id, poll timestamp (unix nanoseconds), the item as served.
pub type Item = (String, i128, Value);

/// Decodes a whole list response with the bundled protocol; one bad item fails the page.
pub fn decode_page(kind: Kind, body: &[u8]) -> Result<Vec<Item>, String> {
    decode_list(&Wire::bundled(), kind, body).map_err(|e| e.to_string())
}

/// Decodes a whole list response; one bad item fails the page. `null` is an empty page (as
/// Go decodes it).
pub fn decode_list(wire: &Wire, kind: Kind, body: &[u8]) -> Result<Vec<Item>, DecodeError> {
    let list = wire.list(kind).ok_or_else(|| DecodeError {
        pointer: String::new(),
        message: format!("the protocol has no {} operation", kind.operation()),
    })?;
    let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError {
        pointer: String::new(),
        message: format!("response is not JSON: {e}"),
    })?;
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => {
            return Err(DecodeError {
                pointer: String::new(),
                message: format!("response must be a JSON array, got {}", clip(&other)),
            });
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| decode_item(wire, list, i, item))
        .collect()
}

fn decode_item(wire: &Wire, list: &ListOp, index: usize, item: Value) -> Result<Item, DecodeError> {
    let pointer = format!("/{index}");
    decode::check(&wire.protocol, &list.item, &item, &pointer)?;
    let id = match item.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => {
            return Err(DecodeError {
                pointer: format!("{pointer}/id"),
                message: "no string id".to_owned(),
            });
        }
    };
    let timestamp = item
        .get(&list.time_field)
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .ok_or_else(|| DecodeError {
            pointer: format!("{pointer}/{}", list.time_field),
            message: format!("no RFC 3339 {}", list.time_field),
        })?;
    Ok((id, timestamp, item))
}

fn clip(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 200 {
        format!("{}...", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

/// What `GET /accounts/{id}/balances` returned.
#[derive(Clone, Debug, PartialEq)]
pub struct Balances {
    pub id: String,
    /// What Formance takes as the account reference.
    pub account_id: String,
    /// Unix nanoseconds.
    pub at: i128,
    /// `(amount, currency)` pairs.
    pub balances: Vec<(String, String)>,
    pub json: Value,
}

/// Decodes a balances answer with the bundled protocol.
pub fn decode_balances(body: &[u8]) -> Result<Balances, String> {
    decode_balances_with(&Wire::bundled(), body).map_err(|e| e.to_string())
}

pub fn decode_balances_with(wire: &Wire, body: &[u8]) -> Result<Balances, DecodeError> {
    let fail = |message: String| DecodeError {
        pointer: String::new(),
        message,
    };
    let op = wire
        .balances
        .as_ref()
        .ok_or_else(|| fail("the protocol has no balances operation".to_owned()))?;
    let json: Value =
        serde_json::from_slice(body).map_err(|e| fail(format!("response is not JSON: {e}")))?;
    decode::check(&wire.protocol, &op.shape, &json, "")?;
    let text = |name: &str| json.get(name).and_then(Value::as_str).unwrap_or_default();
    let balances = json
        .get("balances")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|b| {
                    let field = |name| b.get(name).and_then(Value::as_str).unwrap_or_default();
                    (field("amount").to_owned(), field("currency").to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Balances {
        id: text("id").to_owned(),
        account_id: text(&op.account_field).to_owned(),
        at: parse_rfc3339(text("at")).unwrap_or_default(),
        balances,
        json: json.clone(),
    })
}

#[derive(Debug)]
pub enum PollError {
    /// A non-retryable status (any 4xx but 408, 421, 423, 425, 429; 3xx): not retried.
    Status {
        url: String,
        status: u16,
        title: String,
        detail: String,
        body: String,
    },
    /// Retryable failures (statuses or I/O) on every attempt.
    Exhausted {
        url: String,
        attempts: usize,
        last: String,
    },
    /// The response did not decode: the whole page is rejected.
    Decode {
        url: String,
        detail: String,
        body: String,
    },
    /// The loop did not converge within its bounds.
    Stuck { kind: Kind, detail: String },
    /// The request or time budget ran out before this request.
    Budget { url: String, detail: String },
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PollError::Status {
                url,
                status,
                title,
                detail,
                body,
            } => write!(f, "GET {url}: {status} {title}: {detail} ({body})"),
            PollError::Exhausted {
                url,
                attempts,
                last,
            } => write!(
                f,
                "GET {url}: still failing after {attempts} attempts: {last}"
            ),
            PollError::Decode { url, detail, body } => {
                let shown: String = body.chars().take(500).collect();
                write!(f, "GET {url}: cannot decode: {detail}\nbody: {shown}")
            }
            PollError::Stuck { kind, detail } => write!(f, "{kind:?}: {detail}"),
            PollError::Budget { url, detail } => write!(f, "GET {url}: {detail}"),
        }
    }
}

impl std::error::Error for PollError {}

/// The latest version of one received record.
#[derive(Clone, Debug)]
pub struct Received {
    pub json: Value,
    /// The poll timestamp (`createdAt` / `updatedAt`), unix nanoseconds.
    pub timestamp: i128,
    /// How many times it was received (1 = once).
    pub versions: usize,
    /// How many of those receipts were identical to the version before (true duplicates).
    pub repeats: usize,
}

/// What one poll cycle did.
#[derive(Clone, Debug, Default)]
pub struct Cycle {
    pub pages: usize,
    pub fetched: usize,
    /// Items kept after the strict "after the state" filter and trimming.
    pub kept: usize,
    /// Kept items dropped by the trim to `pageSize`.
    pub trimmed: usize,
    /// Formance's own `HasMore`: the last page fetched was full.
    pub has_more: bool,
    /// The batch held `pageSize` items: more may remain.
    pub full: bool,
    /// Kept items whose timestamp was lower than the previous kept item's (unsorted server).
    pub out_of_order: usize,
    pub state_before: Option<i128>,
    pub state_after: Option<i128>,
    /// The id of the last kept item: the one the state was taken from.
    pub last_id: Option<String>,
}

/// One HTTP exchange the poller made.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// None for an I/O failure.
    pub status: Option<u16>,
    /// The body of a non-2xx answer (the first 2 KiB).
    pub error_body: Option<String>,
}

/// Bounds shared by every poller of one run: requests in all, and a deadline.
#[derive(Debug)]
pub struct Budget {
    pub max_requests: usize,
    pub deadline: Instant,
    used: std::sync::atomic::AtomicUsize,
}

impl Budget {
    pub fn new(max_requests: usize, time: Duration) -> Arc<Budget> {
        Arc::new(Budget {
            max_requests,
            deadline: Instant::now() + time,
            used: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes one request, or says why not.
    pub fn take(&self) -> Result<(), String> {
        if Instant::now() >= self.deadline {
            return Err("the time budget is spent (--max-time)".to_owned());
        }
        let used = self.used.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if used >= self.max_requests {
            return Err(format!(
                "the request budget is spent ({} requests, --max-requests)",
                self.max_requests
            ));
        }
        Ok(())
    }
}

#[derive(Default)]
struct KindState {
    state: Option<i128>,
    records: BTreeMap<String, Received>,
    receipts: usize,
    cycles: Vec<Cycle>,
}

pub struct Poller {
    wire: Arc<Wire>,
    client: Client,
    base: String,
    api_key: String,
    page_size: usize,
    max_attempts: usize,
    backoff: Duration,
    max_pages_per_cycle: usize,
    max_cycles: usize,
    budget: Option<Arc<Budget>>,
    kinds: BTreeMap<Kind, KindState>,
    requests: usize,
    retries: usize,
    exchanges: Vec<Exchange>,
}

impl Poller {
    /// `connector_url` is Formance's `endpoint` (may carry a path prefix; a trailing `/` is
    /// dropped), `api_key` its `apiKey`, `page_size` the engine's page size (100 by default in
    /// Formance; 0 is taken as 1). The bundled protocol; retries: 4 attempts, backoff 10 ms
    /// doubling up to 200 ms; 30 s per request.
    pub fn new(connector_url: &str, api_key: &str, page_size: usize) -> Poller {
        Poller {
            wire: Wire::bundled(),
            client: Client::new(Duration::from_secs(30)),
            base: connector_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            page_size: page_size.max(1),
            max_attempts: 4,
            backoff: Duration::from_millis(10),
            max_pages_per_cycle: 10_000,
            max_cycles: 100_000,
            budget: None,
            kinds: Kind::ALL
                .iter()
                .map(|k| (*k, KindState::default()))
                .collect(),
            requests: 0,
            retries: 0,
            exchanges: Vec::new(),
        }
    }

    /// Another protocol version's lists and shapes.
    pub fn with_wire(mut self, wire: Arc<Wire>) -> Poller {
        self.wire = wire;
        self
    }

    /// Attempts per request (>= 1) and the first backoff (doubled each retry, capped 200 ms).
    pub fn with_retries(mut self, max_attempts: usize, backoff: Duration) -> Poller {
        self.max_attempts = max_attempts.max(1);
        self.backoff = backoff;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Poller {
        self.client = Client::new(timeout);
        self
    }

    /// Bounds that turn a non-converging connector into [`PollError::Stuck`].
    pub fn with_limits(mut self, max_pages_per_cycle: usize, max_cycles: usize) -> Poller {
        self.max_pages_per_cycle = max_pages_per_cycle;
        self.max_cycles = max_cycles;
        self
    }

    pub fn with_budget(mut self, budget: Arc<Budget>) -> Poller {
        self.budget = Some(budget);
        self
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn kind(&self, kind: Kind) -> &KindState {
        &self.kinds[&kind]
    }

    fn kind_mut(&mut self, kind: Kind) -> &mut KindState {
        self.kinds.entry(kind).or_default()
    }

    /// The URL of one list page for that state (with the path of the operation's list, or
    /// Formance's default path when the protocol has no such list).
    pub fn list_url(&self, kind: Kind, page: usize, state: Option<i128>) -> String {
        self.list_url_sized(kind, page, self.page_size, state)
    }

    /// [`Poller::list_url`] at another page size.
    pub fn list_url_sized(
        &self,
        kind: Kind,
        page: usize,
        page_size: usize,
        state: Option<i128>,
    ) -> String {
        let Some(list) = self.wire.list(kind) else {
            return format!("{}/{}", self.base, kind.name());
        };
        // Go's url.Values.Encode sorts by key.
        let mut params: Vec<(&str, String)> = vec![
            (&list.page_param, page.to_string()),
            (&list.page_size_param, page_size.to_string()),
        ];
        if let Some((name, value)) = &list.sort {
            params.push((name, value.clone()));
        }
        if let Some(state) = state {
            params.push((&list.filter_param, format_rfc3339_utc_seconds(state)));
        }
        params.sort_by(|a, b| a.0.cmp(b.0));
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        format!("{}{}?{}", self.base, list.path, query.join("&"))
    }

    /// An authenticated request with the poller's key, counted; any answer is returned.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<HttpReply, PollError> {
        if let Some(budget) = &self.budget {
            budget.take().map_err(|detail| PollError::Budget {
                url: url.to_owned(),
                detail,
            })?;
        }
        let auth = format!("Bearer {}", self.api_key);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Accept", "application/json"),
        ];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.requests += 1;
        let reply = self.client.send(method, url, &headers, body);
        let status = reply.as_ref().ok().map(|r| r.status);
        let error_body = reply
            .as_ref()
            .ok()
            .filter(|r| !(200..300).contains(&r.status))
            .map(|r| r.text().chars().take(2048).collect());
        self.exchanges.push(Exchange {
            method: method.to_owned(),
            url: url.to_owned(),
            status,
            error_body,
        });
        reply.map_err(|e| PollError::Exhausted {
            url: url.to_owned(),
            attempts: 1,
            last: format!("I/O error: {e}"),
        })
    }

    /// GET with Formance's retry classification; the body of a 2xx.
    fn get(&mut self, url: &str) -> Result<Vec<u8>, PollError> {
        let mut last = String::new();
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                self.retries += 1;
                let factor = 1u32 << (attempt - 1).min(16);
                thread::sleep((self.backoff * factor).min(Duration::from_millis(200)));
            }
            let reply = match self.send("GET", url, None) {
                Ok(reply) => reply,
                Err(PollError::Exhausted { last: why, .. }) => {
                    last = why;
                    continue;
                }
                Err(other) => return Err(other),
            };
            if (200..300).contains(&reply.status) {
                return Ok(reply.body);
            }
            if is_retryable(reply.status) {
                last = format!("{} {}", reply.status, reply.text());
                continue;
            }
            let (title, detail) = error_body(&reply.body).unwrap_or_default();
            return Err(PollError::Status {
                url: url.to_owned(),
                status: reply.status,
                title,
                detail,
                body: reply.text(),
            });
        }
        Err(PollError::Exhausted {
            url: url.to_owned(),
            attempts: self.max_attempts,
            last,
        })
    }

    /// One page, fetched and decoded strictly.
    pub fn fetch_page(
        &mut self,
        kind: Kind,
        page: usize,
        page_size: usize,
        state: Option<i128>,
    ) -> Result<Vec<Item>, PollError> {
        let url = self.list_url_sized(kind, page, page_size, state);
        let body = self.get(&url)?;
        decode_list(&self.wire, kind, &body).map_err(|error| PollError::Decode {
            url: url.clone(),
            detail: error.to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// One poll cycle (one `fetchNext...` call of Formance). Returns whether more may remain:
    /// the batch held `pageSize` items. (Formance's own `HasMore` is [`Cycle::has_more`]: when
    /// it is false but the batch was trimmed, Formance gets the rest at its next periodic
    /// poll, which starts from the same state; so looping on this value reaches the same end.)
    /// On error nothing is stored and the state is unchanged.
    pub fn poll_cycle(&mut self, kind: Kind) -> Result<bool, PollError> {
        let state = self.kind(kind).state;
        let page_size = self.page_size;
        let mut cycle = Cycle {
            state_before: state,
            ..Cycle::default()
        };
        let mut kept: Vec<Item> = Vec::new();
        for page in 1.. {
            if page > self.max_pages_per_cycle {
                return Err(PollError::Stuck {
                    kind,
                    detail: format!(
                        "no end after {} pages (every page full)",
                        self.max_pages_per_cycle
                    ),
                });
            }
            let items = self.fetch_page(kind, page, page_size, state)?;
            cycle.pages += 1;
            cycle.fetched += items.len();
            let count = items.len();
            kept.extend(
                items
                    .into_iter()
                    .filter(|(_, ts, _)| state.is_none_or(|s| *ts > s)),
            );
            cycle.has_more = count >= page_size;
            if kept.len() >= page_size || !cycle.has_more {
                break;
            }
        }
        cycle.trimmed = kept.len().saturating_sub(page_size);
        kept.truncate(page_size);
        cycle.kept = kept.len();
        cycle.full = kept.len() == page_size;
        cycle.out_of_order = kept.windows(2).filter(|w| w[1].1 < w[0].1).count();
        cycle.state_after = kept.last().map(|(_, ts, _)| *ts).or(state);
        cycle.last_id = kept.last().map(|(id, _, _)| id.clone());
        let full = cycle.full;
        self.store(kind, cycle, kept);
        Ok(full)
    }

    fn store(&mut self, kind: Kind, cycle: Cycle, kept: Vec<Item>) {
        let entry = self.kind_mut(kind);
        entry.state = cycle.state_after;
        for (id, timestamp, json) in kept {
            entry.receipts += 1;
            match entry.records.get_mut(&id) {
                Some(record) => {
                    record.versions += 1;
                    if record.json == json {
                        record.repeats += 1;
                    }
                    record.json = json;
                    record.timestamp = timestamp;
                }
                None => {
                    let received = Received {
                        json,
                        timestamp,
                        versions: 1,
                        repeats: 0,
                    };
                    entry.records.insert(id, received);
                }
            }
        }
        entry.cycles.push(cycle);
    }

    /// Runs cycles until one says nothing more remains. Returns the number of cycles.
    /// A full cycle that leaves the state where it was is [`PollError::Stuck`] (Formance would
    /// repeat it forever).
    pub fn sync(&mut self, kind: Kind) -> Result<usize, PollError> {
        self.sync_with(kind, |_| {})
    }

    /// [`Poller::sync`], calling `progress` after every cycle.
    pub fn sync_with(
        &mut self,
        kind: Kind,
        mut progress: impl FnMut(&Poller),
    ) -> Result<usize, PollError> {
        for cycles in 1..=self.max_cycles {
            let more = self.poll_cycle(kind)?;
            progress(self);
            if !more {
                return Ok(cycles);
            }
            let last = self.kind(kind).cycles.last().expect("a cycle was recorded");
            if last.state_after == last.state_before {
                // The next cycle would ask exactly the same: Formance would loop forever.
                return Err(PollError::Stuck {
                    kind,
                    detail: format!(
                        "a full batch left the state at {:?}: no progress",
                        last.state_after.map(format_rfc3339_nanos)
                    ),
                });
            }
        }
        Err(PollError::Stuck {
            kind,
            detail: format!("still more after {} cycles", self.max_cycles),
        })
    }

    /// `sync` for accounts, beneficiaries and transactions.
    pub fn sync_all(&mut self) -> Result<(), PollError> {
        for kind in Kind::ALL {
            self.sync(kind)?;
        }
        Ok(())
    }

    /// The URL of one account's balances.
    pub fn balances_url(&self, account_id: &str) -> String {
        let (path, param) = match &self.wire.balances {
            Some(op) => (op.path.as_str(), op.param.as_str()),
            None => ("/accounts/{accountId}/balances", "accountId"),
        };
        let path = path.replace(&format!("{{{param}}}"), &path_escape(account_id));
        format!("{}{path}", self.base)
    }

    /// `GET /accounts/{id}/balances`, decoded strictly.
    pub fn balances(&mut self, account_id: &str) -> Result<Balances, PollError> {
        let url = self.balances_url(account_id);
        let body = self.get(&url)?;
        decode_balances_with(&self.wire, &body).map_err(|error| PollError::Decode {
            url,
            detail: error.to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Balances of every account received so far, by account id.
    pub fn all_balances(&mut self) -> Result<BTreeMap<String, Balances>, PollError> {
        let ids = self.ids(Kind::Accounts);
        let mut out = BTreeMap::new();
        for id in ids {
            let balances = self.balances(&id)?;
            out.insert(id, balances);
        }
        Ok(out)
    }

    // ---- what was received ----

    /// The state: the timestamp of the last kept item (None before anything was kept).
    pub fn state(&self, kind: Kind) -> Option<i128> {
        self.kind(kind).state
    }

    pub fn set_state(&mut self, kind: Kind, state: Option<i128>) {
        self.kind_mut(kind).state = state;
    }

    /// The latest version of every received record, by id.
    pub fn records(&self, kind: Kind) -> &BTreeMap<String, Received> {
        &self.kind(kind).records
    }

    pub fn record(&self, kind: Kind, id: &str) -> Option<&Value> {
        self.kind(kind).records.get(id).map(|r| &r.json)
    }

    /// Received ids, sorted.
    pub fn ids(&self, kind: Kind) -> Vec<String> {
        self.kind(kind).records.keys().cloned().collect()
    }

    /// Items received in total (every version of every record).
    pub fn receipts(&self, kind: Kind) -> usize {
        self.kind(kind).receipts
    }

    /// Receipts beyond the first of each id (new versions and repeats).
    pub fn extra_versions(&self, kind: Kind) -> usize {
        self.kind(kind).receipts - self.kind(kind).records.len()
    }

    /// Receipts identical to the version before: true duplicates.
    pub fn repeats(&self, kind: Kind) -> usize {
        self.kind(kind).records.values().map(|r| r.repeats).sum()
    }

    pub fn cycles(&self, kind: Kind) -> &[Cycle] {
        &self.kind(kind).cycles
    }

    /// Forgets received records (not the state), e.g. before an incremental check.
    pub fn clear_records(&mut self, kind: Kind) {
        let entry = self.kind_mut(kind);
        entry.records.clear();
        entry.receipts = 0;
    }

    /// HTTP requests made (retries included).
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Retries made (requests beyond the first attempt).
    pub fn retries(&self) -> usize {
        self.retries
    }

    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }
}
