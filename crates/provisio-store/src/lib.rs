//! Provisio's store: every SQL statement lives in this crate.
//!
//! The embedded default is one SQLite file in WAL mode with
//! `synchronous=FULL`, so a committed write survives a power cut. Writes go
//! through a single writer thread that **group-commits**: it takes every
//! write waiting in its queue, runs each inside its own savepoint in one
//! transaction, commits (one fsync for the whole batch), and only then
//! answers each caller. Reads use a small pool of other connections.
//!
//! SQLite is driven through rusqlite on the thread that owns the connection:
//! a statement costs microseconds, where a hop to a driver thread per
//! statement (as async SQLite drivers do) costs two context switches, which
//! on two cores dominated ingest time. Query functions keep an `async`
//! signature so callers compose them in async closures, and a PostgreSQL
//! backend can implement the same functions with an async driver.
//!
//! The rest of Provisio sees [`Store`], the row types in [`models`] and the
//! query functions of each module, which take a [`Conn`].

pub mod audit;
pub mod clients;
pub mod configurations;
pub mod drifts;
pub mod events;
pub mod invariants;
pub mod jobs;
pub mod models;
pub mod products;
pub mod reports;
pub mod services;
pub mod sessions;
pub mod sources;
pub mod staff;
pub mod tokens;
pub mod webhooks;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::{OpenFlags, OptionalExtension, Params, Row};

/// A database connection, as the query functions take it.
pub type Conn = rusqlite::Connection;

/// What can go wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(Arc<rusqlite::Error>),
    /// The database file could not be opened or migrated.
    #[error("cannot open the database {url}: {reason}")]
    Open {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A stored JSON document does not decode.
    #[error("corrupt stored document: {0}")]
    Corrupt(String),
    /// The writer stopped (the process is shutting down or the batch could not begin).
    #[error("the store's writer is unavailable")]
    WriterUnavailable,
    /// SQLite rolled back the whole batch this write was in (disk full, I/O error).
    #[error("the write was rolled back with its batch")]
    BatchAborted,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Database(Arc::new(err))
    }
}

impl StoreError {
    /// Whether the error is a UNIQUE (or primary key) constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(err) => matches!(
                err.sqlite_error().map(|e| e.extended_code),
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
            ),
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
    /// `sqlite://path` (created if missing).
    pub url: String,
    /// Most writes committed together.
    pub max_batch: usize,
    /// Idle read connections kept open.
    pub read_connections: usize,
}

impl StoreOptions {
    /// Defaults for a URL.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions { url: url.into(), max_batch: 512, read_connections: 8 }
    }
}

/// The migrations, in order; each runs once, in a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_job_secrets.sql")),
    (3, include_str!("../migrations/0003_ownership.sql")),
    (4, include_str!("../migrations/0004_tokens.sql")),
    (5, include_str!("../migrations/0005_event_digests.sql")),
    (6, include_str!("../migrations/0006_principals.sql")),
    (7, include_str!("../migrations/0007_webhooks.sql")),
    (8, include_str!("../migrations/0008_usage.sql")),
    (9, include_str!("../migrations/0009_staff_users.sql")),
    (10, include_str!("../migrations/0010_drift.sql")),
    (11, include_str!("../migrations/0011_import.sql")),
];

/// The store: a group-committing writer and a pool of readers.
#[derive(Clone)]
pub struct Store {
    readers: Arc<Readers>,
    writer: writer::Writer,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Conn>>,
    keep: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.readers.path).finish_non_exhaustive()
    }
}

fn path_of(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    (!rest.is_empty() && !rest.starts_with(":memory")).then(|| PathBuf::from(rest))
}

/// Creates the database file readable by its owner only (SQLite gives its
/// `-wal` and `-shm` files the same mode); an existing file is left as it is.
fn create_private(path: &PathBuf) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Opens a connection. Only the writer switches the file to WAL (a
/// persistent setting); readers opened later find it so.
fn connect(path: &PathBuf, writer: bool) -> Result<Conn, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Conn::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    if writer {
        conn.execute_batch("PRAGMA journal_mode = WAL")?;
    }
    // A 202 means durable: every commit reaches the disk.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000;",
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

fn migrate(conn: &mut Conn) -> Result<(), rusqlite::Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS provisio_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let done: Option<i64> = conn
            .query_row("SELECT version FROM provisio_migrations WHERE version = ?", [version], |r| r.get(0))
            .optional()?;
        if done.is_none() {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.execute("INSERT INTO provisio_migrations (version, applied_at) VALUES (?, ?)", (version, now_ms()))?;
            tx.commit()?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let url = options.url.clone();
        let open_error = |reason: String| StoreError::Open { url: url.clone(), reason };
        let path = path_of(&options.url).ok_or_else(|| open_error("expected sqlite://PATH".into()))?;
        create_private(&path).map_err(|e| open_error(e.to_string()))?;
        let mut writer_connection = connect(&path, true).map_err(|e| open_error(e.to_string()))?;
        migrate(&mut writer_connection).map_err(|e| open_error(format!("migration failed: {e}")))?;
        let readers = Arc::new(Readers { path, idle: Mutex::new(Vec::new()), keep: options.read_connections.max(1) });
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

    /// Runs `work` on a read connection, in one read transaction (a
    /// consistent snapshot of the database).
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>>,
    {
        let idle = self.readers.idle.lock().expect("reader pool lock").pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => connect(&self.readers.path, false).map_err(StoreError::from)?,
        };
        // One snapshot for the whole read: a service and its jobs read in two
        // statements must not straddle a commit (a detail showing the job
        // done and the service not yet).
        conn.execute_batch("BEGIN DEFERRED").map_err(StoreError::from)?;
        let result = work(&mut conn).await;
        // A read transaction has nothing to keep; ending it frees the snapshot.
        if conn.execute_batch("COMMIT").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let mut idle = self.readers.idle.lock().expect("reader pool lock");
        if idle.len() < self.readers.keep {
            idle.push(conn);
        }
        result
    }

    /// Checks, without writing, that the database answers a read and that
    /// the writer is still running (for health checks: a probe must not
    /// queue behind the writer's work).
    pub async fn check(&self) -> Result<(), StoreError> {
        if !self.writer.is_alive() {
            return Err(StoreError::WriterUnavailable);
        }
        self.read(|conn| Box::pin(async move { Ok::<_, StoreError>(conn.query_row("SELECT 1", [], |_| Ok(()))?) }))
            .await
    }
}

/// Runs a statement; answers the rows changed.
pub(crate) fn exec(conn: &Conn, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// One row, mapped.
pub(crate) fn one<T>(
    conn: &Conn,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    Ok(conn.prepare_cached(sql)?.query_row(params, map)?)
}

/// At most one row, mapped.
pub(crate) fn maybe<T>(
    conn: &Conn,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    Ok(conn.prepare_cached(sql)?.query_row(params, map).optional()?)
}

/// Every row, mapped.
pub(crate) fn all<T>(
    conn: &Conn,
    sql: &str,
    params: impl Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, map)?;
    Ok(rows.collect::<Result<Vec<T>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        assert!(path_of(&url).is_some());
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
                            let client = clients::insert(conn, Some(&format!("c{i}")), "Ann", "a@example.com").await?;
                            if i % 10 == 0 {
                                // Fails after its first statement: the insert above must vanish too.
                                clients::insert(conn, Some(&format!("c{i}")), "Dup", "d@example.com").await?;
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
        let stored = store.read(|conn| Box::pin(async move { clients::list(conn, 1000, None).await })).await.unwrap();
        assert_eq!(stored.len(), 180);
        assert!(stored.iter().all(|c| c.name == "Ann"));
    }

    #[tokio::test]
    async fn a_panicking_write_is_rolled_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let panicked = store
            .write(|conn| {
                Box::pin(async move {
                    clients::insert(conn, Some("doomed"), "Ann", "a@example.com").await?;
                    if conn.is_autocommit() {
                        return Ok::<_, StoreError>(());
                    }
                    panic!("a bug in a write");
                })
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::WriterUnavailable)), "{panicked:?}");
        store
            .write(|conn| Box::pin(async move { clients::insert(conn, Some("kept"), "Bob", "b@example.com").await }))
            .await
            .unwrap();
        let names: Vec<String> = store
            .read(|conn| Box::pin(async move { clients::list(conn, 10, None).await }))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["Bob"]);
        store.check().await.unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_journal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        store
            .write(|conn| Box::pin(async move { clients::insert(conn, Some("x"), "Ann", "a@example.com").await }))
            .await
            .unwrap();
        for name in ["t.db", "t.db-wal", "t.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store(&dir).await;
            store
                .write(|conn| Box::pin(async move { clients::insert(conn, Some("x"), "Ann", "a@example.com").await }))
                .await
                .unwrap();
        }
        let store = store(&dir).await;
        let client =
            store.read(|conn| Box::pin(async move { clients::get_by_external(conn, "x").await })).await.unwrap();
        assert_eq!(client.unwrap().name, "Ann");
    }
}
