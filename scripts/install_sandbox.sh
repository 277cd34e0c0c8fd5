#!/usr/bin/env bash
# Install bubblewrap (Debian's `bubblewrap`), the sandbox of model-written code (rlkit/sandbox/),
# and util-linux's prlimit, which sets its resource limits.
#
# Idempotent: does nothing when `bwrap` and `prlimit` are already installed. Needs root (or
# sudo) and apt-get. Sandboxes also need unprivileged user namespaces (README "Sandboxed code").
set -euo pipefail

if command -v bwrap >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1; then
    echo "install_sandbox: bubblewrap already installed ($(bwrap --version))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_sandbox: apt-get not found; install bubblewrap and util-linux with your package manager" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_sandbox: must run as root (or with sudo available)" >&2
        exit 1
    fi
fi

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap util-linux
echo "install_sandbox: installed $(bwrap --version)"
