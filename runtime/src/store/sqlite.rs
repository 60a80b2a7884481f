//! The store on SQLite: one connection, since SQLite's writes take turns anyway, used from
//! the blocking thread pool. WAL with `synchronous = NORMAL` survives a killed process.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

use super::{
    Datum, INSERT_SCHEMA_VERSION, READ_SCHEMA_VERSION, Row, SCHEMA_VERSION_TABLE, StoreError,
    UPDATE_SCHEMA_VERSION, pending_migrations,
};

const PRAGMAS: &str = "PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = NORMAL; \
    PRAGMA busy_timeout = 5000;";

pub(super) struct Sqlite {
    connection: Arc<Mutex<Connection>>,
}

impl Sqlite {
    pub(super) async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|error| StoreError(format!("cannot create its directory: {error}")))?;
        }
        let path = path.to_owned();
        let connection = tokio::task::spawn_blocking(move || {
            let connection = Connection::open(path)?;
            connection.execute_batch(PRAGMAS)?;
            Ok::<_, rusqlite::Error>(connection)
        })
        .await
        .map_err(|error| StoreError(error.to_string()))??;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection, off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|error| StoreError(format!("the store's worker failed: {error}")))?
    }

    pub(super) async fn execute(&self, sql: &str, params: Vec<Datum>) -> Result<u64, StoreError> {
        let sql = dialect(sql);
        self.with(move |connection| {
            let changed = connection
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(params))?;
            Ok(changed as u64)
        })
        .await
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: Vec<Datum>,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = dialect(sql);
        self.with(move |connection| query(connection, &sql, params))
            .await
    }

    /// Applies the migrations the database has not had yet, in one transaction.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        self.with(|connection| {
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            transaction.execute(SCHEMA_VERSION_TABLE, [])?;
            let found = query(&transaction, READ_SCHEMA_VERSION, Vec::new())?;
            let current = match found.first().and_then(|row| row.first()) {
                Some(Datum::Int(version)) => Some(*version),
                _ => None,
            };
            let pending = pending_migrations(current.unwrap_or(0))?;
            for statement in pending.iter().flat_map(|migration| migration.iter()) {
                transaction.execute(statement, [])?;
            }
            let known = super::MIGRATIONS.len() as i64;
            match current {
                None => transaction.execute(&dialect(INSERT_SCHEMA_VERSION), [known])?,
                Some(version) if version < known => {
                    transaction.execute(&dialect(UPDATE_SCHEMA_VERSION), [known])?
                }
                Some(_) => 0,
            };
            transaction.commit()?;
            Ok(())
        })
        .await
    }
}

fn query(connection: &Connection, sql: &str, params: Vec<Datum>) -> Result<Vec<Row>, StoreError> {
    let mut statement = connection.prepare_cached(sql)?;
    let columns = statement.column_count();
    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        let datums = (0..columns)
            .map(|index| datum(row.get_ref(index)?))
            .collect::<Result<Row, StoreError>>()?;
        read.push(datums);
    }
    Ok(read)
}

fn datum(value: ValueRef<'_>) -> Result<Datum, StoreError> {
    match value {
        ValueRef::Null => Ok(Datum::Null),
        ValueRef::Integer(n) => Ok(Datum::Int(n)),
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map(Datum::Text)
            .map_err(|_| StoreError("the store holds text that is not UTF-8".to_owned())),
        ValueRef::Real(_) | ValueRef::Blob(_) => Err(StoreError(format!(
            "the store holds an unexpected {value:?}"
        ))),
    }
}

/// SQLite numbers its parameters `?1`, where PostgreSQL writes `$1`.
fn dialect(sql: &str) -> String {
    sql.replace('$', "?")
}

impl ToSql for Datum {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Datum::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Datum::Int(n) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*n)),
            Datum::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_keep_their_numbers() {
        assert_eq!(
            dialect("UPDATE t SET a = $3 WHERE b = $1 AND c = $2 AND d = $3"),
            "UPDATE t SET a = ?3 WHERE b = ?1 AND c = ?2 AND d = ?3"
        );
    }
}
