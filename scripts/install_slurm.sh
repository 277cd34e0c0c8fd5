#!/usr/bin/env bash
# Install a single-node Slurm (Debian's slurmctld, slurmd, slurm-client) and munge.
#
# Idempotent: does nothing when the daemons (slurmctld, slurmd, munged) and clients
# (sinfo, sbatch, squeue, srun, scancel) are already installed.
# Nothing is started here (no systemd is needed); tests/slurm_cluster.py starts a private
# cluster on localhost. Needs root (or sudo) and apt-get.
set -euo pipefail

# The daemons live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

have_all() {
    local b
    for b in slurmctld slurmd sinfo sbatch squeue srun scancel munged; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

if have_all; then
    echo "install_slurm: slurm and munge already installed ($(slurmctld -V 2>/dev/null || echo '?'))"
    exit 0
fi

"$(dirname "$0")/apt_install.sh" install_slurm slurmctld slurmd slurm-client munge

if ! have_all; then
    echo "install_slurm: packages installed but slurm/munge binaries not found on PATH" >&2
    exit 1
fi
echo "install_slurm: installed $(slurmctld -V)"
