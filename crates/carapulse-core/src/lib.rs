//! Carapulse core: everything the six binaries share.
//!
//! Dependencies flow one way — binaries depend on this crate, and inside it `model` depends on
//! nothing else. See ARCHITECTURE.md for the code map.

pub mod audit;
pub mod auth;
mod batching;
pub mod blast_radius;
pub mod canonical;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod go_import;
pub mod grant;
pub mod integrity;
pub mod linear;
pub mod model;
pub mod objects;
pub mod pev;
pub mod plan_diff;
pub mod planner;
pub mod policy;
pub mod process_metrics;
pub mod redact;
pub mod schedule;
pub mod sse;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod verify;
pub mod webhooks;
pub mod workflows;
pub mod workspace;

#[cfg(feature = "testing")]
pub mod testing;
