//! The `mlops` command line: argument parsing, rendering and exit codes.
//! Everything else lives in the `mlops-compiler` crate; only this crate knows
//! about terminals.

mod cli;
mod schema_text;

fn main() {
    std::process::exit(cli::run());
}
