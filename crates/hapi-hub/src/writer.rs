//! The single writer: every write runs on one thread, many writes share one COMMIT.
//!
//! Callers hand in a closure that runs inside the open transaction, within its own
//! SAVEPOINT, so a failing write is rolled back alone while the rest of the batch
//! commits. A caller's future resolves only after the COMMIT returned ("committed"
//! means durable in WAL per the configured `synchronous`), and the events the write
//! produced are published to live subscribers after that, in sequence order.
use std::sync::Arc;
use std::thread;

use hapi_protocol::HubEvent;
use hapi_store::rusqlite::{Connection, Transaction, TransactionBehavior};
use hapi_store::{Result, Store, StoreError};
use tokio::sync::{broadcast, mpsc, oneshot};

/// An event as sent to live subscribers, serialized once for all of them.
#[derive(Debug)]
pub struct LiveEvent {
    /// Global sequence number.
    pub seq: u64,
    /// The `HubEvent` as JSON.
    pub json: String,
}

type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A queued write: run in the open transaction, or told why its batch failed
/// before its turn came, so that every caller hears the real cause (a full
/// disk, say) rather than a bare "not committed".
type Job = Box<dyn for<'a> FnOnce(Turn<'a>) -> Ran + Send>;

/// What the writer hands a job.
enum Turn<'a> {
    /// Run now, inside this transaction.
    Run(&'a Transaction<'a>),
    /// The batch failed before this job ran; answer the caller with this cause.
    Skip(&'a StoreError),
}

/// What a job did with its turn.
enum Ran {
    /// It wrote; publish these events and call `Finish` once the COMMIT is known.
    Done(Vec<HubEvent>, Finish),
    /// It failed (and answered its caller); its savepoint is rolled back.
    Failed { disk_full: bool },
    /// It was skipped (and answered its caller).
    Skipped,
}

/// What a caller hears when the COMMIT of its write (or the batch it was in)
/// failed because of `cause`.
fn not_stored(cause: &StoreError) -> StoreError {
    if cause.is_disk_full() {
        StoreError::DiskFull
    } else {
        StoreError::CommitFailed(cause.to_string())
    }
}

/// Most writes one COMMIT takes; bounds the latency a large burst adds.
const MAX_BATCH: usize = 1024;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    live: broadcast::Sender<Arc<LiveEvent>>,
}

impl Writer {
    /// Starts the writer thread on its own connection.
    pub fn start(store: &Store) -> Result<Self> {
        let conn = store.writer()?;
        // Checkpoints run on their own thread (below), never inside a COMMIT: an
        // automatic checkpoint copies and fsyncs the WAL on the writer's path and
        // showed up as millisecond stalls every ~1,000 WAL pages.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = store.writer()?;
        let (jobs, rx) = mpsc::channel::<Job>(8192);
        let (live, _) = broadcast::channel(4096);
        let publish = live.clone();
        let (writer_alive, writer_gone) = std::sync::mpsc::channel::<()>();
        let spawn_failed = |e: std::io::Error| StoreError::CommitFailed(format!("cannot start writer thread: {e}"));
        thread::Builder::new()
            .name("hapi-writer".into())
            .spawn(move || {
                run(conn, rx, publish);
                drop(writer_alive);
            })
            .map_err(spawn_failed)?;
        thread::Builder::new()
            .name("hapi-checkpoint".into())
            .spawn(move || checkpoint(checkpoints, writer_gone))
            .map_err(spawn_failed)?;
        Ok(Writer { jobs, live })
    }

    /// Subscribes to events committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Runs `f` in the writer's transaction and resolves once it is committed.
    /// `f` returns its result and the events to publish.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<(T, Vec<HubEvent>)> + Send + 'static,
    {
        self.submit(f).await?.await
    }

    /// Queues `f` and returns once it is queued; the returned future resolves when
    /// it is committed. Writes queued one after another by one caller run in that
    /// order, which lets a caller pipeline many writes and still keep their order.
    pub async fn submit<T, F>(&self, f: F) -> Result<impl std::future::Future<Output = Result<T>> + Send + 'static>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<(T, Vec<HubEvent>)> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |turn| match turn {
            Turn::Skip(cause) => {
                let _ = reply.send(Err(not_stored(cause)));
                Ran::Skipped
            }
            Turn::Run(tx) => match f(tx) {
                Ok((value, events)) => {
                    let finish: Finish = Box::new(move |failed| {
                        let _ = reply.send(match failed {
                            None => Ok(value),
                            Some(e) => Err(not_stored(e)),
                        });
                    });
                    Ran::Done(events, finish)
                }
                Err(e) => {
                    let disk_full = e.is_disk_full();
                    let _ = reply.send(Err(if disk_full { StoreError::DiskFull } else { e }));
                    Ran::Failed { disk_full }
                }
            },
        });
        self.jobs.send(job).await.map_err(|_| not_committed())?;
        Ok(async move { answer.await.map_err(|_| not_committed())? })
    }
}

fn not_committed() -> StoreError {
    StoreError::CommitFailed("the write was not committed (writer stopped or its batch failed)".into())
}

/// How often the WAL is folded back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs a PASSIVE checkpoint every [`CHECKPOINT_EVERY`] until the writer stops.
/// PASSIVE never waits for (or blocks) the writer or readers; whatever it cannot
/// copy now is copied next time. A final one runs when the writer has stopped.
fn checkpoint(conn: Connection, writer_gone: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        let stop = !matches!(
            writer_gone.recv_timeout(CHECKPOINT_EVERY),
            Err(RecvTimeoutError::Timeout)
        );
        let mode = if stop { "TRUNCATE" } else { "PASSIVE" };
        if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
        }
        if stop {
            return;
        }
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, live: broadcast::Sender<Arc<LiveEvent>>) {
    let mut batch = std::collections::VecDeque::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push_back(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push_back(job),
                Err(_) => break,
            }
        }
        let mut done: Vec<(Vec<HubEvent>, Finish)> = Vec::with_capacity(batch.len());
        let mut disk_full = false;
        let outcome = match commit_batch(&mut conn, &mut batch, &mut done, &mut disk_full) {
            // On a full disk SQLite may roll the whole transaction back by
            // itself; what fails next ("no such savepoint") is only a symptom.
            Err(e) if disk_full && !e.is_disk_full() => Err(StoreError::DiskFull),
            other => other,
        };
        match outcome {
            Ok(()) => {
                for (events, finish) in done {
                    for event in events {
                        // Serialization of our own types cannot fail.
                        let json = serde_json::to_string(&event).unwrap_or_default();
                        let _ = live.send(Arc::new(LiveEvent { seq: event.seq, json }));
                    }
                    finish(None);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = done.len() + batch.len(), "group commit failed; writes rolled back");
                for (_, finish) in done {
                    finish(Some(&e));
                }
                for job in batch.drain(..) {
                    job(Turn::Skip(&e));
                }
            }
        }
    }
    tracing::debug!("writer stopped");
}

/// Runs the batch's jobs, each in its own savepoint, in one transaction and
/// commits it. Jobs still in `batch` on an error never ran; `disk_full` says
/// whether a job failed for lack of space.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut std::collections::VecDeque<Job>,
    done: &mut Vec<(Vec<HubEvent>, Finish)>,
    disk_full: &mut bool,
) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    while !batch.is_empty() {
        tx.execute_batch("SAVEPOINT job")?;
        let Some(job) = batch.pop_front() else { break };
        match job(Turn::Run(&tx)) {
            Ran::Done(events, finish) => {
                tx.execute_batch("RELEASE job")?;
                done.push((events, finish));
            }
            Ran::Failed { disk_full: full } => {
                *disk_full |= full;
                tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            }
            Ran::Skipped => tx.execute_batch("ROLLBACK TO job; RELEASE job")?,
        }
    }
    tx.commit()?;
    Ok(())
}
