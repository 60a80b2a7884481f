//! `join`: a provider call made for each record of a list, whose answer is set in the record
//! before it is converted — the details a list leaves out (a recipient's bank account, a
//! card's holder). Answers are kept for a minute, as the parents of a fan-out are: records
//! that share a target cost one call per poll, and a change to the target is seen on a
//! later poll.

use super::convert::{self, Step};
use super::error::ConnectorError;
use super::upstream::{Upstream, UpstreamRequest};
use axum::http::StatusCode;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a join's answer is used for other records.
const ANSWER_TTL: Duration = Duration::from_secs(60);

/// One `join` of a list operation.
#[derive(Debug)]
pub struct Join {
    /// The record key its answer is set under.
    pub name: &'static str,
    /// Record values the request is built from: a record without one of them is not joined.
    pub needs: &'static [&'static [Step]],
    /// The request for one record.
    pub request: fn(&Value) -> UpstreamRequest,
    /// Where the joined object is in the answer (empty: the whole body).
    pub record: &'static [Step],
}

/// The answers of a list's joins, by request, with when they came: `None` for a target the
/// provider does not have (404), which leaves the record without it rather than failing
/// the list.
#[derive(Debug, Default)]
pub struct Joined {
    answers: HashMap<String, (Instant, Option<Value>)>,
    calls: usize,
}

impl Joined {
    /// How many provider calls the joins made.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Sets every join's answer in `record`.
    pub async fn complete(
        &mut self,
        upstream: &Upstream,
        operation: &'static str,
        joins: &[Join],
        record: &mut Cow<'_, Value>,
    ) -> Result<(), ConnectorError> {
        for join in joins {
            let needed = join.needs.iter().all(|path| {
                convert::lookup(record, path)
                    .and_then(convert::to_text)
                    .is_some_and(|text| !text.is_empty())
            });
            if !needed {
                continue;
            }
            let request = (join.request)(record);
            let answer = self.answer(upstream, operation, join, &request).await?;
            if let (Some(answer), Value::Object(fields)) = (answer, record.to_mut()) {
                fields.insert(join.name.to_owned(), answer);
            }
        }
        Ok(())
    }

    async fn answer(
        &mut self,
        upstream: &Upstream,
        operation: &'static str,
        join: &Join,
        request: &UpstreamRequest,
    ) -> Result<Option<Value>, ConnectorError> {
        let key = request.identity();
        if let Some((at, answer)) = self.answers.get(&key)
            && at.elapsed() < ANSWER_TTL
        {
            return Ok(answer.clone());
        }
        self.calls += 1;
        let answer = match upstream.send(operation, request).await {
            Ok(response) => convert::lookup(&response.body, join.record).cloned(),
            Err(error) if error.status == StatusCode::NOT_FOUND => None,
            Err(error) => return Err(error),
        };
        self.answers.insert(key, (Instant::now(), answer.clone()));
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::super::config::UpstreamSettings;
    use super::super::metrics::Metrics;
    use super::super::testing::{block_on, serve};
    use super::*;

    fn recipient_request(record: &Value) -> UpstreamRequest {
        UpstreamRequest {
            method: "GET".to_owned(),
            path: format!("/recipients/{}", record["to"].as_str().unwrap_or_default()),
            ..Default::default()
        }
    }

    static RECIPIENT: Join = Join {
        name: "recipient",
        needs: &[&[Step::Key("to")]],
        request: recipient_request,
        record: &[Step::Key("data")],
    };

    #[test]
    fn each_target_is_asked_once_and_missing_ones_leave_the_record_as_it_is() {
        let (url, received) = serve(|request| {
            if request.line.contains("/recipients/r1 ") {
                (
                    200,
                    Vec::new(),
                    json!({"data": {"iban": "NO93"}}).to_string(),
                )
            } else {
                (
                    404,
                    Vec::new(),
                    json!({"error": "no such recipient"}).to_string(),
                )
            }
        });
        let upstream =
            Upstream::new(UpstreamSettings::new(url), Arc::new(Metrics::default())).unwrap();
        let records = [
            json!({"id": "t1", "to": "r1"}),
            json!({"id": "t2", "to": "r1"}),
            json!({"id": "t3", "to": "gone"}),
            json!({"id": "t4"}),
            json!({"id": "t5", "to": ""}),
        ];
        let mut joined = Joined::default();
        let completed: Vec<Value> = records
            .iter()
            .map(|record| {
                let mut record = Cow::Borrowed(record);
                block_on(joined.complete(
                    &upstream,
                    "getTransactions",
                    std::slice::from_ref(&RECIPIENT),
                    &mut record,
                ))
                .unwrap();
                record.into_owned()
            })
            .collect();
        assert_eq!(completed[0]["recipient"], json!({"iban": "NO93"}));
        assert_eq!(completed[1]["recipient"], json!({"iban": "NO93"}));
        assert_eq!(
            completed[2], records[2],
            "a 404 leaves the record without it"
        );
        assert_eq!(completed[3], records[3], "no target, no call");
        assert_eq!(completed[4], records[4], "an empty target, no call");
        assert_eq!(joined.calls(), 2);
        assert_eq!(received.lock().unwrap().len(), 2, "one call per target");
    }

    #[test]
    fn other_provider_errors_fail_the_list() {
        let (url, _) = serve(|_| (500, Vec::new(), "{}".to_owned()));
        let mut settings = UpstreamSettings::new(url);
        settings.attempts = 1;
        let upstream = Upstream::new(settings, Arc::new(Metrics::default())).unwrap();
        let record = json!({"id": "t1", "to": "r1"});
        let mut record = Cow::Borrowed(&record);
        let result = block_on(Joined::default().complete(
            &upstream,
            "getTransactions",
            std::slice::from_ref(&RECIPIENT),
            &mut record,
        ));
        assert!(result.is_err());
    }
}
