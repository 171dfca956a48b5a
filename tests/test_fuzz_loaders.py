"""A short run of ``benchmarks/fuzz_loaders.py`` (the long one: benchmarks/results_fuzz_loaders.md).

24 random and mutated checkpoints, pykan folders and data files through the CLI: every exit is
0 or 2, exit 2 prints one line and leaves no output, nothing allocates beyond the 1 GiB cap,
nothing hangs, and the worker never dies.
"""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_loaders.py"


def test_fuzzed_loaders_exit_0_or_2_within_bounds(tmp_path):
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--examples", "24", "--seed", "7",
                           "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["examples"] == 24
    assert set(res["exits"]) <= {"0", "2"}, res["exits"]
    assert res["exits"].get("2", 0) >= 12  # most mutations must be refused, not loaded
    assert res["violations"] == [], res["violations"][:3]
    assert res["max_rss_growth_mb"] < 1024
