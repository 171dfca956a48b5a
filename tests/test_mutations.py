"""The planted bugs of ``tests/MUTATIONS.md`` (re-planted by ``tests/mutations.py``).

The fast test keeps the list honest: every mutation still finds the exact code it changes
(once) and the mutated file still compiles, so a refactoring cannot silently turn a planted bug
into a no-op. The slow test re-plants every bug in a temporary copy of the repository and runs
the tests that must catch it (about 5 minutes of CPU; run it with ``pytest -m slow
tests/test_mutations.py`` or ``python tests/mutations.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import mutations

ROOT = Path(__file__).resolve().parent.parent


def test_every_mutation_still_applies():
    ids = [m.id for m in mutations.MUTATIONS]
    assert len(ids) == len(set(ids)) and len(ids) >= 15
    modules = {m.file.split("/")[1] for m in mutations.MUTATIONS if m.file.startswith("analyses/")}
    assert {"hessian", "esd", "lmc", "landscape", "attention", "symbolic"} <= modules
    assert any(m.file.startswith("inspect_kit/view/") for m in mutations.MUTATIONS)
    for m in mutations.MUTATIONS:
        text = (ROOT / m.file).read_text(encoding="utf-8")
        assert text.count(m.old) == 1, (
            f"mutation {m.id}: the code it plants a bug in is no longer in {m.file} exactly once; "
            "update its 'old'/'new' text in tests/mutations.py (and tests/MUTATIONS.md)")
        compile(text.replace(m.old, m.new), m.file, "exec")
        for t in m.tests:
            assert (ROOT / t).exists(), f"mutation {m.id}: {t} does not exist"


@pytest.mark.slow
def test_every_planted_bug_is_caught():
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "mutations.py")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
