//! `connector-gen verify`: checks a running Generic connector the way Formance's client uses
//! it, and says what Formance would do with each problem found.
//!
//! The stages, with plain data between them: [`wire`] (what the protocol model says Formance
//! calls) -> [`poller`] (Formance's poll loop over [`http`], decoding with [`decode`]) ->
//! [`listing`] and [`initiate`] (the checks) -> [`report`] (findings, printed or as JSON).

pub mod decode;
pub mod http;
pub mod initiate;
pub mod listing;
pub mod poller;
pub mod progress;
pub mod report;
pub mod time;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use http::{Client, error_body};
use poller::{Budget, PollError, Poller};
use progress::Progress;
use report::{Check, Finding, Report};
use wire::{Kind, Wire};

pub use initiate::InitiateOptions;

#[derive(Clone, Debug)]
pub struct Options {
    /// Formance's `endpoint`: the connector's base URL (a path prefix is kept).
    pub url: String,
    pub api_key: String,
    /// One full poll per page size, each from an empty state.
    pub page_sizes: Vec<usize>,
    /// Incremental syncs after the first one, at each page size.
    pub cycles: usize,
    pub max_requests: usize,
    pub max_time: Duration,
    pub request_timeout: Duration,
    pub initiate: Option<InitiateOptions>,
    pub progress: bool,
}

/// The connector could not be checked at all: not reachable, or it refused the key.
#[derive(Debug)]
pub struct Unreachable(pub String);

/// Runs every check; findings go in the report, only an unusable connector is an error.
pub fn run(wire: Arc<Wire>, options: &Options) -> Result<Report, Unreachable> {
    let started = Instant::now();
    let budget = Budget::new(options.max_requests, options.max_time);
    let mut progress = Progress::new(options.progress, Some(budget.clone()));
    let mut report = Report {
        url: options.url.clone(),
        protocol_version: wire.protocol.version.clone(),
        page_sizes: options.page_sizes.clone(),
        ..Report::default()
    };
    progress.phase("connecting");
    preflight(&wire, options, &budget, &mut report)?;
    let mut first: Option<Poller> = None;
    for (index, &page_size) in options.page_sizes.iter().enumerate() {
        let mut poller = Poller::new(&options.url, &options.api_key, page_size)
            .with_wire(wire.clone())
            .with_timeout(options.request_timeout)
            .with_retries(4, Duration::from_millis(50))
            .with_budget(budget.clone());
        for &kind in wire.lists.keys() {
            progress.phase(&format!("{} at page size {page_size}", kind.name()));
            listing::check(
                &mut poller,
                kind,
                options.cycles,
                index == 0,
                &mut report,
                &mut progress,
            );
        }
        check_error_bodies(&poller, &mut report);
        if index == 0 {
            first = Some(poller);
        }
        if out_of_budget(&report) {
            break;
        }
    }
    if let Some(poller) = first.as_mut() {
        if !out_of_budget(&report) {
            check_balances(poller, &mut report, &mut progress);
        }
        if let Some(initiate) = &options.initiate
            && !out_of_budget(&report)
        {
            initiate::check(poller, initiate, &mut report, &mut progress);
            check_error_bodies(poller, &mut report);
        }
    }
    progress.finish();
    report.requests = budget.used().min(options.max_requests);
    report.wall_ms = started.elapsed().as_millis();
    Ok(report)
}

fn out_of_budget(report: &Report) -> bool {
    report.findings.iter().any(|f| f.check == Check::Incomplete)
}

/// One page with the key (the connector must answer it) and one without (it must refuse).
fn preflight(
    wire: &Wire,
    options: &Options,
    budget: &Budget,
    report: &mut Report,
) -> Result<(), Unreachable> {
    if !(options.url.starts_with("http://") || options.url.starts_with("https://")) {
        return Err(Unreachable(format!(
            "{} is not an http:// or https:// URL",
            options.url
        )));
    }
    let Some(&kind) = wire.lists.keys().next() else {
        return Err(Unreachable(
            "the protocol has no list Formance polls".to_owned(),
        ));
    };
    let probe = Poller::new(&options.url, "", 1).with_wire(Arc::new(wire.clone()));
    let url = probe.list_url(kind, 1, None);
    let client = Client::new(options.request_timeout);
    let auth = format!("Bearer {}", options.api_key);
    let _ = budget.take();
    let with_key = client
        .send(
            "GET",
            &url,
            &[("Authorization", &auth), ("Accept", "application/json")],
            None,
        )
        .map_err(|e| Unreachable(format!("cannot reach {url}: {e}")))?;
    if with_key.status == 404 {
        return Err(Unreachable(format!(
            "GET {url} answered 404: is {} the connector's base URL (Formance's endpoint)?",
            options.url
        )));
    }
    if matches!(with_key.status, 401 | 403) {
        return Err(Unreachable(format!(
            "GET {url} refused the API key ({}): {}",
            with_key.status,
            with_key.text()
        )));
    }
    let _ = budget.take();
    if let Ok(without) = client.send("GET", &url, &[("Accept", "application/json")], None)
        && (200..300).contains(&without.status)
    {
        report.add(
            Finding::new(
                Check::NoAuth,
                listing::list_endpoint(&probe, kind),
                format!(
                    "{url} answered {} without an Authorization header",
                    without.status
                ),
            )
            .example(listing::body_json(&without.text())),
        );
    }
    Ok(())
}

/// Every account's balances, decoded strictly, naming the account that was asked for.
fn check_balances(poller: &mut Poller, report: &mut Report, progress: &mut Progress) {
    let Some(op) = poller.wire().balances.clone() else {
        return;
    };
    let endpoint = format!("GET {}", op.path);
    let accounts = poller.ids(Kind::Accounts);
    for (n, account) in accounts.iter().enumerate() {
        progress.tick(&format!("balances: {} of {}", n + 1, accounts.len()));
        match poller.balances(account) {
            Ok(balances) => {
                report.balances_checked += 1;
                if balances.account_id != *account {
                    report.add(
                        Finding::new(
                            Check::BalancesAccount,
                            endpoint.clone(),
                            format!(
                                "the balances of {account} name {} {:?}",
                                op.account_field, balances.account_id
                            ),
                        )
                        .example(balances.json),
                    );
                }
            }
            Err(error) => {
                let stop = matches!(error, PollError::Budget { .. });
                report.add(listing::error_finding(endpoint.clone(), &error));
                if stop {
                    return;
                }
            }
        }
    }
}

/// Every error answer must be `{Title, Detail}` (keys in any case).
fn check_error_bodies(poller: &Poller, report: &mut Report) {
    for exchange in poller.exchanges() {
        let Some(body) = &exchange.error_body else {
            continue;
        };
        if error_body(body.as_bytes()).is_some() {
            continue;
        }
        let path = exchange.url.split('?').next().unwrap_or_default();
        let path = path.strip_prefix(poller.base()).unwrap_or(path);
        let path = template_of(poller.wire(), path);
        report.add(
            Finding::new(
                Check::ErrorBody,
                format!("{} {path}", exchange.method),
                format!(
                    "a {} answer is not a {{\"Title\", \"Detail\"}} object",
                    exchange.status.unwrap_or_default()
                ),
            )
            .example(json!({"url": exchange.url, "body": listing::body_json(body)})),
        );
    }
}

/// The spec's path template a request path matches (`/accounts/a1/balances` ->
/// `/accounts/{accountId}/balances`), so that one finding covers every account.
fn template_of(wire: &Wire, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let matches = |template: &str| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(part, segment)| part.starts_with('{') || part == segment)
    };
    wire.protocol
        .operations
        .iter()
        .map(|op| op.path.as_str())
        .find(|template| matches(template))
        .unwrap_or(path)
        .to_owned()
}
