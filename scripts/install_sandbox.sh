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

"$(dirname "$0")/apt_install.sh" install_sandbox bubblewrap util-linux
echo "install_sandbox: installed $(bwrap --version)"
