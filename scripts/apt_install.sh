#!/usr/bin/env bash
# Usage: scripts/apt_install.sh WHO PACKAGE...  -- install Debian packages with apt-get, as root
# or through sudo; WHO names the calling script in messages. Used by install_slurm.sh and
# install_sandbox.sh, which first check whether their programs are already there.
set -euo pipefail
who=$1; shift

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$who: apt-get not found; install these packages with your package manager: $*" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "$who: must run as root (or with sudo available)" >&2
        exit 1
    fi
fi

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
