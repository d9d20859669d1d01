"""``dockyard analyze``: table, JSON and --ci exit codes on an image in a fresh store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.client import Client
from tests.tools.analyze.kit import make_image


def _run(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), "analyze", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with Client(tmp_path / "store", fsync=False) as client:
        make_image(client, "waste:1", [[("base", b"b" * 1_000_000)], [("tmp/blob", b"x" * 30_000)],
                                       [("tmp/.wh.blob", b""), ("app", b"a" * 500)]],
                   ["ADD rootfs.tar /", "RUN fetch blob", "RUN rm /tmp/blob"])
    return tmp_path / "store"


@pytest.mark.slow
def test_table_and_ci_failure(root: Path) -> None:
    proc = _run(root, "waste:1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "RUN fetch blob" in out and "wastedBytes: 30000 bytes (30 kB)" in out
    assert "    2         30 kB  /tmp/blob" in out
    ci = _run(root, "waste:1", "--ci")
    assert ci.returncode == 1
    assert "  FAIL: highestUserWastedPercent: too many bytes wasted" in ci.stdout
    assert "  SKIP: highestWastedBytes: rule disabled" in ci.stdout
    assert "Result:FAIL [Total:3] [Passed:1] [Failed:1] [Warn:0] [Skipped:1]" in ci.stdout
    assert ci.stderr.startswith("Error: CI rule highestUserWastedPercent failed")
    ok = _run(root, "waste:1", "--ci", "--highest-user-wasted-percent", "0.99",
              "--highest-wasted-bytes", "30kB")
    assert ok.returncode == 0 and "Result:PASS" in ok.stdout
    bad = _run(root, "waste:1", "--ci", "--highest-wasted-bytes", "29.9KB")
    assert bad.returncode == 1 and "wasted-bytes=30000 > threshold=29900" in bad.stdout


@pytest.mark.slow
def test_json_and_errors(root: Path) -> None:
    proc = _run(root, "waste:1", "--format", "json")
    doc = json.loads(proc.stdout)
    assert [layer["sizeBytes"] for layer in doc["layer"]] == [1_000_000, 30_000, 500]
    assert doc["image"]["inefficientBytes"] == 30_000
    assert doc["image"]["fileReference"] == [{"count": 2, "sizeBytes": 30_000, "file": "/tmp/blob"}]
    missing = _run(root, "nope:1")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: No such image: nope:1"
    bad = _run(root, "waste:1", "--lowest-efficiency", "x")
    assert bad.returncode == 1 and "invalid lowestEfficiency 'x'" in bad.stderr


@pytest.mark.slow
def test_dive_ci_config(root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / ".dive-ci"
    cfg.write_text("# as dive reads it\nrules:\n  lowestEfficiency: 0.95  # percent\n"
                   "  highestWastedBytes: '29KB'\n  highestUserWastedPercent: disabled\n")
    proc = _run(root, "waste:1", "--ci", cwd=tmp_path)  # ./.dive-ci is read, as dive does
    assert proc.returncode == 1
    assert ("  FAIL: highestWastedBytes: too many bytes wasted (wasted-bytes=30000 > threshold=29000)"
            in proc.stdout)
    assert "  SKIP: highestUserWastedPercent: rule disabled" in proc.stdout
    assert "  PASS: lowestEfficiency" in proc.stdout
    flag = _run(root, "waste:1", "--ci", "--ci-config", str(cfg), "--highest-wasted-bytes", "disabled")
    assert flag.returncode == 0, flag.stdout
    cfg.write_text("rules:\n  lowestEfficency: 0.9\n")
    bad = _run(root, "waste:1", "--ci", "--ci-config", str(cfg))
    assert bad.returncode == 1 and bad.stderr.startswith(f"Error: {cfg}:2: expected one of")
