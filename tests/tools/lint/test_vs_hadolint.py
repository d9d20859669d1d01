"""dockyard lint and the real hadolint agree (DL code + line) on realistic Dockerfiles."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dockyard.tools.lint import lint

HADOLINT = Path("/var/tmp/dockyard-peers/venv/bin/hadolint")
FILES = sorted((Path(__file__).parent / "dockerfiles").glob("*.Dockerfile"))


def test_enough_samples() -> None:
    assert len(FILES) >= 20


@pytest.mark.peers
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_same_dl_findings_as_hadolint(path: Path) -> None:
    if not HADOLINT.exists():
        pytest.skip("hadolint not installed (run /work/shared/peers/install.sh)")
    proc = subprocess.run(
        [str(HADOLINT), "--no-fail", "-f", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    theirs = sorted((d["line"], d["code"]) for d in json.loads(proc.stdout) if d["code"].startswith("DL"))
    ours = sorted((f.line, f.code) for f in lint(path.read_text(), advice=False))
    assert ours == theirs
