//! The mlops engine: from a checked configuration and the state to a plan,
//! and from a plan to applied state.
//!
//! - [`state`]: the state document, the local backend (snapshot + journal)
//!   and the remote one (objects created only if absent), the lock and the
//!   sealing of secrets. Only this module knows the format.
//! - [`convert`]: compiler values to provider-API JSON and back.
//! - [`plan`]: refresh, the planner hooked into evaluation, the [`plan::Plan`].
//! - [`apply`]: executes a plan's graph with bounded parallelism, durably.
//! - [`lineage`]: what produced what, from state (for a model, per version).
//! - [`redact`]: sensitive values out of lineage, drift, messages and logs.
//!
//! **Architecture invariant:** apply executes the plan and never evaluates
//! the configuration again; the residual expressions the plan carries (see
//! `mlops_compiler::residual`) are all it evaluates.

pub mod apply;
pub mod convert;
pub mod cost;
pub mod decide;
pub mod gates;
pub mod import;
pub mod lineage;
pub mod plan;
pub mod policy;
pub mod redact;
pub mod refresh;
pub mod resolve;
pub mod row_expression;
pub mod schedule;
pub mod select;
pub mod state;
