"""Sandboxed execution of model-written code (bubblewrap): :mod:`rlkit.sandbox.bwrap`."""

from rlkit.sandbox.bwrap import (
    Execution,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxUnavailable,
    Status,
)

__all__ = ["Execution", "Sandbox", "SandboxConfig", "SandboxError", "SandboxUnavailable", "Status"]
