//! The audit log: append-only, hash-chained per tenant, verifiable.
//!
//! Each event stores `prev_hash` (the hash of the tenant's previous event, or 64 zeros for the
//! first) and `hash = SHA-256(prev_hash || "\n" || canonical(event))`. Appenders lock the tenant's
//! row in `audit_chain_heads`, so concurrent writers — in one process or several — extend the
//! chain one after another and it never forks. [`AuditWriter`] batches concurrent appends into a
//! single transaction; state changes that must be atomic with their audit event append inside
//! their own transaction through [`append_in_tx`]. [`verify_chain`] walks a tenant's chain and
//! reports the first broken link; [`CheckpointSink`] publishes signed checkpoints outside the
//! database so a truncated or rewritten tail is found too.

mod checkpoint;
mod event;
mod verify;
mod writer;

pub use checkpoint::{Checkpoint, CheckpointCheck, CheckpointError, CheckpointSink};
pub use event::{AuditActor, AuditDecision, AuditEntry, AuditEvent, GENESIS_HASH};
pub use verify::{
    verify_chain, verify_chain_with_progress, ChainBreak, VerifyProgress, VerifyReport,
};
pub use writer::{append_in_tx, append_many_in_tx, AuditError, AuditWriter, SoonDone, SOON_LINGER};
