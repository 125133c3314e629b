//! The Carapulse gateway: the REST API (plans, approvals, executions, audit), authentication,
//! tenancy, rate limiting and metrics, in front of the core crate.
//!
//! [`Application::build`] wires a [`carapulse_core::config::Config`] into a running server bound
//! to its port (port 0 in tests); [`Application::run_until_stopped`] serves until the shared
//! shutdown token fires.

pub use carapulse_http::{error, extract};
pub mod audit_throttle;
pub mod background;
pub mod blast;
pub mod context;
pub mod decisions;
pub mod events;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod planning;
pub mod policy_store;
pub mod rate_limit;
pub mod replay;
pub mod replay_record;
pub mod revisions;
pub mod routes;
pub mod startup;
pub mod state;
pub mod ui;
pub mod whatif;
pub mod workspace;

pub use startup::{Application, StartupError};
