//! Provisio's embedded store backend: one SQLite file in WAL mode with
//! `synchronous=FULL`, so a committed write survives a power cut.
//!
//! Writes go through a single writer thread that **group-commits** (see
//! [`writer`]): it takes every write waiting in its queue, runs each inside
//! its own savepoint in one transaction, commits (one fsync for the whole
//! batch), and only then answers each caller. Reads use a small pool of
//! other connections, each read in one snapshot.
//!
//! SQLite is driven through rusqlite on the thread that owns the
//! connection: a statement costs microseconds, where a hop to a driver
//! thread per statement (as async SQLite drivers do) costs two context
//! switches, which on two cores dominated ingest time. The one writer also
//! serialises every claim, so [`Tx::lock_admissions`] has nothing to do here.

mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use provisio_store::sql::Kind;
use provisio_store::{Backend, Conn, ReadTx, Row, SqlValue, Store, StoreError, StoreOptions, Tx, now_ms};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, OptionalExtension};

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
    (12, include_str!("../migrations/0012_live_services.sql")),
];

/// Whether a URL names this backend.
pub fn handles(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Opens (creating if needed) and migrates the database at `sqlite://PATH`.
pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
    let url = options.url.clone();
    let open_error = |reason: String| StoreError::Open { url: url.clone(), reason };
    let path = path_of(&options.url).ok_or_else(|| open_error("expected sqlite://PATH".into()))?;
    create_private(&path).map_err(|e| open_error(e.to_string()))?;
    let mut writer_connection = connect(&path, true).map_err(|e| open_error(e.to_string()))?;
    migrate(&mut writer_connection.0).map_err(|e| open_error(format!("migration failed: {e}")))?;
    let readers = Arc::new(Readers { path, idle: Mutex::new(Vec::new()), keep: options.connections.max(1) });
    let writer = writer::Writer::spawn(writer_connection, options.max_batch.max(1));
    Ok(Store::new(Sqlite { readers, writer }))
}

/// The SQLite backend: a group-committing writer and a pool of readers.
struct Sqlite {
    readers: Arc<Readers>,
    writer: writer::Writer,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

/// One SQLite connection, as the store's statements run on it.
pub(crate) struct Connection(rusqlite::Connection);

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
fn connect(path: &PathBuf, writer: bool) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    if writer {
        conn.execute_batch("PRAGMA journal_mode = WAL")?;
    }
    // A 202 means durable: every commit reaches the disk.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8000;",
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(Connection(conn))
}

fn migrate(conn: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
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

/// rusqlite's error as the boundary's.
fn store_error(err: rusqlite::Error) -> StoreError {
    let code = err.sqlite_error().map(|e| (e.code, e.extended_code));
    match code {
        Some((_, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)) => {
            StoreError::Unique(err.to_string())
        }
        Some((rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked, _)) => {
            StoreError::Busy(err.to_string())
        }
        _ => StoreError::Database(err.to_string()),
    }
}

/// A bound value, as rusqlite takes it.
struct Bound<'a>(&'a SqlValue);

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            SqlValue::Null(_) => ValueRef::Null,
            SqlValue::Int(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn read_value(value: ValueRef<'_>) -> Result<SqlValue, StoreError> {
    Ok(match value {
        ValueRef::Null => SqlValue::Null(Kind::Text),
        ValueRef::Integer(i) => SqlValue::Int(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(
            String::from_utf8(t.to_vec()).map_err(|e| StoreError::Corrupt(format!("text is not UTF-8: {e}")))?,
        ),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    })
}

impl Connection {
    fn run_execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let mut statement = self.0.prepare_cached(sql).map_err(store_error)?;
        let changed = statement.execute(rusqlite::params_from_iter(params.iter().map(Bound))).map_err(store_error)?;
        Ok(changed as u64)
    }

    fn run_query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let mut statement = self.0.prepare_cached(sql).map_err(store_error)?;
        let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter().map(Bound))).map_err(store_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(store_error)? {
            let values =
                (0..width).map(|i| read_value(row.get_ref(i).map_err(store_error)?)).collect::<Result<_, _>>()?;
            out.push(Row::new(columns.clone(), values));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.0.execute_batch(sql).map_err(store_error)
    }
}

impl Tx for Connection {
    fn execute<'a>(&'a mut self, sql: &'a str, params: Vec<SqlValue>) -> BoxFuture<'a, Result<u64, StoreError>> {
        futures::future::ready(self.run_execute(sql, &params)).boxed()
    }

    fn query<'a>(&'a mut self, sql: &'a str, params: Vec<SqlValue>) -> BoxFuture<'a, Result<Vec<Row>, StoreError>> {
        futures::future::ready(self.run_query(sql, &params)).boxed()
    }

    fn lock_admissions(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        // The one writer runs one claim at a time already.
        futures::future::ready(Ok(())).boxed()
    }

    fn for_update(&self) -> &'static str {
        ""
    }

    fn utc_day(&self, ms: &str) -> String {
        format!("date({ms} / 1000, 'unixepoch')")
    }

    fn utc_hour(&self, ms: &str) -> String {
        format!("strftime('%Y-%m-%d %H:00', {ms} / 1000, 'unixepoch')")
    }

    fn json_array_has(&self, array: &str, value: &str) -> String {
        format!("EXISTS (SELECT 1 FROM json_each({array}) WHERE value = {value})")
    }
}

/// A read connection lent from the pool, in its read transaction.
struct Reading {
    conn: Option<Connection>,
    readers: Arc<Readers>,
}

impl ReadTx for Reading {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("a reading holds its connection")
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        if let Some(conn) = self.conn.take() {
            // A read transaction has nothing to keep; ending it frees the snapshot.
            if conn.batch("COMMIT").is_err() {
                let _ = conn.batch("ROLLBACK");
            }
            let mut idle = self.readers.idle.lock().expect("reader pool lock");
            if idle.len() < self.readers.keep {
                idle.push(conn);
            }
        }
        futures::future::ready(()).boxed()
    }
}

impl Backend for Sqlite {
    fn submit(&self, op: provisio_store::WriteOp) -> BoxFuture<'_, ()> {
        self.writer.submit(op);
        futures::future::ready(()).boxed()
    }

    fn reader(&self) -> BoxFuture<'_, Result<Box<dyn ReadTx>, StoreError>> {
        let result = (|| {
            let idle = self.readers.idle.lock().expect("reader pool lock").pop();
            let conn = match idle {
                Some(conn) => conn,
                None => connect(&self.readers.path, false).map_err(store_error)?,
            };
            // One snapshot for the whole read.
            conn.batch("BEGIN DEFERRED")?;
            Ok(Box::new(Reading { conn: Some(conn), readers: self.readers.clone() }) as Box<dyn ReadTx>)
        })();
        futures::future::ready(result).boxed()
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if !self.writer.is_alive() {
                return Err(StoreError::WriterUnavailable);
            }
            let mut reader = self.reader().await?;
            let answered = reader.conn().query("SELECT 1", Vec::new()).await.map(|_| ());
            reader.finish().await;
            answered
        })
    }

    fn describe(&self) -> String {
        format!("sqlite://{}", self.readers.path.display())
    }

    // Processes sharing one file (serve and `provisio worker` on one
    // machine) find each other's jobs by polling.
    fn announce(&self) {}

    fn on_announce(&self, _wake: Arc<dyn Fn() + Send + Sync>) {}
}

// What every backend guarantees is proven by the store conformance suite
// (tests/conformance.rs); these are SQLite's own.
#[cfg(test)]
mod tests {
    use super::*;
    use provisio_store::clients;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        assert!(path_of(&url).is_some());
        open(StoreOptions::new(url)).await.unwrap()
    }

    #[tokio::test]
    async fn a_panicking_write_is_rolled_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let panicked = store
            .write(|conn| {
                Box::pin(async move {
                    clients::insert(conn, Some("doomed"), "Ann", "a@example.com").await?;
                    if std::hint::black_box(true) {
                        panic!("a bug in a write");
                    }
                    Ok::<_, StoreError>(())
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
}
