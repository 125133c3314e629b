//! Appending to the chain: directly inside a caller's transaction, or batched through a writer
//! task that turns concurrent appends into one transaction.

use std::collections::BTreeMap;

use chrono::Utc;
use sqlx::{PgConnection, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

use super::{AuditEntry, AuditEvent, GENESIS_HASH};

/// Largest number of events written in one batch transaction.
const MAX_BATCH: usize = 512;

/// How long an event appended "soon" may wait for others to share its transaction (see
/// [`AuditWriter::append_soon`]).
pub const SOON_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Events queued "soon" and not yet handed to the writer, at most.
const SOON_QUEUE: usize = 4096;

/// Told whether an event appended "soon" was committed.
pub type SoonDone = Box<dyn FnOnce(bool) + Send + 'static>;

/// Appending failed; the event is not in the log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit writer stopped")]
    WriterStopped,
}

/// Locks the chain heads of every tenant involved (in tenant order, so batches cannot
/// deadlock), chains the entries and inserts them: three statements for any number of entries
/// and tenants. Runs inside the caller's transaction.
async fn append_all(
    conn: &mut PgConnection,
    entries: Vec<AuditEntry>,
) -> Result<Vec<AuditEvent>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_tenant: BTreeMap<String, Vec<(usize, AuditEntry)>> = BTreeMap::new();
    let count = entries.len();
    for (i, entry) in entries.into_iter().enumerate() {
        let entry = entry.into_storable();
        by_tenant
            .entry(entry.tenant_id.to_string())
            .or_default()
            .push((i, entry));
    }
    let tenants: Vec<String> = by_tenant.keys().cloned().collect();
    let mut heads = crate::store::lock_audit_heads(conn, &tenants, GENESIS_HASH).await?;
    let mut out: Vec<Option<AuditEvent>> = vec![None; count];
    let mut events = Vec::with_capacity(count);
    let mut slots = Vec::with_capacity(count);
    let mut new_heads = Vec::with_capacity(tenants.len());
    let now = Utc::now();
    for (tenant, items) in by_tenant {
        let (mut seq, mut prev) = heads.remove(&tenant).ok_or_else(|| {
            StoreError::Corrupt(format!("no audit chain head locked for {tenant}"))
        })?;
        for (slot, entry) in items {
            seq += 1;
            let event = AuditEvent::chain(entry, seq, &prev, now);
            prev = event.hash.clone();
            events.push(event);
            slots.push(slot);
        }
        new_heads.push((tenant, seq, prev));
    }
    crate::store::insert_audit_events(conn, &events).await?;
    crate::store::update_audit_heads(conn, &new_heads).await?;
    for (slot, event) in slots.into_iter().zip(events) {
        out[slot] = Some(event);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Appends one event inside `tx`; it commits or rolls back with the caller's change.
pub async fn append_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    entry: AuditEntry,
) -> Result<AuditEvent, StoreError> {
    let mut events = append_all(tx, vec![entry]).await?;
    events
        .pop()
        .ok_or_else(|| StoreError::Corrupt("audit append returned nothing".into()))
}

/// Appends events inside `tx` (one chain-head lock per tenant, in tenant order); they commit or
/// roll back with the caller's changes. Returns them in input order.
pub async fn append_many_in_tx(
    tx: &mut Transaction<'_, Postgres>,
    entries: Vec<AuditEntry>,
) -> Result<Vec<AuditEvent>, StoreError> {
    append_all(tx, entries).await
}

struct Request {
    entry: AuditEntry,
    reply: oneshot::Sender<Result<AuditEvent, String>>,
}

/// Handle to the batching writer task; clone freely. The task stops when every handle is gone.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    lane: Lane,
    soon: mpsc::Sender<Soon>,
}

/// What the "soon" lane carries.
enum Soon {
    Entry(Box<AuditEntry>, SoonDone),
    /// Answered once everything queued before it is committed (or failed).
    Flush(oneshot::Sender<()>),
}

/// The writer's own lane, without the "soon" queue (which the lane itself drains).
#[derive(Debug, Clone)]
struct Lane {
    sender: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("action", &self.entry.action)
            .finish()
    }
}

impl AuditWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(4096);
        tokio::spawn(run_writer(store, receiver));
        let (soon, soon_queue) = mpsc::channel(SOON_QUEUE);
        tokio::spawn(run_soon(
            Lane {
                sender: sender.clone(),
            },
            soon_queue,
        ));
        Self {
            lane: Lane { sender },
            soon,
        }
    }

    /// Appends one event, waiting until it is committed.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditEvent, AuditError> {
        self.lane.append(entry).await
    }

    /// Appends one event without waiting for it, for a caller whose answer does not depend on
    /// it (a read-only question such as a policy what-if): the event waits up to
    /// [`SOON_LINGER`] for others and they commit in one transaction, instead of one commit per
    /// request competing with the next requests for the database. `done` hears whether it was
    /// committed. The entry comes back when the queue is full (the caller then appends it the
    /// usual way).
    pub fn append_soon(&self, entry: AuditEntry, done: SoonDone) -> Result<(), Box<AuditEntry>> {
        match self.soon.try_reserve() {
            Ok(slot) => {
                slot.send(Soon::Entry(Box::new(entry), done));
                Ok(())
            }
            Err(_) => Err(Box::new(entry)),
        }
    }

    /// Waits until every event appended "soon" before this call is committed (or has failed):
    /// a service shutting down calls it before it closes the database pool.
    pub async fn flush_soon(&self) {
        let (reply, wait) = oneshot::channel();
        if self.soon.send(Soon::Flush(reply)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Lane {
    async fn append(&self, entry: AuditEntry) -> Result<AuditEvent, AuditError> {
        let (reply, wait) = oneshot::channel();
        self.sender
            .send(Request { entry, reply })
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        match wait.await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(message)) => Err(AuditError::Store(StoreError::Unavailable(message))),
            Err(_) => Err(AuditError::WriterStopped),
        }
    }
}

/// The "soon" lane: lingers after the first event, then hands everything it holds to the writer
/// at once, so the writer takes them as one batch (one transaction, one chain-head lock).
async fn run_soon(lane: Lane, mut queue: mpsc::Receiver<Soon>) {
    while let Some(batch) =
        crate::batching::next_batch_lingering(&mut queue, MAX_BATCH, SOON_LINGER).await
    {
        let mut entries = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for item in batch {
            match item {
                Soon::Entry(entry, done) => entries.push((entry, done)),
                Soon::Flush(reply) => flushes.push(reply),
            }
        }
        futures::future::join_all(entries.into_iter().map(|(entry, done)| {
            let lane = lane.clone();
            async move {
                let action = entry.action.clone();
                let result = lane.append(*entry).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, %action, "audit append failed");
                }
                done(result.is_ok());
            }
        }))
        .await;
        for reply in flushes {
            let _ = reply.send(());
        }
    }
}

async fn run_writer(store: Store, mut receiver: mpsc::Receiver<Request>) {
    while let Some(batch) = crate::batching::next_batch(&mut receiver, MAX_BATCH, |_| false).await {
        let (entries, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|r| (r.entry, r.reply)).unzip();
        match write_batch(&store, entries.clone()).await {
            Ok(events) => {
                for (reply, event) in replies.into_iter().zip(events) {
                    let _ = reply.send(Ok(event));
                }
            }
            Err(err) if entries.len() > 1 => {
                // One entry must never cost the others theirs: write them one by one, so only
                // the entry Postgres refuses fails (and its caller hears why).
                tracing::warn!(error = %err, entries = entries.len(), "audit batch failed; retrying entry by entry");
                for (entry, reply) in entries.into_iter().zip(replies) {
                    let action = entry.action.clone();
                    let result = write_batch(&store, vec![entry])
                        .await
                        .and_then(|mut events| {
                            events.pop().ok_or_else(|| {
                                StoreError::Corrupt("audit append returned nothing".into())
                            })
                        });
                    if let Err(e) = &result {
                        tracing::error!(error = %e, %action, "audit append failed");
                    }
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "audit append failed");
                for reply in replies {
                    let _ = reply.send(Err(err.to_string()));
                }
            }
        }
    }
}

async fn write_batch(
    store: &Store,
    entries: Vec<AuditEntry>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut tx = store.pool().begin().await?;
    let events = append_all(&mut tx, entries).await?;
    tx.commit().await?;
    Ok(events)
}
