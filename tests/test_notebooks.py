"""Every notebook in nbs/ is one test: it is executed top to bottom (nbdev's `test_nb`, the
same as `nbdev_test`), skipping cells flagged with settings.ini's `tst_flags` (e.g. `#| slow`)
unless the flag is listed in POSEBENCH_TEST_FLAGS (`make test-slow` sets it to `slow`)."""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb  # renamed: pytest would collect `test_nb` itself

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT / "nbs").glob("*.ipynb"))
SKIP = get_config(path=ROOT).get("tst_flags", "").split()
FORCE = os.environ.get("POSEBENCH_TEST_FLAGS", "").split()


def test_there_are_notebooks():
    assert NBS, f"no notebooks found in {ROOT / 'nbs'}"


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    ok, secs = run_nb(nb, skip_flags=SKIP, force_flags=FORCE)
    assert ok, f"{nb.name} failed (traceback above); run it in Jupyter or `nbdev_test --path {nb.relative_to(ROOT)}`"
