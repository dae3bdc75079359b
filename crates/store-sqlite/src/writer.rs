//! Group commit: one thread owns the writing connection and commits every write that
//! is waiting when it starts a transaction in one `COMMIT`, so one fsync acknowledges
//! many writes.
//!
//! Why: with `synchronous=FULL` a commit costs one fsync (about 3 ms on the disks here),
//! and a writer that commits each write on its own caps the whole server at a few
//! hundred writes a second whatever the CPU. Callers also used to hold their runtime
//! thread for the fsync; now they wait on a channel, so a runtime thread serves other
//! requests while its writes are being made durable.
//!
//! Each write runs inside its own `SAVEPOINT`, in arrival order, so it sees every
//! earlier write of the batch exactly as if it had been committed on its own: a
//! compare-and-swap or a code redemption decides on the latest state. A write that
//! fails is rolled back to its savepoint and gets its own error; the others go on.
//! No result is handed back before the `COMMIT` that contains it has returned, and if
//! that `COMMIT` (or the `BEGIN IMMEDIATE` before it) fails, every write of the batch
//! gets the error and none of them is acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use futures_channel::oneshot;
use latchkey_store::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::codec::store_error;

/// The most writes one commit takes. Bounded so one batch cannot hold the write lock
/// (and its waiting callers) for long; at about 20 µs of SQL per write this is a few
/// milliseconds, the order of the fsync itself.
const MAX_BATCH: usize = 256;

/// One write waiting in the queue.
trait Pending: Send {
    /// Runs the write inside the batch's transaction; `false` if it failed.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Hands the caller its result once the batch's fate is known.
    fn finish(self: Box<Self>, committed: &Result<(), StoreError>);
}

struct Write<F, T> {
    context: &'static str,
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Pending for Write<F, T>
where
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send,
    T: Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else { return false };
        let result = work(tx).map_err(|e| store_error(self.context, e));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: &Result<(), StoreError>) {
        let answer = match (self.result, committed) {
            // A write's own failure is reported as itself, whatever happened to the batch.
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(batch)) => Err(batch.clone()),
            (None, Ok(())) => Err(StoreError::Unavailable(format!("{}: the write did not run", self.context))),
        };
        // The caller may have stopped waiting (its request was dropped); the write
        // itself is committed or not either way.
        let _ = self.reply.send(answer);
    }
}

/// The queue in front of the writer thread.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<thread::JoinHandle<()>>,
    /// Transactions the thread has finished (committed or not), for tests and metrics.
    batches: Arc<AtomicU64>,
}

impl Writer {
    /// Moves `conn` to a new writer thread.
    pub(crate) fn start(conn: Connection) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let batches = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&batches);
        let thread = thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || run_batches(conn, &jobs, &counted))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the sqlite writer thread: {e}")))?;
        Ok(Self { queue: Some(queue), thread: Some(thread), batches })
    }

    /// How many transactions the writer has finished.
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Queues `work` for the next batch and waits for its commit.
    pub(crate) async fn write<T, F>(&self, context: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Write { context, work: Some(work), result: None, reply });
        let gone = || StoreError::Unavailable(format!("{context}: the sqlite writer has stopped"));
        self.queue.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the batch in hand; joining it closes
        // the connection before the store is gone, so the file can be reopened at once.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_batches(mut conn: Connection, jobs: &mpsc::Receiver<Box<dyn Pending>>, batches: &AtomicU64) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit(&mut conn, &mut batch);
        batches.fetch_add(1, Ordering::Relaxed);
        for job in batch {
            job.finish(&committed);
        }
    }
}

/// Runs every write of `batch` in one `BEGIN IMMEDIATE` transaction and commits it.
///
/// Immediate, not deferred: a deferred transaction that reads first and then writes
/// fails with `SQLITE_BUSY_SNAPSHOT`, without waiting, whenever another process
/// committed in between. Taking the write lock up front makes every read-then-write
/// (compare-and-swap, redemption, counting revocations) see the latest commit and wait
/// politely for other processes.
fn commit(conn: &mut Connection, batch: &mut [Box<dyn Pending>]) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| store_error("starting a write", e))?;
    let step = |e| store_error("isolating a write", e);
    for job in batch.iter_mut() {
        tx.execute_batch("SAVEPOINT one_write").map_err(step)?;
        // A write that panics must not end the thread (every later write would then be
        // refused): its batch is rolled back and answered as unavailable instead.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&tx)))
            .map_err(|_| StoreError::Unavailable("a write failed unexpectedly; its batch was rolled back".into()))?;
        if ran {
            tx.execute_batch("RELEASE one_write").map_err(step)?;
        } else {
            // If SQLite already rolled the whole transaction back (some I/O errors and
            // SQLITE_FULL do), the savepoint is gone, this fails, and so does the batch.
            tx.execute_batch("ROLLBACK TO one_write; RELEASE one_write").map_err(step)?;
        }
    }
    tx.commit().map_err(|e| store_error("committing", e))
}
