"""Benchmarks beyond rlkit's own held-out evaluation (EleutherAI's lm-eval harness)."""
