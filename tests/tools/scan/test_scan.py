"""scan: packages read from layer tars and exact findings against a small OSV fixture database."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.errors import CorruptData, InvalidArgument, NotFound
from dockyard.tools.scan import (
    ScanResult,
    VulnDB,
    check_affected,
    cvss3_score,
    image_sbom,
    parse_severities,
    scan_image,
    to_cyclonedx,
    to_json,
    to_spdx,
)
from tests.tools.analyze.kit import make_image
from tests.tools.scan.fixtures import OSV


def test_sbom_packages(client: Client, debian_image: str) -> None:
    sbom = image_sbom(client, "deb:1")
    assert (sbom.os.id, sbom.os.version_id) == ("debian", "12")
    got = sorted((p.type, p.name, p.version) for p in sbom.packages)
    assert got == [
        ("deb", "curl", "7.88.1-10+deb12u5"), ("deb", "libssl3", "3.0.11-1~deb12u2"),
        ("deb", "openssl", "3.0.11-1~deb12u2"), ("deb", "zlib1g", "1:1.2.13.dfsg-1"),
        ("npm", "@types/node", "20.1.0"), ("npm", "lodash", "4.17.21"), ("npm", "minimist", "1.2.5"),
        ("npm", "not-a-package-root", "9.9.9"),  # trivy counts any named package.json in node_modules
        ("pypi", "Old_Lib", "0.9"), ("pypi", "requests", "2.28.1"),
    ]
    purls = {p.name: p.purl for p in sbom.packages}
    assert purls["libssl3"] == "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
    assert purls["zlib1g"] == "pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&distro=debian-12&epoch=1"
    assert purls["@types/node"] == "pkg:npm/%40types/node@20.1.0"
    assert purls["Old_Lib"] == "pkg:pypi/old-lib@0.9"
    libssl = next(p for p in sbom.packages if p.name == "libssl3")
    assert (libssl.src_name, libssl.src_version) == ("openssl", "3.0.11-1~deb12u2")


def test_findings(client: Client, debian_image: str, db: VulnDB) -> None:
    result = scan_image(client, "deb:1", db)
    got = sorted((f.package.name, f.vuln.id, f.severity, f.package.version, f.fixed) for f in result.findings)
    assert got == [
        ("Old_Lib", "PYSEC-oldlib", "CRITICAL", "0.9", ""),
        ("libssl3", "DSA-0001-1", "HIGH", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"),
        ("minimist", "GHSA-minimist", "CRITICAL", "1.2.5", "1.2.6"),
        ("openssl", "DSA-0001-1", "HIGH", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1"),
        ("requests", "GHSA-aaaa-bbbb-cccc", "MEDIUM", "2.28.1", "2.31.0"),
        ("zlib1g", "DEBIAN-CVE-2023-0004", "UNKNOWN", "1:1.2.13.dfsg-1", "1:1.3-1"),
    ]
    high = scan_image(client, "deb:1", db, parse_severities("CRITICAL,HIGH"))
    assert sorted(f.vuln.id for f in high.findings) == [
        "DSA-0001-1", "DSA-0001-1", "GHSA-minimist", "PYSEC-oldlib"]
    assert result.counts()["CRITICAL"] == 2
    doc = to_json(result)
    assert [r["Type"] for r in doc["Results"]] == ["deb", "npm", "pypi"]
    assert doc["Results"][0]["Target"] == "deb:1 (debian 12)"


def test_cyclonedx_and_spdx(client: Client, debian_image: str, db: VulnDB) -> None:
    result = scan_image(client, "deb:1", db)
    cdx = to_cyclonedx(result)
    assert cdx["bomFormat"] == "CycloneDX" and cdx["specVersion"] == "1.5"
    libs = [c for c in cdx["components"] if c["type"] == "library"]
    assert len(libs) == 10 and all(c["purl"].startswith("pkg:") for c in libs)
    assert len({c["bom-ref"] for c in cdx["components"]}) == len(cdx["components"])
    assert {c["name"] for c in cdx["components"] if c["type"] == "operating-system"} == {"debian"}
    refs = {c["bom-ref"] for c in cdx["components"]}
    assert all(a["ref"] in refs for v in cdx["vulnerabilities"] for a in v["affects"])
    assert {v["id"] for v in cdx["vulnerabilities"]} == {f.vuln.id for f in result.findings}
    spdx = to_spdx(result)
    assert spdx["spdxVersion"] == "SPDX-2.3"
    pkgs = [p for p in spdx["packages"] if p["SPDXID"].startswith("SPDXRef-Package-")]
    assert len(pkgs) == 10
    assert all(p["externalRefs"][0]["referenceType"] == "purl" for p in pkgs)
    ids = {p["SPDXID"] for p in spdx["packages"]}
    assert all(r["relatedSpdxElement"] in ids for r in spdx["relationships"])


def test_alpine(client: Client, tmp_path: Path) -> None:
    installed = (b"C:Q1abc=\nP:musl\nV:1.2.4-r1\nA:x86_64\nL:MIT\no:musl\n\n"
                 b"C:Q1def=\nP:libcrypto3\nV:3.1.1-r1\nA:x86_64\no:openssl\n\n")
    make_image(client, "alp:1", [[("etc/os-release", b"ID=alpine\nVERSION_ID=3.18.2\n"),
                                  ("lib/apk/db/installed", installed)]])
    (tmp_path / "a.json").write_text(json.dumps([
        {"id": "ALPINE-1", "affected": [{"package": {"ecosystem": "Alpine:v3.18", "name": "openssl"},
                                         "ranges": [{"type": "ECOSYSTEM", "events": [
                                             {"introduced": "0"}, {"fixed": "3.1.1-r10"}]}]}]},
        {"id": "ALPINE-2", "affected": [{"package": {"ecosystem": "Alpine:v3.17", "name": "openssl"},
                                         "ranges": [{"type": "ECOSYSTEM", "events": [
                                             {"introduced": "0"}, {"fixed": "3.1.1-r10"}]}]}]},
        {"id": "ALPINE-W", "withdrawn": "2024-01-01T00:00:00Z", "affected": [
            {"package": {"ecosystem": "Alpine:v3.18", "name": "openssl"}, "versions": ["3.1.1-r1"]}]},
        {"id": "ALPINE-3", "affected": [{"package": {"ecosystem": "Alpine:v3.18", "name": "musl"},
                                         "ranges": [{"type": "ECOSYSTEM", "events": [
                                             {"introduced": "0"}, {"fixed": "1.2.4-r0"}]}]}]}]))
    with VulnDB(tmp_path / "a.db") as vdb:
        assert vdb.import_path(tmp_path / "a.json") == 4
        result = scan_image(client, "alp:1", vdb)
    assert [(f.package.name, f.vuln.id, f.fixed) for f in result.findings] == [
        ("libcrypto3", "ALPINE-1", "3.1.1-r10")]
    assert result.sbom.packages[0].purl == "pkg:apk/alpine/libcrypto3@3.1.1-r1?arch=x86_64&distro=3.18.2"


def test_db_zip_info_and_errors(tmp_path: Path) -> None:
    z = tmp_path / "osv.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for rec in OSV:
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
        zf.writestr("README.txt", "not a record")
    with VulnDB(tmp_path / "z.db") as vdb:
        assert vdb.import_path(z) == len(OSV)
        assert vdb.import_path(z) == len(OSV)  # re-import replaces, no duplicates
        info = vdb.info()
    assert info["vulnerabilities"] == len(OSV) and info["affected"] == len(OSV)
    assert info["ecosystems"]["npm"] == 3
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with VulnDB(tmp_path / "b.db") as vdb, pytest.raises(CorruptData, match=r"bad\.json: not valid JSON"):
        vdb.import_path(bad)
    with VulnDB(tmp_path / "c.db") as vdb, pytest.raises(InvalidArgument, match="no such file"):
        vdb.import_path(tmp_path / "missing.json")
    with VulnDB(tmp_path / "none.db") as vdb, pytest.raises(NotFound, match="scan db import"):
        vdb.info()
    with pytest.raises(InvalidArgument, match="unknown severity"):
        parse_severities("HIGH,SEVERE")


def test_osv_ranges_and_cvss() -> None:
    data = {"ranges": [{"type": "ECOSYSTEM", "events": [
        {"introduced": "1.0"}, {"fixed": "1.5"}, {"introduced": "2.0"}, {"last_affected": "2.3"}]}]}
    cases = {"0.9": False, "1.0": True, "1.4.9": True, "1.5": False, "1.9": False, "2.0": True, "2.3": True,
             "2.3.1": False}
    for version, want in cases.items():
        assert check_affected("PyPI", version, data)[0] is want, version
    assert check_affected("PyPI", "1.2", data)[1] == ["1.5"]
    assert cvss3_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert cvss3_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N") == 6.1
    assert cvss3_score("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H") == 5.5
    assert cvss3_score("CVSS:2.0/AV:N") is None


def _go_binary(version: str, modinfo: str) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        n, out = len(raw), b""
        while n >= 0x80:
            out += bytes([n & 0x7F | 0x80])
            n >>= 7
        return out + bytes([n]) + raw

    framed = "0" * 16 + modinfo + "1" * 16
    header = (b"\xff Go buildinf:" + b"\x08\x02").ljust(32, b"\0")
    return b"\x7fELF" + b"\0" * 60 + header + s(version) + s(framed) + b"\0" * 2000


def test_go_binaries(client: Client, tmp_path: Path) -> None:
    modinfo = ("path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
               "dep\tgolang.org/x/text\tv0.3.7\th1:x=\n"
               "dep\tgithub.com/old/mod\tv1.0.0\th1:y=\n=>\tgithub.com/new/mod\tv1.2.0\th1:z=\n")
    make_image(client, "go:1", [
        [("usr/bin/app", _go_binary("go1.21.4", modinfo)), ("usr/bin/tool", _go_binary("go1.20", "")),
         ("usr/share/not-exec", _go_binary("go1.9", ""))],
        [("usr/bin/.wh.tool", b"")]])
    got = sorted((p.name, p.version, p.path, p.purl) for p in image_sbom(client, "go:1").packages)
    assert got == [
        ("github.com/new/mod", "v1.2.0", "/usr/bin/app", "pkg:golang/github.com/new/mod@v1.2.0"),
        ("golang.org/x/text", "v0.3.7", "/usr/bin/app", "pkg:golang/golang.org/x/text@v0.3.7"),
        ("stdlib", "v1.21.4", "/usr/bin/app", "pkg:golang/stdlib@v1.21.4"),
    ]
    (tmp_path / "go.json").write_text(json.dumps([
        {"id": "GO-2022-1059", "affected": [{"package": {"ecosystem": "Go", "name": "golang.org/x/text"},
                                             "ranges": [{"type": "SEMVER", "events": [
                                                 {"introduced": "0"}, {"fixed": "0.3.8"}]}]}]},
        {"id": "GO-2023-0001", "affected": [{"package": {"ecosystem": "Go", "name": "stdlib"},
                                             "ranges": [{"type": "SEMVER", "events": [
                                                 {"introduced": "1.21.0"}, {"fixed": "1.21.4"}]}]}]}]))
    with VulnDB(tmp_path / "go.db") as vdb:
        vdb.import_path(tmp_path / "go.json")
        found = [(f.package.name, f.vuln.id, f.fixed) for f in scan_image(client, "go:1", vdb).findings]
    assert found == [("golang.org/x/text", "GO-2022-1059", "0.3.8")]


def test_go_main_module_depends_on_what_it_links(client: Client) -> None:
    """A binary's build info has no module graph: its versioned main module depends on every module
    (stdlib included) linked into it; the modules of another binary are not its dependencies."""
    modinfo = ("path\texample.com/app\nmod\texample.com/app\tv1.4.0\th1:a=\n"
               "dep\tgolang.org/x/text\tv0.3.7\th1:x=\n"
               "dep\tgithub.com/old/mod\tv1.0.0\th1:y=\n=>\tgithub.com/new/mod\tv1.2.0\th1:z=\n")
    other = ("path\texample.com/tool\nmod\texample.com/tool\tv0.1.0\th1:b=\n"
             "dep\tgithub.com/x/y\tv2.0.0\th1:c=\n")
    make_image(client, "gomain:1", [[("usr/bin/app", _go_binary("go1.21.4", modinfo)),
                                     ("usr/bin/tool", _go_binary("go1.20.1", other))]])
    sbom = image_sbom(client, "gomain:1")
    names = {p.ref: (p.name, p.version) for p in sbom.packages}
    graph = {(p.name, p.version): sorted(names[d] for d in p.depends) for p in sbom.packages}
    assert graph[("example.com/app", "v1.4.0")] == [
        ("github.com/new/mod", "v1.2.0"), ("golang.org/x/text", "v0.3.7"), ("stdlib", "v1.21.4")]
    assert graph[("example.com/tool", "v0.1.0")] == [("github.com/x/y", "v2.0.0"), ("stdlib", "v1.20.1")]
    assert graph[("golang.org/x/text", "v0.3.7")] == [] and graph[("stdlib", "v1.21.4")] == []
    cdx = to_cyclonedx(ScanResult(sbom))
    refs = {c["bom-ref"]: c["name"] for c in cdx["components"]}
    edges = {refs[d["ref"]]: sorted(refs[t] for t in d.get("dependsOn", [])) for d in cdx["dependencies"]
             if d["ref"] in refs}
    assert edges["example.com/app"] == ["github.com/new/mod", "golang.org/x/text", "stdlib"]


def test_ubuntu_release_with_lts_suffix(client: Client, tmp_path: Path) -> None:
    status = b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.1-6ubuntu1\n"
    make_image(client, "ubu:1", [[("etc/os-release", b"ID=ubuntu\nVERSION_ID=\"22.04\"\n"),
                                  ("var/lib/dpkg/status", status)]])
    (tmp_path / "u.json").write_text(json.dumps(
        {"id": "UBUNTU-CVE-1", "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "bash"},
                                              "ranges": [{"type": "ECOSYSTEM", "events": [
                                                  {"introduced": "0"}, {"fixed": "5.1-6ubuntu1.1"}]}]}]}))
    with VulnDB(tmp_path / "u.db") as vdb:
        vdb.import_path(tmp_path / "u.json")
        result = scan_image(client, "ubu:1", vdb)
    assert [(f.package.name, f.fixed) for f in result.findings] == [("bash", "5.1-6ubuntu1.1")]
    assert result.sbom.packages[0].purl == "pkg:deb/ubuntu/bash@5.1-6ubuntu1?arch=amd64&distro=ubuntu-22.04"


def test_severity_sources() -> None:
    from dockyard.tools.scan import cvss4_score, record_severity

    # FIRST's CVSS v4.0 examples: 9.3 for a network, no-privilege, high-impact vector
    assert cvss4_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") == 9.3
    assert cvss4_score("CVSS:4.0/AV:N/AC:L") is None and cvss4_score("CVSS:3.1/AV:N") is None
    v4 = {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}
    v3 = {"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H"}  # 5.5
    assert record_severity({"severity": [v4]}) == "CRITICAL"
    assert record_severity({"severity": [v4, v3]}) == "MEDIUM"  # v3 first, as the module says
    # Debian urgency, as trivy maps it; "not yet assigned" falls through to CVSS
    for urgency, want in [("high", "HIGH"), ("medium", "MEDIUM"), ("low", "LOW"), ("unimportant", "LOW"),
                          ("low**", "LOW"), ("not yet assigned", "MEDIUM"), ("end-of-life", "MEDIUM")]:
        rec = {"affected": [{"ecosystem_specific": {"urgency": urgency}}], "severity": [v3]}
        assert record_severity(rec) == want, urgency
    assert record_severity({"database_specific": {"severity": "MODERATE"}, "severity": [v4]}) == "MEDIUM"
    assert record_severity({}) == "UNKNOWN"
    assert record_severity({"severity": [{"type": "Ubuntu", "score": "negligible"}, v4]}) == "LOW"
