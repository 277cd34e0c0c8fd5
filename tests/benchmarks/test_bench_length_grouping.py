"""benchmarks/bench_length_grouping.py runs as the README types it (with fewer steps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "bench_length_grouping.py"


def test_prints_step_times_and_speedups_per_budget(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--budgets", "0", "512", "--steps", "3", "--rounds", "1"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.rindex("\n{") :])
    assert set(summary) == {"micro_batch_tokens=0", "micro_batch_tokens=512"}
    assert summary["micro_batch_tokens=0"]["speedup_over_0"] == 1.0
    assert all(figures["ms_per_step"] > 0 for figures in summary.values())
