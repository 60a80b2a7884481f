//! The checks of one polled list at one page size: poll it as Formance does (several
//! cycles), walk it once more without a filter, poll again for what arrived meanwhile, then
//! compare what is served with what was ingested and say why anything is missing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::poller::{Item, PollError, Poller};
use super::progress::Progress;
use super::report::{Check, Effect, Finding, ListStats, Report};
use super::time::{floor_second, format_rfc3339_nanos, format_rfc3339_utc_seconds};
use super::wire::Kind;

/// Pages one unfiltered walk may take before it is called endless.
const MAX_WALK_PAGES: usize = 100_000;

/// The list as one unfiltered walk served it.
#[derive(Default)]
struct Walk {
    items: Vec<Item>,
    /// The first short page that had non-empty pages after it: (page, its item count).
    short_before_end: Option<(usize, usize)>,
    /// Ids served on two pages of the walk.
    repeated: Vec<String>,
}

/// Everything one list at one page size showed; `probe_filter` also checks the time filter.
pub fn check(
    poller: &mut Poller,
    kind: Kind,
    extra_cycles: usize,
    probe_filter: bool,
    report: &mut Report,
    progress: &mut Progress,
) {
    let page_size = poller.page_size();
    let requests = poller.requests();
    let label = format!("{} at page size {page_size}", kind.name());
    if !sync(poller, kind, &label, report, progress) {
        return;
    }
    for _ in 0..extra_cycles {
        if !sync(poller, kind, &label, report, progress) {
            return;
        }
    }
    progress.phase(&format!("{label}: walking the whole list"));
    let walk = match walk(poller, kind) {
        Ok(walk) => walk,
        Err(error) => return report.add(poll_finding(poller, kind, &error)),
    };
    if !sync(poller, kind, &label, report, progress) {
        return;
    }
    let filter_excludes = probe_filter && probe_time_filter(poller, kind, &walk, report);
    let endpoint = list_endpoint(poller, kind);
    let served: BTreeMap<&str, &Item> = walk.items.iter().map(|i| (i.0.as_str(), i)).collect();
    report.lists.push(ListStats {
        list: kind.name().to_owned(),
        page_size,
        served: served.len(),
        ingested: poller.records(kind).len(),
        cycles: poller.cycles(kind).len(),
        requests: poller.requests() - requests,
    });
    let unsorted = check_order(&walk, &endpoint, page_size, report);
    check_walk_shape(&walk, &endpoint, page_size, report);
    check_lost(poller, kind, &served, unsorted, filter_excludes, report);
    check_changes(poller, kind, &served, report);
    if !unsorted {
        // An unsorted list is received again from its state on; that finding says why.
        check_repeats(poller, kind, report);
    }
}

fn sync(
    poller: &mut Poller,
    kind: Kind,
    label: &str,
    report: &mut Report,
    progress: &mut Progress,
) -> bool {
    let outcome = poller.sync_with(kind, |p| {
        progress.tick(&format!(
            "{label}: cycle {}, {} ingested",
            p.cycles(kind).len(),
            p.records(kind).len()
        ))
    });
    match outcome {
        Ok(_) => true,
        Err(error) => {
            report.add(poll_finding(poller, kind, &error));
            false
        }
    }
}

pub fn list_endpoint(poller: &Poller, kind: Kind) -> String {
    match poller.wire().list(kind) {
        Some(list) => format!("GET {}", list.path),
        None => format!("GET /{}", kind.name()),
    }
}

/// What a failed poll means for Formance.
pub fn poll_finding(poller: &Poller, kind: Kind, error: &PollError) -> Finding {
    let finding = error_finding(list_endpoint(poller, kind), error);
    match finding.check {
        Check::Incomplete => finding,
        _ => finding.page_size(poller.page_size()),
    }
}

/// What a failed request to `endpoint` means for Formance.
pub fn error_finding(endpoint: String, error: &PollError) -> Finding {
    match error {
        PollError::Decode { url, detail, body } => {
            Finding::new(Check::Undecodable, endpoint, format!("{url}: {detail}"))
                .example(offending_item(body, detail))
        }
        PollError::Status {
            url, status, body, ..
        } => Finding::new(
            Check::Refused,
            endpoint,
            format!("{url} answered {status}, which Formance does not retry"),
        )
        .example(body_json(body)),
        PollError::Exhausted {
            url,
            attempts,
            last,
        } => Finding::new(
            Check::Unavailable,
            endpoint,
            format!("{url} still failed after {attempts} attempts: {last}"),
        ),
        PollError::Stuck { detail, .. } => {
            Finding::new(Check::NoProgress, endpoint, detail.clone())
        }
        PollError::Budget { url, detail } => Finding::new(
            Check::Incomplete,
            endpoint,
            format!("stopped before {url}: {detail}"),
        ),
    }
}

/// The item a decode error is about (`/3/status` -> the fourth item), or the body itself.
fn offending_item(body: &str, detail: &str) -> Value {
    let json = body_json(body);
    let index = detail
        .strip_prefix('/')
        .and_then(|rest| rest.split(['/', ':']).next())
        .and_then(|n| n.parse::<usize>().ok());
    match (index, &json) {
        (Some(i), Value::Array(items)) if i < items.len() => items[i].clone(),
        _ => json,
    }
}

pub fn body_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.chars().take(500).collect()))
}

/// Pages 1, 2, ... without a filter until an empty page: one past the first short page, to
/// see whether the list really ended there.
fn walk(poller: &mut Poller, kind: Kind) -> Result<Walk, PollError> {
    let page_size = poller.page_size();
    let mut walk = Walk::default();
    let mut seen = BTreeSet::new();
    let mut short: Option<(usize, usize)> = None;
    for page in 1..=MAX_WALK_PAGES {
        let items = poller.fetch_page(kind, page, page_size, None)?;
        let count = items.len();
        if count == 0 {
            return Ok(walk);
        }
        if let Some(first_short) = short {
            walk.short_before_end.get_or_insert(first_short);
        }
        let fresh = items.iter().filter(|i| !seen.contains(&i.0)).count();
        for item in items {
            if !seen.insert(item.0.clone()) {
                walk.repeated.push(item.0.clone());
            } else {
                walk.items.push(item);
            }
        }
        if fresh == 0 {
            // The connector ignores `page`: every later page is the same.
            return Ok(walk);
        }
        if count < page_size && short.is_none() {
            short = Some((page, count));
        }
    }
    Err(PollError::Stuck {
        kind,
        detail: format!("the unfiltered list did not end within {MAX_WALK_PAGES} pages"),
    })
}

/// Ascending by the poll timestamp; returns whether it is not.
fn check_order(walk: &Walk, endpoint: &str, page_size: usize, report: &mut Report) -> bool {
    let Some(pair) = walk.items.windows(2).find(|w| w[1].1 < w[0].1) else {
        return false;
    };
    let descending = walk.items.windows(2).filter(|w| w[1].1 < w[0].1).count();
    report.add(
        Finding::new(
            Check::Unsorted,
            endpoint,
            format!(
                "items are not sorted ascending by their timestamp: {} is served after {} (affected: places where the order goes back)",
                pair[1].0, pair[0].0
            ),
        )
        .example(json!([pair[0].2, pair[1].2]))
        .page_size(page_size)
        .count(descending),
    );
    true
}

fn check_walk_shape(walk: &Walk, endpoint: &str, page_size: usize, report: &mut Report) {
    if let Some((page, count)) = walk.short_before_end {
        report.add(
            Finding::new(
                Check::ShortPage,
                endpoint,
                format!(
                    "page {page} held {count} of {page_size} items, but later pages are not empty"
                ),
            )
            .page_size(page_size),
        );
    }
    if let Some(id) = walk.repeated.first() {
        let item = walk.items.iter().find(|i| &i.0 == id).map(|i| i.2.clone());
        report.add(
            Finding::new(
                Check::Duplicate,
                endpoint,
                format!("{id} is served on two pages of one walk: the order is not stable from one request to the next, so another record is missing from it"),
            )
            .effect(Effect::RecordLostForever)
            .example(item.unwrap_or(Value::Null))
            .page_size(page_size)
            .count(walk.repeated.len()),
        );
    }
}

/// Served, never ingested: grouped by the reason Formance missed them.
fn check_lost(
    poller: &Poller,
    kind: Kind,
    served: &BTreeMap<&str, &Item>,
    unsorted: bool,
    filter_excludes: bool,
    report: &mut Report,
) {
    let records = poller.records(kind);
    let lost: Vec<&Item> = served
        .values()
        .filter(|item| !records.contains_key(&item.0))
        .copied()
        .collect();
    if lost.is_empty() || unsorted {
        // An unsorted list explains its losses; they are counted with that finding.
        return;
    }
    let endpoint = list_endpoint(poller, kind);
    let cut_states: BTreeMap<i128, Option<&String>> = poller
        .cycles(kind)
        .iter()
        .filter(|c| c.full)
        .filter_map(|c| c.state_after.map(|s| (s, c.last_id.as_ref())))
        .collect();
    let (tied, other): (Vec<&Item>, Vec<&Item>) = lost
        .iter()
        .partition(|item| cut_states.contains_key(&item.1));
    if let Some(example) = tied.first() {
        let state = example.1;
        let kept = cut_states[&state]
            .and_then(|id| records.get(id))
            .map(|r| r.json.clone());
        let check = if filter_excludes {
            Check::ExclusiveFilter
        } else {
            Check::TiesLost
        };
        report.add(
            Finding::new(
                check,
                endpoint.clone(),
                format!(
                    "{} records share their timestamp ({}) with the last item of a full batch; the next cycle skips them because they are not after the state",
                    tied.len(),
                    format_rfc3339_nanos(state)
                ),
            )
            .example(json!({"lost": example.2, "batchEndedWith": kept}))
            .page_size(poller.page_size())
            .count(tied.len()),
        );
    }
    if let Some(example) = other.first() {
        let check = if filter_excludes {
            Check::ExclusiveFilter
        } else {
            Check::NeverIngested
        };
        report.add(
            Finding::new(
                check,
                endpoint,
                format!(
                    "{} records served by the list were never ingested by polling",
                    other.len()
                ),
            )
            .example(example.2.clone())
            .page_size(poller.page_size())
            .count(other.len()),
        );
    }
}

/// A record served differently from what was ingested, with a timestamp that did not move
/// past it: Formance keeps the old version.
fn check_changes(poller: &Poller, kind: Kind, served: &BTreeMap<&str, &Item>, report: &mut Report) {
    let Some(list) = poller.wire().list(kind) else {
        return;
    };
    if list.time_field == "createdAt" {
        // Formance polls these by creation only; a change is never expected to reach it.
        return;
    }
    let records = poller.records(kind);
    let changed: Vec<(&Item, &Value)> = served
        .values()
        .filter_map(|item| {
            let ingested = records.get(&item.0)?;
            (ingested.json != item.2 && item.1 <= ingested.timestamp)
                .then_some((*item, &ingested.json))
        })
        .collect();
    if let Some((item, ingested)) = changed.first() {
        report.add(
            Finding::new(
                Check::SilentChange,
                list_endpoint(poller, kind),
                format!(
                    "{} changed but its {} did not move forward ({})",
                    item.0,
                    list.time_field,
                    format_rfc3339_nanos(item.1)
                ),
            )
            .example(json!({"ingested": ingested, "servedNow": item.2}))
            .page_size(poller.page_size())
            .count(changed.len()),
        );
    }
}

fn check_repeats(poller: &Poller, kind: Kind, report: &mut Report) {
    let records = poller.records(kind);
    let repeated: Vec<(&String, &Value)> = records
        .iter()
        .filter(|(_, r)| r.repeats > 0)
        .map(|(id, r)| (id, &r.json))
        .collect();
    if let Some((id, json)) = repeated.first() {
        report.add(
            Finding::new(
                Check::Duplicate,
                list_endpoint(poller, kind),
                format!(
                    "{id} was received again, unchanged, in a later cycle: it was served after the state although it had been ingested before it"
                ),
            )
            .example((*json).clone())
            .page_size(poller.page_size())
            .count(repeated.len()),
        );
    }
}

/// Asks for the newest second served with the filter: everything at or after it must come
/// back. Returns whether some did not.
fn probe_time_filter(poller: &mut Poller, kind: Kind, walk: &Walk, report: &mut Report) -> bool {
    let Some(newest) = walk.items.iter().map(|i| i.1).max() else {
        return false;
    };
    let from = floor_second(newest);
    let expected: Vec<&Item> = walk.items.iter().filter(|i| i.1 >= from).collect();
    let page_size = expected.len() + 1;
    let url = poller.list_url_sized(kind, 1, page_size, Some(from));
    let got = match poller.fetch_page(kind, 1, page_size, Some(from)) {
        Ok(items) => items,
        Err(error) => {
            report.add(poll_finding(poller, kind, &error));
            return false;
        }
    };
    let got: BTreeSet<&str> = got.iter().map(|i| i.0.as_str()).collect();
    let missing: Vec<&&Item> = expected
        .iter()
        .filter(|i| !got.contains(i.0.as_str()))
        .collect();
    let Some(example) = missing.first() else {
        return false;
    };
    let list = poller
        .wire()
        .list(kind)
        .map(|l| l.filter_param.clone())
        .unwrap_or_default();
    report.add(
        Finding::new(
            Check::ExclusiveFilter,
            list_endpoint(poller, kind),
            format!(
                "{list}={} leaves out {} served at {}: the filter must include the second it names (>=)",
                format_rfc3339_utc_seconds(from),
                example.0,
                format_rfc3339_nanos(example.1)
            ),
        )
        .example(json!({"request": url, "missing": example.2}))
        .count(missing.len()),
    );
    true
}
