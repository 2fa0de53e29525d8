//! The group-commit writer: one thread owns the only writing connection.
//!
//! Callers send a closure; the thread drains its queue into a batch, runs the
//! batch in one `BEGIN IMMEDIATE` transaction with a savepoint per closure,
//! commits, then sends each caller its result. One fsync serves the whole
//! batch, which is what makes thousands of durable writes per second possible
//! on a disk that does about a thousand fsyncs per second.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{Conn, StoreError};

/// Called after the batch's commit with the commit's outcome.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A unit of work: runs its statements and answers whether they succeeded
/// (so the writer keeps or rolls back its savepoint) and how to reply.
type Op = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, (bool, Reply)> + Send>;

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Op>,
}

impl Writer {
    pub(crate) fn spawn(connection: Conn, max_batch: usize) -> Writer {
        let (queue, receiver) = mpsc::unbounded_channel();
        // Its own thread: SQLite calls block, and the writer must not wait
        // for a turn behind hundreds of HTTP tasks between batches.
        std::thread::Builder::new()
            .name("provisio-writer".into())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("writer runtime");
                runtime.block_on(run(connection, receiver, max_batch));
            })
            .expect("the writer thread starts");
        Writer { queue }
    }

    /// Whether the writer thread still takes work.
    pub(crate) fn is_alive(&self) -> bool {
        !self.queue.is_closed()
    }

    pub(crate) async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel::<Result<T, E>>();
        let op: Op = Box::new(move |connection: &mut Conn| {
            Box::pin(async move {
                let result = work(connection).await;
                let ok = result.is_ok();
                let reply: Reply = Box::new(move |commit: Result<(), StoreError>| {
                    let answer = match (commit, result) {
                        (Ok(()), result) => result,
                        (Err(_), Err(own)) => Err(own),
                        (Err(commit), Ok(_)) => Err(E::from(commit)),
                    };
                    let _ = sender.send(answer);
                });
                (ok, reply)
            })
        });
        self.queue.send(op).map_err(|_| E::from(StoreError::WriterUnavailable))?;
        // A dropped sender means the batch could not even begin.
        receiver.await.map_err(|_| E::from(StoreError::WriterUnavailable))?
    }
}

async fn run(connection: Conn, mut receiver: mpsc::UnboundedReceiver<Op>, max_batch: usize) {
    let mut connection = connection;
    let mut batch = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        if let Err(err) = connection.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %err, size = batch.len(), "cannot begin a write batch");
            batch.clear();
            continue;
        }
        let mut replies = Vec::with_capacity(batch.len());
        for op in batch.drain(..) {
            if let Err(err) = connection.execute_batch("SAVEPOINT op") {
                tracing::error!(error = %err, "cannot open a savepoint");
                continue;
            }
            // A panicking op must not take the writer down with it.
            let outcome = AssertUnwindSafe(op(&mut connection)).catch_unwind().await;
            let Ok((ok, reply)) = outcome else {
                tracing::error!("a write panicked; it is rolled back");
                let _ = connection.execute_batch("ROLLBACK TO op; RELEASE op");
                continue;
            };
            if connection.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O
                // error): nothing of this batch is on disk, so every caller
                // hears so, and the rest of the queue starts a new batch.
                tracing::error!("the write batch was rolled back by SQLite");
                replies.push(reply);
                for reply in replies.drain(..) {
                    reply(Err(StoreError::BatchAborted));
                }
                break;
            }
            let end = if ok { "RELEASE op" } else { "ROLLBACK TO op; RELEASE op" };
            if let Err(err) = connection.execute_batch(end) {
                tracing::error!(error = %err, "cannot close a savepoint");
            }
            replies.push(reply);
        }
        // Ops left unrun after an abort were dropped: their callers hear the writer is unavailable.
        if connection.is_autocommit() {
            continue;
        }
        let commit = connection.execute_batch("COMMIT").map_err(StoreError::from);
        if let Err(err) = &commit {
            tracing::error!(error = %err, "a write batch failed to commit");
            let _ = connection.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}
