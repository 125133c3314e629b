//! The orchestrator: a Temporal worker that runs a plan through the plan-execute-verify loop.
//!
//! The loop's logic lives in `carapulse_core::pev`; this crate is the thin Temporal glue: the
//! workflow ([`workflow::PlanExecutionWorkflow`]) asks the machine what to run and runs each step
//! as an activity; the activities ([`activities::Activities`]) do all I/O — Postgres for plans,
//! step progress, tool calls and evidence, and the tool router for the tool calls themselves.
//! [`dispatcher::TemporalDispatcher`] is how the gateway starts and cancels workflows.

pub mod activities;
pub mod dispatcher;
pub mod grants;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod router_client;
pub mod telemetry;
pub mod worker;
pub mod workflow;
