"""``dockyard scan``: db import/info, table and SBOM formats, --severity and --exit-code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.client import Client
from tests.tools.analyze.kit import make_image
from tests.tools.scan.fixtures import OS_RELEASE, OSV, dist_info, dpkg_status


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), "scan", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DOCKYARD_CONFIG": "", **(env or {})})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with Client(tmp_path / "store", fsync=False) as client:
        make_image(client, "deb:1", [[
            ("etc/os-release", OS_RELEASE),
            ("var/lib/dpkg/status", dpkg_status(("libssl3", "3.0.11-1~deb12u2", "Source: openssl\n"),
                                                ("zlib1g", "1:1.2.13.dfsg-1", "Source: zlib\n"))),
            ("usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
             dist_info("requests", "2.28.1")),
        ]])
    (tmp_path / "osv.json").write_text(json.dumps(OSV))
    return tmp_path / "store"


@pytest.mark.slow
def test_db_import_info_and_table(root: Path) -> None:
    missing = _run(root, "deb:1")
    assert missing.returncode == 0 and "no vulnerability database" in missing.stderr
    assert "'dockyard scan db update'" in missing.stderr
    assert missing.stdout.splitlines() == ["deb:1: 3 packages (no vulnerability data)",
                                           "  deb:1 (debian 12): 2 deb", "  Python: 1 pypi"]
    strict = _run(root, "deb:1", "--exit-code", "4")
    assert strict.returncode == 4 and strict.stderr.splitlines()[-1] == (
        "Error: no vulnerability database: cannot tell whether the image is vulnerable")
    imp = _run(root, "db", "import", str(root.parent / "osv.json"))
    assert imp.returncode == 0 and imp.stdout.startswith(f"Imported {len(OSV)} records into ")
    info = _run(root, "db", "info")
    assert "Vulnerabilities: 10" in info.stdout and "  Debian:12: 2" in info.stdout
    proc = _run(root, "deb:1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["deb:1 (debian 12)", "=================",
                         "Total: 2 (UNKNOWN: 1, LOW: 0, MEDIUM: 0, HIGH: 1, CRITICAL: 0)"]
    row = next(line for line in lines if "DSA-0001-1" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        "libssl3", "DSA-0001-1", "HIGH", "fixed", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1",
        "openssl: several issues"]
    assert "Total: 1 (UNKNOWN: 0, LOW: 0, MEDIUM: 1, HIGH: 0, CRITICAL: 0)" in proc.stdout
    high = _run(root, "deb:1", "--severity", "CRITICAL,HIGH", "--exit-code", "3")
    assert high.returncode == 3 and "Total: 1 (HIGH: 1, CRITICAL: 0)" in high.stdout
    assert high.stderr.strip() == "Error: 1 vulnerability found"
    none = _run(root, "deb:1", "--severity", "CRITICAL", "--exit-code", "3")
    assert none.returncode == 0


@pytest.mark.slow
def test_sbom_formats_without_db(root: Path) -> None:
    cdx = json.loads(_run(root, "deb:1", "--format", "cyclonedx").stdout)
    assert sorted(c["purl"] for c in cdx["components"] if "purl" in c) == [
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
        "pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&distro=debian-12&epoch=1",
        "pkg:pypi/requests@2.28.1"]
    assert "vulnerabilities" not in cdx
    spdx = json.loads(_run(root, "deb:1", "-f", "spdx-json").stdout)
    assert len(spdx["packages"]) == 5  # image, OS, three packages
    bad = _run(root, "deb:1", "--severity", "SEVERE")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: unknown severity 'SEVERE'")
    assert _run(root, "--help").returncode == 0


@pytest.mark.slow
def test_db_update_info_age_and_warning(root: Path, tmp_path: Path) -> None:
    from tests.tools.scan.mirror import build_mirror, serve

    mirror = build_mirror(tmp_path / "mirror")
    old = time.time() - 30 * 86400  # the mirror's export is a month old
    for f in mirror.rglob("*"):
        os.utime(f, (old, old))
    with serve(mirror) as server:
        up = _run(root, "db", "update", "--source", server.url)
        assert up.returncode == 0, up.stderr
        assert f"osv={server.url} Debian: 6 records, sha256 verified" in up.stdout.splitlines()
        again = _run(root, "db", "update", "--source", server.url)
        assert f"osv={server.url} Debian: not modified" in again.stdout
        assert "Up to date:" in again.stdout
    info = _run(root, "db", "info")
    assert "Data date: " in info.stdout and "(30 days old)" in info.stdout, info.stdout
    assert json.loads(_run(root, "db", "info", "--format", "json").stdout)["age_seconds"] > 29 * 86400
    warned = _run(root, "deb:1")
    assert "WARNING: the vulnerability data is 30 days old" in warned.stderr and warned.returncode == 0
    assert "limit 7 days" in warned.stderr
    assert "WARNING" not in _run(root, "deb:1", "--max-db-age", "60d").stderr
    config = tmp_path / "config.toml"
    config.write_text('[scan]\nmax-db-age = "45d"\n')
    assert "WARNING" not in _run(root, "deb:1", env={"DOCKYARD_CONFIG": str(config)}).stderr
    config.write_text('[scan]\nmax-db-age = "2w"\n')
    assert "limit 14 days" in _run(root, "deb:1", env={"DOCKYARD_CONFIG": str(config)}).stderr
    config.write_text('[scan]\nmax-db-age = "soon"\n')
    bad = _run(root, "deb:1", env={"DOCKYARD_CONFIG": str(config)})
    assert bad.returncode == 1 and bad.stderr.startswith("Error: config.toml [scan] max-db-age: 'soon'")
    bundle = tmp_path / "b.zip"
    exp = _run(root, "db", "export", str(bundle))
    assert exp.returncode == 0 and exp.stdout.startswith("Exported 10 records to ")
    other = tmp_path / "other"
    imp = _run(other, "db", "import", str(bundle))
    assert imp.returncode == 0 and "Imported bundle" in imp.stdout, imp.stderr
    assert "(30 days old)" in _run(other, "db", "info").stdout
