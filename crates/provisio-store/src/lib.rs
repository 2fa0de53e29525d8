//! Provisio's store: every SQL statement lives in this crate.
//!
//! The embedded default is one SQLite file in WAL mode with
//! `synchronous=FULL`, so a committed write survives a power cut. Writes go
//! through a single writer task that **group-commits**: it takes every write
//! waiting in its queue, runs each inside its own savepoint in one
//! transaction, commits (one fsync for the whole batch), and only then
//! answers each caller. Reads use a separate pool of connections.
//!
//! The rest of Provisio sees [`Store`], the row types in [`models`] and the
//! query functions of each module, which take a [`Conn`]; a PostgreSQL
//! backend can implement the same functions.

pub mod audit;
pub mod clients;
pub mod configurations;
pub mod events;
pub mod jobs;
pub mod models;
pub mod products;
pub mod services;
pub mod tokens;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

/// A database connection, as the query functions take it.
pub type Conn = sqlx::SqliteConnection;

/// What can go wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    /// The database file could not be opened or migrated.
    #[error("cannot open the database {url}: {source}")]
    Open {
        /// The URL given.
        url: String,
        /// Why.
        source: Arc<sqlx::Error>,
    },
    /// The migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(Arc<sqlx::migrate::MigrateError>),
    /// A stored JSON document does not decode.
    #[error("corrupt stored document: {0}")]
    Corrupt(String),
    /// The writer stopped (the process is shutting down or the batch could not begin).
    #[error("the store's writer is unavailable")]
    WriterUnavailable,
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(err))
    }
}

impl StoreError {
    /// Whether the error is a UNIQUE constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(err) => err
                .as_database_error()
                .is_some_and(|db| db.is_unique_violation()),
            _ => false,
        }
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path` (created if missing) or `sqlite::memory:`.
    pub url: String,
    /// Most writes committed together.
    pub max_batch: usize,
    /// Connections for reads.
    pub read_connections: u32,
}

impl StoreOptions {
    /// Defaults for a URL.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            max_batch: 512,
            read_connections: 4,
        }
    }
}

/// The store: a group-committing writer and a pool of readers.
#[derive(Clone)]
pub struct Store {
    readers: SqlitePool,
    writer: writer::Writer,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let open_error = |source: sqlx::Error| StoreError::Open {
            url: options.url.clone(),
            source: Arc::new(source),
        };
        let connect = SqliteConnectOptions::from_str(&options.url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A 202 means durable: every commit reaches the disk.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let mut writer_connection = connect.connect().await.map_err(open_error)?;
        MIGRATOR
            .run(&mut writer_connection)
            .await
            .map_err(|err| StoreError::Migrate(Arc::new(err)))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect.clone())
            .await
            .map_err(open_error)?;
        let writer = writer::Writer::spawn(writer_connection, options.max_batch.max(1));
        Ok(Store { readers, writer })
    }

    /// Runs `work` inside the next write batch; answers once the batch is
    /// committed (durable). If `work` fails, its changes are rolled back and
    /// nothing else in the batch is affected.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Runs `work` on a read connection.
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>>,
    {
        let mut connection = self.readers.acquire().await.map_err(StoreError::from)?;
        work(&mut connection).await
    }

    /// Checks that the database answers (for health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.readers.acquire().await?;
        connection.ping().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Store::open(StoreOptions::new(url)).await.unwrap()
    }

    #[tokio::test]
    async fn a_failed_write_rolls_back_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut handles = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .write(move |conn| {
                        Box::pin(async move {
                            let client = clients::insert(
                                conn,
                                Some(&format!("c{i}")),
                                "Ann",
                                "a@example.com",
                            )
                            .await?;
                            if i % 10 == 0 {
                                // Fails after its first statement: the insert above must vanish too.
                                clients::insert(
                                    conn,
                                    Some(&format!("c{i}")),
                                    "Dup",
                                    "d@example.com",
                                )
                                .await?;
                            }
                            Ok::<_, StoreError>(client.id)
                        })
                    })
                    .await
            }));
        }
        let mut failed = 0;
        for handle in handles {
            if let Err(err) = handle.await.unwrap() {
                assert!(err.is_unique_violation(), "{err}");
                failed += 1;
            }
        }
        assert_eq!(failed, 20);
        let stored = store
            .read(|conn| Box::pin(async move { clients::list(conn, 1000, None).await }))
            .await
            .unwrap();
        assert_eq!(stored.len(), 180);
        assert!(stored.iter().all(|c| c.name == "Ann"));
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store(&dir).await;
            store
                .write(|conn| {
                    Box::pin(async move {
                        clients::insert(conn, Some("x"), "Ann", "a@example.com").await
                    })
                })
                .await
                .unwrap();
        }
        let store = store(&dir).await;
        let client = store
            .read(|conn| Box::pin(async move { clients::get_by_external(conn, "x").await }))
            .await
            .unwrap();
        assert_eq!(client.unwrap().name, "Ann");
    }
}
