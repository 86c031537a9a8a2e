#!/usr/bin/env bash
# The project's test command (README: "Run the tests"); .ci/run calls exactly this.
# On a fresh machine it needs only the Rust toolchain. As providers that talk to
# real servers land, this script installs and starts them here, into the
# git-ignored .cache/ folder, and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format"
cargo fmt --all -- --check

echo "== build (warnings are errors)"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo build --workspace --all-targets --locked

echo "== tests"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo test --workspace --locked
