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
groups=()
cleanup() {
    # Servers that fork workers (mlflow's gunicorn) run in their own process
    # group, and the whole group is stopped.
    for group in "${groups[@]:-}"; do
        if [ -n "$group" ]; then
            kill -- "-$group" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]:-}"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "${scratch:-}"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
    local port="$1" name="$2"
    for _ in $(seq 1 100); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1).close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "error: $name did not start on port $port" >&2
    return 1
}

# pip's wheel cache would keep a second copy of every download (hundreds of
# MB for mlflow and the benchmark peers) on machines that can be short of disk.
export PIP_NO_CACHE_DIR=1
free_kib="$(df -Pk "$root" | awk 'NR == 2 { print $4 }')"
echo "== disk: $((free_kib / 1024)) MiB free at $root"
if [ "$free_kib" -lt $((6 * 1024 * 1024)) ]; then
    echo "warning: the servers, the test build and the benchmark peers take about 6 GiB here; expect 'No space left on device'" >&2
fi

echo "== servers"
# moto: the full S3 surface (versioning, tagging, lifecycle), in memory.
if [ ! -x "$cache/venv/bin/moto_server" ]; then
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install --quiet 'moto[server]==5.1.22'
fi
moto_port="$(free_port)"
"$cache/venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$cache/moto.log" 2>&1 &
pids+=("$!")
wait_for_port "$moto_port" "moto server"
export MLOPS_TEST_S3_ENDPOINT="http://127.0.0.1:$moto_port"
# Tests that freeze a server (SIGSTOP) start their own, from these programs.
export MLOPS_TEST_MOTO_SERVER="$cache/venv/bin/moto_server"
echo "moto server on $MLOPS_TEST_S3_ENDPOINT"

# s3s-fs: checks SigV4 signatures (a wrong secret is refused); core S3 only.
if [ ! -x "$cache/s3s/bin/s3s-fs" ]; then
    cargo install s3s-fs@0.14.1 --features binary --locked --root "$cache/s3s"
fi
s3s_port="$(free_port)"
rm -rf "$cache/s3s-data" && mkdir -p "$cache/s3s-data"
export MLOPS_TEST_S3S_ACCESS_KEY="mlops-test-key"
export MLOPS_TEST_S3S_SECRET_KEY="mlops-test-secret"
"$cache/s3s/bin/s3s-fs" --host 127.0.0.1 --port "$s3s_port" \
    --access-key "$MLOPS_TEST_S3S_ACCESS_KEY" --secret-key "$MLOPS_TEST_S3S_SECRET_KEY" "$cache/s3s-data" > "$cache/s3s.log" 2>&1 &
pids+=("$!")
wait_for_port "$s3s_port" "s3s-fs"
export MLOPS_TEST_S3S_ENDPOINT="http://127.0.0.1:$s3s_port"
echo "s3s-fs on $MLOPS_TEST_S3S_ENDPOINT"

# The official strict schemas of the built-in Kubernetes kinds, per minor:
# the fake API server and the manifest tests check every object against them.
if ! "$cache/venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
    "$cache/venv/bin/pip" install --quiet 'kubernetes-validate==1.37.0'
fi
export MLOPS_TEST_KUBERNETES_SCHEMAS="$("$cache/venv/bin/python" -c 'import os, kubernetes_validate; print(os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema"))')"
[ -d "$MLOPS_TEST_KUBERNETES_SCHEMAS/v1.37.0-local-strict" ] \
    || { echo "error: no Kubernetes schemas at $MLOPS_TEST_KUBERNETES_SCHEMAS" >&2; exit 1; }
echo "Kubernetes schemas in $MLOPS_TEST_KUBERNETES_SCHEMAS"

scratch="$(mktemp -d)"

# MLflow, pinned: 3.18 resolves badly. In its own venv: its Flask and
# Werkzeug pins differ from moto's.
if [ ! -x "$cache/mlflow/bin/mlflow" ]; then
    python3 -m venv "$cache/mlflow"
    "$cache/mlflow/bin/pip" install --quiet 'mlflow==3.17.2'
fi
mlflow_port="$(free_port)"
mkdir -p "$scratch/mlflow"
setsid "$cache/mlflow/bin/mlflow" server --host 127.0.0.1 --port "$mlflow_port" --workers 1 \
    --backend-store-uri "sqlite:///$scratch/mlflow/mlflow.db" --default-artifact-root "$scratch/mlflow/artifacts" \
    --artifacts-destination "$scratch/mlflow/proxied" > "$cache/mlflow.log" 2>&1 &
groups+=("$!")
export MLOPS_TEST_MLFLOW_URL="http://127.0.0.1:$mlflow_port"
export MLOPS_TEST_MLFLOW_SERVER="$cache/mlflow/bin/mlflow"
for _ in $(seq 1 120); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$MLOPS_TEST_MLFLOW_URL/health', timeout=2)" 2>/dev/null; then
        break
    fi
    sleep 0.5
done
python3 -c "import urllib.request; urllib.request.urlopen('$MLOPS_TEST_MLFLOW_URL/health', timeout=2)" \
    || { echo "error: mlflow server did not start; see $cache/mlflow.log" >&2; exit 1; }
echo "mlflow server on $MLOPS_TEST_MLFLOW_URL"

# An OCI registry: Debian's docker-registry (distribution 2.8).
if ! command -v docker-registry > /dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y --no-install-recommends docker-registry > "$cache/apt.log" 2>&1 \
            || { apt-get update > /dev/null 2>&1 && apt-get install -y --no-install-recommends docker-registry > "$cache/apt.log" 2>&1; }
    else
        sudo apt-get install -y --no-install-recommends docker-registry > "$cache/apt.log" 2>&1
    fi
fi
registry_port="$(free_port)"
cat > "$scratch/registry.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $scratch/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
CONFIG
docker-registry serve "$scratch/registry.yml" > "$cache/registry.log" 2>&1 &
pids+=("$!")
wait_for_port "$registry_port" "docker-registry"
export MLOPS_TEST_OCI_REGISTRY="127.0.0.1:$registry_port"
export MLOPS_TEST_REGISTRY_SERVER="$(command -v docker-registry)"
echo "OCI registry on $MLOPS_TEST_OCI_REGISTRY"

# A second registry that wants a password (htpasswd, bcrypt of the password below).
auth_port="$(free_port)"
export MLOPS_TEST_OCI_AUTH_USER="mlops" MLOPS_TEST_OCI_AUTH_PASSWORD="registry-password"
echo 'mlops:$2b$12$7GQARDrIyvxvNhh2..TyVO1NB8ilsRMBcCPmBxJenHYVDWEwWNbfm' > "$scratch/htpasswd"
sed -e "s|$scratch/registry|$scratch/registry-auth|" -e "s|127.0.0.1:$registry_port|127.0.0.1:$auth_port|" "$scratch/registry.yml" > "$scratch/registry-auth.yml"
cat >> "$scratch/registry-auth.yml" <<CONFIG
auth:
  htpasswd:
    realm: mlops-test
    path: $scratch/htpasswd
CONFIG
docker-registry serve "$scratch/registry-auth.yml" > "$cache/registry-auth.log" 2>&1 &
pids+=("$!")
wait_for_port "$auth_port" "docker-registry (with a password)"
export MLOPS_TEST_OCI_AUTH_REGISTRY="127.0.0.1:$auth_port"
echo "OCI registry with a password on $MLOPS_TEST_OCI_AUTH_REGISTRY"

echo "== format"
cargo fmt --all -- --check

# One RUSTFLAGS for every cargo call below: a change of flags rebuilds every
# dependency into a second copy (minutes, and a GB of disk).
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
# Incremental compilation only pays off when the same tree is rebuilt after
# small edits; on a fresh clone it doubled the target folder (8 GB more), and
# a CI machine ran out of disk on it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== build (warnings are errors)"
cargo build --workspace --all-targets --locked

echo "== lints (clippy warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked

# The benchmark harness at tiny sizes, so that it never rots: every workload
# runs once (the real figures come from `cargo run --release -p mlops-bench`).
echo "== benchmark harness, smoke run"
export MLOPS_BENCH_BINARY="$root/target/debug/mlops"
export MLOPS_BENCH_S3_ENDPOINT="$MLOPS_TEST_S3S_ENDPOINT"
export MLOPS_BENCH_S3_ACCESS_KEY="$MLOPS_TEST_S3S_ACCESS_KEY" MLOPS_BENCH_S3_SECRET_KEY="$MLOPS_TEST_S3S_SECRET_KEY"
# The build above made the harness too.
bench="$root/target/debug/mlops-bench"
for workload in validate plan apply apply-engine; do
    "$bench" "$workload" --runs 1 --sizes 12
done
"$bench" upload --runs 1 --size-mib 8
"$bench" hash --runs 1 --size-mib 2 --small-files 20
"$bench" features --runs 1 --feature-sets 5
"$bench" compute --runs 1 --rows 2000
"$bench" windows --runs 1 --rows 2000
"$bench" validation --runs 1 --rows 2000
"$bench" large --size-gib 0.001
