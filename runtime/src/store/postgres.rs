//! The store on PostgreSQL, shared by several replicas: a pool of connections, TLS when the
//! server offers it (rustls with the Mozilla roots), migrations under an advisory lock so
//! that replicas starting together set the schema up one after another.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::{
    Datum, INSERT_SCHEMA_VERSION, MIGRATIONS, READ_SCHEMA_VERSION, Row, SCHEMA_VERSION_TABLE,
    StoreError, UPDATE_SCHEMA_VERSION, pending_migrations,
};

const POOL_SIZE: usize = 16;

/// Replicas starting together set the schema up one after another.
const LOCK_MIGRATIONS: &str = "SELECT pg_advisory_xact_lock(7318029475)";

pub(super) struct Postgres {
    pool: Pool,
}

impl Postgres {
    pub(super) async fn open(url: &str) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError(format!("not a valid PostgreSQL URL: {error}")))?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = tokio_postgres_rustls::MakeRustlsConnect::with_webpki_roots();
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|error| StoreError(error.to_string()))?;
        // Connect once now, so that a wrong URL or password stops the start-up.
        drop(pool.get().await.map_err(pool_error)?);
        Ok(Self { pool })
    }

    pub(super) async fn execute(&self, sql: &str, params: Vec<Datum>) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, &references(&params)).await?)
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: Vec<Datum>,
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client.prepare_cached(sql).await?;
        let rows = client.query(&statement, &references(&params)).await?;
        rows.iter().map(row).collect()
    }

    /// Applies the migrations the database has not had yet, in one transaction.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let transaction = client.transaction().await?;
        transaction.execute(LOCK_MIGRATIONS, &[]).await?;
        transaction.execute(SCHEMA_VERSION_TABLE, &[]).await?;
        let found = transaction.query_opt(READ_SCHEMA_VERSION, &[]).await?;
        let current: Option<i64> = found.map(|row| row.try_get(0)).transpose()?;
        for statement in pending_migrations(current.unwrap_or(0))?
            .iter()
            .flat_map(|m| m.iter())
        {
            transaction.execute(*statement, &[]).await?;
        }
        let known = MIGRATIONS.len() as i64;
        match current {
            None => {
                transaction
                    .execute(INSERT_SCHEMA_VERSION, &[&known])
                    .await?
            }
            Some(version) if version < known => {
                transaction
                    .execute(UPDATE_SCHEMA_VERSION, &[&known])
                    .await?
            }
            Some(_) => 0,
        };
        transaction.commit().await?;
        Ok(())
    }
}

fn references(params: &[Datum]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|datum| datum as &(dyn ToSql + Sync))
        .collect()
}

fn row(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    (0..row.len())
        .map(|index| {
            let datum = match *row.columns()[index].type_() {
                Type::INT8 | Type::INT4 => row.try_get::<_, Option<i64>>(index)?.map(Datum::Int),
                _ => row.try_get::<_, Option<String>>(index)?.map(Datum::Text),
            };
            Ok(datum.unwrap_or(Datum::Null))
        })
        .collect()
}

impl ToSql for Datum {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Datum::Null => Ok(IsNull::Yes),
            Datum::Int(n) => n.to_sql(ty, out),
            Datum::Text(text) => text.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    StoreError(error.to_string())
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self(match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => error.to_string(),
        })
    }
}
