#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust: iproute2 (network namespaces),
# nftables (firewall scenarios), socat, curl and python3 (stand-in services and
# clients), php-cli (PHP's built-in server, a real dev server), tmux (a real terminal of a
# given width for the output tests), busybox-static (the test image for the Docker
# tests is built from it) and chromium (a real headless browser for the browser-page tests;
# about 3 minutes and 350 MB the first time).
# Debian/Ubuntu, as root. Does nothing when everything is present.
set -euo pipefail

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v socat >/dev/null || need+=(socat)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v php >/dev/null || need+=(php-cli)
command -v tmux >/dev/null || need+=(tmux)
# Chromium with its recommended packages (fonts, GL), as measured: ~3 minutes, ~350 MB.
browser=()
command -v chromium >/dev/null || browser=(chromium fonts-liberation)
# The Docker test image needs a statically linked busybox.
if ! { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }; then need+=(busybox-static); fi

if [ ${#need[@]} -eq 0 ] && [ ${#browser[@]} -eq 0 ]; then
    echo "install-test-deps: all present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-test-deps: missing ${need[*]} ${browser[*]}; install them (as root: apt-get install ${need[*]} ${browser[*]})" >&2
    echo "install-test-deps: tests that need them will be skipped" >&2
    exit 0
fi
echo "install-test-deps: installing ${need[*]} ${browser[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ${#browser[@]} -gt 0 ]; then
    # A browser that cannot be installed is a loud skip (.ci/run says so), not a failure.
    apt-get install -y -qq "${browser[@]}" >/dev/null || echo "install-test-deps: could not install ${browser[*]}" >&2
fi
