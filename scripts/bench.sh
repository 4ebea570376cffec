#!/usr/bin/env bash
# Builds the release binaries, installs nmap if needed (root, Debian), and runs the
# LAN-in-a-box benchmark. Prints figures; see scripts/bench.py. Then the browser page's
# figure (agent/tests/browser.rs, browser_bench).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nmap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nmap >/dev/null
    else
        echo "bench: nmap is needed (apt-get install nmap)" >&2
        exit 2
    fi
fi
cargo build --quiet --release -p lanreach-agent -p lanreach-peer -p lanreach-attack
python3 scripts/bench.py "$@"
# The browser page: a real Chromium in the phone's namespace (skips loudly without it).
cargo test --quiet --release -p lanreach-agent --test browser -- --ignored --nocapture --exact browser_bench 2>&1 \
    | grep -E '^(browser bench|  |\*\*\* SKIPPED)'
# How fast the peer names why nothing connects (agent/tests/nopath.rs prints each).
cargo test --quiet --release -p lanreach-agent --test nopath -- --nocapture --test-threads=1 2>&1 \
    | grep -oE '[A-Za-z][A-Za-z ,()-]*: [a-z_]+ in [0-9.]+ s( \(.*\))?|\*\*\* SKIPPED.*' | sed 's/^/no path: /'
