//! Provisio's PostgreSQL store backend: any number of `provisio serve`
//! and `provisio worker` processes, on any number of machines, share one
//! PostgreSQL database.
//!
//! Each write is a transaction of its own on a pooled connection (READ
//! COMMITTED, PostgreSQL's default: every statement sees what committed
//! before it), each read one REPEATABLE READ, READ ONLY snapshot. What the
//! SQLite backend gets from its single writer, this one takes explicitly:
//! a claim of jobs holds the queue's transaction-scoped advisory lock
//! ([`Tx::lock_admissions`]), so the limits it judges (one running job per
//! service, a configuration's concurrency, rate and capacity) are read
//! from what every earlier claim committed, whichever process made it.
//!
//! The statements are the boundary's, written with SQLite's `?` and `?N`
//! placeholders; [`placeholders`] numbers them the way SQLite does.
//! Values are bound with their own types (a NULL keeps its kind), rows are
//! read back by column type.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use provisio_store::sql::Kind;
use provisio_store::{Backend, Conn, ReadTx, Row, SqlValue, Store, StoreError, StoreOptions, Tx, WriteOp, now_ms};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow, PgValueRef};
use sqlx::{AssertSqlSafe, Column, Decode, Postgres, Row as _, TypeInfo, ValueRef};
use std::panic::AssertUnwindSafe;

/// The migrations, in order; each runs once, in a transaction.
const MIGRATIONS: &[(i64, &str)] =
    &[(1, include_str!("../migrations/0001_init.sql")), (2, include_str!("../migrations/0002_live_services.sql"))];

/// The admission lock (transaction-scoped): see [`Tx::lock_admissions`].
const ADMISSION_LOCK: i64 = 0x7072_6f76_6973_696f; // "provisio"
/// The advisory lock migrations run under, so processes started together
/// migrate once.
const MIGRATION_LOCK: i64 = 0x7072_6f76_6d69_6772; // "provmigr"

/// Whether a URL names this backend.
pub fn handles(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects to (and migrates) the database at `postgres://...`.
pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
    let connect: PgConnectOptions = options
        .url
        .parse()
        .map_err(|e: sqlx::Error| StoreError::Open { url: without_password(&options.url), reason: e.to_string() })?;
    let shown = shown(&connect);
    let open_error = |reason: String| StoreError::Open { url: shown.clone(), reason };
    // A process that stalls (stopped, cut off) inside a transaction must
    // not hold the admission lock, or any row, for ever; nor may a wait
    // for one hang a request.
    let connect = connect
        .application_name("provisio")
        .options([("idle_in_transaction_session_timeout", "60s"), ("lock_timeout", "30s")]);
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(options.connections.max(2)).unwrap_or(u32::MAX))
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(connect)
        .await
        .map_err(|e| open_error(e.to_string()))?;
    migrate(&pool).await.map_err(|e| open_error(format!("migration failed: {e}")))?;
    let announcer = Announcer::spawn(pool.clone());
    Ok(Store::new(PostgresBackend { pool, shown, announcer }))
}

/// Where a store is, for logs and errors: user, host, port and database
/// only (a password may be in the URL's user part or its query).
fn shown(connect: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or_default()
    )
}

/// A URL that did not parse, without what looks like a password, for the error.
fn without_password(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (credentials, host) = rest.rsplit_once('@')?;
        let user = credentials.split(':').next().unwrap_or_default();
        Some(format!("{scheme}://{user}@{host}"))
    }) {
        Some(shown) => shown,
        None => url.to_owned(),
    }
}

async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS provisio_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    for (version, sql) in MIGRATIONS {
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM provisio_migrations WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_none() {
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO provisio_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

/// The PostgreSQL backend: a pool of connections.
struct PostgresBackend {
    pool: sqlx::PgPool,
    shown: String,
    announcer: Arc<Announcer>,
}

/// sqlx's error as the boundary's.
fn store_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        match db.code().as_deref() {
            // unique_violation
            Some("23505") => return StoreError::Unique(db.message().to_owned()),
            // serialization_failure, deadlock_detected, lock_not_available
            Some("40001" | "40P01" | "55P03") => return StoreError::Busy(db.message().to_owned()),
            _ => {}
        }
    }
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => StoreError::Busy(err.to_string()),
        other => StoreError::Database(other.to_string()),
    }
}

/// SQLite's placeholders as PostgreSQL's: `?N` is `$N`, and a bare `?` is
/// one more than the largest number so far (SQLite's own rule), so one
/// statement text means the same on both. Quoted text is left alone.
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut largest = 0_usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let number = digits.parse().unwrap_or(largest + 1);
                largest = largest.max(number);
                out.push('$');
                out.push_str(&number.to_string());
            }
            None => out.push(c),
        }
    }
    out
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    params: Vec<SqlValue>,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for value in params {
        query = match value {
            SqlValue::Null(Kind::Int) => query.bind(None::<i64>),
            SqlValue::Null(Kind::Real) => query.bind(None::<f64>),
            SqlValue::Null(Kind::Text) => query.bind(None::<String>),
            SqlValue::Null(Kind::Blob) => query.bind(None::<Vec<u8>>),
            SqlValue::Int(i) => query.bind(i),
            SqlValue::Real(r) => query.bind(r),
            SqlValue::Text(t) => query.bind(t),
            SqlValue::Blob(b) => query.bind(b),
        };
    }
    query
}

fn decode<'r, T: Decode<'r, Postgres>>(value: PgValueRef<'r>) -> Result<T, StoreError> {
    T::decode(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A column's value by its PostgreSQL type.
fn read_value(value: PgValueRef<'_>) -> Result<SqlValue, StoreError> {
    if value.is_null() {
        return Ok(SqlValue::Null(Kind::Text));
    }
    let type_name = value.type_info().name().to_owned();
    Ok(match type_name.as_str() {
        "INT8" => SqlValue::Int(decode::<i64>(value)?),
        "INT4" => SqlValue::Int(i64::from(decode::<i32>(value)?)),
        "INT2" => SqlValue::Int(i64::from(decode::<i16>(value)?)),
        "BOOL" => SqlValue::Int(i64::from(decode::<bool>(value)?)),
        "FLOAT8" => SqlValue::Real(decode::<f64>(value)?),
        "FLOAT4" => SqlValue::Real(f64::from(decode::<f32>(value)?)),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" | "UNKNOWN" => SqlValue::Text(decode::<String>(value)?),
        "BYTEA" => SqlValue::Blob(decode::<Vec<u8>>(value)?),
        other => return Err(StoreError::Corrupt(format!("a column of type {other} (cast it in the statement)"))),
    })
}

fn read_rows(rows: Vec<PgRow>) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else { return Ok(Vec::new()) };
    let columns: Arc<[String]> = first.columns().iter().map(|c| c.name().to_owned()).collect();
    rows.iter()
        .map(|row| {
            let values = (0..columns.len())
                .map(|i| read_value(row.try_get_raw(i).map_err(store_error)?))
                .collect::<Result<_, _>>()?;
            Ok(Row::new(columns.clone(), values))
        })
        .collect()
}

/// A transaction on a pooled connection, and whether a statement in it
/// failed since its last savepoint was rolled back to: PostgreSQL then
/// refuses everything else and answers `COMMIT` with a rollback, so a
/// write that went on regardless must not be told it committed.
struct Transaction {
    tx: sqlx::Transaction<'static, Postgres>,
    failed: bool,
}

impl Transaction {
    fn new(tx: sqlx::Transaction<'static, Postgres>) -> Transaction {
        Transaction { tx, failed: false }
    }

    fn noted<T>(&mut self, sql: &str, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                if sql.starts_with("ROLLBACK TO") {
                    self.failed = false;
                }
                Ok(value)
            }
            Err(err) => {
                self.failed = true;
                Err(store_error(err))
            }
        }
    }
}

impl Tx for Transaction {
    fn execute<'a>(&'a mut self, sql: &'a str, params: Vec<SqlValue>) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let query = bind_all(sqlx::query(AssertSqlSafe(placeholders(sql))), params);
            let result = query.execute(&mut *self.tx).await;
            Ok(self.noted(sql, result)?.rows_affected())
        })
    }

    fn query<'a>(&'a mut self, sql: &'a str, params: Vec<SqlValue>) -> BoxFuture<'a, Result<Vec<Row>, StoreError>> {
        Box::pin(async move {
            let query = bind_all(sqlx::query(AssertSqlSafe(placeholders(sql))), params);
            let result = query.fetch_all(&mut *self.tx).await;
            read_rows(self.noted(sql, result)?)
        })
    }

    fn lock_admissions(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let result =
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ADMISSION_LOCK).execute(&mut *self.tx).await;
            self.noted("", result)?;
            Ok(())
        })
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn utc_day(&self, ms: &str) -> String {
        format!("to_char(to_timestamp({ms} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
    }

    fn utc_hour(&self, ms: &str) -> String {
        format!("to_char(to_timestamp({ms} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00')")
    }

    fn json_array_has(&self, array: &str, value: &str) -> String {
        format!("jsonb_exists(({array})::jsonb, {value})")
    }
}

/// A read transaction lent by the pool.
struct Reading(Option<Transaction>);

impl ReadTx for Reading {
    fn conn(&mut self) -> &mut Conn {
        self.0.as_mut().expect("a reading holds its transaction")
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        let tx = self.0.take();
        Box::pin(async move {
            if let Some(Transaction { tx, .. }) = tx {
                // Nothing to keep: ending the transaction frees the snapshot.
                let _ = tx.rollback().await;
            }
        })
    }
}

impl Backend for PostgresBackend {
    fn submit(&self, op: WriteOp) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let tx = match self.pool.begin().await {
                Ok(tx) => tx,
                Err(err) => {
                    // Dropping the op unrun tells its caller the write could not begin.
                    tracing::error!(error = %err, "cannot begin a write");
                    return;
                }
            };
            let mut tx = Transaction::new(tx);
            // A panicking write must not take its caller's task down with it:
            // it is rolled back and its caller hears the writer is unavailable.
            let Ok((ok, reply)) = AssertUnwindSafe(op.run(&mut tx)).catch_unwind().await else {
                tracing::error!("a write panicked; it is rolled back");
                let _ = tx.tx.rollback().await;
                return;
            };
            let outcome = if ok && tx.failed {
                let _ = tx.tx.rollback().await;
                Err(StoreError::Database("a statement of the write failed; nothing of it was kept".into()))
            } else if ok {
                tx.tx.commit().await.map_err(store_error)
            } else {
                let _ = tx.tx.rollback().await;
                // The op's own error is what its caller hears.
                Ok(())
            };
            reply.send(outcome);
        })
    }

    fn reader(&self) -> BoxFuture<'_, Result<Box<dyn ReadTx>, StoreError>> {
        Box::pin(async move {
            let tx =
                self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(store_error)?;
            Ok(Box::new(Reading(Some(Transaction::new(tx)))) as Box<dyn ReadTx>)
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn announce(&self) {
        self.announcer.pending.store(true, Ordering::Release);
        self.announcer.wake.notify_one();
    }

    fn on_announce(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        let pool = self.pool.clone();
        let alive = Arc::downgrade(&self.announcer);
        tokio::spawn(async move {
            while alive.strong_count() > 0 {
                // PgListener connects again by itself after an error; a
                // notification missed meanwhile costs a poll interval.
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot listen for other processes' jobs; polling");
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        continue;
                    }
                };
                if let Err(err) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %err, "cannot listen for other processes' jobs; polling");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    continue;
                }
                // Until the store is dropped.
                while alive.strong_count() > 0 {
                    let Ok(received) =
                        tokio::time::timeout(std::time::Duration::from_secs(1), listener.try_recv()).await
                    else {
                        continue;
                    };
                    match received {
                        Ok(Some(_)) => wake(),
                        // The connection was lost and is made again: something may have been missed.
                        Ok(None) => wake(),
                        Err(err) => {
                            tracing::warn!(error = %err, "listening for other processes' jobs failed");
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// The channel processes announce on.
const CHANNEL: &str = "provisio_jobs";

/// Sends announcements one at a time: those made while one is sent are one.
struct Announcer {
    pending: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Announcer {
    fn spawn(pool: sqlx::PgPool) -> Arc<Announcer> {
        let announcer = Arc::new(Announcer { pending: AtomicBool::new(false), wake: tokio::sync::Notify::new() });
        let sending = announcer.clone();
        tokio::spawn(async move {
            // Until the store is dropped (this task holds the last reference).
            while Arc::strong_count(&sending) > 1 {
                if sending.pending.swap(false, Ordering::AcqRel) {
                    if let Err(err) = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&pool).await {
                        tracing::debug!(error = %err, "an announcement was not sent; the others poll");
                    }
                    continue;
                }
                // An announcement made meanwhile left a permit: this returns at once.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sending.wake.notified()).await;
            }
        });
        announcer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_as_sqlite_numbers_them() {
        assert_eq!(placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(placeholders("a = ?2 AND b = ?1 AND c = ?"), "a = $2 AND b = $1 AND c = $3");
        assert_eq!(placeholders("x IN (?3, ?4) AND y = ?1"), "x IN ($3, $4) AND y = $1");
        assert_eq!(placeholders("note = 'why?' AND a = ?"), "note = 'why?' AND a = $1");
    }

    #[test]
    fn the_password_never_shows() {
        assert_eq!(without_password("postgres://app:s3cret@db:5432/provisio"), "postgres://app@db:5432/provisio");
        assert_eq!(without_password("postgres://db/provisio"), "postgres://db/provisio");
        for url in ["postgres://app:s3cret@db:5432/provisio", "postgres://app@db/provisio?password=s3cret"] {
            let connect: PgConnectOptions = url.parse().unwrap();
            assert_eq!(shown(&connect), "postgres://app@db:5432/provisio", "{url}");
        }
    }
}

/// Scratch databases for tests (this crate's, the conformance suite's,
/// and the engine's and binary's tests on PostgreSQL).
#[doc(hidden)]
pub mod testing {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The server store tests use: `PROVISIO_TEST_STORE_POSTGRES` (a URL
    /// to its `postgres` database, as a role that may create databases), or
    /// the machine's own on 127.0.0.1:5432.
    pub fn server() -> String {
        std::env::var("PROVISIO_TEST_STORE_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// Drops its database when dropped (closing whatever is still connected).
    pub struct Scratch {
        name: String,
        url: String,
    }

    impl Scratch {
        /// Everything the database holds, as `pg_dump` writes it (tests
        /// search it for what must never be stored).
        pub fn dump(&self) -> Vec<u8> {
            let output =
                std::process::Command::new("pg_dump").arg("--data-only").arg(&self.url).output().expect("pg_dump runs");
            assert!(output.status.success(), "pg_dump: {}", String::from_utf8_lossy(&output.stderr));
            output.stdout
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let name = self.name.clone();
            // Drop may run inside a runtime: the drop gets a thread and a runtime of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio_runtime();
                runtime.block_on(async move {
                    if let Ok(mut admin) = connect_admin().await {
                        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                    }
                });
            })
            .join();
        }
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
    }

    async fn connect_admin() -> Result<sqlx::PgConnection, sqlx::Error> {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&server()).await
    }

    /// A URL to a new, empty database on the test server, and its guard.
    pub async fn scratch() -> (String, Scratch) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "provisio_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos()
        );
        let mut admin =
            connect_admin().await.expect("the test PostgreSQL server answers (PROVISIO_TEST_STORE_POSTGRES)");
        drop_orphans(&mut admin).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("a scratch database is created");
        let base = server();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => format!("{base}/{name}"),
        };
        (url.clone(), Scratch { name, url })
    }

    /// Drops the scratch databases of test processes on this machine that
    /// are gone (killed before their guards ran): only names exactly as
    /// [`scratch`] makes them, with nobody connected.
    async fn drop_orphans(admin: &mut sqlx::PgConnection) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT d.datname FROM pg_database d WHERE d.datname LIKE 'provisio\\_test\\_%' \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        )
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
        for name in names {
            let parts: Vec<&str> = name.strip_prefix("provisio_test_").unwrap_or_default().split('_').collect();
            let ours = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let gone = ours && !std::path::Path::new(&format!("/proc/{}", parts[0])).exists();
            if gone {
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut *admin).await;
            }
        }
    }

    /// [`scratch`], as the store conformance suite takes it.
    pub async fn fresh() -> (String, Box<dyn std::any::Any + Send>) {
        let (url, guard) = scratch().await;
        (url, Box::new(guard))
    }
}
