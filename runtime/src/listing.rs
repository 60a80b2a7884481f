//! Serving protocol list pages from a provider's list endpoint.
//!
//! A *window* holds the records from one filter second on, converted and sorted by
//! their served timestamp (the protocol timestamp plus a per-record offset that depends
//! only on the record's time and id, so that ties never straddle a page boundary). Protocol
//! pages are cut from the window; the provider is walked further only when a page needs
//! more. As Formance's filter moves forward, records before it are forgotten, so a
//! provider that lists oldest first is walked with memory bounded by a few pages. A
//! provider that lists newest first (or in no order) has to be walked to the end before
//! the oldest record is known: its window holds the records after the filter.

use super::convert::{self, Step, TimeFormat};
use super::error::ConnectorError;
use super::upstream::{Upstream, UpstreamRequest};
use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A window older than this is walked again from the provider.
const WINDOW_TTL: Duration = Duration::from_secs(600);

/// The provider's order of records by the protocol timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
    Unordered,
}

#[derive(Debug)]
pub enum CursorFrom {
    LastRecord(&'static [Step]),
    Body(&'static [Step]),
}

/// The provider's pagination and its stop rule.
#[derive(Debug)]
pub enum Paging {
    None,
    Cursor {
        param: &'static str,
        from: CursorFrom,
        has_more: Option<&'static [Step]>,
    },
    NextUrl(&'static [Step]),
    LinkHeader,
    PageNumber {
        param: &'static str,
        first: u64,
        total_pages: Option<&'static [Step]>,
    },
    Offset {
        param: &'static str,
        total: Option<&'static [Step]>,
    },
}

/// How Formance's `*AtFrom` filter is sent to the provider.
#[derive(Debug)]
pub struct Since {
    pub param: &'static str,
    pub format: TimeFormat,
    pub inclusive: bool,
}

/// Everything about one mapped list operation.
#[derive(Debug)]
pub struct ListSpec {
    pub operation: &'static str,
    /// Where the records are; each further element flattens one level of nested arrays.
    pub records: &'static [&'static [Step]],
    pub paging: Paging,
    pub page_size: Option<(&'static str, u32)>,
    pub max_pages: u32,
    pub order: Order,
    pub since: Option<Since>,
    /// Whether a record's place in the order can change (lists by `updatedAt`), so
    /// that looking after the end of the last walk is not enough to find what changed.
    pub movable: bool,
}

/// A converted record and what orders it.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub served: DateTime<Utc>,
    pub id: String,
    pub item: T,
}

/// The window of one list operation.
pub struct ListState<T> {
    window: Mutex<Option<Window<T>>>,
}

impl<T> Default for ListState<T> {
    fn default() -> Self {
        Self {
            window: Mutex::new(None),
        }
    }
}

impl<T> ListState<T> {
    /// The window that can serve `since` (or a new one, `true`), taken out of the state.
    fn take(&self, since: Option<DateTime<Utc>>) -> (Window<T>, bool) {
        let mut slot = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.take() {
            Some(window) if window.since <= since && window.created.elapsed() < WINDOW_TTL => {
                (window, false)
            }
            _ => (Window::new(since), true),
        }
    }

    /// Keeps the newest window for the next request.
    fn put_back(&self, window: Window<T>) {
        let mut slot = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot
            .as_ref()
            .is_none_or(|current| current.created <= window.created)
        {
            *slot = Some(window);
        }
    }
}

#[derive(Clone)]
enum Next {
    First,
    Cursor(String),
    Url(String),
    Page(u64),
    Offset(u64),
}

struct Window<T> {
    since: Option<DateTime<Utc>>,
    /// The filter sent to the provider, fixed for the whole walk so that its pages stay put.
    walk_since: Option<DateTime<Utc>>,
    /// Where the last page fetched was, to look there again for records added since.
    last: Option<Next>,
    /// The records already held (id and served time), while pages are fetched again.
    dedupe: Option<HashSet<(String, DateTime<Utc>)>>,
    /// Sorted by (served, id); final.
    settled: Vec<Entry<T>>,
    /// Fetched, but records of the same second may still come (oldest-first providers).
    pending: Vec<Entry<T>>,
    next: Option<Next>,
    seen: HashSet<String>,
    pages: u32,
    /// The latest second fetched so far.
    frontier: Option<i64>,
    exhausted_at: Option<Instant>,
    created: Instant,
}

/// Protocol page `page` (1-based) of `size` records with a served timestamp in or after
/// the second of `since`.
#[allow(clippy::too_many_arguments)]
pub async fn page<T: Clone>(
    upstream: &Upstream,
    spec: &ListSpec,
    state: &ListState<T>,
    base: &UpstreamRequest,
    since: Option<DateTime<Utc>>,
    page: i64,
    size: i64,
    convert: impl Fn(&Value) -> Result<Entry<T>, ConnectorError>,
) -> Result<Vec<T>, ConnectorError> {
    let since = since.map(start_of_second);
    let size = usize::try_from(size.max(1)).unwrap_or(usize::MAX);
    let from = usize::try_from(page.max(1) - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(size);
    let to = from.saturating_add(size);
    let started = Instant::now();
    // The window is taken out while the provider is walked, so that no lock is held
    // across provider calls: concurrent requests of one operation do not queue.
    let (mut window, mut built_now) = state.take(since);
    let result = loop {
        window.forget_before(since);
        let mut fetched = Ok(());
        while window.settled.len() < to && window.next.is_some() && fetched.is_ok() {
            fetched = window.fetch(upstream, spec, base, &convert).await;
        }
        if let Err(error) = fetched {
            break Err(error);
        }
        let short = window.settled.len() < to;
        let stale = window.exhausted_at.is_some_and(|at| at < started);
        if short && stale && !built_now {
            // The provider may have new records since this window reached its end: an
            // oldest-first provider has them after the last page, others anywhere.
            if !(spec.order == Order::OldestFirst
                && window.reopen(spec.since.is_some(), spec.movable))
            {
                window = Window::new(since);
            }
            built_now = true;
            continue;
        }
        let end = to.min(window.settled.len());
        let items = window.settled.get(from..end).unwrap_or_default();
        break Ok(items.iter().map(|entry| entry.item.clone()).collect());
    };
    state.put_back(window);
    result
}

fn start_of_second(time: DateTime<Utc>) -> DateTime<Utc> {
    time.with_nanosecond(0).unwrap_or(time)
}

impl<T> Window<T> {
    fn new(since: Option<DateTime<Utc>>) -> Self {
        Self {
            since,
            walk_since: since,
            last: None,
            dedupe: None,
            settled: Vec::new(),
            pending: Vec::new(),
            next: Some(Next::First),
            seen: HashSet::new(),
            pages: 0,
            frontier: None,
            exhausted_at: None,
            created: Instant::now(),
        }
    }

    /// Walks again for what changed since the walk ended, skipping the records already
    /// held. A provider that filters is walked from the first page of what Formance still
    /// asks for: a record that changes moves (to the end of an updated-at order), so the
    /// old walk's positions no longer say where it is. Otherwise the walk goes on from the
    /// last page fetched, which finds what was added after the end of the list.
    fn reopen(&mut self, filtered: bool, movable: bool) -> bool {
        if filtered && self.since.is_some() {
            self.walk_since = self.since;
            self.seen.clear();
            self.next = Some(Next::First);
        } else if movable {
            // Without a filter the whole list must be walked again to find what moved.
            return false;
        } else {
            let Some(last) = self.last.clone() else {
                return false;
            };
            self.seen.remove(&position_key(&last));
            self.next = Some(last);
        }
        let held = self
            .settled
            .iter()
            .chain(&self.pending)
            .map(|entry| (entry.id.clone(), entry.served))
            .collect();
        self.dedupe = Some(held);
        self.exhausted_at = None;
        true
    }

    /// Formance's filter moved on: what it will never ask for again is dropped.
    fn forget_before(&mut self, since: Option<DateTime<Utc>>) {
        let Some(since) = since else { return };
        let keep_from = self.settled.partition_point(|entry| entry.served < since);
        self.settled.drain(..keep_from);
        self.pending.retain(|entry| entry.served >= since);
        self.since = Some(since);
    }

    async fn fetch(
        &mut self,
        upstream: &Upstream,
        spec: &ListSpec,
        base: &UpstreamRequest,
        convert: &impl Fn(&Value) -> Result<Entry<T>, ConnectorError>,
    ) -> Result<(), ConnectorError> {
        self.pages += 1;
        if self.pages > spec.max_pages {
            return Err(ConnectorError::bad_gateway(format!(
                "{} walked more than max_pages ({}) provider pages; raise it in connector.yaml if that is expected",
                spec.operation, spec.max_pages
            )));
        }
        let request = self.request(spec, base)?;
        let response = upstream
            .send(spec.operation, &request)
            .await
            .map_err(|error| {
                // A list that is not there is the mapping's mistake, not a missing record.
                if error.status == axum::http::StatusCode::NOT_FOUND {
                    ConnectorError::bad_gateway(error.detail)
                } else {
                    error
                }
            })?;
        self.last = self.next.clone();
        let (records, raw_count) = collect_records(&response.body, spec.records);
        for record in &records {
            let entry = convert(record)?;
            self.frontier = self.frontier.max(Some(entry.served.timestamp()));
            let held = self
                .dedupe
                .as_ref()
                .is_some_and(|held| held.contains(&(entry.id.clone(), entry.served)));
            if !held && self.since.is_none_or(|since| entry.served >= since) {
                self.pending.push(entry);
            }
        }
        self.next = next_page(
            spec,
            &self.next,
            &response.body,
            &response.headers,
            records.last().copied(),
            raw_count,
        );
        if let Some(next) = &self.next {
            let key = position_key(next);
            if !self.seen.insert(key.clone()) {
                return Err(ConnectorError::bad_gateway(format!(
                    "{}: the provider sent the same {key} twice; stopping instead of looping forever",
                    spec.operation
                )));
            }
        }
        if self.next.is_none() {
            self.exhausted_at = Some(Instant::now());
            self.dedupe = None;
        }
        self.settle(spec.order);
        Ok(())
    }

    /// Moves what can no longer change place into the sorted part.
    fn settle(&mut self, order: Order) {
        let mut ready = if self.next.is_none() {
            std::mem::take(&mut self.pending)
        } else if order == Order::OldestFirst {
            let frontier = self.frontier.unwrap_or(i64::MIN);
            let (ready, waiting) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|entry: &Entry<T>| entry.served.timestamp() < frontier);
            self.pending = waiting;
            ready
        } else {
            return;
        };
        ready.sort_by(|a, b| (a.served, &a.id).cmp(&(b.served, &b.id)));
        let in_order = match (self.settled.last(), ready.first()) {
            (Some(last), Some(first)) => (last.served, &last.id) <= (first.served, &first.id),
            _ => true,
        };
        self.settled.append(&mut ready);
        if !in_order {
            tracing::warn!(
                "the provider's records were not in the order the mapping declares; re-sorting"
            );
            self.settled
                .sort_by(|a, b| (a.served, &a.id).cmp(&(b.served, &b.id)));
        }
    }

    fn request(
        &self,
        spec: &ListSpec,
        base: &UpstreamRequest,
    ) -> Result<UpstreamRequest, ConnectorError> {
        let mut request = base.clone();
        if let Some((param, size)) = spec.page_size {
            request.query.push((param.to_owned(), size.to_string()));
        }
        if let (Some(filter), Some(since)) = (&spec.since, self.walk_since) {
            let from = if filter.inclusive {
                since
            } else {
                since - chrono::Duration::seconds(1)
            };
            let value = convert::format_time(from, &filter.format).map_err(|error| {
                ConnectorError::internal(format!("{}: `since`: {error}", spec.operation))
            })?;
            request.query.push((filter.param.to_owned(), value));
        }
        match (&self.next, &spec.paging) {
            (Some(Next::Cursor(cursor)), Paging::Cursor { param, .. }) => {
                request.query.push(((*param).to_owned(), cursor.clone()))
            }
            (Some(Next::Url(url)), _) => {
                request.url = Some(absolute_url(url, base));
                request.query.clear();
            }
            (Some(Next::Page(number)), Paging::PageNumber { param, .. }) => request
                .query
                .push(((*param).to_owned(), number.to_string())),
            (Some(Next::First), Paging::PageNumber { param, first, .. }) => {
                request.query.push(((*param).to_owned(), first.to_string()))
            }
            (Some(Next::Offset(offset)), Paging::Offset { param, .. }) => request
                .query
                .push(((*param).to_owned(), offset.to_string())),
            (Some(Next::First), Paging::Offset { param, .. }) => {
                request.query.push(((*param).to_owned(), "0".to_owned()))
            }
            _ => {}
        }
        Ok(request)
    }
}

/// Where the walk goes next, or `None` when the provider's stop rule says it is done.
fn next_page(
    spec: &ListSpec,
    current: &Option<Next>,
    body: &Value,
    headers: &axum::http::HeaderMap,
    last: Option<&Value>,
    count: usize,
) -> Option<Next> {
    let full_page = spec
        .page_size
        .is_none_or(|(_, size)| count >= size as usize);
    match &spec.paging {
        Paging::None => None,
        Paging::Cursor { from, has_more, .. } => {
            if let Some(path) = has_more
                && !convert::lookup(body, path)
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            {
                return None;
            }
            if count == 0 {
                return None;
            }
            let cursor = match from {
                CursorFrom::LastRecord(path) => {
                    last.and_then(|record| convert::lookup(record, path))
                }
                CursorFrom::Body(path) => convert::lookup(body, path),
            };
            text(cursor).filter(|c| !c.is_empty()).map(Next::Cursor)
        }
        Paging::NextUrl(path) => text(convert::lookup(body, path))
            .filter(|u| !u.is_empty())
            .map(Next::Url),
        Paging::LinkHeader => link_next(headers).map(Next::Url),
        Paging::PageNumber {
            first, total_pages, ..
        } => {
            let current = match current {
                Some(Next::Page(number)) => *number,
                _ => *first,
            };
            let more = match total_pages
                .and_then(|path| convert::lookup(body, path))
                .and_then(Value::as_u64)
            {
                Some(total) => current + 1 - *first < total,
                None => count > 0 && full_page,
            };
            more.then_some(Next::Page(current + 1))
        }
        Paging::Offset { total, .. } => {
            let current = match current {
                Some(Next::Offset(offset)) => *offset,
                _ => 0,
            };
            let next = current + count as u64;
            let more = match total
                .and_then(|path| convert::lookup(body, path))
                .and_then(Value::as_u64)
            {
                Some(total) => next < total && count > 0,
                None => count > 0 && full_page,
            };
            more.then_some(Next::Offset(next))
        }
    }
}

fn position_key(next: &Next) -> String {
    match next {
        Next::Cursor(cursor) => format!("cursor {cursor}"),
        Next::Url(url) => format!("url {url}"),
        Next::Page(page) => format!("page {page}"),
        Next::Offset(offset) => format!("offset {offset}"),
        Next::First => "the first page".to_owned(),
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The records of one provider page, nested arrays flattened, and how many items the
/// page itself held (what page sizes count).
fn collect_records<'a>(body: &'a Value, records: &[&[Step]]) -> (Vec<&'a Value>, usize) {
    let mut level = vec![body];
    let mut page_items = 0;
    for (depth, path) in records.iter().enumerate() {
        let mut found = Vec::new();
        for value in level {
            match convert::lookup(value, path) {
                Some(Value::Array(items)) => found.extend(items.iter()),
                Some(item)
                    if depth + 1 == records.len() && !path.is_empty() && item.is_object() =>
                {
                    found.push(item)
                }
                _ => {}
            }
        }
        if depth == 0 {
            page_items = found.len();
        }
        level = found;
    }

    (level, page_items)
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
fn link_next(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            is_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
        })
}

fn absolute_url(url: &str, base: &UpstreamRequest) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_owned()
    } else {
        // A relative next link is resolved against the request's own path.
        let path = base.path.split('?').next().unwrap_or_default();
        if url.starts_with('/') {
            url.to_owned()
        } else {
            format!("{path}/{url}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::super::config::UpstreamSettings;
    use super::super::metrics::Metrics;
    use super::super::testing::{Received, block_on, serve};
    use super::*;

    fn spec(paging: Paging, page_size: Option<(&'static str, u32)>, order: Order) -> ListSpec {
        ListSpec {
            operation: "getTransactions",
            records: &[&[Step::Key("data")]],
            paging,
            page_size,
            max_pages: 50,
            order,
            since: None,
            movable: false,
        }
    }

    fn next(spec: &ListSpec, current: Option<Next>, body: Value, count: usize) -> Option<String> {
        let records = body["data"].as_array().cloned().unwrap_or_default();
        next_page(
            spec,
            &current,
            &body,
            &HeaderMap::new(),
            records.last(),
            count,
        )
        .map(|next| position_key(&next))
    }

    #[test]
    fn cursors_stop_without_more_an_empty_page_or_a_missing_cursor() {
        let by_record = spec(
            Paging::Cursor {
                param: "starting_after",
                from: CursorFrom::LastRecord(&[Step::Key("id")]),
                has_more: Some(&[Step::Key("has_more")]),
            },
            Some(("limit", 2)),
            Order::NewestFirst,
        );
        let page = json!({"data": [{"id": "a"}, {"id": "b"}], "has_more": true});
        assert_eq!(next(&by_record, None, page, 2).as_deref(), Some("cursor b"));
        let last = json!({"data": [{"id": "c"}], "has_more": false});
        assert_eq!(next(&by_record, None, last, 1), None);
        let empty = json!({"data": [], "has_more": true});
        assert_eq!(next(&by_record, None, empty, 0), None);
        let by_body = spec(
            Paging::Cursor {
                param: "cursor",
                from: CursorFrom::Body(&[Step::Key("next")]),
                has_more: None,
            },
            None,
            Order::Unordered,
        );
        let page = json!({"data": [{"id": "a"}], "next": "k2"});
        assert_eq!(next(&by_body, None, page, 1).as_deref(), Some("cursor k2"));
        let ended = json!({"data": [{"id": "a"}], "next": ""});
        assert_eq!(next(&by_body, None, ended, 1), None);
    }

    #[test]
    fn page_numbers_and_offsets_stop_at_their_total_or_a_short_page() {
        let numbered = |total_pages| {
            spec(
                Paging::PageNumber {
                    param: "page",
                    first: 0,
                    total_pages,
                },
                Some(("size", 2)),
                Order::OldestFirst,
            )
        };
        let full = json!({"data": [{}, {}], "totalPages": 2});
        let with_total = numbered(Some(&[Step::Key("totalPages")]));
        assert_eq!(
            next(&with_total, None, full.clone(), 2).as_deref(),
            Some("page 1")
        );
        assert_eq!(
            next(&with_total, Some(Next::Page(1)), full.clone(), 2),
            None
        );
        let without_total = numbered(None);
        assert_eq!(
            next(&without_total, Some(Next::Page(1)), full, 2).as_deref(),
            Some("page 2")
        );
        assert_eq!(
            next(
                &without_total,
                Some(Next::Page(2)),
                json!({"data": [{}]}),
                1
            ),
            None
        );
        let offsets = spec(
            Paging::Offset {
                param: "offset",
                total: Some(&[Step::Key("total")]),
            },
            Some(("limit", 2)),
            Order::OldestFirst,
        );
        let body = json!({"data": [{}, {}], "total": 5});
        assert_eq!(
            next(&offsets, Some(Next::Offset(2)), body.clone(), 2).as_deref(),
            Some("offset 4")
        );
        assert_eq!(next(&offsets, Some(Next::Offset(4)), body, 1), None);
    }

    #[test]
    fn next_links_come_from_the_body_or_the_link_header() {
        let links = spec(
            Paging::NextUrl(&[Step::Key("links"), Step::Key("next")]),
            None,
            Order::OldestFirst,
        );
        let body = json!({"data": [{}], "links": {"next": "/v1/items?page=2"}});
        assert_eq!(
            next(&links, None, body, 1).as_deref(),
            Some("url /v1/items?page=2")
        );
        assert_eq!(
            next(&links, None, json!({"data": [{}], "links": {}}), 1),
            None
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static(
                r#"<https://api.test/x?p=1>; rel="prev", <https://api.test/x?p=3>; rel="next""#,
            ),
        );
        assert_eq!(
            link_next(&headers).as_deref(),
            Some("https://api.test/x?p=3")
        );
        assert_eq!(link_next(&HeaderMap::new()), None);
        let base = UpstreamRequest {
            path: "/v1/items?x=1".to_owned(),
            ..Default::default()
        };
        assert_eq!(absolute_url("page2", &base), "/v1/items/page2");
        assert_eq!(absolute_url("/v2/items", &base), "/v2/items");
        assert_eq!(absolute_url("https://o.test/a", &base), "https://o.test/a");
    }

    #[test]
    fn nested_records_are_flattened_and_the_page_counts_its_own_items() {
        let body = json!({"items": [
            {"entries": [{"id": 1}, {"id": 2}]},
            {"entries": []},
            {"entries": [{"id": 3}]},
        ]});
        let (records, page_items) =
            collect_records(&body, &[&[Step::Key("items")], &[Step::Key("entries")]]);
        let ids: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(page_items, 3, "statements, not entries, fill a page");
    }

    fn entry(second: i64, nanos: u32, id: &str) -> Entry<String> {
        Entry {
            served: DateTime::from_timestamp(second, nanos).unwrap(),
            id: id.to_owned(),
            item: id.to_owned(),
        }
    }

    #[test]
    fn oldest_first_records_settle_once_their_second_is_behind_the_frontier() {
        let mut window = Window::<String>::new(None);
        window.pending = vec![entry(10, 0, "b"), entry(10, 5, "a"), entry(11, 0, "c")];
        window.frontier = Some(11);
        window.settle(Order::OldestFirst);
        let settled: Vec<&str> = window.settled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(settled, ["b", "a"], "second 11 may still get records");
        assert_eq!(window.pending.len(), 1);
        window.next = None;
        window.settle(Order::OldestFirst);
        assert_eq!(window.settled.len(), 3);
        window.forget_before(DateTime::from_timestamp(11, 0));
        let kept: Vec<&str> = window.settled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(kept, ["c"]);
    }

    #[test]
    fn newest_first_records_wait_for_the_end_of_the_walk() {
        let mut window = Window::<String>::new(None);
        window.pending = vec![entry(12, 0, "x"), entry(11, 0, "y")];
        window.settle(Order::NewestFirst);
        assert!(window.settled.is_empty());
        window.next = None;
        window.settle(Order::NewestFirst);
        let settled: Vec<&str> = window.settled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(settled, ["y", "x"]);
    }

    /// However the provider's pages arrive, the settled records end up sorted by (served
    /// time, id), each once: checked on many random walks (a seeded xorshift, so that these
    /// tests need no crate a generated connector lacks).
    #[test]
    fn settled_records_are_sorted_whatever_the_arrival() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for _ in 0..500 {
            let mut window = Window::<String>::new(None);
            let mut expected = Vec::new();
            let mut seen = HashSet::new();
            let pages = 1 + random(5);
            for page in 0..pages {
                for _ in 0..random(6) {
                    let id = format!("{}", random(12));
                    let (second, nanos) = (random(5) as i64, random(3) as u32);
                    if seen.insert(id.clone()) {
                        window.pending.push(entry(second, nanos, &id));
                        expected.push((DateTime::from_timestamp(second, nanos).unwrap(), id));
                    }
                }
                if page + 1 == pages {
                    window.next = None;
                }
                window.settle(Order::Unordered);
            }
            expected.sort();
            let settled: Vec<(DateTime<Utc>, String)> = window
                .settled
                .iter()
                .map(|e| (e.served, e.id.clone()))
                .collect();
            assert_eq!(settled, expected);
        }
    }

    /// A provider on a loopback port answering page `?page=N` of `records`.
    fn provider(records: Vec<Value>, per_page: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
        serve(move |request| {
            let page: usize = request
                .line
                .split(['?', '&', ' '])
                .find_map(|pair| pair.strip_prefix("page="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let data: Vec<&Value> = records
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .collect();
            (200, Vec::new(), json!({"data": data}).to_string())
        })
    }

    #[test]
    fn protocol_pages_are_cut_from_one_walk_of_the_provider() {
        // 7 records in two seconds, newest first, three per provider page.
        let records: Vec<Value> = (0..7)
            .rev()
            .map(|n| json!({"id": format!("r{n}"), "at": 1_700_000_000 + n / 4}))
            .collect();
        let (url, received) = provider(records, 3);
        let calls = || received.lock().unwrap().len();
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let list = ListSpec {
            paging: Paging::PageNumber {
                param: "page",
                first: 1,
                total_pages: None,
            },
            ..spec(Paging::None, Some(("per_page", 3)), Order::NewestFirst)
        };
        let state = ListState::<String>::default();
        let base = UpstreamRequest {
            method: "GET".to_owned(),
            path: "/items".to_owned(),
            ..Default::default()
        };
        let to_entry = |record: &Value| {
            let id = record["id"].as_str().unwrap().to_owned();
            let at = DateTime::from_timestamp(record["at"].as_i64().unwrap(), 0).unwrap();
            Ok(Entry {
                served: convert::served_time(at, &id),
                id: id.clone(),
                item: id,
            })
        };
        let page = |number| {
            block_on(page(
                &upstream, &list, &state, &base, None, number, 2, to_entry,
            ))
            .unwrap()
        };
        // Oldest first; ties inside a second in the order their served times give them.
        let mut expected: Vec<(DateTime<Utc>, String)> = (0..7)
            .map(|n| {
                let at = DateTime::from_timestamp(1_700_000_000 + n / 4, 0).unwrap();
                (convert::served_time(at, &format!("r{n}")), format!("r{n}"))
            })
            .collect();
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        let served: Vec<String> = (1..=3).flat_map(page).collect();
        assert_eq!(served, expected[..6]);
        assert_eq!(calls(), 3, "one walk of 3 provider pages");
        // The end of the list is served after a fresh walk: records may have arrived since.
        assert_eq!(page(4), expected[6..]);
        assert_eq!(calls(), 6);
    }
}
