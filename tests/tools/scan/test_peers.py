"""scan vs trivy (offline, no vulnerability DB) and vs dpkg-query: same packages and versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.scan import image_sbom
from tests.tools.analyze.kit import make_image

TRIVY = os.environ.get("TRIVY", "/var/tmp/dockyard-peers/venv/bin/trivy")


def trivy_packages(image_tar: Path, cache: Path) -> set[tuple[str, str]]:
    """(name, version) of every package trivy's CycloneDX SBOM lists (no DB needed for an SBOM)."""
    proc = subprocess.run([TRIVY, "image", "--input", str(image_tar), "--format", "cyclonedx", "--quiet",
                           "--skip-db-update", "--offline-scan", "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return {(f"{c['group']}/{c['name']}" if c.get("group") else c["name"], c["version"])
            for c in doc.get("components", []) if c.get("type") == "library"}


@pytest.mark.trivy
def test_same_packages_as_trivy(client: Client, debian_image: str, tmp_path: Path) -> None:
    out = tmp_path / "deb.tar"
    client.save(["deb:1"], str(out))
    ours = {(p.name, p.version) for p in image_sbom(client, "deb:1").packages}
    theirs = trivy_packages(out, tmp_path / "trivy-cache")
    assert ours == theirs


@pytest.mark.trivy
@pytest.mark.slow
def test_real_debian_against_dpkg_query_and_trivy(tmp_path: Path) -> None:
    """A debootstrapped bookworm (kept in /var/tmp between runs): dpkg-query and trivy agree with us."""
    root = Path(os.environ.get("DOCKYARD_SCAN_DEBIAN_STORE", "/var/tmp/dockyard-scan-debian"))
    with Client(root, fsync=False) as client:
        try:
            client.resolve("debian:bookworm")
        except Exception:
            try:
                client.bootstrap("debian:bookworm")
            except Exception as exc:  # no mirror here: say so instead of failing
                pytest.skip(f"cannot bootstrap debian:bookworm: {exc}")
        sbom = image_sbom(client, "debian:bookworm")
        ours = {(p.name, p.version) for p in sbom.packages if p.type == "deb"}
        image_tar = tmp_path / "debian.tar"
        client.save(["debian:bookworm"], str(image_tar))
        layers = client.unpack("debian:bookworm")
    # dpkg-query on the unpacked status database (a one-layer image: its only snapshot)
    admin = tmp_path / "dpkg"
    shutil.copytree(layers[-1] / "var/lib/dpkg", admin, symlinks=True)
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n",
                           f"--admindir={admin}"], capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    dpkg = {(r[0], r[1]) for r in rows if r[2].startswith("ii")}
    assert len(ours) > 80
    assert ours == dpkg
    assert ours == trivy_packages(image_tar, tmp_path / "trivy-cache")


GO_BINARIES = [Path("/var/tmp/dockyard-dive-venv/bin/dive"), Path("/usr/sbin/runc")]


@pytest.mark.trivy
@pytest.mark.runc
@pytest.mark.dive
def test_go_binaries_as_trivy(client: Client, tmp_path: Path) -> None:
    """dive (module build, 60 modules) and runc (Debian's GOPATH build: stdlib only)."""
    files: list[tuple[str, bytes | None]] = [(f"usr/bin/{p.name}", p.read_bytes()) for p in GO_BINARIES]
    files.append(("usr/bin/script", b"#!/bin/sh\necho not go\n" * 100))
    make_image(client, "go:1", [files], compression="none")
    ours = {(p.name, p.version) for p in image_sbom(client, "go:1").packages}
    out = tmp_path / "go.tar"
    client.save(["go:1"], str(out))
    theirs = trivy_packages(out, tmp_path / "trivy-cache")
    assert ("github.com/wagoodman/dive", "v0.13.1+dirty") in ours and len(ours) > 50
    assert ours == theirs
