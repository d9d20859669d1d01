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


def trivy_sbom(image_tar: Path, cache: Path) -> dict[tuple[str, str], int]:
    """(name, version) -> number of licences, for every package trivy's CycloneDX SBOM lists (no DB
    needed for an SBOM)."""
    proc = subprocess.run([TRIVY, "image", "--input", str(image_tar), "--format", "cyclonedx", "--quiet",
                           "--skip-db-update", "--offline-scan", "--cache-dir", str(cache)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return {(f"{c['group']}/{c['name']}" if c.get("group") else c["name"], c["version"]):
            len(c.get("licenses", [])) for c in doc.get("components", []) if c.get("type") == "library"}


def trivy_packages(image_tar: Path, cache: Path) -> set[tuple[str, str]]:
    return set(trivy_sbom(image_tar, cache))


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
    theirs = trivy_sbom(image_tar, tmp_path / "trivy-cache")
    assert ours == set(theirs)
    # licences: at least as many packages with one as trivy finds (copyright files)
    licensed = sum(1 for p in sbom.packages if p.type == "deb" and p.licenses)
    assert licensed >= sum(1 for n in theirs.values() if n) > 80


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


SYFT = os.environ.get("SYFT", "/var/tmp/dockyard-peers/venv/bin/syft")
# syft artifact types that correspond to the package types dockyard reads
_SYFT_TYPES = {"deb", "apk", "rpm", "python", "npm", "go-module"}


def syft_packages(image_tar: Path, tmp: Path) -> dict[tuple[str, str], dict[str, object]]:
    """(name, version) -> {"licenses": set, "depends": set of names} from syft's own JSON."""
    syft = SYFT if Path(SYFT).exists() else (shutil.which("syft") or SYFT)
    proc = subprocess.run([syft, f"docker-archive:{image_tar}", "-o", "syft-json", "-q"],
                          capture_output=True, text=True, timeout=600, cwd=tmp,
                          env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    arts = {a["id"]: a for a in doc["artifacts"] if a["type"] in _SYFT_TYPES}
    out: dict[tuple[str, str], dict[str, object]] = {
        (a["name"], a["version"]): {"licenses": {lic["value"] for lic in a["licenses"]}, "depends": set()}
        for a in arts.values()}
    for rel in doc.get("artifactRelationships", []):
        # syft: "child is a dependency-of parent"... the parent is the package that depends
        if rel["type"] == "dependency-of" and rel["parent"] in arts and rel["child"] in arts:
            parent, child = arts[rel["parent"]], arts[rel["child"]]
            deps = out[(child["name"], child["version"])]["depends"]
            assert isinstance(deps, set)
            deps.add(parent["name"])
    return out


@pytest.mark.syft
@pytest.mark.slow
def test_bookworm_against_syft(tmp_path: Path) -> None:
    """Same packages as syft, at least as many with a licence, and the same dpkg dependency graph."""
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
        image_tar = tmp_path / "debian.tar"
        client.save(["debian:bookworm"], str(image_tar))
    theirs = syft_packages(image_tar, tmp_path)
    ours = {(p.name, p.version): p for p in sbom.packages}
    assert set(ours) == set(theirs) and len(ours) > 80
    ours_licensed = sum(1 for p in ours.values() if p.licenses)
    theirs_licensed = sum(1 for v in theirs.values() if v["licenses"])
    assert ours_licensed >= theirs_licensed > 80
    names = {p.ref: p.name for p in sbom.packages}
    our_graph = {(p.name, p.version): {names[d] for d in p.depends} for p in sbom.packages}
    assert our_graph == {k: v["depends"] for k, v in theirs.items()}
    assert sum(len(v) for v in our_graph.values()) > 150


RPM_SPECS = {
    "demo-lib": "Version: 1.2.3\nRelease: 4.el9\nEpoch: 1\nLicense: MIT and BSD\nProvides: libdemo.so.1\n",
    "demo-app": "Version: 2.0\nRelease: 1.el9\nLicense: GPL-2.0-or-later\nRequires: libdemo.so.1\n"
                "Requires: /bin/sh\n",
}


@pytest.mark.rpm
def test_rpm_sqlite_database(client: Client, tmp_path: Path) -> None:
    """A database written by rpm itself (rpmbuild packages installed with --justdb)."""
    from dockyard.tools.scan import VulnDB, scan_image

    top = tmp_path / "rpmbuild"
    for name, body in RPM_SPECS.items():
        spec = tmp_path / f"{name}.spec"
        spec.write_text(f"Name: {name}\nSummary: {name}\nBuildArch: noarch\n{body}%description\n{name}\n"
                        "%files\n")
        subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", str(spec)], check=True,
                       capture_output=True, timeout=120)
    db = tmp_path / "db"
    subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True, capture_output=True)
    rpms = sorted(str(p) for p in (top / "RPMS" / "noarch").glob("*.rpm"))
    subprocess.run(["rpm", "--dbpath", str(db), "-i", "--justdb", "--nodeps", "--ignoreos", "--ignorearch",
                    *rpms], check=True, capture_output=True)
    make_image(client, "rocky:9", [[("etc/os-release", b'ID="rocky"\nVERSION_ID="9.3"\n'),
                                    ("var/lib/rpm/rpmdb.sqlite", (db / "rpmdb.sqlite").read_bytes())]])
    sbom = image_sbom(client, "rocky:9")
    got = {p.name: p for p in sbom.packages}
    assert sorted((p.type, p.name, p.version, p.licenses) for p in sbom.packages) == [
        ("rpm", "demo-app", "2.0-1.el9", ("GPL-2.0-or-later",)),
        ("rpm", "demo-lib", "1:1.2.3-4.el9", ("MIT and BSD",))]
    assert got["demo-lib"].purl == "pkg:rpm/rocky/demo-lib@1.2.3-4.el9?arch=noarch&distro=rocky-9.3&epoch=1"
    assert got["demo-app"].depends == (got["demo-lib"].ref,)  # via what demo-lib provides
    (tmp_path / "rocky.json").write_text(json.dumps({
        "id": "RLSA-2099:0001", "modified": "2099-01-01T00:00:00Z", "affected": [
            {"package": {"ecosystem": "Rocky Linux:9", "name": "demo-lib"},
             "ranges": [{"type": "ECOSYSTEM",
                         "events": [{"introduced": "0"}, {"fixed": "1:1.2.3-5.el9"}]}]}]}))
    with VulnDB(tmp_path / "v.db") as vdb:
        vdb.import_path(tmp_path / "rocky.json")
        found = [(f.package.name, f.fixed) for f in scan_image(client, "rocky:9", vdb).findings]
    assert found == [("demo-lib", "1:1.2.3-5.el9")]
    # The same headers in a Berkeley DB hash file (RHEL 7/8's /var/lib/rpm/Packages), written by
    # db_load with small pages so that every header lives on overflow pages.
    import sqlite3
    import struct

    raw = (db / "rpmdb.sqlite").read_bytes()
    conn = sqlite3.connect(":memory:")
    conn.deserialize(raw[:18] + b"\x01\x01" + raw[20:])  # rpm's WAL mode, as the reader does
    rows = conn.execute("SELECT hnum, blob FROM Packages").fetchall()
    conn.close()
    dump = ["VERSION=3", "format=bytevalue", "type=hash", "db_pagesize=512", "HEADER=END"]
    for hnum, blob in rows:
        dump += [" " + struct.pack("<I", hnum).hex(), " " + bytes(blob).hex()]
    (tmp_path / "dump.txt").write_text("\n".join([*dump, "DATA=END", ""]))
    subprocess.run(["db5.3_load", "-f", str(tmp_path / "dump.txt"), str(tmp_path / "Packages")], check=True,
                   capture_output=True)
    assert max(len(b) for _, b in rows) > 512
    make_image(client, "centos:7", [[("etc/os-release", b'ID="centos"\nVERSION_ID="7"\n'),
                                     ("var/lib/rpm/Packages", (tmp_path / "Packages").read_bytes())]])
    bdb = image_sbom(client, "centos:7")
    assert sorted((p.name, p.version, p.licenses) for p in bdb.packages) == [
        ("demo-app", "2.0-1.el9", ("GPL-2.0-or-later",)), ("demo-lib", "1:1.2.3-4.el9", ("MIT and BSD",))]


@pytest.mark.syft
@pytest.mark.slow
def test_fixture_image_as_syft(client: Client, debian_image: str, tmp_path: Path) -> None:
    """dpkg, Python and npm packages of the two-layer fixture (whiteouts, an opaque directory):
    the same packages and licences as syft, which also lists the purged package (status
    ``deinstall ok config-files``, not installed for dpkg-query) and lower-cases Python names."""
    image_tar = tmp_path / "deb.tar"
    client.save(["deb:1"], str(image_tar))
    theirs = syft_packages(image_tar, tmp_path)
    ours = {(p.name.lower().replace("_", "-") if p.type == "pypi" else p.name, p.version): set(p.licenses)
            for p in image_sbom(client, "deb:1").packages}
    assert ("purged", "1.0-1") in theirs
    del theirs[("purged", "1.0-1")]
    assert ours == {k: v["licenses"] for k, v in theirs.items()}
