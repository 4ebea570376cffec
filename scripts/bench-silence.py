#!/usr/bin/env python3
"""What silence costs: the wall time of a peer run against one checked port, per
situation, on a LAN in a box, with the verdict each run gave.

Open ports cost nothing extra; a silent port costs the quiet re-probe after the ICMP
rate-limit window (issue 10 item 5), a silent UDP port also the requests tried in turn
(item 3). Figures, not assertions.

    scripts/bench-silence.py              # binaries from target/release (scripts/bench.sh builds them)
    LANREACH_BIN=dir scripts/bench-silence.py

Runs as root; network namespaces with documentation addresses only (198.51.100.0/24,
2001:db8:1::/64), removed on every exit path; processes stopped by PID.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LANREACH_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release"))
AGENT, PEER = os.path.join(BIN, "lanreach-agent"), os.path.join(BIN, "lanreach-peer")
SERVER = os.path.join(ROOT, "agent", "tests", "support", "server.py")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PREFIX = f"lrs{os.getpid()}"
CODE = "7K3Q-M2XD"

namespaces, processes = [], []


def sh(*args, stdin=None):
    out = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stderr.strip()}")
    return out


def cleanup():
    for p in processes:
        if p.poll() is None:
            p.kill()
            p.wait()
    processes.clear()
    for ns in reversed(namespaces):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    namespaces.clear()


def lab():
    """A host (198.51.100.1, 2001:db8:1::1) and a phone (.2) on one bridge."""
    bridge = f"{PREFIX}-br"
    sh("ip", "netns", "add", bridge)
    namespaces.append(bridge)
    sh("ip", "-n", bridge, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", bridge, "link", "set", "br0", "up")
    nodes = []
    for i, role in enumerate(["host", "phone"], start=1):
        ns = f"{PREFIX}-{role}"
        sh("ip", "netns", "add", ns)
        namespaces.append(ns)
        sh("ip", "-n", bridge, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", bridge, "link", "set", f"p{i}", "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"198.51.100.{i}/24", "dev", "eth0")
        sh("ip", "-n", ns, "addr", "add", f"2001:db8:1::{i}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        nodes.append(ns)
    return nodes


def spawn(ns, *args, wait_for=None):
    p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    processes.append(p)
    if wait_for:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if wait_for in line:
                break
        else:
            raise RuntimeError(f"{args}: no {wait_for!r}")
    return p


def rules(stateful, rule):
    ct = "  ct state established,related accept\n" if stateful else ""
    return f"table inet t {{\n chain input {{\n  type filter hook input priority 0\n{ct}  {rule}\n }}\n}}\n"


SCENARIOS = [
    # (name, check, server args, nft ruleset or None)
    ("TCP open", "3000", ["http-ports", "3000", "1"], None),
    ("TCP dropped", "3000", ["http-ports", "3000", "1"], rules(False, "tcp dport 3000 drop")),
    ("TCP 8 ports rejected (admin-prohibited)", "3000-3007", ["http-ports", "3000", "8"],
     rules(False, 'iifname "eth0" tcp dport 3000-3007 reject with icmpx type admin-prohibited')),
    ("UDP echo open", "5060/udp", ["udp-echo", "5060"], None),
    ("UDP echo dropped, stateful firewall", "5060/udp", ["udp-echo", "5060"],
     rules(True, 'iifname "eth0" udp dport 5060 drop')),
    ("UDP echo dropped, no tracking", "5060/udp", ["udp-echo", "5060"], rules(False, 'iifname "eth0" udp dport 5060 drop')),
    ("UDP silent server, stateful firewall", "5060/udp", ["udp-silent", "5060"], rules(True, "udp dport 9 drop")),
    ("UDP silent server, no tracking", "5060/udp", ["udp-silent", "5060"], None),
]


def one_run(check, server, ruleset, work):
    host, phone = lab()
    try:
        spawn(host, "python3", SERVER, *server, wait_for="ready")
        if ruleset:
            sh("ip", "netns", "exec", host, "nft", "-f", "-", stdin=ruleset)
        spawn(host, AGENT, "--state-dir", os.path.join(work, "agent"), "--code", CODE, "--once", "--no-mdns",
              "--check", check, "--name", "box", wait_for="pairing code:")
        started = time.monotonic()
        out = subprocess.run(["ip", "netns", "exec", phone, PEER, "198.51.100.1", "--code", CODE, "--json",
                              "--state-dir", os.path.join(work, "peer"), "--name", "phone"],
                             capture_output=True, text=True, timeout=180)
        took = time.monotonic() - started
        report = json.loads(out.stdout)
        verdicts = sorted({s["verdict"] for s in report["services"]})
        return took, out.returncode, "/".join(verdicts)
    finally:
        cleanup()
        subprocess.run(["rm", "-rf", os.path.join(work, "agent"), os.path.join(work, "peer")])


def main():
    if os.geteuid() != 0:
        sys.exit("bench-silence: needs root (network namespaces)")
    for tool in (AGENT, PEER):
        if not os.path.exists(tool):
            sys.exit(f"bench-silence: {tool} missing (LANREACH_BIN names the directory of the binaries)")
    work = tempfile.mkdtemp(prefix="lanreach-silence-")
    try:
        print(f"what silence costs ({RUNS} runs each; peer wall time from start to report; binaries from {BIN})")
        for name, check, server, ruleset in SCENARIOS:
            runs = [one_run(check, server, ruleset, work) for _ in range(RUNS)]
            times = [t for t, _, _ in runs]
            outcome = sorted({f"{v} (exit {c})" for _, c, v in runs})
            print(f"  {name:42} median {statistics.median(times):6.2f} s  "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})  {', '.join(outcome)}")
    finally:
        cleanup()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (cleanup(), sys.exit(130)))
    main()
