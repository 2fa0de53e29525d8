//! Provisio's store boundary: the models, the statements, and what a
//! backend must provide to run them.
//!
//! Every statement lives in this crate's family modules ([`jobs`],
//! [`services`], ...), written once in the SQL both backends speak and run
//! on a [`Conn`], a transaction handle. A backend crate implements
//! [`Backend`] (how writes and reads get a transaction, and a health
//! check) and [`Tx`] (how a statement is bound and run, how the few things
//! SQL does not standardise are spelt, and the queue's claim lock):
//!
//! - `provisio-store-sqlite`, the embedded default: one file, a
//!   group-committing writer thread (one fsync per batch of writes);
//! - `provisio-store-postgres`: a pool of connections, a transaction per
//!   write, for many processes on many machines.
//!
//! The rest of Provisio sees [`Store`], the row types in [`models`] and the
//! functions of each family module; the store conformance suite
//! (`provisio-store-conformance`) proves both backends keep the same
//! guarantees.

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
pub mod sql;
pub mod staff;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use sql::{Params, Row, SqlValue};

/// A transaction, as the family functions take it.
pub type Conn = dyn Tx;

/// A transaction on one backend: runs statements and spells what SQL does
/// not standardise.
pub trait Tx: Send {
    /// Runs a statement; answers the rows changed.
    fn execute<'a>(&'a mut self, sql: &'a str, params: Vec<SqlValue>) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// Runs a query; answers its rows.
    fn query<'a>(&'a mut self, sql: &'a str, params: Vec<SqlValue>) -> BoxFuture<'a, Result<Vec<Row>, StoreError>>;
    /// Takes the admission lock until the transaction ends. Claims of
    /// jobs, on-demand calls, imports and orders on a capacity-limited
    /// configuration judge limits (one running job per service, a
    /// configuration's concurrency, rate and capacity, who holds a name)
    /// from what they read, so no two may read the same. A no-op where one
    /// writer already serialises every write.
    fn lock_admissions(&mut self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// What ends a `SELECT` that locks the rows it reads until the
    /// transaction ends (` FOR UPDATE`; nothing where one writer already
    /// serialises every write).
    fn for_update(&self) -> &'static str;
    /// The UTC day (`YYYY-MM-DD`) of a Unix-milliseconds expression.
    fn utc_day(&self, ms: &str) -> String;
    /// The UTC hour (`YYYY-MM-DD HH:00`) of a Unix-milliseconds expression.
    fn utc_hour(&self, ms: &str) -> String;
    /// Whether the JSON array of strings in `array` holds the text `value`.
    fn json_array_has(&self, array: &str, value: &str) -> String;
}

/// What can go wrong in the store, whichever the backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A UNIQUE (or primary key) constraint refused the write.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// The database is busy: a lock or a serialization conflict the
    /// write may be retried after.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// The database could not be opened or migrated.
    #[error("cannot open the database {url}: {reason}")]
    Open {
        /// The URL given (without its password).
        url: String,
        /// Why.
        reason: String,
    },
    /// A stored value does not decode.
    #[error("corrupt stored document: {0}")]
    Corrupt(String),
    /// The writer stopped (the process is shutting down or the batch could not begin).
    #[error("the store's writer is unavailable")]
    WriterUnavailable,
    /// The database rolled back the whole batch this write was in (disk full, I/O error).
    #[error("the write was rolled back with its batch")]
    BatchAborted,
}

impl StoreError {
    /// Whether the error is a UNIQUE (or primary key) constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Unique(_))
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path` (created if missing) or `postgres://...`.
    pub url: String,
    /// Most writes committed together (SQLite's group commit).
    pub max_batch: usize,
    /// Connections kept open: SQLite's idle readers, PostgreSQL's pool.
    pub connections: usize,
}

impl StoreOptions {
    /// Defaults for a URL.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions { url: url.into(), max_batch: 512, connections: 8 }
    }
}

/// Told once the write's transaction has ended: whether it committed.
pub struct Reply(Box<dyn FnOnce(Result<(), StoreError>) + Send>);

impl Reply {
    /// Answers the caller with the commit's outcome.
    pub fn send(self, commit: Result<(), StoreError>) {
        (self.0)(commit)
    }
}

/// One caller's write: runs its statements on a transaction and answers
/// whether they succeeded (so the backend keeps or rolls them back) and
/// how to reply once the outcome is durable.
pub struct WriteOp(Box<WriteWork>);

/// A write's statements, type-erased so one backend queue holds every caller's.
type WriteWork = dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, (bool, Reply)> + Send;

impl WriteOp {
    /// Runs the write's statements.
    pub fn run(self, conn: &mut Conn) -> BoxFuture<'_, (bool, Reply)> {
        (self.0)(conn)
    }
}

/// A read transaction lent by a backend.
pub trait ReadTx: Send {
    /// The transaction.
    fn conn(&mut self) -> &mut Conn;
    /// Ends the transaction and gives the connection back.
    fn finish(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A store backend.
pub trait Backend: Send + Sync + 'static {
    /// Runs a write in a transaction of its own or in a batch; the op's
    /// reply is sent once the outcome is durable (dropping the op unrun
    /// tells its caller the writer is unavailable).
    fn submit(&self, op: WriteOp) -> BoxFuture<'_, ()>;
    /// A read-only transaction over one consistent snapshot.
    fn reader(&self) -> BoxFuture<'_, Result<Box<dyn ReadTx>, StoreError>>;
    /// Checks, without writing, that the database answers and writes can go on.
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Where the store is, for logs (no password).
    fn describe(&self) -> String;
    /// Tells every other process sharing the store that jobs may be ready
    /// or room freed (a no-op where nothing tells processes apart: they
    /// poll). Cheap and never waits: announcements made while one is being
    /// sent are sent as one.
    fn announce(&self);
    /// Calls `wake` whenever another process announces.
    fn on_announce(&self, wake: Arc<dyn Fn() + Send + Sync>);
}

/// The store: a backend behind the one API the engine uses.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend.describe()).finish_non_exhaustive()
    }
}

impl Store {
    /// The store over a backend.
    pub fn new(backend: impl Backend) -> Store {
        Store { backend: Arc::new(backend) }
    }

    /// Runs `work` in a write transaction; answers once it is committed
    /// (durable). If `work` fails, its changes are rolled back and nothing
    /// else is affected.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let op = WriteOp(Box::new(move |conn: &mut Conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let ok = result.is_ok();
                let reply = Reply(Box::new(move |commit: Result<(), StoreError>| {
                    let answer = match (commit, result) {
                        (Ok(()), result) => result,
                        (Err(_), Err(own)) => Err(own),
                        (Err(commit), Ok(_)) => Err(E::from(commit)),
                    };
                    let _ = sender.send(answer);
                }));
                (ok, reply)
            })
        }));
        self.backend.submit(op).await;
        // A dropped sender means the write could not even begin.
        receiver.await.map_err(|_| E::from(StoreError::WriterUnavailable))?
    }

    /// Runs `work` in one read transaction (a consistent snapshot: a
    /// service and its jobs read in two statements never straddle a commit).
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>>,
    {
        let mut reader = self.backend.reader().await?;
        let result = work(reader.conn()).await;
        reader.finish().await;
        result
    }

    /// Checks, without writing, that the database answers a read and that
    /// writes can go on (for health checks: a probe must not queue behind
    /// the writer's work).
    pub async fn check(&self) -> Result<(), StoreError> {
        self.backend.check().await
    }

    /// Where the store is, for logs.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// See [`Backend::announce`].
    pub fn announce(&self) {
        self.backend.announce()
    }

    /// See [`Backend::on_announce`].
    pub fn on_announce(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.backend.on_announce(wake)
    }
}

/// Runs a statement; answers the rows changed.
pub(crate) async fn exec(conn: &mut Conn, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    let changed = conn.execute(sql, params.values()).await?;
    Ok(usize::try_from(changed).unwrap_or(usize::MAX))
}

/// Runs a statement that may be refused (a UNIQUE violation the caller
/// answers and goes on from) inside a savepoint, so a refusal leaves the
/// rest of the transaction usable: PostgreSQL aborts a whole transaction
/// at its first error otherwise.
pub(crate) async fn exec_guarded(conn: &mut Conn, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    conn.execute("SAVEPOINT guarded", Vec::new()).await?;
    match exec(conn, sql, params).await {
        Ok(changed) => {
            conn.execute("RELEASE guarded", Vec::new()).await?;
            Ok(changed)
        }
        Err(err) => {
            conn.execute("ROLLBACK TO guarded", Vec::new()).await?;
            conn.execute("RELEASE guarded", Vec::new()).await?;
            Err(err)
        }
    }
}

/// One row, mapped.
pub(crate) async fn one<T>(
    conn: &mut Conn,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    maybe(conn, sql, params, map).await?.ok_or_else(|| StoreError::Database("the query returned no rows".into()))
}

/// At most one row, mapped.
pub(crate) async fn maybe<T>(
    conn: &mut Conn,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let rows = conn.query(sql, params.values()).await?;
    rows.first().map(map).transpose()
}

/// Every row, mapped.
pub(crate) async fn all<T>(
    conn: &mut Conn,
    sql: &str,
    params: impl Params,
    map: impl FnMut(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = conn.query(sql, params.values()).await?;
    rows.iter().map(map).collect()
}
