//! The mlops compiler.
//!
//! Source text goes through these stages, each returning its result together
//! with every diagnostic it found (no stage stops at the first error):
//!
//! 1. [`loader`]: read the `*.mlops.hcl` files of a directory.
//! 2. [`syntax`]: parse them (hcl-edit, spans kept) into [`ast`].
//! 3. [`check`]: lower blocks to declarations, resolve names, order them by
//!    dependency, evaluate every expression with unknowns allowed, and check
//!    the results against the resource schemas of [`schema`].
//!
//! [`format`] is the canonical formatter behind `mlops fmt`.
//!
//! Nothing in this crate does network IO or calls a provider.

/// Addresses are one of the value languages of `mlops-units`.
pub use mlops_units::address;
pub mod ast;
pub mod body;
pub mod check;
pub mod diagnostic;
pub mod eval;
pub mod files;
pub mod format;
pub mod functions;
pub mod lexer;
pub mod limits;
pub mod loader;
pub mod lock;
mod parallel;
pub mod policy;
pub mod residual;
pub mod rules;
pub mod schema;
pub mod source;
pub mod suggest;
pub mod syntax;
pub mod types;
pub mod units;
pub mod value;
pub mod value_map;
