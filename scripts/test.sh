#!/usr/bin/env bash
# Runs the whole test suite. LAN-in-a-box tests need root; without it they skip with a
# visible message. Installs missing test tools first when run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
if [ "$(id -u)" = 0 ]; then
    echo "test.sh: running as root: LAN-in-a-box (network namespace) tests included"
else
    echo "test.sh: NOT root: LAN-in-a-box (network namespace) tests will be SKIPPED"
fi
if docker info >/dev/null 2>&1; then
    echo "test.sh: a Docker engine answers: Docker tests included"
else
    echo "test.sh: no Docker engine: Docker tests will be SKIPPED"
fi
# The agent's tests run the peer's and the attack tool's binaries (built on demand only
# when missing): build every binary now, so that none is a stale one of an earlier build.
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    exec cargo test --workspace --no-fail-fast "$@"
fi
