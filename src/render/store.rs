//! store.rs of a generated crate: the durable record of payment initiations, in SQLite by
//! default and in PostgreSQL when `DATABASE_URL` names one, so that replicas share it.

use proc_macro2::TokenStream;
use quote::quote;

pub fn render() -> TokenStream {
    let settings = settings();
    let queries = queries();
    quote! {
        //! The durable record of payment initiations: each idempotency key, the request it came
        //! with, who is working on it until when, the final answer, and the provider's id of
        //! the payment it produced. SQLite (`CONNECTOR_STORE`) by default; PostgreSQL when
        //! `DATABASE_URL` names one, which lets several replicas share it.
        use std::time::{Duration, SystemTime, UNIX_EPOCH};

        use sqlx::any::{AnyPoolOptions, AnyRow};
        use sqlx::pool::PoolConnection;
        use sqlx::{Any, AnyConnection, AnyPool, Connection, Row};

        #settings

        /// A failed store operation; the request is answered 503 and Formance retries it.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct StoreError(pub String);

        impl std::fmt::Display for StoreError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<sqlx::Error> for StoreError {
            fn from(error: sqlx::Error) -> Self {
                Self(error.to_string())
            }
        }

        /// A final answer to an initiation, exactly as it is sent again on a retry.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Answer {
            pub status: u16,
            pub body: String,
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
            pub transaction_type: String,
        }

        /// The open database: PostgreSQL through a pool; SQLite through one connection, since
        /// its writes take turns anyway (and a pool checks a connection on every release).
        pub struct Store {
            backend: Backend,
        }

        enum Backend {
            Pool(AnyPool),
            Single(tokio::sync::Mutex<AnyConnection>),
        }

        /// A connection held for a few statements.
        enum Session<'s> {
            Pooled(PoolConnection<Any>),
            Single(tokio::sync::MutexGuard<'s, AnyConnection>),
        }

        impl std::ops::Deref for Session<'_> {
            type Target = AnyConnection;

            fn deref(&self) -> &AnyConnection {
                match self {
                    Session::Pooled(connection) => connection,
                    Session::Single(connection) => connection,
                }
            }
        }

        impl std::ops::DerefMut for Session<'_> {
            fn deref_mut(&mut self) -> &mut AnyConnection {
                match self {
                    Session::Pooled(connection) => connection,
                    Session::Single(connection) => connection,
                }
            }
        }

        impl Store {
            /// Opens (creating if needed) the database and brings its tables up to date.
            pub async fn open(settings: &StoreSettings) -> Result<Self, String> {
                sqlx::any::install_default_drivers();
                let described = settings.location.describe();
                let cannot_open = |error: sqlx::Error| format!("cannot open the store {described}: {error}");
                let backend = match &settings.location {
                    StoreLocation::Postgres(url) => {
                        let pool = AnyPoolOptions::new()
                            .max_connections(16)
                            .acquire_timeout(Duration::from_secs(10))
                            .test_before_acquire(false)
                            .connect(url)
                            .await
                            .map_err(cannot_open)?;
                        Backend::Pool(pool)
                    }
                    StoreLocation::Sqlite(path) => {
                        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                            std::fs::create_dir_all(parent).map_err(|error| format!("cannot create the directory of the store {described}: {error}"))?;
                        }
                        let url = format!("sqlite://{}?mode=rwc", path.display());
                        let mut connection = AnyConnection::connect(&url).await.map_err(cannot_open)?;
                        for pragma in SQLITE_PRAGMAS {
                            sqlx::query(pragma).execute(&mut connection).await.map_err(cannot_open)?;
                        }
                        Backend::Single(tokio::sync::Mutex::new(connection))
                    }
                };
                let store = Self { backend };
                store.migrate().await.map_err(|error| format!("cannot set up the store {described}: {error}"))?;
                tracing::info!(store = %described, "initiation store ready");
                Ok(store)
            }

            async fn session(&self) -> Result<Session<'_>, StoreError> {
                Ok(match &self.backend {
                    Backend::Pool(pool) => Session::Pooled(pool.acquire().await?),
                    Backend::Single(connection) => Session::Single(connection.lock().await),
                })
            }

            /// Applies the migrations the database has not had yet, in one transaction; refuses a
            /// database set up by a newer connector (replicas upgrade one at a time).
            async fn migrate(&self) -> Result<(), StoreError> {
                let mut session = self.session().await?;
                let mut transaction = session.begin().await?;
                if transaction.backend_name() == "PostgreSQL" {
                    sqlx::query(LOCK_MIGRATIONS).execute(&mut *transaction).await?;
                }
                sqlx::query(SCHEMA_VERSION_TABLE).execute(&mut *transaction).await?;
                let found: Option<i64> = sqlx::query(READ_SCHEMA_VERSION).fetch_optional(&mut *transaction).await?.map(|row| row.try_get(0)).transpose()?;
                let current = found.unwrap_or(0);
                let known = MIGRATIONS.len() as i64;
                if current > known {
                    return Err(StoreError(format!("its schema is version {current}, newer than this connector's {known}: upgrade the connector")));
                }
                for migration in MIGRATIONS.iter().skip(usize::try_from(current).unwrap_or(usize::MAX)) {
                    for statement in *migration {
                        sqlx::query(statement).execute(&mut *transaction).await?;
                    }
                }
                if found.is_none() {
                    sqlx::query(INSERT_SCHEMA_VERSION).bind(known).execute(&mut *transaction).await?;
                } else if current < known {
                    sqlx::query(UPDATE_SCHEMA_VERSION).bind(known).execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
                Ok(())
            }

            /// Takes `key` for `operation` for one attempt of at most `lease`, unless it is
            /// answered, taken, or was used with another request.
            pub async fn claim(&self, operation: &str, key: &str, request: &str, transaction_type: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
                let now = now_ms();
                let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
                let mut session = self.session().await?;
                let inserted = sqlx::query(INSERT)
                    .bind(operation).bind(key).bind(request).bind(transaction_type).bind(owner).bind(lease_until).bind(now)
                    .execute(&mut *session)
                    .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(Claim::First);
                }
                let taken = sqlx::query(TAKE_OVER)
                    .bind(operation).bind(key).bind(owner).bind(lease_until).bind(now).bind(request)
                    .fetch_optional(&mut *session)
                    .await?;
                if let Some(row) = taken {
                    let attempt: i64 = row.try_get(0)?;
                    return Ok(Claim::Recover { attempt: u32::try_from(attempt).unwrap_or(u32::MAX) });
                }
                let Some(row) = sqlx::query(READ).bind(operation).bind(key).fetch_optional(&mut *session).await? else {
                    return Ok(Claim::Busy);
                };
                let stored: String = row.try_get(0)?;
                Ok(match stored_answer(&row)? {
                    _ if stored != request => Claim::Conflict { request: stored },
                    Some(answer) => Claim::Answered(answer),
                    None => Claim::Busy,
                })
            }

            /// Records the final answer of `owner`'s attempt. If another request finished the
            /// key first, its answer is returned instead, so that every caller sees one answer.
            pub async fn finish(&self, operation: &str, key: &str, owner: &str, answer: Answer, provider_id: Option<&str>) -> Result<Answer, StoreError> {
                let mut session = self.session().await?;
                let finished = sqlx::query(FINISH)
                    .bind(operation).bind(key).bind(owner).bind(i64::from(answer.status)).bind(answer.body.as_str()).bind(provider_id).bind(now_ms())
                    .execute(&mut *session)
                    .await?;
                if finished.rows_affected() == 1 {
                    return Ok(answer);
                }
                let row = sqlx::query(READ).bind(operation).bind(key).fetch_optional(&mut *session).await?;
                match row.as_ref().map(stored_answer).transpose()?.flatten() {
                    Some(stored) => Ok(stored),
                    None => {
                        tracing::warn!(operation, key, "another attempt took this key over; keeping this attempt's answer");
                        Ok(answer)
                    }
                }
            }

            /// Ends `owner`'s attempt without a final answer: the next request with the key
            /// recovers it at once.
            pub async fn release(&self, operation: &str, key: &str, owner: &str) -> Result<(), StoreError> {
                sqlx::query(RELEASE).bind(operation).bind(key).bind(owner).bind(now_ms()).execute(&mut *self.session().await?).await?;
                Ok(())
            }

            /// Recent initiations without a final answer that no provider payment is known for
            /// yet: (operation, key, request). An attempt may have paid before it died.
            pub async fn unanswered(&self) -> Result<Vec<(String, String, String)>, StoreError> {
                let since = now_ms().saturating_sub(UNANSWERED_WINDOW_MS);
                let rows = sqlx::query(UNANSWERED).bind(since).fetch_all(&mut *self.session().await?).await?;
                rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
            }

            /// Records the provider's id of an unanswered initiation's payment, found by a
            /// look-up, so that its transaction links before the initiation is retried.
            pub async fn found_payment(&self, operation: &str, key: &str, provider_id: &str) -> Result<(), StoreError> {
                sqlx::query(FOUND_PAYMENT).bind(operation).bind(key).bind(provider_id).bind(now_ms()).execute(&mut *self.session().await?).await?;
                Ok(())
            }

            /// The initiations whose provider id or idempotency key is one of `candidates`.
            pub async fn links(&self, candidates: &[&str]) -> Result<Vec<Link>, StoreError> {
                let mut links = Vec::new();
                let mut session = self.session().await?;
                for chunk in candidates.chunks(LINK_CHUNK) {
                    let sql = links_query(chunk.len());
                    let mut query = sqlx::query(&sql);
                    for candidate in chunk {
                        query = query.bind(*candidate);
                    }
                    for row in query.fetch_all(&mut *session).await? {
                        links.push(Link { key: row.try_get(0)?, provider_id: row.try_get(1)?, transaction_type: row.try_get(2)? });
                    }
                }
                Ok(links)
            }
        }

        /// The final answer in a `READ` row, if the key has one.
        fn stored_answer(row: &AnyRow) -> Result<Option<Answer>, sqlx::Error> {
            let status: Option<i64> = row.try_get(1)?;
            let body: Option<String> = row.try_get(2)?;
            Ok(status.zip(body).map(|(status, body)| Answer { status: u16::try_from(status).unwrap_or(500), body }))
        }

        fn now_ms() -> i64 {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }

        #queries
    }
}

/// Where the store is, read from the environment with the rest of the configuration.
fn settings() -> TokenStream {
    quote! {
        /// Where the store lives.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum StoreLocation {
            /// A `postgres://` URL; its password is never printed.
            Postgres(String),
            /// A SQLite database file.
            Sqlite(std::path::PathBuf),
        }

        impl StoreLocation {
            /// For logs and errors: the file, or the URL without its password.
            pub fn describe(&self) -> String {
                match self {
                    StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
                    StoreLocation::Postgres(url) => match url.split_once("://").and_then(|(scheme, rest)| rest.rsplit_once('@').map(|(_, host)| (scheme, host))) {
                        Some((scheme, host)) => format!("{scheme}://…@{host}"),
                        None => url.clone(),
                    },
                }
            }
        }

        /// The store's settings.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct StoreSettings {
            pub location: StoreLocation,
            /// `CONNECTOR_INITIATION_TIMEOUT`: how long one attempt to initiate a payment may
            /// take (default 30s). A key whose attempt is older than this is taken over by the
            /// next retry, on any replica.
            pub attempt_timeout: Duration,
        }

        impl StoreSettings {
            /// `DATABASE_URL` (`postgres://...`, or `sqlite:PATH`) or `CONNECTOR_STORE` (a SQLite
            /// file, default `connector-store.sqlite3`), and `CONNECTOR_INITIATION_TIMEOUT`.
            pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<String>) -> Self {
                let sqlite = |path: &str| StoreLocation::Sqlite(std::path::PathBuf::from(path));
                let location = match env("DATABASE_URL").map(|url| url.trim().to_owned()).filter(|url| !url.is_empty()) {
                    Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => StoreLocation::Postgres(url),
                    Some(url) if url.starts_with("sqlite:") => sqlite(url.trim_start_matches("sqlite:").trim_start_matches("//")),
                    Some(url) => {
                        problems.push(format!("DATABASE_URL must be a postgres:// or sqlite: URL, got {:?}", StoreLocation::Postgres(url).describe()));
                        sqlite("")
                    }
                    None => sqlite(env("CONNECTOR_STORE").as_deref().map(str::trim).filter(|p| !p.is_empty()).unwrap_or("connector-store.sqlite3")),
                };
                let raw = env("CONNECTOR_INITIATION_TIMEOUT").unwrap_or_else(|| "30s".to_owned());
                let attempt_timeout = parse_duration(&raw).unwrap_or_else(|| {
                    problems.push(format!("CONNECTOR_INITIATION_TIMEOUT must be a duration such as 30s or 1500ms, got {raw:?}"));
                    Duration::from_secs(30)
                });
                Self { location, attempt_timeout }
            }
        }

        /// `30s`, `1500ms`, `2m`; at least one millisecond.
        fn parse_duration(text: &str) -> Option<Duration> {
            let text = text.trim();
            let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
            let number: u64 = number.parse().ok()?;
            let duration = match unit {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number.checked_mul(60)?),
                _ => return None,
            };
            (!duration.is_zero()).then_some(duration)
        }
    }
}

/// The SQL, written once for both databases: `$n` parameters, standard `ON CONFLICT` and
/// `RETURNING`, and `BIGINT` columns, which SQLite and PostgreSQL read alike.
fn queries() -> TokenStream {
    quote! {
        const SQLITE_PRAGMAS: [&str; 3] = ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 5000"];

        /// Replicas starting together set the schema up one after another.
        const LOCK_MIGRATIONS: &str = "SELECT pg_advisory_xact_lock(7318029475)";

        const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS connector_schema (version BIGINT NOT NULL)";
        const READ_SCHEMA_VERSION: &str = "SELECT version FROM connector_schema";
        const INSERT_SCHEMA_VERSION: &str = "INSERT INTO connector_schema (version) VALUES ($1)";
        const UPDATE_SCHEMA_VERSION: &str = "UPDATE connector_schema SET version = $1";

        /// The schema, one migration per version; a new version appends one, never edits one.
        const MIGRATIONS: &[&[&str]] = &[&[
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
        ]];

        const INSERT: &str = "INSERT INTO connector_initiations \
            (operation, idempotency_key, request, transaction_type, owner, lease_until, attempts, created_at, updated_at) \
            VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) \
            ON CONFLICT (operation, idempotency_key) DO NOTHING";

        /// Only an unanswered key whose attempt outlived its lease, and only for the same request.
        const TAKE_OVER: &str = "UPDATE connector_initiations \
            SET owner = $3, lease_until = $4, attempts = attempts + 1, updated_at = $5 \
            WHERE operation = $1 AND idempotency_key = $2 AND status IS NULL AND lease_until < $5 AND request = $6 \
            RETURNING attempts";

        const READ: &str = "SELECT request, status, response FROM connector_initiations WHERE operation = $1 AND idempotency_key = $2";

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
            format!("SELECT idempotency_key, provider_id, transaction_type FROM connector_initiations \
                WHERE provider_id IN ({params}) OR idempotency_key IN ({params})")
        }
    }
}
