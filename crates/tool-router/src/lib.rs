//! The tool router: the only component that starts tool processes.
//!
//! `POST /v1/tools/execute` validates the input against the catalogue, authorises write actions
//! with the core policy, then runs the action CLI-first through sandbox-exec (argv only,
//! scrubbed environment, limits, egress allow-list) and falls back to the tool's HTTP API when
//! the CLI is missing. Output is redacted before it is returned, logged or stored; large output
//! goes to the object store and the response carries a reference. Lines are streamed live over
//! SSE (`GET /v1/tools/logs?tool_call_id=`).

pub mod auth;
pub mod executor;
pub mod helm_paths;
pub mod logs;
pub mod mask;
pub mod metrics;
pub mod resources;
pub mod routes;
pub mod startup;
pub mod state;
pub mod values;

pub use startup::{Application, StartupError};
