#!/usr/bin/env bash
# The project's test command (README: "Run the tests"); .ci/run calls exactly this.
# On a fresh machine it needs the Rust toolchain and python3. It installs the
# servers the tests need into the git-ignored .cache/ folder (reused when
# present), starts them on free loopback ports, runs every test, and stops
# the servers on exit, also when tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
cache="$root/.cache"
mkdir -p "$cache"

pids=()
cleanup() {
    for pid in "${pids[@]:-}"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_http() {
    local url="$1" name="$2"
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request, sys; urllib.request.urlopen('$url', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "error: $name did not start at $url" >&2
    return 1
}

echo "== servers"
# moto: the full S3 surface (versioning, tagging, lifecycle), in memory.
if [ ! -x "$cache/venv/bin/moto_server" ]; then
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install --quiet 'moto[server]==5.1.22'
fi
moto_port="$(free_port)"
"$cache/venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$cache/moto.log" 2>&1 &
pids+=("$!")
wait_for_http "http://127.0.0.1:$moto_port/" "moto server"
export MLOPS_TEST_S3_ENDPOINT="http://127.0.0.1:$moto_port"
echo "moto server on $MLOPS_TEST_S3_ENDPOINT"

echo "== format"
cargo fmt --all -- --check

echo "== build (warnings are errors)"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo build --workspace --all-targets --locked

echo "== tests"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo test --workspace --locked
