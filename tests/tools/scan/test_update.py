"""scan db update/export/import: real records from a local HTTP mirror, incremental, verified, atomic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dockyard.errors import CorruptData, DigestMismatch, InvalidArgument, NotFound
from dockyard.tools.scan import VulnDB, parse_source, update_db
from dockyard.tools.scan.update import (
    Source,
    export_bundle,
    import_bundle,
    import_records,
    parse_age,
)
from tests.tools.scan.mirror import DATA, build_mirror, serve

NEW_PYPI = {"id": "GHSA-9wx4-h78v-vm56", "modified": "2024-06-10T18:00:00Z", "aliases": ["CVE-2024-35195"],
            "summary": "Requests `Session` object does not verify requests after making first request "
                       "with verify=False",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"}, "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}]}],
            "database_specific": {"severity": "MODERATE"}}


def _add_pypi_record(mirror: Path) -> None:
    """Upstream gains a record: PyPI/all.zip is rebuilt with it (a new ETag)."""
    recs = [json.loads(p.read_text()) for p in sorted((DATA / "mirror" / "PyPI").glob("*.json"))]
    build_mirror(mirror, csv=False, sha256=False, records={"PyPI": [*recs, NEW_PYPI]})


def _ids(path: Path) -> set[str]:
    with VulnDB(path) as vdb:
        return {r[0] for r in vdb._open(create=False).execute("SELECT id FROM vulns")}


def _steps(report: object) -> dict[str, tuple[str, int, int]]:
    return {s.part: (s.status, s.records, s.removed) for s in report.steps  # type: ignore[attr-defined]
            if s.status != "absent"}


def test_update_from_http_mirror_then_not_modified(tmp_path: Path) -> None:
    mirror = build_mirror(tmp_path / "mirror", csv=False)
    db = tmp_path / "scan" / "vulndb.sqlite"
    with serve(mirror) as server:
        report = update_db(db, [parse_source(server.url)])
        assert _steps(report) == {"Alpine": ("updated", 1, 0), "Debian": ("updated", 6, 0),
                                  "PyPI": ("updated", 2, 0), "Rocky Linux": ("updated", 1, 0)}
        assert {s.checked for s in report.steps if s.status == "updated"} == {"sha256"}
        with VulnDB(db) as vdb:
            info = vdb.info()
            glibc = vdb.affected("Debian:12", "glibc")
        assert info["vulnerabilities"] == 10 and info["schema"] == 2
        assert info["ecosystems"] == {"Alpine:v3.18": 1, "Debian:12": 6, "Debian:13": 1, "PyPI": 2,
                                      "Rocky Linux:9": 1}
        with VulnDB(db) as vdb:
            (rocky, _, _), = vdb.affected("Rocky Linux:9", "openssh-server")
        assert rocky.severity == "HIGH"  # Red Hat's "Important"
        assert {(v.id, v.severity) for v, _, _ in glibc} == {("DSA-5514-1", "HIGH"),
                                                              ("DEBIAN-CVE-2023-4911", "HIGH")}
        # the data's date is the mirror's Last-Modified, not the records' (2023/2024) times
        assert abs(info["data_date"] - (mirror / "Debian" / "all.zip").stat().st_mtime) < 2
        before = len(server.log)
        again = update_db(db, [parse_source(server.url)])
        assert _steps(again) == {"Alpine": ("unchanged", 0, 0), "Debian": ("unchanged", 0, 0),
                                 "PyPI": ("unchanged", 0, 0), "Rocky Linux": ("unchanged", 0, 0)}
        zips = [(path, status) for path, status in server.log[before:] if path.endswith("all.zip")
                and status != 404]  # (the ecosystems this mirror lacks are probed and absent)
        assert sorted(zips) == [("Alpine/all.zip", 304), ("Debian/all.zip", 304), ("PyPI/all.zip", 304),
                                ("Rocky Linux/all.zip", 304)]
        assert not again.changed


def test_incremental_by_modified_id_csv(tmp_path: Path) -> None:
    records = {"PyPI": [json.loads(p.read_text()) for p in sorted((DATA / "mirror" / "PyPI").glob("*.json"))]}
    mirror = build_mirror(tmp_path / "mirror", records=records)
    db = tmp_path / "vulndb.sqlite"
    with serve(mirror) as server:
        src = [parse_source(server.url)]
        assert _steps(update_db(db, src, ["PyPI"])) == {"PyPI": ("updated", 2, 0)}
        # upstream: requests' advisory revised (later fix), urllib3's withdrawn from the export, one new
        requests, _urllib3 = records["PyPI"]
        requests = {**requests, "modified": "2025-01-01T00:00:00Z"}
        requests["affected"][0]["ranges"][0]["events"][1] = {"fixed": "2.32.0"}
        new = NEW_PYPI
        build_mirror(mirror, records={"PyPI": [requests, new]})
        start = len(server.log)
        report = update_db(db, src, ["PyPI"])
        assert _steps(report) == {"PyPI": ("incremental", 2, 1)}
        fetched = {p for p, s in server.log[start:] if s == 200}
        assert fetched == {"PyPI/modified_id.csv", "PyPI/GHSA-j8r2-6x86-q33q.json",
                           "PyPI/GHSA-9wx4-h78v-vm56.json"}  # not all.zip, not the unchanged record
    assert _ids(db) == {"GHSA-j8r2-6x86-q33q", "GHSA-9wx4-h78v-vm56"}
    with VulnDB(db) as vdb:
        (_, _, data), = [a for a in vdb.affected("PyPI", "requests") if a[0].id == "GHSA-j8r2-6x86-q33q"]
    assert data["ranges"][0]["events"][1] == {"fixed": "2.32.0"}


def test_directory_source_takes_the_ecosystems_it_has(tmp_path: Path) -> None:
    mirror = build_mirror(tmp_path / "mirror", csv=False, sha256=False)
    (mirror / "Alpine" / "all.zip").unlink()
    db = tmp_path / "vulndb.sqlite"
    report = update_db(db, [parse_source(str(mirror))])
    assert [(s.part, s.status) for s in report.steps] == [("Debian", "updated"), ("PyPI", "updated"),
                                                          ("Rocky Linux", "updated")]
    assert _steps(update_db(db, [parse_source(str(mirror))])) == {
        "Debian": ("unchanged", 0, 0), "PyPI": ("unchanged", 0, 0), "Rocky Linux": ("unchanged", 0, 0)}


def test_verification_refuses_bad_downloads_and_keeps_the_old_db(tmp_path: Path) -> None:
    mirror = build_mirror(tmp_path / "mirror", csv=False)
    db = tmp_path / "vulndb.sqlite"
    with serve(mirror) as server:
        update_db(db, [parse_source(server.url)], ["PyPI"])
        good = _ids(db)
        # a published digest that does not match; PyPI's new record (fetched first) is not kept either
        _add_pypi_record(mirror)
        (mirror / "Debian" / "all.zip.sha256").write_text("0" * 64 + "  all.zip\n")
        with pytest.raises(DigestMismatch, match=r"Debian/all.zip against Debian/all.zip.sha256"):
            update_db(db, [parse_source(server.url)], ["PyPI", "Debian"])
        assert _ids(db) == good
        # a damaged zip (no digest to catch it)
        (mirror / "Debian" / "all.zip.sha256").unlink()
        raw = bytearray((mirror / "Debian" / "all.zip").read_bytes())
        raw[60:70] = b"XXXXXXXXXX"
        (mirror / "Debian" / "all.zip").write_bytes(bytes(raw))
        with pytest.raises(CorruptData, match=r"Debian/all.zip"):
            update_db(db, [parse_source(server.url)], ["Debian"])
        # a record without the OSV essentials
        with zipfile.ZipFile(mirror / "Debian" / "all.zip", "w") as zf:
            zf.writestr("X.json", json.dumps({"id": "X-1", "affected": []}))
        with pytest.raises(CorruptData, match=r"Debian/all.zip:X.json: record X-1: 'modified' is missing"):
            update_db(db, [parse_source(server.url)], ["Debian"])
        assert _ids(db) == good
    assert list(tmp_path.glob(".vulndb.sqlite.new-*")) == []


def test_gcs_md5_is_checked(tmp_path: Path) -> None:
    mirror = build_mirror(tmp_path / "mirror", csv=False, sha256=False)
    db = tmp_path / "vulndb.sqlite"
    with serve(mirror) as server:
        report = update_db(db, [parse_source(server.url)], ["PyPI"])
        assert [(s.part, s.checked) for s in report.steps] == [("PyPI", "md5")]
        server.goog_md5["Debian/all.zip"] = "1B2M2Y8AsgTpgAmY7PhCfg=="  # the MD5 of nothing
        with pytest.raises(DigestMismatch, match=r"Debian/all.zip against its x-goog-hash"):
            update_db(db, [parse_source(server.url)], ["Debian"])
    assert _ids(db) == {"GHSA-j8r2-6x86-q33q", "GHSA-v845-jxx5-vc9f"}


@pytest.mark.slow
def test_killed_update_leaves_the_previous_db(tmp_path: Path) -> None:
    mirror = build_mirror(tmp_path / "mirror", csv=False, sha256=False)
    store = tmp_path / "store"
    db = store / "scan" / "vulndb.sqlite"
    with serve(mirror) as server:
        update_db(db, [parse_source(server.url)], ["PyPI"])
        good = _ids(db)
        _add_pypi_record(mirror)  # the killed run stores this first, then stalls on Debian
        server.stall_path = "Debian/all.zip"
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(store), "scan", "db",
                                 "update", "--source", server.url, "--ecosystem", "PyPI", "--ecosystem",
                                 "Debian"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert server.stalled.wait(60), "the update never reached Debian/all.zip"
            assert list(db.parent.glob(".vulndb.sqlite.new-*"))  # it was working on its copy
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        server.release.set()
        with VulnDB(db) as vdb:
            vdb.check()
        assert _ids(db) == good
        server.stall_path = ""
        update_db(db, [parse_source(server.url)], ["PyPI", "Debian"])
    assert list(db.parent.glob(".vulndb.sqlite.new-*")) == []  # the dead run's copy is cleaned up
    assert {"DSA-5514-1", NEW_PYPI["id"]} <= _ids(db)


def test_debian_tracker_and_alpine_secdb(tmp_path: Path) -> None:
    db = tmp_path / "vulndb.sqlite"
    with serve(DATA) as server:
        report = update_db(db, [parse_source(f"debian={server.url}/debian-tracker.json"),
                                parse_source(f"alpine={server.url}/alpine-secdb")])
        assert _steps(report) == {"tracker": ("updated", 4, 0), "secdb": ("updated", 6, 0)}
        again = update_db(db, [parse_source(f"debian={server.url}/debian-tracker.json"),
                               parse_source(f"alpine={server.url}/alpine-secdb")])
        assert {s.status for s in again.steps} == {"unchanged"}
    with VulnDB(db) as vdb:
        glibc = vdb.affected("Debian:12", "glibc")
        apt = vdb.affected("Debian:12", "apt")
        ssl = vdb.affected("Alpine:v3.18", "openssl")
    # bullseye's fixed_version 0 (not affected) and sid are left out; urgency high -> HIGH,
    # unimportant -> LOW
    assert [(v.id, eco, d["severity"], d["ranges"][0]["events"]) for v, eco, d in glibc] == [
        ("DEBIAN-CVE-2023-4911", "Debian:12", "HIGH", [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}])]
    assert [(v.id, d["severity"], d["ranges"][0]["events"]) for v, _, d in apt] == [
        ("DEBIAN-CVE-2011-3374", "LOW", [{"introduced": "0"}])]
    assert sorted(v.id for v, _, _ in ssl) == ["ALPINE-CVE-2023-3817", "ALPINE-CVE-2023-5363",
                                                "ALPINE-CVE-2023-5678"]  # "0": never affected, left out


def test_bundle_export_import(tmp_path: Path) -> None:
    db = tmp_path / "a" / "vulndb.sqlite"
    update_db(db, [parse_source(str(build_mirror(tmp_path / "mirror")))])
    bundle = tmp_path / "vulndb.zip"
    manifest = export_bundle(db, bundle)
    assert manifest["vulnerabilities"] == 10 and len(manifest["sha256"]) == 64
    other = tmp_path / "air-gapped" / "vulndb.sqlite"
    import_bundle(other, bundle)
    assert _ids(other) == _ids(db)
    with VulnDB(other) as a, VulnDB(db) as b:
        assert a.info()["data_date"] == b.info()["data_date"]
    # a tampered database inside the bundle is refused and the installed one kept
    with zipfile.ZipFile(bundle) as zf:
        man, raw = zf.read("dockyard-vulndb.json"), bytearray(zf.read("vulndb.sqlite"))
    raw[-100] ^= 1
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("dockyard-vulndb.json", man)
        zf.writestr("vulndb.sqlite", bytes(raw))
    with pytest.raises(CorruptData, match="does not match the manifest"):
        import_bundle(other, bad)
    assert _ids(other) == _ids(db)
    # OSV records import (not a bundle) goes through the same all-or-nothing copy
    assert import_records(other, DATA / "mirror" / "PyPI") == 2
    with pytest.raises(CorruptData, match="not valid JSON"):
        (tmp_path / "broken.json").write_text("{")
        import_records(other, tmp_path / "broken.json")


def test_a_source_without_data_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "vulndb.sqlite"
    with pytest.raises(NotFound, match=r"no vulnerability data at .*/mirror \(an OSV mirror has"):
        update_db(db, [parse_source(str(DATA / "mirror"))])  # record files, but no all.zip
    assert not db.exists()


def test_sources_and_ages_parse() -> None:
    assert parse_source("https://m.example/osv/") == Source("osv", "https://m.example/osv/")
    assert parse_source("debian=https://t.example/json").kind == "debian"
    assert parse_source("alpine") == Source("alpine", "https://secdb.alpinelinux.org")
    with pytest.raises(InvalidArgument, match="unknown kind 'ubuntu'"):
        parse_source("ubuntu=https://x")
    assert parse_age("7d") == 7 * 86400 and parse_age("2w") == 14 * 86400 and parse_age("36h") == 36 * 3600
    assert parse_age("0") == 0
    with pytest.raises(InvalidArgument, match="not an age"):
        parse_age("soon")
