"""Every folder under tests/ that holds test files is collected by pytest.

pytest's default ``norecursedirs`` once dropped ``tests/build`` without a word; this runs the same
collection as ``make test`` (same interpreter, same rootdir and config) and compares it with the disk.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TESTS = REPO / "tests"


def folders_on_disk() -> set[str]:
    """Folders (relative to the repository) holding at least one ``test_*.py`` file."""
    return {p.parent.relative_to(REPO).as_posix() for p in TESTS.rglob("test_*.py")
            if "__pycache__" not in p.parts}


def collected_folders() -> set[str]:
    """Folders of the test files ``pytest --collect-only`` finds, run as a contributor would."""
    # Drop this run's own PYTEST_* variables (xdist worker ids, PYTEST_ADDOPTS): the child must see only
    # the repository's configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-qq", "-p", "no:cacheprovider"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert proc.returncode == 0, f"pytest --collect-only exited {proc.returncode}:\n{proc.stdout[-3000:]}" \
        f"{proc.stderr[-2000:]}"
    # With -qq each collected file is one line "path/to/test_x.py: N".
    files = [m[1] for m in re.finditer(r"^(\S+\.py): \d+$", proc.stdout, re.MULTILINE)]
    assert files, f"pytest collected no test files:\n{proc.stdout[-3000:]}"
    return {Path(f).parent.as_posix() for f in files}


@pytest.mark.slow
def test_every_test_folder_is_collected() -> None:
    missing = folders_on_disk() - collected_folders()
    assert not missing, f"pytest does not collect these test folders (norecursedirs? a name clash?): " \
        f"{sorted(missing)}"
