//! The value languages inside strings (durations, quantities, URIs, names,
//! versions) live in the `mlops-units` crate, which the providers read the
//! same values with; this re-export keeps `crate::units` paths.

pub use mlops_units::*;
