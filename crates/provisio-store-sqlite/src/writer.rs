//! The group-commit writer: one thread owns the only writing connection.
//!
//! Callers send a closure; the thread drains its queue into a batch, runs the
//! batch in one `BEGIN IMMEDIATE` transaction with a savepoint per closure,
//! commits, then sends each caller its result. One fsync serves the whole
//! batch, which is what makes thousands of durable writes per second possible
//! on a disk that does about a thousand fsyncs per second.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use provisio_store::{StoreError, WriteOp};
use tokio::sync::mpsc;

use crate::Connection;

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<WriteOp>,
}

impl Writer {
    pub(crate) fn spawn(connection: Connection, max_batch: usize) -> Writer {
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

    /// Queues a write for the next batch (a stopped writer drops it, which
    /// tells its caller the writer is unavailable).
    pub(crate) fn submit(&self, op: WriteOp) {
        let _ = self.queue.send(op);
    }
}

async fn run(connection: Connection, mut receiver: mpsc::UnboundedReceiver<WriteOp>, max_batch: usize) {
    let mut connection = connection;
    let mut batch = Vec::with_capacity(max_batch);
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        if let Err(err) = connection.0.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %err, size = batch.len(), "cannot begin a write batch");
            batch.clear();
            continue;
        }
        let mut replies = Vec::with_capacity(batch.len());
        for op in batch.drain(..) {
            if let Err(err) = connection.0.execute_batch("SAVEPOINT op") {
                tracing::error!(error = %err, "cannot open a savepoint");
                continue;
            }
            // A panicking op must not take the writer down with it.
            let outcome = AssertUnwindSafe(op.run(&mut connection)).catch_unwind().await;
            let Ok((ok, reply)) = outcome else {
                tracing::error!("a write panicked; it is rolled back");
                let _ = connection.0.execute_batch("ROLLBACK TO op; RELEASE op");
                continue;
            };
            if connection.0.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O
                // error): nothing of this batch is on disk, so every caller
                // hears so, and the rest of the queue starts a new batch.
                tracing::error!("the write batch was rolled back by SQLite");
                replies.push(reply);
                for reply in replies.drain(..) {
                    reply.send(Err(StoreError::BatchAborted));
                }
                break;
            }
            let end = if ok { "RELEASE op" } else { "ROLLBACK TO op; RELEASE op" };
            if let Err(err) = connection.0.execute_batch(end) {
                tracing::error!(error = %err, "cannot close a savepoint");
            }
            replies.push(reply);
        }
        // Ops left unrun after an abort were dropped: their callers hear the writer is unavailable.
        if connection.0.is_autocommit() {
            continue;
        }
        let commit = connection.batch("COMMIT");
        if let Err(err) = &commit {
            tracing::error!(error = %err, "a write batch failed to commit");
            let _ = connection.0.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply.send(commit.clone());
        }
    }
}
