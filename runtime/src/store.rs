//! The durable record of payment initiations: each idempotency key, the request it came
//! with, who is working on it until when, the final answer, and the provider's id of
//! the payment it produced. SQLite (`CONNECTOR_STORE`) by default; PostgreSQL when
//! `DATABASE_URL` names one (the `postgres` feature), which lets several replicas share it.
//!
//! Every statement is written once, with PostgreSQL's `$1` parameters; each database runs
//! it in its own way ([`sqlite`], [`postgres`]).

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::{StoreLocation, StoreSettings};

/// A failed store operation; the request is answered 503 and Formance retries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A final answer to an initiation, exactly as it is sent again on a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl axum::response::IntoResponse for Answer {
    fn into_response(self) -> axum::response::Response {
        super::response::json_response(self.status, self.body)
    }
}

/// What a request holding an idempotency key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody used the key before: this request makes the first attempt.
    First,
    /// An earlier attempt ended without a final answer (a failure, a time-out or a
    /// crash) and may have reached the provider: this request makes attempt `attempt`.
    Recover { attempt: u32 },
    /// Another request, here or on another replica, is working on the key.
    Busy,
    /// The key has its final answer.
    Answered(Answer),
    /// The key was used with a different request, this one.
    Conflict { request: String },
}

/// An initiation a provider transaction may have resulted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub key: String,
    pub provider_id: Option<String>,
    /// The key as the provider was given it, when it differs (a reference of at most 18
    /// characters, a UUID).
    pub provider_key: Option<String>,
    pub transaction_type: String,
}

/// A value bound to a statement, or read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Datum {
    Null,
    Int(i64),
    Text(String),
}

impl Datum {
    fn text(text: &str) -> Self {
        Datum::Text(text.to_owned())
    }

    fn optional_text(text: Option<&str>) -> Self {
        text.map_or(Datum::Null, Datum::text)
    }
}

type Row = Vec<Datum>;

/// Reads column `index` of a row as `T`.
fn column<T: FromDatum>(row: &Row, index: usize) -> Result<T, StoreError> {
    let datum = row
        .get(index)
        .ok_or_else(|| StoreError(format!("the store's answer has no column {index}")))?;
    T::from_datum(datum)
        .ok_or_else(|| StoreError(format!("the store's column {index} holds {datum:?}")))
}

trait FromDatum: Sized {
    fn from_datum(datum: &Datum) -> Option<Self>;
}

impl FromDatum for i64 {
    fn from_datum(datum: &Datum) -> Option<Self> {
        match datum {
            Datum::Int(n) => Some(*n),
            _ => None,
        }
    }
}

impl FromDatum for String {
    fn from_datum(datum: &Datum) -> Option<Self> {
        match datum {
            Datum::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl<T: FromDatum> FromDatum for Option<T> {
    fn from_datum(datum: &Datum) -> Option<Self> {
        match datum {
            Datum::Null => Some(None),
            other => T::from_datum(other).map(Some),
        }
    }
}

/// The open database.
pub struct Store {
    database: Database,
}

enum Database {
    Sqlite(sqlite::Sqlite),
    #[cfg(feature = "postgres")]
    Postgres(postgres::Postgres),
}

impl Database {
    async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Ok(Database::Sqlite(sqlite::Sqlite::open(path).await?)),
            #[cfg(feature = "postgres")]
            StoreLocation::Postgres(url) => {
                Ok(Database::Postgres(postgres::Postgres::open(url).await?))
            }
            #[cfg(not(feature = "postgres"))]
            StoreLocation::Postgres(_) => Err(StoreError(
                "this connector was built without PostgreSQL support".to_owned(),
            )),
        }
    }

    async fn execute(&self, sql: &str, params: Vec<Datum>) -> Result<u64, StoreError> {
        match self {
            Database::Sqlite(db) => db.execute(sql, params).await,
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => db.execute(sql, params).await,
        }
    }

    async fn query(&self, sql: &str, params: Vec<Datum>) -> Result<Vec<Row>, StoreError> {
        match self {
            Database::Sqlite(db) => db.query(sql, params).await,
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => db.query(sql, params).await,
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Database::Sqlite(db) => db.migrate().await,
            #[cfg(feature = "postgres")]
            Database::Postgres(db) => db.migrate().await,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its tables up to date.
    pub async fn open(settings: &StoreSettings) -> Result<Self, String> {
        let described = settings.location.describe();
        let database = Database::open(&settings.location)
            .await
            .map_err(|error| format!("cannot open the store {described}: {error}"))?;
        database
            .migrate()
            .await
            .map_err(|error| format!("cannot set up the store {described}: {error}"))?;
        tracing::info!(store = %described, "initiation store ready");
        Ok(Self { database })
    }

    /// Takes `key` for `operation` for one attempt of at most `lease`, unless it is
    /// answered, taken, or was used with another request.
    #[allow(clippy::too_many_arguments)]
    pub async fn claim(
        &self,
        operation: &str,
        key: &str,
        provider_key: Option<&str>,
        request: &str,
        transaction_type: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let now = now_ms();
        let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let inserted = self
            .database
            .execute(
                INSERT,
                vec![
                    Datum::text(operation),
                    Datum::text(key),
                    Datum::text(request),
                    Datum::text(transaction_type),
                    Datum::text(owner),
                    Datum::Int(lease_until),
                    Datum::Int(now),
                    Datum::optional_text(provider_key),
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(Claim::First);
        }
        let taken = self
            .database
            .query(
                TAKE_OVER,
                vec![
                    Datum::text(operation),
                    Datum::text(key),
                    Datum::text(owner),
                    Datum::Int(lease_until),
                    Datum::Int(now),
                    Datum::text(request),
                ],
            )
            .await?;
        if let Some(row) = taken.first() {
            let attempt: i64 = column(row, 0)?;
            return Ok(Claim::Recover {
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            });
        }
        let Some(row) = self.read(operation, key).await? else {
            return Ok(Claim::Busy);
        };
        let stored: String = column(&row, 0)?;
        Ok(match stored_answer(&row)? {
            _ if stored != request => Claim::Conflict { request: stored },
            Some(answer) => Claim::Answered(answer),
            None => Claim::Busy,
        })
    }

    async fn read(&self, operation: &str, key: &str) -> Result<Option<Row>, StoreError> {
        let rows = self
            .database
            .query(READ, vec![Datum::text(operation), Datum::text(key)])
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Records the final answer of `owner`'s attempt. If another request finished the
    /// key first, its answer is returned instead, so that every caller sees one answer.
    pub async fn finish(
        &self,
        operation: &str,
        key: &str,
        owner: &str,
        answer: Answer,
        provider_id: Option<&str>,
    ) -> Result<Answer, StoreError> {
        let finished = self
            .database
            .execute(
                FINISH,
                vec![
                    Datum::text(operation),
                    Datum::text(key),
                    Datum::text(owner),
                    Datum::Int(i64::from(answer.status)),
                    Datum::text(&answer.body),
                    Datum::optional_text(provider_id),
                    Datum::Int(now_ms()),
                ],
            )
            .await?;
        if finished == 1 {
            return Ok(answer);
        }
        let row = self.read(operation, key).await?;
        match row.as_ref().map(stored_answer).transpose()?.flatten() {
            Some(stored) => Ok(stored),
            None => {
                tracing::warn!(
                    operation,
                    key,
                    "another attempt took this key over; keeping this attempt's answer"
                );
                Ok(answer)
            }
        }
    }

    /// Ends `owner`'s attempt without a final answer: the next request with the key
    /// recovers it at once.
    pub async fn release(&self, operation: &str, key: &str, owner: &str) -> Result<(), StoreError> {
        self.database
            .execute(
                RELEASE,
                vec![
                    Datum::text(operation),
                    Datum::text(key),
                    Datum::text(owner),
                    Datum::Int(now_ms()),
                ],
            )
            .await?;
        Ok(())
    }

    /// Recent initiations without a final answer that no provider payment is known for
    /// yet: (operation, key, request). An attempt may have paid before it died.
    pub async fn unanswered(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let since = now_ms().saturating_sub(UNANSWERED_WINDOW_MS);
        let rows = self
            .database
            .query(UNANSWERED, vec![Datum::Int(since)])
            .await?;
        rows.iter()
            .map(|row| Ok((column(row, 0)?, column(row, 1)?, column(row, 2)?)))
            .collect()
    }

    /// Records the provider's id of an unanswered initiation's payment, found by a
    /// look-up, so that its transaction links before the initiation is retried.
    pub async fn found_payment(
        &self,
        operation: &str,
        key: &str,
        provider_id: &str,
    ) -> Result<(), StoreError> {
        self.database
            .execute(
                FOUND_PAYMENT,
                vec![
                    Datum::text(operation),
                    Datum::text(key),
                    Datum::text(provider_id),
                    Datum::Int(now_ms()),
                ],
            )
            .await?;
        Ok(())
    }

    /// The initiations whose provider id or idempotency key is one of `candidates`.
    pub async fn links(&self, candidates: &[&str]) -> Result<Vec<Link>, StoreError> {
        let mut links = Vec::new();
        for chunk in candidates.chunks(LINK_CHUNK) {
            let params = chunk
                .iter()
                .map(|candidate| Datum::text(candidate))
                .collect();
            for row in self
                .database
                .query(&links_query(chunk.len()), params)
                .await?
            {
                links.push(Link {
                    key: column(&row, 0)?,
                    provider_id: column(&row, 1)?,
                    transaction_type: column(&row, 2)?,
                    provider_key: column(&row, 3)?,
                });
            }
        }
        Ok(links)
    }
}

/// The final answer in a `READ` row, if the key has one.
fn stored_answer(row: &Row) -> Result<Option<Answer>, StoreError> {
    let status: Option<i64> = column(row, 1)?;
    let body: Option<String> = column(row, 2)?;
    Ok(status.zip(body).map(|(status, body)| Answer {
        status: u16::try_from(status).unwrap_or(500),
        body,
    }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The migrations a database at schema version `current` still needs; a version newer than
/// this connector's is refused (replicas upgrade one at a time).
fn pending_migrations(current: i64) -> Result<&'static [&'static [&'static str]], StoreError> {
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError(format!(
            "its schema is version {current}, newer than this connector's {known}: upgrade the connector"
        )));
    }
    Ok(&MIGRATIONS[usize::try_from(current.max(0)).unwrap_or(0)..])
}

const SCHEMA_VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS connector_schema (version BIGINT NOT NULL)";

const READ_SCHEMA_VERSION: &str = "SELECT version FROM connector_schema";

const INSERT_SCHEMA_VERSION: &str = "INSERT INTO connector_schema (version) VALUES ($1)";

const UPDATE_SCHEMA_VERSION: &str = "UPDATE connector_schema SET version = $1";

/// The schema, one migration per version; a new version appends one, never edits one.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE IF NOT EXISTS connector_initiations (\
        operation TEXT NOT NULL, \
        idempotency_key TEXT NOT NULL, \
        request TEXT NOT NULL, \
        transaction_type TEXT NOT NULL, \
        owner TEXT NOT NULL, \
        lease_until BIGINT NOT NULL, \
        attempts BIGINT NOT NULL, \
        status BIGINT, \
        response TEXT, \
        provider_id TEXT, \
        created_at BIGINT NOT NULL, \
        updated_at BIGINT NOT NULL, \
        PRIMARY KEY (operation, idempotency_key))",
        "CREATE INDEX IF NOT EXISTS connector_initiations_by_provider_id ON connector_initiations (provider_id)",
        "CREATE INDEX IF NOT EXISTS connector_initiations_by_key ON connector_initiations (idempotency_key)",
        "CREATE INDEX IF NOT EXISTS connector_initiations_unanswered ON connector_initiations (updated_at) WHERE status IS NULL",
    ],
    // 2: the key as the provider was given it, which its transactions may carry.
    &[
        "ALTER TABLE connector_initiations ADD COLUMN provider_key TEXT",
        "CREATE INDEX IF NOT EXISTS connector_initiations_by_provider_key ON connector_initiations (provider_key)",
    ],
];

const INSERT: &str = "INSERT INTO connector_initiations \
    (operation, idempotency_key, request, transaction_type, owner, lease_until, attempts, created_at, updated_at, provider_key) \
    VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, $8) \
    ON CONFLICT (operation, idempotency_key) DO NOTHING";

/// Only an unanswered key whose attempt outlived its lease, and only for the same request.
const TAKE_OVER: &str = "UPDATE connector_initiations \
    SET owner = $3, lease_until = $4, attempts = attempts + 1, updated_at = $5 \
    WHERE operation = $1 AND idempotency_key = $2 AND status IS NULL AND lease_until < $5 AND request = $6 \
    RETURNING attempts";

const READ: &str = "SELECT request, status, response FROM connector_initiations \
    WHERE operation = $1 AND idempotency_key = $2";

const FINISH: &str = "UPDATE connector_initiations \
    SET status = $4, response = $5, provider_id = $6, lease_until = 0, updated_at = $7 \
    WHERE operation = $1 AND idempotency_key = $2 AND owner = $3 AND status IS NULL";

const RELEASE: &str = "UPDATE connector_initiations SET lease_until = 0, updated_at = $4 \
    WHERE operation = $1 AND idempotency_key = $2 AND owner = $3 AND status IS NULL";

/// The newest first, of the last day (a retry comes long before), and a bounded batch:
/// each costs a look-up at the provider.
const UNANSWERED: &str = "SELECT operation, idempotency_key, request FROM connector_initiations \
    WHERE status IS NULL AND provider_id IS NULL AND updated_at > $1 ORDER BY updated_at DESC LIMIT 20";

const UNANSWERED_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

const FOUND_PAYMENT: &str = "UPDATE connector_initiations SET provider_id = $3, updated_at = $4 \
    WHERE operation = $1 AND idempotency_key = $2 AND status IS NULL";

/// Candidates per links query: far below both databases' parameter limits.
const LINK_CHUNK: usize = 500;

fn links_query(count: usize) -> String {
    let params: Vec<String> = (1..=count).map(|n| format!("${n}")).collect();
    let params = params.join(", ");
    format!(
        "SELECT idempotency_key, provider_id, transaction_type, provider_key FROM connector_initiations \
         WHERE provider_id IN ({params}) OR idempotency_key IN ({params}) OR provider_key IN ({params})"
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::block_on;
    use super::*;

    async fn fresh_store() -> (Store, std::path::PathBuf) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "connector-runtime-store-{}-{n}.sqlite3",
            std::process::id()
        ));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let settings = StoreSettings {
            location: StoreLocation::Sqlite(path.clone()),
            attempt_timeout: Duration::from_secs(30),
        };
        (Store::open(&settings).await.expect("store opens"), path)
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_claim_wins_and_others_wait_for_it() {
        block_on(async {
            let (store, _) = fresh_store().await;
            let claim = |owner: &'static str| {
                store.claim("createPayout", "k", None, "{}", "PAYOUT", owner, LEASE)
            };
            assert_eq!(claim("a").await.unwrap(), Claim::First);
            assert_eq!(claim("b").await.unwrap(), Claim::Busy);
            let other = store
                .claim(
                    "createPayout",
                    "k",
                    None,
                    r#"{"x":1}"#,
                    "PAYOUT",
                    "c",
                    LEASE,
                )
                .await;
            assert_eq!(
                other.unwrap(),
                Claim::Conflict {
                    request: "{}".to_owned()
                }
            );
            let same_key_other_operation =
                store.claim("createTransfer", "k", None, "{}", "TRANSFER", "d", LEASE);
            assert_eq!(same_key_other_operation.await.unwrap(), Claim::First);
        });
    }

    #[test]
    fn an_answer_is_stored_once_and_replayed() {
        block_on(async {
            let (store, _) = fresh_store().await;
            store
                .claim("createPayout", "k", None, "{}", "PAYOUT", "a", LEASE)
                .await
                .unwrap();
            let answer = Answer {
                status: 201,
                body: r#"{"id":"po_1"}"#.to_owned(),
            };
            let stored = store
                .finish("createPayout", "k", "a", answer.clone(), Some("po_1"))
                .await;
            assert_eq!(stored.unwrap(), answer);
            let late = Answer {
                status: 201,
                body: r#"{"id":"po_2"}"#.to_owned(),
            };
            let kept = store
                .finish("createPayout", "k", "b", late, Some("po_2"))
                .await;
            assert_eq!(kept.unwrap(), answer, "the first answer wins");
            let replay = store
                .claim("createPayout", "k", None, "{}", "PAYOUT", "c", LEASE)
                .await;
            assert_eq!(replay.unwrap(), Claim::Answered(answer));
        });
    }

    #[test]
    fn a_released_or_expired_attempt_is_recovered_by_the_next() {
        block_on(async {
            let (store, _) = fresh_store().await;
            store
                .claim("createPayout", "k", None, "{}", "PAYOUT", "a", LEASE)
                .await
                .unwrap();
            store.release("createPayout", "k", "a").await.unwrap();
            let next = store.claim(
                "createPayout",
                "k",
                None,
                "{}",
                "PAYOUT",
                "b",
                Duration::from_millis(1),
            );
            assert_eq!(next.await.unwrap(), Claim::Recover { attempt: 2 });
            tokio::time::sleep(Duration::from_millis(5)).await;
            let after_lease = store.claim("createPayout", "k", None, "{}", "PAYOUT", "c", LEASE);
            assert_eq!(after_lease.await.unwrap(), Claim::Recover { attempt: 3 });
            let still_leased = store.claim("createPayout", "k", None, "{}", "PAYOUT", "d", LEASE);
            assert_eq!(still_leased.await.unwrap(), Claim::Busy);
        });
    }

    #[test]
    fn links_find_initiations_by_payment_id_or_key() {
        block_on(async {
            let (store, _) = fresh_store().await;
            for (key, kind, id) in [("k1", "PAYOUT", Some("po_1")), ("k2", "TRANSFER", None)] {
                let operation = if kind == "PAYOUT" {
                    "createPayout"
                } else {
                    "createTransfer"
                };
                store
                    .claim(operation, key, None, "{}", kind, "a", LEASE)
                    .await
                    .unwrap();
                if let Some(id) = id {
                    let answer = Answer {
                        status: 201,
                        body: "{}".to_owned(),
                    };
                    store
                        .finish(operation, key, "a", answer, Some(id))
                        .await
                        .unwrap();
                }
            }
            let mut links = store.links(&["po_1", "k2", "nothing"]).await.unwrap();
            links.sort_by(|a, b| a.key.cmp(&b.key));
            assert_eq!(
                links,
                [
                    Link {
                        key: "k1".to_owned(),
                        provider_id: Some("po_1".to_owned()),
                        provider_key: None,
                        transaction_type: "PAYOUT".to_owned()
                    },
                    Link {
                        key: "k2".to_owned(),
                        provider_id: None,
                        provider_key: None,
                        transaction_type: "TRANSFER".to_owned()
                    },
                ]
            );
            let many: Vec<String> = (0..1200).map(|n| format!("k{n}")).collect();
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            assert_eq!(
                store.links(&many).await.unwrap().len(),
                2,
                "chunks of {LINK_CHUNK}"
            );
        });
    }

    #[test]
    fn unanswered_initiations_are_listed_until_their_payment_is_found() {
        block_on(async {
            let (store, _) = fresh_store().await;
            store
                .claim(
                    "createPayout",
                    "k",
                    None,
                    r#"{"a":1}"#,
                    "PAYOUT",
                    "a",
                    LEASE,
                )
                .await
                .unwrap();
            let unanswered = store.unanswered().await.unwrap();
            assert_eq!(
                unanswered,
                [(
                    "createPayout".to_owned(),
                    "k".to_owned(),
                    r#"{"a":1}"#.to_owned()
                )]
            );
            store
                .found_payment("createPayout", "k", "po_9")
                .await
                .unwrap();
            assert!(store.unanswered().await.unwrap().is_empty());
            assert_eq!(store.links(&["po_9"]).await.unwrap()[0].key, "k");
        });
    }

    #[test]
    fn a_reopened_store_keeps_its_records_and_refuses_a_newer_schema() {
        block_on(async {
            let (store, path) = fresh_store().await;
            store
                .claim("createPayout", "k", None, "{}", "PAYOUT", "a", LEASE)
                .await
                .unwrap();
            drop(store);
            let settings = StoreSettings {
                location: StoreLocation::Sqlite(path.clone()),
                attempt_timeout: Duration::from_secs(30),
            };
            let reopened = Store::open(&settings).await.unwrap();
            let claim = reopened
                .claim("createPayout", "k", None, "{}", "PAYOUT", "b", LEASE)
                .await;
            assert_eq!(claim.unwrap(), Claim::Busy);
            reopened
                .database
                .execute("UPDATE connector_schema SET version = 99", vec![])
                .await
                .unwrap();
            drop(reopened);
            let error = Store::open(&settings).await.err().expect("refused");
            assert!(
                error.contains("version 99, newer than this connector's 2"),
                "{error}"
            );
        });
    }

    #[test]
    fn links_find_an_initiation_by_the_key_the_provider_was_given() {
        block_on(async {
            let (store, _) = fresh_store().await;
            store
                .claim(
                    "createPayout",
                    "formance-key",
                    Some("NB7Q2K"),
                    "{}",
                    "PAYOUT",
                    "a",
                    LEASE,
                )
                .await
                .unwrap();
            let links = store.links(&["NB7Q2K"]).await.unwrap();
            assert_eq!(links.len(), 1);
            assert_eq!(links[0].key, "formance-key");
            assert_eq!(links[0].provider_key.as_deref(), Some("NB7Q2K"));
        });
    }

    #[test]
    fn migrations_run_from_the_current_version() {
        assert_eq!(pending_migrations(0).unwrap().len(), MIGRATIONS.len());
        assert!(
            pending_migrations(MIGRATIONS.len() as i64)
                .unwrap()
                .is_empty()
        );
        assert!(pending_migrations(MIGRATIONS.len() as i64 + 1).is_err());
    }
}
