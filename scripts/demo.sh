#!/usr/bin/env bash
# A single-machine demonstration on loopback: starts an agent on 127.0.0.1, pairs a
# peer with it, connects again with the pinned keys, and stops the agent. State lives
# in a temporary directory that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release -p lanreach-agent -p lanreach-peer
# Where cargo put them: CARGO_TARGET_DIR when set (relative to this directory), else target/.
bin="${CARGO_TARGET_DIR:-target}/release"
state=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
code=7K3Q-M2XD

# The agent's reports (stdout) and status lines (stderr) go to files, shown at the end,
# so that they do not interleave with the peer's output.
"$bin/lanreach-agent" --state-dir "$state/agent" --control "127.0.0.1:$port" --code "$code" --no-mdns \
    >"$state/agent.out" 2>"$state/agent.log" &
agent=$!
cleanup() { kill "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; rm -rf "$state"; }
trap cleanup EXIT

for _ in $(seq 50); do grep -q "pairing code:" "$state/agent.log" 2>/dev/null && break; sleep 0.1; done

echo "== agent =="
cat "$state/agent.log"
echo "== peer, first run: pairing with code $code =="
"$bin/lanreach-peer" "127.0.0.1:$port" --code "$code" --state-dir "$state/peer"
echo "== peer, second run: no code, pinned keys =="
"$bin/lanreach-peer" "127.0.0.1:$port" --state-dir "$state/peer"
sleep 0.2
echo "== what the agent printed meanwhile (status) =="
tail -n +"$(($(grep -n 'Ctrl-C stops' "$state/agent.log" | cut -d: -f1) + 1))" "$state/agent.log"
echo "== and its reports (stdout), the same as the peer's =="
cat "$state/agent.out"
