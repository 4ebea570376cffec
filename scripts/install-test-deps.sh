#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust: iproute2 (network namespaces),
# nftables (firewall scenarios), socat and curl (stand-in services and clients).
# Debian/Ubuntu, as root. Does nothing when everything is present.
set -euo pipefail

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v socat >/dev/null || need+=(socat)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)

if [ ${#need[@]} -eq 0 ]; then
    echo "install-test-deps: all present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-test-deps: missing ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
    echo "install-test-deps: tests that need them will be skipped" >&2
    exit 0
fi
echo "install-test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
