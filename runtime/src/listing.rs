//! Serving protocol list pages from a provider's list endpoints.
//!
//! A *window* holds the records from one filter second on, converted and sorted by
//! their served timestamp (the protocol timestamp plus a per-record offset that depends
//! only on the record's time and id, so that ties never straddle a page boundary). Protocol
//! pages are cut from the window; the provider is walked further only when a page needs
//! more. As Formance's filter moves forward, records before it are forgotten, so a
//! provider that lists oldest first is walked with memory bounded by a few pages. A
//! provider that lists newest first (or in no order) has to be walked to the end before
//! the oldest record is known: its window holds the records after the filter.
//!
//! A window walks one or more *streams*: one for a plain list, one per parent record for a
//! list that is fanned out over another (an account's transactions, for every account).
//! A stream whose provider filter needs both ends walks time span after time span, up to
//! now. A record is settled (its place final) once every stream has walked past its second:
//! the streams are merged into the protocol's one ascending order.
//!
//! The records a window holds unsorted (all of them, for a provider listed newest first) are
//! bounded by `CONNECTOR_WINDOW_MEMORY`: beyond it they are sorted and written to a
//! temporary file as a *run*, and pages are then cut from a merge of the runs, read a record
//! at a time. A run's file is removed once it is read to its end or its window is dropped.

use super::convert::{self, Step, TimeFormat};
use super::error::ConnectorError;
use super::join::{Join, Joined};
use super::upstream::{TextResponse, Upstream, UpstreamRequest};
use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A window older than this is walked again from the provider.
const WINDOW_TTL: Duration = Duration::from_secs(600);

/// Records are served once their second has been over for this long (by this process's
/// clock): a record the provider adds later to a second already served could get a served
/// time before Formance's state and be skipped for good. The margin covers the provider's
/// clock running ahead and its writes becoming visible late.
const OPEN_SECOND_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Served times from this on are not served yet (see [`OPEN_SECOND_MARGIN`]).
fn still_open_from() -> DateTime<Utc> {
    start_of_second(Utc::now() - OPEN_SECOND_MARGIN)
}

/// The estimated bytes of records a window holds before it writes them to a run on disk
/// (`CONNECTOR_WINDOW_MEMORY`, set at start-up).
static WINDOW_MEMORY: AtomicU64 = AtomicU64::new(super::config::DEFAULT_WINDOW_MEMORY);

/// Sets the budget of every window opened from now on (`CONNECTOR_WINDOW_MEMORY`).
pub fn set_window_memory(bytes: u64) {
    WINDOW_MEMORY.store(bytes, AtomicOrdering::Relaxed);
}

fn window_memory() -> usize {
    usize::try_from(WINDOW_MEMORY.load(AtomicOrdering::Relaxed)).unwrap_or(usize::MAX)
}

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

/// A provider filter that needs both ends and caps the span between them: the list is walked
/// window by window, from Formance's filter (or `start`) up to now, never stopping at an
/// empty one.
#[derive(Debug)]
pub struct Windows {
    /// The parameter taking each window's end (the start goes in `Since::param`).
    pub to_param: &'static str,
    /// The longest span the provider accepts, in seconds.
    pub max_span: i64,
    /// Where the walk starts when Formance sends no filter.
    pub start: WindowStart,
}

/// Where a windowed walk starts on Formance's first poll.
#[derive(Debug, Clone, Copy)]
pub enum WindowStart {
    /// At this Unix time.
    At(i64),
    /// This many seconds before now.
    Ago(i64),
}

/// Provider records that never reach Formance, by the text of their fields: a record is left
/// out when any `exclude` field has one of its values, or, with `only`, unless every `only`
/// field has one of its values.
#[derive(Debug, Default)]
pub struct Filter {
    pub exclude: &'static [(&'static [Step], &'static [&'static str])],
    pub only: &'static [(&'static [Step], &'static [&'static str])],
}

impl Filter {
    /// Whether `record` is served.
    pub fn keeps(&self, record: &Value) -> bool {
        let has = |(path, values): &(&'static [Step], &'static [&'static str])| {
            convert::lookup(record, path)
                .and_then(convert::to_text)
                .is_some_and(|text| values.contains(&text.as_str()))
        };
        !self.exclude.iter().any(has) && self.only.iter().all(has)
    }
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
    pub windows: Option<Windows>,
    pub filter: Filter,
    /// Provider calls made for each record before it is converted.
    pub joins: &'static [Join],
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

impl<T> Entry<T> {
    /// What orders it in the protocol list: the served time, ties broken by id.
    fn key(&self) -> (DateTime<Utc>, &str) {
        (self.served, &self.id)
    }
}

/// One provider page read at once into the mapping's own record types, by a reader that
/// connector-gen writes for the operation: its records converted, and what the stop rule
/// reads.
#[derive(Debug)]
pub struct Read<T> {
    pub entries: Vec<Entry<T>>,
    /// How many items the page itself held (what page sizes count).
    pub count: usize,
    /// The answer's values the stop rule reads (`has_more`, a next cursor or link, a
    /// total), at their paths; nothing else.
    pub paging: Value,
    /// The last record's value at the cursor path, with `cursor.from_record`.
    pub cursor: Option<Value>,
}

/// Why a reader gave no page.
#[derive(Debug)]
pub enum Unread {
    /// The answer is not JSON.
    NotJson(serde_json::Error),
    /// The record at this index of the page's records could not be converted.
    Record(usize, ConnectorError),
}

/// The page a generated reader reads from a provider's answer: an empty answer, or one
/// that is not an object, holds no records, as when its paths are looked up.
pub fn parse<'a, P>(text: &'a str) -> Result<P, Unread>
where
    P: serde::Deserialize<'a> + Default,
{
    if text.trim().is_empty() {
        return Ok(P::default());
    }
    serde_json::from_str::<super::fields::Object<P>>(text)
        .map(|page| page.0.unwrap_or_default())
        .map_err(Unread::NotJson)
}

/// Every record converted, or the index of the first that could not be.
pub fn convert_all<'r, R: 'r, T>(
    records: impl IntoIterator<Item = &'r R>,
    convert: impl Fn(&R) -> Result<Entry<T>, ConnectorError>,
) -> Result<Vec<Entry<T>>, Unread> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| convert(record).map_err(|error| Unread::Record(index, error)))
        .collect()
}

/// `value` at `path` (keys only) inside `body`, the objects on the way made as needed: the
/// paging values a reader read, where the stop rule looks for them.
pub fn put(body: &mut Value, path: &[Step], value: Value) {
    let mut current = body;
    for step in path {
        let Step::Key(key) = step else { return };
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else { return };
        current = map.entry(*key).or_insert(Value::Null);
    }
    *current = value;
}

/// How a list's provider pages become entries.
enum Reader<'c, F, R> {
    /// Record by record, as JSON values (with the parent record of a fan-out).
    Values(&'c F),
    /// A page at a time, by a generated reader.
    Typed(&'c R),
}

type ValueReader<T> = fn(&Value, Option<&Value>) -> Result<Entry<T>, ConnectorError>;
type TypedReader<T> = fn(&str) -> Result<Read<T>, Unread>;

/// Where one provider walk starts: its request, and the parent record it is for when the
/// list is fanned out over another.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub request: UpstreamRequest,
    pub parent: Option<Arc<Value>>,
    /// Values every record of this walk gets before it is filtered and converted: what tells
    /// the records of one request of a `union` from another's (`status: PENDING`).
    pub constants: Option<Arc<Map<String, Value>>>,
}

impl Source {
    /// A list of its own, not fanned out.
    pub fn single(request: UpstreamRequest) -> Vec<Source> {
        vec![Source {
            request,
            ..Source::default()
        }]
    }

    /// This walk with `constants` set in each of its records.
    pub fn with_constants(self, constants: &[(&str, &str)]) -> Source {
        let constants = constants
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::String((*value).to_owned())))
            .collect();
        Source {
            constants: Some(Arc::new(constants)),
            ..self
        }
    }

    /// `record` with this walk's constants set in it (they win over the provider's values).
    fn complete<'r>(&self, record: &'r Value) -> Cow<'r, Value> {
        match (&self.constants, record) {
            (Some(constants), Value::Object(fields)) => {
                let mut fields = fields.clone();
                fields.extend(constants.iter().map(|(k, v)| (k.clone(), v.clone())));
                Cow::Owned(Value::Object(fields))
            }
            _ => Cow::Borrowed(record),
        }
    }
}

/// The window of one list operation.
pub struct ListState<T> {
    window: Mutex<Option<Window<T>>>,
    /// The windows' memory budget, when not `CONNECTOR_WINDOW_MEMORY`'s.
    budget: Option<usize>,
}

impl<T> Default for ListState<T> {
    fn default() -> Self {
        Self {
            window: Mutex::new(None),
            budget: None,
        }
    }
}

impl<T> ListState<T> {
    /// A state whose windows hold at most `bytes` (estimated) in memory.
    pub fn with_window_memory(bytes: usize) -> Self {
        Self {
            budget: Some(bytes),
            ..Self::default()
        }
    }

    /// The window that can serve `since`, taken out of the state, if there is one.
    fn take(&self, since: Option<DateTime<Utc>>) -> Option<Window<T>> {
        let mut slot = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.take()
            .filter(|window| window.since <= since && window.created.elapsed() < WINDOW_TTL)
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

/// One provider walk of a window: a source, page by page (and, with windows, span by span).
struct Stream {
    source: Source,
    /// The time span being walked, `[start, end)`, when the list has windows.
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    next: Option<Next>,
    /// Where the last page fetched was, to look there again for records added since.
    last: Option<Next>,
    seen: HashSet<String>,
    /// The latest second fetched so far in this span.
    frontier: Option<i64>,
    /// Records fetched in the last second of this span, and of the one before it: a
    /// provider whose ends overlap (an end it includes, or a start asked a second early
    /// because it excludes it) lists them again in the next span.
    near_end: HashSet<(String, DateTime<Utc>)>,
    boundary: HashSet<(String, DateTime<Utc>)>,
}

impl Stream {
    fn new(source: Source, span: Option<(DateTime<Utc>, DateTime<Utc>)>) -> Self {
        Self {
            source,
            span,
            next: Some(Next::First),
            last: None,
            seen: HashSet::new(),
            frontier: None,
            near_end: HashSet::new(),
            boundary: HashSet::new(),
        }
    }

    fn done(&self) -> bool {
        self.next.is_none()
    }

    /// Every record before this second has been fetched.
    fn walked_before(&self, order: Order) -> i64 {
        if self.done() {
            return i64::MAX;
        }
        let span_start = self.span.map_or(i64::MIN, |(start, _)| start.timestamp());
        match order {
            Order::OldestFirst => span_start.max(self.frontier.unwrap_or(i64::MIN)),
            Order::NewestFirst | Order::Unordered => span_start,
        }
    }
}

struct Window<T> {
    since: Option<DateTime<Utc>>,
    /// The filter sent to the provider, fixed for the whole walk so that its pages stay put.
    walk_since: Option<DateTime<Utc>>,
    /// Where a windowed walk stops: a little after the window was opened.
    walk_end: DateTime<Utc>,
    streams: Vec<Stream>,
    /// The records already held (id and served time), while pages are fetched again.
    dedupe: Option<HashSet<(String, DateTime<Utc>)>>,
    /// Sorted by (served, id); final.
    settled: Vec<Entry<T>>,
    /// Fetched, but records of the same second may still come from some stream.
    pending: Vec<Entry<T>>,
    /// The estimated bytes `pending` takes.
    pending_bytes: usize,
    /// Past this estimate `pending` is written to a run.
    budget: usize,
    /// Records written to disk or waiting their turn, each run sorted: they move to
    /// `settled` in order, as pages need them, once before `settled_before`.
    runs: Vec<Run<T>>,
    /// Records before this second are settled.
    settled_before: i64,
    pages: u32,
    exhausted_at: Option<Instant>,
    created: Instant,
    /// The answers of the joins, each for a minute.
    joined: Joined,
}

/// Protocol page `page` (1-based) of `size` records with a served timestamp in or after
/// the second of `since`. `sources(max_age)` gives the provider walks when a window opens
/// (one, or one per parent record, from parents walked at most `max_age` ago); `convert`
/// turns a provider record (and its parent) into an entry.
#[allow(clippy::too_many_arguments)]
pub async fn page<T, S, F>(
    upstream: &Upstream,
    spec: &ListSpec,
    state: &ListState<T>,
    sources: S,
    since: Option<DateTime<Utc>>,
    page: i64,
    size: i64,
    convert: impl Fn(&Value, Option<&Value>) -> Result<Entry<T>, ConnectorError> + Sync,
) -> Result<Vec<T>, ConnectorError>
where
    T: Clone + Serialize + DeserializeOwned,
    S: Fn(Duration) -> F,
    F: Future<Output = Result<Vec<Source>, ConnectorError>>,
{
    let reader = Reader::<_, TypedReader<T>>::Values(&convert);
    walk(upstream, spec, state, sources, since, page, size, &reader).await
}

/// [`page`], with each provider page read by `read`, a reader connector-gen writes for the
/// operation: straight from the answer's text into the records the mapping reads.
#[allow(clippy::too_many_arguments)]
pub async fn page_typed<T, S, F>(
    upstream: &Upstream,
    spec: &ListSpec,
    state: &ListState<T>,
    sources: S,
    since: Option<DateTime<Utc>>,
    page: i64,
    size: i64,
    read: impl Fn(&str) -> Result<Read<T>, Unread> + Sync,
) -> Result<Vec<T>, ConnectorError>
where
    T: Clone + Serialize + DeserializeOwned,
    S: Fn(Duration) -> F,
    F: Future<Output = Result<Vec<Source>, ConnectorError>>,
{
    let reader = Reader::<ValueReader<T>, _>::Typed(&read);
    walk(upstream, spec, state, sources, since, page, size, &reader).await
}

#[allow(clippy::too_many_arguments)]
async fn walk<T, S, F, C, R>(
    upstream: &Upstream,
    spec: &ListSpec,
    state: &ListState<T>,
    sources: S,
    since: Option<DateTime<Utc>>,
    page: i64,
    size: i64,
    reader: &Reader<'_, C, R>,
) -> Result<Vec<T>, ConnectorError>
where
    T: Clone + Serialize + DeserializeOwned,
    S: Fn(Duration) -> F,
    F: Future<Output = Result<Vec<Source>, ConnectorError>>,
    C: Fn(&Value, Option<&Value>) -> Result<Entry<T>, ConnectorError>,
    R: Fn(&str) -> Result<Read<T>, Unread>,
{
    let since = since.map(start_of_second);
    let size = usize::try_from(size.max(1)).unwrap_or(usize::MAX);
    let from = usize::try_from(page.max(1) - 1)
        .unwrap_or(usize::MAX)
        .saturating_mul(size);
    let to = from.saturating_add(size);
    let started = Instant::now();
    // The window is taken out while the provider is walked, so that no lock is held
    // across provider calls: concurrent requests of one operation do not queue.
    let (mut window, mut built_now) = match state.take(since) {
        Some(window) => (window, false),
        None => {
            let sources = sources(RECORDS_TTL).await?;
            (Window::new(spec, since, sources).budget(state.budget), true)
        }
    };
    let result = loop {
        window.forget_before(since);
        let mut fetched = window.fill(to);
        while window.settled.len() < to && !window.exhausted() && fetched.is_ok() {
            fetched = window.fetch(upstream, spec, reader).await;
            if fetched.is_ok() {
                fetched = window.fill(to);
            }
        }
        if let Err(error) = fetched {
            break Err(error);
        }
        let short = window.settled.len() < to;
        let stale = window.exhausted_at.is_some_and(|at| at < started);
        if short && stale && !built_now {
            // The provider may have new records since this window reached its end: an
            // oldest-first provider has them after the last page, others anywhere. A
            // fan-out's parents are walked again too, whoever walked them last: a parent
            // added since has new records too.
            let sources = match sources(Duration::ZERO).await {
                Ok(sources) => sources,
                Err(error) => break Err(error),
            };
            if !(spec.order == Order::OldestFirst && window.reopen(spec, &sources)) {
                let joined = std::mem::take(&mut window.joined);
                window = Window::new(spec, since, sources).budget(state.budget);
                window.joined = joined;
            }
            built_now = true;
            continue;
        }
        let open = still_open_from();
        let closed = window.settled.partition_point(|entry| entry.served < open);
        let end = to.min(closed);
        let items = window.settled.get(from..end).unwrap_or_default();
        break Ok(items.iter().map(|entry| entry.item.clone()).collect());
    };
    state.put_back(window);
    if result.is_ok() {
        upstream.metrics().unstuck(spec.operation);
    }
    result
}

/// How long a walk of every record (for a fan-out's parents, or an operation answered from
/// a list) is reused before the provider is walked again.
pub const RECORDS_TTL: Duration = Duration::from_secs(60);

/// Every provider record of a list, all pages, in the provider's order: the parents of a
/// fan-out, or the list an operation picks its answer from. Reused for [`RECORDS_TTL`].
#[derive(Default)]
pub struct RecordCache {
    walked: tokio::sync::Mutex<Option<(Instant, Records)>>,
}

/// Provider records, shared.
pub type Records = Arc<Vec<Arc<Value>>>;

/// The records of one provider page that a walk of `spec` serves: nested arrays flattened
/// and `spec`'s filter applied, in the page's order (`connector-gen preview` reads them so).
pub fn page_records<'a>(spec: &ListSpec, body: &'a Value) -> Vec<&'a Value> {
    let (records, _) = collect_records(body, spec.records);
    records
        .into_iter()
        .filter(|record| spec.filter.keeps(record))
        .collect()
}

/// The first provider request a walk of `source` sends without Formance's filter: its page
/// size, its first position and, for a list walked in windows, the first window's ends.
pub fn first_request(spec: &ListSpec, source: Source) -> Result<UpstreamRequest, ConnectorError> {
    let window = Window::<()>::new(spec, None, vec![source]);
    match window.streams.first() {
        Some(stream) => request(spec, stream, window.walk_since, stream.span),
        None => Err(ConnectorError::internal(format!(
            "{}: no provider walk to start",
            spec.operation
        ))),
    }
}

/// The records of `spec`'s list from `sources` (every parent's, for a fan-out): the last
/// walk's when it is younger than `max_age` (and than [`RECORDS_TTL`]), else a new walk's.
/// `spec`'s time filter and windows are not used.
pub async fn records(
    upstream: &Upstream,
    spec: &ListSpec,
    cache: &RecordCache,
    max_age: Duration,
    sources: impl Future<Output = Result<Vec<Source>, ConnectorError>>,
) -> Result<Records, ConnectorError> {
    // Held across the walk: requests that need the same list wait for one walk.
    let mut walked = cache.walked.lock().await;
    if let Some((at, records)) = walked.as_ref()
        && at.elapsed() < max_age.min(RECORDS_TTL)
    {
        return Ok(Arc::clone(records));
    }
    let mut records = Vec::new();
    let mut pages = 0;
    for source in sources.await? {
        let mut stream = Stream::new(source, None);
        while !stream.done() {
            pages += 1;
            if pages > spec.max_pages {
                return Err(too_many_pages(spec));
            }
            let request = request(spec, &stream, None, None)?;
            let response = send(upstream, spec, &request).await?;
            let (found, raw_count) = collect_records(&response.body, spec.records);
            records.extend(
                found
                    .iter()
                    .map(|record| stream.source.complete(record))
                    .filter(|record| spec.filter.keeps(record))
                    .map(|record| Arc::new(record.into_owned())),
            );
            let cursor = cursor_of(spec, found.last().copied());
            advance(
                spec,
                &mut stream,
                &response.body,
                &response.headers,
                cursor,
                raw_count,
            )?;
        }
    }
    let records = Arc::new(records);
    *walked = Some((Instant::now(), Arc::clone(&records)));
    Ok(records)
}

fn start_of_second(time: DateTime<Utc>) -> DateTime<Utc> {
    time.with_nanosecond(0).unwrap_or(time)
}

/// A little past now, so that records a provider stamps with a clock ahead of ours are in.
const WALK_END_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl<T: Serialize + DeserializeOwned> Window<T> {
    fn new(spec: &ListSpec, since: Option<DateTime<Utc>>, sources: Vec<Source>) -> Self {
        let walk_end = Utc::now() + WALK_END_MARGIN;
        let mut window = Self {
            since,
            walk_since: since,
            walk_end,
            streams: Vec::new(),
            dedupe: None,
            settled: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            budget: window_memory(),
            runs: Vec::new(),
            settled_before: i64::MIN,
            pages: 0,
            exhausted_at: None,
            created: Instant::now(),
            joined: Joined::default(),
        };
        let span = window.first_span(spec);
        window.streams = sources
            .into_iter()
            .map(|source| Stream::new(source, span))
            .collect();
        if window.streams.is_empty() {
            window.exhausted_at = Some(Instant::now());
        }
        window
    }

    fn budget(mut self, budget: Option<usize>) -> Self {
        if let Some(budget) = budget {
            self.budget = budget;
        }
        self
    }

    /// The span a windowed walk starts with: from Formance's filter (or the configured
    /// start) for at most `max_span`.
    fn first_span(&self, spec: &ListSpec) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let windows = spec.windows.as_ref()?;
        let start = self.walk_since.unwrap_or_else(|| match windows.start {
            WindowStart::At(seconds) => DateTime::from_timestamp(seconds, 0).unwrap_or_default(),
            WindowStart::Ago(seconds) => {
                start_of_second(Utc::now() - chrono::TimeDelta::seconds(seconds))
            }
        });
        Some((start, self.span_end(windows, start)))
    }

    fn span_end(&self, windows: &Windows, start: DateTime<Utc>) -> DateTime<Utc> {
        (start + chrono::TimeDelta::seconds(windows.max_span)).min(self.walk_end)
    }

    fn exhausted(&self) -> bool {
        self.streams.iter().all(Stream::done)
    }

    /// Walks again for what changed since the walk ended, skipping the records already
    /// held. A provider that filters is walked from the first page of what Formance still
    /// asks for: a record that changes moves (to the end of an updated-at order), so the
    /// old walk's positions no longer say where it is. Otherwise the walk goes on from the
    /// last page fetched, which finds what was added after the end of the list.
    fn reopen(&mut self, spec: &ListSpec, sources: &[Source]) -> bool {
        if !self.runs.is_empty() {
            // What is held on disk is not looked up record by record: walk anew.
            return false;
        }
        if spec.since.is_some() && self.since.is_some() {
            self.walk_since = self.since;
            self.walk_end = Utc::now() + WALK_END_MARGIN;
            let span = self.first_span(spec);
            self.streams = sources
                .iter()
                .map(|source| Stream::new(source.clone(), span))
                .collect();
        } else if spec.movable {
            // Without a filter the whole list must be walked again to find what moved.
            return false;
        } else {
            let mut walked: HashMap<String, Stream> = std::mem::take(&mut self.streams)
                .into_iter()
                .map(|stream| (stream.source.request.identity(), stream))
                .collect();
            let span = self.first_span(spec);
            for source in sources {
                // A known walk goes on from its last page; a new parent's starts at its first.
                let stream = match walked.remove(&source.request.identity()) {
                    Some(mut stream) => {
                        let Some(last) = stream.last.clone() else {
                            return false;
                        };
                        stream.seen.remove(&position_key(&last));
                        stream.next = Some(last);
                        stream
                    }
                    None => Stream::new(source.clone(), span),
                };
                self.streams.push(stream);
            }
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
        let held = self.pending.len();
        self.pending.retain(|entry| entry.served >= since);
        self.pending_bytes = scaled(self.pending_bytes, self.pending.len(), held);
        self.since = Some(since);
    }

    /// Fetches the next page of the stream that has walked the least far, so that records
    /// settle as early as the slowest stream allows.
    async fn fetch<C, R>(
        &mut self,
        upstream: &Upstream,
        spec: &ListSpec,
        reader: &Reader<'_, C, R>,
    ) -> Result<(), ConnectorError>
    where
        C: Fn(&Value, Option<&Value>) -> Result<Entry<T>, ConnectorError>,
        R: Fn(&str) -> Result<Read<T>, Unread>,
    {
        self.pages += 1;
        if self.pages > spec.max_pages {
            return Err(too_many_pages(spec));
        }
        let Some(index) = (0..self.streams.len())
            .filter(|&index| !self.streams[index].done())
            .min_by_key(|&index| self.streams[index].walked_before(spec.order))
        else {
            return Ok(());
        };
        let request = request(
            spec,
            &self.streams[index],
            self.walk_since,
            self.streams[index].span,
        )?;
        let (entries, body, headers, cursor, raw_count) = match reader {
            Reader::Values(convert) => {
                let response = send(upstream, spec, &request).await?;
                let (records, raw_count) = collect_records(&response.body, spec.records);
                let cursor = cursor_of(spec, records.last().copied());
                let entries = self
                    .convert_values(upstream, spec, index, &records, convert)
                    .await?;
                (entries, response.body, response.headers, cursor, raw_count)
            }
            Reader::Typed(read) => {
                let answer = send_text(upstream, spec, &request).await?;
                let read = read_typed(upstream, spec, &request, &answer, read)?;
                self.streams[index].last = self.streams[index].next.clone();
                (
                    read.entries,
                    read.paging,
                    answer.headers,
                    read.cursor,
                    read.count,
                )
            }
        };
        let entry_bytes = bytes_per_entry(&entries);
        let stream = &mut self.streams[index];
        let near_end = stream.span.map(|(_, end)| end.timestamp() - 1);
        for entry in entries {
            let second = entry.served.timestamp();
            stream.frontier = stream.frontier.max(Some(second));
            let key = (entry.id.clone(), entry.served);
            let repeated = stream.boundary.contains(&key)
                || self.dedupe.as_ref().is_some_and(|held| held.contains(&key));
            if near_end.is_some_and(|near| second >= near) {
                stream.near_end.insert(key);
            }
            if !repeated && self.since.is_none_or(|since| entry.served >= since) {
                self.pending_bytes += entry_bytes;
                self.pending.push(entry);
            }
        }
        let span_ended = advance(spec, stream, &body, &headers, cursor, raw_count)?;
        if span_ended {
            self.next_span(spec, index);
        }
        if self.exhausted() {
            self.exhausted_at = Some(Instant::now());
            self.dedupe = None;
        }
        self.settle(spec.order);
        if self.pending_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// The records of one page of stream `index` that reach Formance, completed, joined
    /// and converted.
    async fn convert_values(
        &mut self,
        upstream: &Upstream,
        spec: &ListSpec,
        index: usize,
        records: &[&Value],
        convert: &impl Fn(&Value, Option<&Value>) -> Result<Entry<T>, ConnectorError>,
    ) -> Result<Vec<Entry<T>>, ConnectorError> {
        let source = &self.streams[index].source;
        let mut kept: Vec<Cow<'_, Value>> = records
            .iter()
            .map(|record| source.complete(record))
            .filter(|record| spec.filter.keeps(record))
            .collect();
        for record in &mut kept {
            self.joined
                .complete(upstream, spec.operation, spec.joins, record)
                .await?;
        }
        let stream = &mut self.streams[index];
        stream.last = stream.next.clone();
        let parent = stream.source.parent.as_deref();
        kept.iter()
            .map(|record| {
                convert(record, parent).inspect_err(|error| {
                    super::health::stuck_on(upstream.metrics(), spec.operation, record, error);
                })
            })
            .collect()
    }

    /// A stream's span has no more pages: the next span follows, up to the walk's end.
    fn next_span(&mut self, spec: &ListSpec, index: usize) {
        let Some(windows) = spec.windows.as_ref() else {
            return;
        };
        let walk_end = self.walk_end;
        let stream = &mut self.streams[index];
        let Some((_, end)) = stream.span else {
            return;
        };
        if end >= walk_end {
            return;
        }
        let next_end = (end + chrono::TimeDelta::seconds(windows.max_span)).min(walk_end);
        stream.span = Some((end, next_end));
        stream.next = Some(Next::First);
        stream.seen.clear();
        stream.frontier = None;
        stream.boundary = std::mem::take(&mut stream.near_end);
    }

    /// Moves what can no longer change place into the sorted part: records before the
    /// second every stream has walked past.
    fn settle(&mut self, order: Order) {
        let walked_before = self
            .streams
            .iter()
            .map(|stream| stream.walked_before(order))
            .min()
            .unwrap_or(i64::MAX);
        self.settled_before = walked_before;
        if !self
            .pending
            .iter()
            .any(|entry| entry.served.timestamp() < walked_before)
        {
            return;
        }
        let held = self.pending.len();
        let (mut ready, waiting): (Vec<Entry<T>>, Vec<Entry<T>>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|entry| entry.served.timestamp() < walked_before);
        self.pending = waiting;
        self.pending_bytes = scaled(self.pending_bytes, self.pending.len(), held);
        if ready.is_empty() {
            return;
        }
        sort_entries(&mut ready);
        if !self.runs.is_empty() {
            // Earlier records may still be on disk: these take their turn in the merge.
            self.runs.push(Run::held(ready));
            return;
        }
        // A record listed under two parents (a transfer between two wallets) is one record.
        ready.dedup_by(|a, b| a.key() == b.key());
        if let Some(last) = self.settled.last() {
            ready.retain(|entry| entry.key() != last.key());
        }
        let in_order = match (self.settled.last(), ready.first()) {
            (Some(last), Some(first)) => last.key() <= first.key(),
            _ => true,
        };
        self.settled.append(&mut ready);
        if !in_order {
            warn_out_of_order();
            self.settled.sort_by(|a, b| a.key().cmp(&b.key()));
        }
    }

    /// Writes the unsorted records to a run on disk, sorted.
    fn spill(&mut self) -> Result<(), ConnectorError> {
        let mut pending = std::mem::take(&mut self.pending);
        sort_entries(&mut pending);
        let run = Run::write(&pending).map_err(|error| {
            ConnectorError::internal(format!(
                "cannot write a list window's records to a temporary file in {}: {error}",
                std::env::temp_dir().display()
            ))
        })?;
        self.runs.push(run);
        pending.clear();
        self.pending = pending;
        self.pending_bytes = 0;
        Ok(())
    }

    /// Moves records from the runs into `settled`, in order, until it holds `to` or no run
    /// has a settled record left.
    fn fill(&mut self, to: usize) -> Result<(), ConnectorError> {
        while self.settled.len() < to {
            let mut smallest: Option<usize> = None;
            for (index, run) in self.runs.iter().enumerate() {
                let Some(head) = &run.head else { continue };
                let earlier = smallest
                    .and_then(|best| self.runs[best].head.as_ref())
                    .is_none_or(|best| head.key() < best.key());
                if earlier {
                    smallest = Some(index);
                }
            }
            let Some(index) = smallest else { break };
            let run = &mut self.runs[index];
            if run
                .head
                .as_ref()
                .is_none_or(|head| head.served.timestamp() >= self.settled_before)
            {
                break;
            }
            let entry = run.advance()?;
            if run.head.is_none() {
                self.runs.remove(index);
            }
            let Some(entry) = entry else { continue };
            if self.since.is_some_and(|since| entry.served < since) {
                continue;
            }
            match self.settled.last() {
                Some(last) if last.key() == entry.key() => {}
                Some(last) if last.key() > entry.key() => {
                    warn_out_of_order();
                    let at = self
                        .settled
                        .partition_point(|held| held.key() < entry.key());
                    if self
                        .settled
                        .get(at)
                        .is_none_or(|held| held.key() != entry.key())
                    {
                        self.settled.insert(at, entry);
                    }
                }
                _ => self.settled.push(entry),
            }
        }
        Ok(())
    }
}

fn warn_out_of_order() {
    tracing::warn!("the provider's records were not in the order the mapping declares; re-sorting");
}

/// `bytes` for `held` records, scaled to `now` of them.
fn scaled(bytes: usize, now: usize, held: usize) -> usize {
    if held == 0 {
        0
    } else {
        (bytes as u128 * now as u128 / held as u128) as usize
    }
}

/// Counts what is written.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The estimated bytes of each of a page's `entries`: the mean of a few spread over the
/// page, so that a page is not encoded once more (besides in the answer) just to be counted.
fn bytes_per_entry<T: Serialize>(entries: &[Entry<T>]) -> usize {
    const SAMPLES: usize = 4;
    if entries.is_empty() {
        return 0;
    }
    let step = entries.len().div_ceil(SAMPLES);
    let sampled: Vec<usize> = entries.iter().step_by(step).map(estimated_bytes).collect();
    sampled.iter().sum::<usize>() / sampled.len()
}

/// What an entry takes in memory, roughly: its own size, and its record's JSON length for
/// what the record holds on the heap.
fn estimated_bytes<T: Serialize>(entry: &Entry<T>) -> usize {
    let mut counter = Counter(0);
    // A record that does not serialize counts for its size only; writing it would fail.
    let _ = serde_json::to_writer(&mut counter, &entry.item);
    std::mem::size_of::<Entry<T>>() + entry.id.len() + counter.0
}

/// Sorted by (served, id), records of the same key in their order of arrival, without
/// the buffer a stable sort of the entries themselves allocates.
fn sort_entries<T>(entries: &mut [Entry<T>]) {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (a_entry, b_entry) = (&entries[a], &entries[b]);
        (a_entry.key(), a).cmp(&(b_entry.key(), b))
    });
    // `target[i]`: where the entry now at `i` goes.
    let mut target = vec![0; order.len()];
    for (position, &from) in order.iter().enumerate() {
        target[from] = position;
    }
    drop(order);
    for index in 0..entries.len() {
        while target[index] != index {
            let to = target[index];
            entries.swap(index, to);
            target.swap(index, to);
        }
    }
}

/// A temporary file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn create() -> std::io::Result<(TempFile, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let name = format!(
                "connector-window-{}-{}.jsonl",
                std::process::id(),
                NEXT.fetch_add(1, AtomicOrdering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((TempFile(path), file)),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Records sorted by (served, id), its first one read ahead.
struct Run<T> {
    head: Option<Entry<T>>,
    rest: Rest<T>,
}

enum Rest<T> {
    Held(std::vec::IntoIter<Entry<T>>),
    /// One record a line, as `[seconds, nanoseconds, id, record]`.
    Disk {
        reader: BufReader<File>,
        line: String,
        _file: TempFile,
    },
}

type Stored<T> = (i64, u32, String, T);

impl<T: Serialize + DeserializeOwned> Run<T> {
    /// Records kept in memory, sorted.
    fn held(entries: Vec<Entry<T>>) -> Self {
        let mut rest = entries.into_iter();
        Run {
            head: rest.next(),
            rest: Rest::Held(rest),
        }
    }

    /// `entries`, sorted, written to a temporary file.
    fn write(entries: &[Entry<T>]) -> std::io::Result<Self> {
        let (file, handle) = TempFile::create()?;
        let mut writer = BufWriter::new(handle);
        for entry in entries {
            let stored = (
                entry.served.timestamp(),
                entry.served.timestamp_subsec_nanos(),
                &entry.id,
                &entry.item,
            );
            serde_json::to_writer(&mut writer, &stored)?;
            writer.write_all(b"\n")?;
        }
        writer.into_inner().map_err(|error| error.into_error())?;
        let reader = BufReader::new(File::open(&file.0)?);
        let mut run = Run {
            head: None,
            rest: Rest::Disk {
                reader,
                line: String::new(),
                _file: file,
            },
        };
        run.head = run.read()?;
        Ok(run)
    }

    fn read(&mut self) -> std::io::Result<Option<Entry<T>>> {
        match &mut self.rest {
            Rest::Held(rest) => Ok(rest.next()),
            Rest::Disk { reader, line, .. } => {
                line.clear();
                if reader.read_line(line)? == 0 {
                    return Ok(None);
                }
                let (seconds, nanos, id, item): Stored<T> = serde_json::from_str(line)?;
                let served = DateTime::from_timestamp(seconds, nanos).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "a served time out of range",
                    )
                })?;
                Ok(Some(Entry { served, id, item }))
            }
        }
    }

    /// The head, the next record read ahead in its place.
    fn advance(&mut self) -> Result<Option<Entry<T>>, ConnectorError> {
        let next = self.read().map_err(|error| {
            ConnectorError::internal(format!(
                "cannot read back a list window's records from a temporary file: {error}"
            ))
        })?;
        Ok(std::mem::replace(&mut self.head, next))
    }
}

fn too_many_pages(spec: &ListSpec) -> ConnectorError {
    ConnectorError::bad_gateway(format!(
        "{} walked more than max_pages ({}) provider pages; raise it in connector.yaml if that is expected",
        spec.operation, spec.max_pages
    ))
}

/// A list that is not there is the mapping's mistake, not a missing record.
fn not_found_is_bad_gateway(error: ConnectorError) -> ConnectorError {
    if error.status == axum::http::StatusCode::NOT_FOUND {
        ConnectorError::bad_gateway(error.detail)
    } else {
        error
    }
}

async fn send(
    upstream: &Upstream,
    spec: &ListSpec,
    request: &UpstreamRequest,
) -> Result<super::upstream::UpstreamResponse, ConnectorError> {
    upstream
        .send(spec.operation, request)
        .await
        .map_err(not_found_is_bad_gateway)
}

async fn send_text(
    upstream: &Upstream,
    spec: &ListSpec,
    request: &UpstreamRequest,
) -> Result<TextResponse, ConnectorError> {
    upstream
        .send_text(spec.operation, request)
        .await
        .map_err(not_found_is_bad_gateway)
}

/// A page read by a generated reader. A record it cannot convert is read again as JSON,
/// for the report of the record the list is stuck on.
fn read_typed<T>(
    upstream: &Upstream,
    spec: &ListSpec,
    request: &UpstreamRequest,
    answer: &TextResponse,
    read: &impl Fn(&str) -> Result<Read<T>, Unread>,
) -> Result<Read<T>, ConnectorError> {
    match read(&answer.text) {
        Ok(read) => Ok(read),
        Err(Unread::NotJson(error)) => {
            Err(upstream.not_json(spec.operation, request, answer.status, &answer.text, &error))
        }
        Err(Unread::Record(index, error)) => {
            if let Ok(body) = serde_json::from_str::<Value>(&answer.text) {
                let (records, _) = collect_records(&body, spec.records);
                if let Some(record) = records.get(index) {
                    super::health::stuck_on(upstream.metrics(), spec.operation, record, &error);
                }
            }
            Err(error)
        }
    }
}

/// The last record's cursor, with `cursor.from_record`.
fn cursor_of(spec: &ListSpec, last: Option<&Value>) -> Option<Value> {
    match &spec.paging {
        Paging::Cursor {
            from: CursorFrom::LastRecord(path),
            ..
        } => last
            .and_then(|record| convert::lookup(record, path))
            .cloned(),
        _ => None,
    }
}

/// Moves a stream to its next page; whether its span (or its whole walk) has no more.
fn advance(
    spec: &ListSpec,
    stream: &mut Stream,
    body: &Value,
    headers: &axum::http::HeaderMap,
    cursor: Option<Value>,
    raw_count: usize,
) -> Result<bool, ConnectorError> {
    stream.next = next_page(
        spec,
        &stream.next,
        body,
        headers,
        cursor.as_ref(),
        raw_count,
    );
    if let Some(next) = &stream.next {
        let key = position_key(next);
        if !stream.seen.insert(key.clone()) {
            return Err(ConnectorError::bad_gateway(format!(
                "{}: the provider sent the same {key} twice; stopping instead of looping forever",
                spec.operation
            )));
        }
    }
    Ok(stream.next.is_none())
}

/// The provider request for a stream's next page: its source's, with the page size, the
/// time filter (or the span's ends) and the position.
fn request(
    spec: &ListSpec,
    stream: &Stream,
    walk_since: Option<DateTime<Utc>>,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<UpstreamRequest, ConnectorError> {
    let base = &stream.source.request;
    let mut request = base.clone();
    if let Some((param, size)) = spec.page_size {
        request.query.push((param.to_owned(), size.to_string()));
    }
    let from = span.map(|(start, _)| start).or(walk_since);
    if let (Some(filter), Some(from)) = (&spec.since, from) {
        let from = if filter.inclusive {
            from
        } else {
            from - chrono::Duration::seconds(1)
        };
        request.query.push((
            filter.param.to_owned(),
            format_filter(spec, from, &filter.format)?,
        ));
        if let (Some(windows), Some((_, end))) = (&spec.windows, span) {
            request.query.push((
                windows.to_param.to_owned(),
                format_filter(spec, end, &filter.format)?,
            ));
        }
    }
    match (&stream.next, &spec.paging) {
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

fn format_filter(
    spec: &ListSpec,
    time: DateTime<Utc>,
    format: &TimeFormat,
) -> Result<String, ConnectorError> {
    convert::format_time(time, format)
        .map_err(|error| ConnectorError::internal(format!("{}: `since`: {error}", spec.operation)))
}

/// Where the walk goes next, or `None` when the provider's stop rule says it is done.
fn next_page(
    spec: &ListSpec,
    current: &Option<Next>,
    body: &Value,
    headers: &axum::http::HeaderMap,
    cursor: Option<&Value>,
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
                CursorFrom::LastRecord(_) => cursor,
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
            windows: None,
            filter: Filter::default(),
            joins: &[],
            movable: false,
        }
    }

    #[test]
    fn a_page_is_counted_from_a_few_of_its_entries() {
        let entry = |text: &str| Entry {
            served: DateTime::UNIX_EPOCH,
            id: "e".to_owned(),
            item: text.to_owned(),
        };
        assert_eq!(bytes_per_entry::<String>(&[]), 0);
        let same: Vec<Entry<String>> = (0..100).map(|_| entry("abcd")).collect();
        assert_eq!(bytes_per_entry(&same), estimated_bytes(&same[0]));
        // Sizes that vary across the page average out to between the smallest and largest.
        let mixed: Vec<Entry<String>> = (0..100).map(|n| entry(&"x".repeat(n))).collect();
        let per_entry = bytes_per_entry(&mixed);
        assert!(
            (estimated_bytes(&mixed[10])..estimated_bytes(&mixed[90])).contains(&per_entry),
            "{per_entry}"
        );
    }

    /// A window of one stream, whose settling the tests drive by hand.
    fn window(order: Order) -> Window<String> {
        let list = spec(Paging::None, None, order);
        Window::new(&list, None, Source::single(UpstreamRequest::default()))
    }

    fn next(spec: &ListSpec, current: Option<Next>, body: Value, count: usize) -> Option<String> {
        let records = body["data"].as_array().cloned().unwrap_or_default();
        let cursor = cursor_of(spec, records.last());
        next_page(
            spec,
            &current,
            &body,
            &HeaderMap::new(),
            cursor.as_ref(),
            count,
        )
        .map(|next| position_key(&next))
    }

    #[test]
    fn page_records_are_flattened_and_filtered_and_the_first_request_has_size_and_position() {
        static EXCLUDE: &[(&[Step], &[&str])] = &[(&[Step::Key("type")], &["HOLD"])];
        let mut list = spec(
            Paging::PageNumber {
                param: "page",
                first: 0,
                total_pages: None,
            },
            Some(("size", 50)),
            Order::OldestFirst,
        );
        list.records = &[&[Step::Key("data")], &[Step::Key("entries")]];
        list.filter = Filter {
            exclude: EXCLUDE,
            only: &[],
        };
        let body = json!({"data": [
            {"entries": [{"id": "a"}, {"id": "b", "type": "HOLD"}]},
            {"entries": [{"id": "c"}]}
        ]});
        let ids: Vec<&str> = page_records(&list, &body)
            .iter()
            .filter_map(|record| record["id"].as_str())
            .collect();
        assert_eq!(ids, ["a", "c"]);
        let request = UpstreamRequest {
            path: "/tx".to_owned(),
            ..Default::default()
        };
        let first = first_request(&list, Source::single(request).remove(0)).unwrap();
        assert_eq!(
            first.query,
            [
                ("size".to_owned(), "50".to_owned()),
                ("page".to_owned(), "0".to_owned())
            ]
        );
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
        let mut window = window(Order::OldestFirst);
        window.pending = vec![entry(10, 0, "b"), entry(10, 5, "a"), entry(11, 0, "c")];
        window.streams[0].frontier = Some(11);
        window.settle(Order::OldestFirst);
        let settled: Vec<&str> = window.settled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(settled, ["b", "a"], "second 11 may still get records");
        assert_eq!(window.pending.len(), 1);
        window.streams[0].next = None;
        window.settle(Order::OldestFirst);
        assert_eq!(window.settled.len(), 3);
        window.forget_before(DateTime::from_timestamp(11, 0));
        let kept: Vec<&str> = window.settled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(kept, ["c"]);
    }

    #[test]
    fn newest_first_records_wait_for_the_end_of_the_walk() {
        let mut window = window(Order::NewestFirst);
        window.pending = vec![entry(12, 0, "x"), entry(11, 0, "y")];
        window.settle(Order::NewestFirst);
        assert!(window.settled.is_empty());
        window.streams[0].next = None;
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
            let mut window = window(Order::Unordered);
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
                    window.streams[0].next = None;
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

    /// `{"id", "at"}` records become entries served at `at` (Unix seconds), split by id.
    fn to_entry(record: &Value, _parent: Option<&Value>) -> Result<Entry<String>, ConnectorError> {
        let id = record["id"].as_str().unwrap().to_owned();
        let at = DateTime::from_timestamp(record["at"].as_i64().unwrap(), 0).unwrap();
        Ok(Entry {
            served: convert::served_time(at, &id),
            id: id.clone(),
            item: id,
        })
    }

    fn query<'r>(request: &'r Received, name: &str) -> Option<&'r str> {
        let target = request.line.split(' ').nth(1)?;
        let (_, query) = target.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    /// A bank listing each account's records, oldest first, three a page, only inside
    /// `[from, to)` spans of at most ten days; it refuses a request without both ends.
    fn bank(records: Vec<(&'static str, Value)>) -> (String, Arc<Mutex<Vec<Received>>>) {
        serve(move |request| {
            let account = request
                .line
                .split('/')
                .nth(2)
                .unwrap_or_default()
                .to_owned();
            let (Some(from), Some(to)) = (query(request, "from"), query(request, "to")) else {
                return (
                    400,
                    Vec::new(),
                    r#"{"error":"from and to are required"}"#.to_owned(),
                );
            };
            let (from, to): (i64, i64) = (from.parse().unwrap(), to.parse().unwrap());
            if to - from > 10 * 86_400 || to <= from {
                return (400, Vec::new(), r#"{"error":"bad window"}"#.to_owned());
            }
            let page: usize = query(request, "page")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut inside: Vec<&Value> = records
                .iter()
                .filter(|(owner, record)| {
                    let at = record["at"].as_i64().unwrap();
                    *owner == account && from <= at && at < to
                })
                .map(|(_, record)| record)
                .collect();
            inside.sort_by_key(|record| {
                (
                    record["at"].as_i64(),
                    record["id"].as_str().map(str::to_owned),
                )
            });
            let data: Vec<&&Value> = inside.iter().skip(page * 3).take(3).collect();
            (200, Vec::new(), json!({"data": data}).to_string())
        })
    }

    /// Pages of 3 numbered from 0, filtered by `from` (inclusive, unix seconds) and `to`
    /// in spans of at most `max_span` seconds from `start`.
    fn windowed_list(start: i64, max_span: i64) -> ListSpec {
        ListSpec {
            paging: Paging::PageNumber {
                param: "page",
                first: 0,
                total_pages: None,
            },
            since: Some(Since {
                param: "from",
                format: TimeFormat::UnixSeconds,
                inclusive: true,
            }),
            windows: Some(Windows {
                to_param: "to",
                max_span,
                start: WindowStart::At(start),
            }),
            ..spec(Paging::None, Some(("size", 3)), Order::OldestFirst)
        }
    }

    /// One walk per account of [`bank`].
    fn account_sources(accounts: &[&str]) -> Vec<Source> {
        accounts
            .iter()
            .map(|account| Source {
                request: UpstreamRequest {
                    method: "GET".to_owned(),
                    path: format!("/accounts/{account}/records"),
                    ..Default::default()
                },
                parent: Some(Arc::new(json!({"id": account}))),
                ..Source::default()
            })
            .collect()
    }

    /// Two requests of one `union`, each with the constant that tells its records apart.
    fn union_sources() -> Vec<Source> {
        ["pending", "booked"]
            .into_iter()
            .map(|status| Source {
                request: UpstreamRequest {
                    method: "GET".to_owned(),
                    path: format!("/{status}"),
                    ..Default::default()
                },
                constants: Some(Arc::new(
                    json!({ "status": status }).as_object().unwrap().clone(),
                )),
                ..Source::default()
            })
            .collect()
    }

    #[test]
    fn a_union_merges_its_requests_in_order_and_each_record_gets_its_constants() {
        // Ties across the two requests in one second; one provider record says a status of
        // its own, which the request's constant overrides.
        let (url, received) = serve(|request| {
            let body = if request.line.contains("/pending") {
                json!({"data": [
                    {"id": "p1", "at": 10, "status": "whatever"},
                    {"id": "p2", "at": 30},
                ]})
            } else {
                json!({"data": [{"id": "b1", "at": 10}, {"id": "b2", "at": 20}, {"id": "held", "at": 25}]})
            };
            (200, Vec::new(), body.to_string())
        });
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        static HELD: &[(&[Step], &[&str])] = &[(&[Step::Key("id")], &["held"])];
        let list = ListSpec {
            filter: Filter {
                exclude: HELD,
                only: &[],
            },
            ..spec(Paging::None, None, Order::OldestFirst)
        };
        let state = ListState::<String>::default();
        let to_status =
            |record: &Value, _parent: Option<&Value>| -> Result<Entry<String>, ConnectorError> {
                let entry = to_entry(record, None)?;
                Ok(Entry {
                    item: format!("{}:{}", entry.id, record["status"].as_str().unwrap()),
                    ..entry
                })
            };
        let sources = |_| async { Ok(union_sources()) };
        let served = block_on(page(
            &upstream, &list, &state, sources, None, 1, 10, to_status,
        ))
        .unwrap();
        let mut expected = ["p1:pending", "p2:pending", "b1:booked", "b2:booked"]
            .map(|item| {
                let id = item.split(':').next().unwrap();
                let at = if id.ends_with('1') {
                    10
                } else if id == "b2" {
                    20
                } else {
                    30
                };
                (
                    convert::served_time(DateTime::from_timestamp(at, 0).unwrap(), id),
                    item,
                )
            })
            .to_vec();
        expected.sort();
        let expected: Vec<&str> = expected.into_iter().map(|(_, item)| item).collect();
        assert_eq!(served, expected);
        assert_eq!(
            received.lock().unwrap().len(),
            2,
            "one call per request of the union"
        );
    }

    #[test]
    fn a_fanned_out_list_in_capped_windows_is_merged_into_one_ascending_list() {
        let day = 86_400;
        // 25 days ago, so that the walk up to now takes three spans of ten days.
        let t0 = Utc::now().timestamp() - 25 * day;
        // Two accounts, records over 25 days: ties inside one second across both accounts,
        // an empty stretch of 12 days, records on the span boundaries.
        let mut records = Vec::new();
        for (n, offset) in [
            0,
            5,
            5,
            5,
            10 * day,
            10 * day + 1,
            23 * day,
            23 * day,
            24 * day,
        ]
        .into_iter()
        .enumerate()
        {
            records.push(("a1", json!({"id": format!("a{n}"), "at": t0 + offset})));
            records.push((
                "a2",
                json!({"id": format!("b{n}"), "at": t0 + offset + (n as i64 % 2)}),
            ));
        }
        let (url, received) = bank(records.clone());
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let list = windowed_list(t0, 10 * day);
        let state = ListState::<String>::default();
        let sources = |_| async { Ok(account_sources(&["a1", "a2"])) };
        let mut served = Vec::new();
        for number in 1.. {
            let page = block_on(page(
                &upstream, &list, &state, sources, None, number, 4, to_entry,
            ))
            .unwrap();
            served.extend(page.iter().cloned());
            if page.len() < 4 {
                break;
            }
        }
        let mut expected: Vec<(DateTime<Utc>, String)> = records
            .iter()
            .map(|(_, record)| to_entry(record, None).map(|e| (e.served, e.id)).unwrap())
            .collect();
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
        assert_eq!(served, expected, "every record once, in ascending order");
        // Each account: spans [0,10d) [10d,20d) [20d,now) walked to the end, one page more
        // than its records need where a span ends on a full page.
        let calls = received.lock().unwrap();
        assert!(
            calls.iter().all(|call| query(call, "to").is_some()),
            "{calls:?}"
        );
        let windows: HashSet<&str> = calls
            .iter()
            .filter_map(|call| query(call, "from"))
            .collect();
        assert!(
            windows.len() >= 3,
            "walked past the empty span: {windows:?}"
        );
        assert!(
            calls.len() <= 2 * (3 + 9 / 3 + 3),
            "{} calls: {calls:?}",
            calls.len()
        );
    }

    #[test]
    fn a_parent_added_after_the_walk_ended_is_walked_when_the_list_is_asked_again() {
        let day = 86_400;
        let t0 = Utc::now().timestamp() - 3 * day;
        let records = vec![
            ("a1", json!({"id": "a0", "at": t0})),
            ("a1", json!({"id": "a1", "at": t0 + day})),
            ("a1", json!({"id": "a2", "at": t0 + 2 * day})),
            ("a2", json!({"id": "b0", "at": t0 + 10})),
            ("a2", json!({"id": "b1", "at": t0 + 2 * day + 10})),
        ];
        let (url, _) = bank(records);
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let list = windowed_list(t0, 10 * day);
        let state = ListState::<String>::default();
        let accounts = Mutex::new(vec!["a1"]);
        let sources = |_| {
            let known = accounts.lock().unwrap().clone();
            async move { Ok(account_sources(&known)) }
        };
        let ask = |number| {
            block_on(page(
                &upstream, &list, &state, sources, None, number, 4, to_entry,
            ))
            .unwrap()
        };
        assert_eq!(ask(1), ["a0", "a1", "a2"]);
        accounts.lock().unwrap().push("a2");
        assert_eq!(ask(1), ["a0", "b0", "a1", "a2"]);
        assert_eq!(ask(2), ["b1"]);
    }

    #[test]
    fn records_listed_under_two_parents_are_served_once() {
        let mut window = window(Order::Unordered);
        window.pending = vec![
            entry(10, 0, "transfer-1"),
            entry(10, 0, "transfer-1"),
            entry(9, 0, "x"),
        ];
        window.streams[0].next = None;
        window.settle(Order::Unordered);
        let settled: Vec<&str> = window.settled.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(settled, ["x", "transfer-1"]);
    }

    #[test]
    fn filters_leave_records_out_by_value() {
        let filter = Filter {
            exclude: &[
                (&[Step::Key("type")], &["CARD_AUTH"]),
                (&[Step::Key("held")], &["true"]),
            ],
            only: &[(&[Step::Key("currency")], &["EUR", "NOK"])],
        };
        assert!(filter.keeps(&json!({"type": "PI_FAST", "currency": "EUR"})));
        assert!(!filter.keeps(&json!({"type": "CARD_AUTH", "currency": "EUR"})));
        assert!(!filter.keeps(&json!({"type": "PI_FAST", "held": true, "currency": "EUR"})));
        assert!(!filter.keeps(&json!({"type": "PI_FAST", "currency": "USD"})));
        assert!(
            !filter.keeps(&json!({"type": "PI_FAST"})),
            "`only` needs its field"
        );
    }

    #[test]
    fn every_record_of_a_list_is_walked_once_and_reused() {
        let parents: Vec<Value> = (0..7)
            .map(|n| json!({"id": format!("p{n}"), "at": n}))
            .collect();
        let (url, received) = provider(parents, 3);
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let list = spec(
            Paging::PageNumber {
                param: "page",
                first: 1,
                total_pages: None,
            },
            Some(("per_page", 3)),
            Order::Unordered,
        );
        let cache = RecordCache::default();
        let base = UpstreamRequest {
            method: "GET".to_owned(),
            path: "/parents".to_owned(),
            ..Default::default()
        };
        let walk = |max_age| {
            block_on(records(&upstream, &list, &cache, max_age, async {
                Ok(Source::single(base.clone()))
            }))
            .unwrap()
        };
        assert_eq!(walk(RECORDS_TTL).len(), 7);
        assert_eq!(walk(RECORDS_TTL).len(), 7);
        assert_eq!(
            received.lock().unwrap().len(),
            3,
            "one walk of 3 pages, then the cache"
        );
        assert_eq!(walk(Duration::ZERO).len(), 7);
        assert_eq!(
            received.lock().unwrap().len(),
            6,
            "a walk younger than asked for is not reused"
        );
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
    fn records_of_a_second_still_open_are_held_back_until_it_is_over() {
        let now = Utc::now().timestamp();
        let records = vec![
            json!({"id": "now", "at": now}),
            json!({"id": "old", "at": now - 10}),
        ];
        let (url, _) = provider(records, 10);
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let list = spec(Paging::None, None, Order::NewestFirst);
        let state = ListState::<String>::default();
        let base = UpstreamRequest {
            method: "GET".to_owned(),
            path: "/items".to_owned(),
            ..Default::default()
        };
        let sources = |_| async { Ok(Source::single(base.clone())) };
        let to_entry = |record: &Value, _parent: Option<&Value>| {
            let id = record["id"].as_str().unwrap().to_owned();
            let at = DateTime::from_timestamp(record["at"].as_i64().unwrap(), 0).unwrap();
            Ok(Entry {
                served: convert::served_time(at, &id),
                id: id.clone(),
                item: id,
            })
        };
        let served = block_on(page(
            &upstream, &list, &state, sources, None, 1, 10, to_entry,
        ))
        .unwrap();
        assert_eq!(served, ["old"], "the current second is not over");
        std::thread::sleep(Duration::from_millis(3100));
        let served = block_on(page(
            &upstream, &list, &state, sources, None, 1, 10, to_entry,
        ))
        .unwrap();
        assert_eq!(served, ["old", "now"]);
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
        let sources = |_| async { Ok(Source::single(base.clone())) };
        let page = |number| {
            block_on(page(
                &upstream, &list, &state, sources, None, number, 2, to_entry,
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

    #[test]
    fn entries_sort_by_served_time_and_id_keeping_the_order_of_arrival_of_ties() {
        let mut entries = vec![
            entry(2, 0, "b"),
            entry(1, 0, "z"),
            Entry {
                item: "second b".to_owned(),
                ..entry(2, 0, "b")
            },
            entry(1, 0, "a"),
            entry(0, 9, "c"),
        ];
        sort_entries(&mut entries);
        let sorted: Vec<&str> = entries.iter().map(|e| e.item.as_str()).collect();
        assert_eq!(sorted, ["c", "a", "z", "b", "second b"]);
    }

    fn run_files(state: &ListState<String>) -> Vec<PathBuf> {
        let slot = state.window.lock().unwrap();
        slot.iter()
            .flat_map(|window| &window.runs)
            .filter_map(|run| match &run.rest {
                Rest::Disk { _file, .. } => Some(_file.0.clone()),
                Rest::Held(_) => None,
            })
            .collect()
    }

    /// A window over a tiny budget writes its records to many runs on disk and serves
    /// exactly what a window held in memory serves, page after page and as Formance's
    /// filter moves on; its files are gone once it is dropped.
    #[test]
    fn a_window_past_its_budget_serves_from_disk_what_it_would_from_memory() {
        // 300 records over 40 seconds, many in one second, newest first, 7 per page.
        let records: Vec<Value> = (0..300)
            .rev()
            .map(|n| json!({"id": format!("r{:03}", (n * 37) % 300), "at": 1_700_000_000 + n / 8}))
            .collect();
        let list = ListSpec {
            paging: Paging::PageNumber {
                param: "page",
                first: 1,
                total_pages: None,
            },
            ..spec(Paging::None, Some(("per_page", 7)), Order::NewestFirst)
        };
        let base = UpstreamRequest {
            method: "GET".to_owned(),
            path: "/items".to_owned(),
            ..Default::default()
        };
        let sources = |_| async { Ok(Source::single(base.clone())) };
        let mut walks = Vec::new();
        for state in [
            ListState::<String>::with_window_memory(usize::MAX),
            ListState::<String>::with_window_memory(400),
        ] {
            let (url, received) = provider(records.clone(), 7);
            let upstream =
                Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
            let page = |since, number, size| {
                block_on(page(
                    &upstream, &list, &state, sources, since, number, size, to_entry,
                ))
                .unwrap()
            };
            let mut served: Vec<Vec<String>> = Vec::new();
            let mut since = None;
            let mut files = Vec::new();
            // Formance's poller: a page or two from its state, then its state moves to the
            // last record it kept.
            loop {
                let first = page(since, 1, 10);
                let second = page(since, 2, 10);
                let held = run_files(&state);
                assert!(held.iter().all(|file| file.exists()));
                files.extend(held);
                let done = second.len() < 10;
                let last = second.last().or(first.last()).cloned();
                served.push(first);
                served.push(second);
                if done {
                    break;
                }
                let last = last.unwrap();
                let record = records.iter().find(|r| r["id"] == last.as_str()).unwrap();
                let at = DateTime::from_timestamp(record["at"].as_i64().unwrap(), 0).unwrap();
                since = Some(convert::served_time(at, &last));
            }
            let calls = received.lock().unwrap().len();
            drop(state);
            assert!(
                files.iter().all(|file| !file.exists()),
                "run files are removed"
            );
            walks.push((served, calls, files.len()));
        }
        let (in_memory, on_disk) = (&walks[0], &walks[1]);
        assert_eq!(in_memory.2, 0, "nothing written with room to spare");
        assert!(on_disk.2 > 20, "{} runs on disk", on_disk.2);
        assert_eq!(on_disk.0, in_memory.0, "the same pages");
        assert_eq!(on_disk.1, in_memory.1, "the same provider calls");
        // One walk of 43 provider pages, and one more when the end of the list is asked
        // again later: records may have arrived since.
        assert_eq!(in_memory.1, 86);
        // Every record, each once, ascending, across the filter's moves.
        let mut ids: Vec<&String> = in_memory.0.iter().flatten().collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 300);
    }
}
