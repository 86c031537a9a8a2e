//! The `mlops` command line: argument parsing, rendering and exit codes.
//! The compiler, the engine and the providers live in their own crates; only
//! this crate knows about terminals.

mod cli;
mod commands;
mod plan_render;
mod schema_text;

fn main() {
    std::process::exit(cli::run());
}
