#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the testground tests, and the end-to-end tests
# that drive the docker CLI against temporary engines (a real docker-registry included).
# Installs what it needs first. Run as root on Debian 12. Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (engines under test need namespaces, mounts, cgroups)" >&2; exit 1; }
./scripts/install-deps.sh
bash -n scripts/*.sh bench/engine bench/discovery bench/failover bench/build bench/overlay .ci/run
# Formatting (rustfmt.toml) and lints are part of the test.
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  # One build of every test binary, then all tests in parallel (each test has its own engine).
  cargo nextest run --config-file scripts/nextest.toml --workspace --no-fail-fast \
    --test-threads "${TEST_THREADS:-4}" "$@"
else
  cargo test --workspace --no-fail-fast "$@" -- --test-threads "${TEST_THREADS:-4}"
fi
