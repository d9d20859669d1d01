"""``scan db update``: fetch OSV exports and distribution feeds into the database, all or nothing.

    report = update_db(path, [Source("osv", OSV_BUCKET)], ecosystems=["Debian", "PyPI"])

Sources (``KIND=LOCATION``; a bare location is ``osv``):
  * ``osv``: a base with OSV's bucket layout, ``<base>/<Ecosystem>/all.zip`` (HTTP or a directory);
    which ecosystems: ``--ecosystem``, else the base's ``ecosystems.txt``, else its subdirectories,
    else the ones the scanner matches. Incremental: a conditional GET of ``all.zip``; with an earlier
    import and a ``modified_id.csv`` (``<time>,<id>`` per record, as OSV publishes), only the records
    whose ``modified`` changed are fetched (``<base>/<Ecosystem>/<ID>.json``).
  * ``debian``: the Debian security tracker JSON (a URL or a file).
  * ``alpine``: an Alpine secdb base (``<base>/v3.18/main.json``, ``community.json``).

The work happens on a copy of the database; only a fully verified copy replaces it (``os.replace``),
so a killed update leaves the previous database as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.content import _fsync_dir
from dockyard.errors import CorruptData, InvalidArgument, NotFound
from dockyard.record import field, record
from dockyard.tools.scan.convert import alpine_secdb, debian_tracker
from dockyard.tools.scan.db import SCHEMA_VERSION, VulnDB, parse_records, parse_time
from dockyard.tools.scan.fetch import NOT_MODIFIED, Fetched, Fetcher, file_sha256

OSV_BUCKET = "https://osv-vulnerabilities.storage.googleapis.com"
# What `scan` can match, fetched from the public bucket when no --ecosystem narrows it.
DEFAULT_ECOSYSTEMS = ("Alpine", "Debian", "Ubuntu", "Rocky Linux", "AlmaLinux", "Red Hat", "PyPI", "npm",
                      "Go", "crates.io", "Maven", "RubyGems", "Packagist", "NuGet")
DEFAULTS = {"osv": OSV_BUCKET, "debian": "https://security-tracker.debian.org/tracker/data/json",
            "alpine": "https://secdb.alpinelinux.org"}
ALPINE_BRANCHES = (*(f"v3.{n}" for n in range(10, 23)), "edge")
_INCREMENTAL_LIMIT = 500  # more changed records than this: one all.zip is cheaper than many requests
_KINDS = ("osv", "debian", "alpine")


@record(frozen=True, slots=True)
class Source:
    """One place to update from: ``kind`` is osv, debian or alpine; ``location`` a URL or a path."""

    kind: str
    location: str

    @property
    def name(self) -> str:
        return f"{self.kind}={self.location.rstrip('/')}"


def parse_source(text: str) -> Source:
    """``osv=URL``, ``debian=FILE``, ``alpine=DIR``; a bare kind is its public source; a bare URL or
    path is an OSV mirror."""
    if text in DEFAULTS:
        return Source(text, DEFAULTS[text])
    kind, sep, location = text.partition("=")
    if sep and kind in _KINDS:
        pass
    elif sep and re.fullmatch(r"[a-z]+", kind):
        raise InvalidArgument(f"--source {text}: unknown kind {kind!r} (use {', '.join(_KINDS)})")
    else:
        kind, location = "osv", text
    if not location:
        raise InvalidArgument(f"--source {text}: empty location")
    if not location.startswith(("http://", "https://")):
        location = str(Path(location).expanduser().absolute())
    return Source(kind, location)


@record(slots=True)
class Step:
    """What one part of an update did: ``status`` is updated, unchanged, absent or incremental."""

    source: str
    part: str
    status: str
    records: int = 0
    removed: int = 0
    checked: str = ""


@record(slots=True)
class Report:
    steps: list[Step] = field(default_factory=list)
    data_date: float = 0.0

    @property
    def changed(self) -> bool:
        return any(s.status in ("updated", "incremental") for s in self.steps)


# -- staging: work on a copy, swap it in when it is complete ---------------------------------------------


@contextlib.contextmanager
def staged(path: Path) -> Iterator[VulnDB]:
    """A copy of the database at ``path`` (empty if none) that replaces it if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(path)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    if path.exists():
        with VulnDB(path) as old:
            old.check()
        src, dst = sqlite3.connect(path), sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
    vdb = VulnDB(tmp)
    try:
        yield vdb
        vdb.check()
        vdb.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        vdb.close()
        tmp.unlink(missing_ok=True)


def _clean_stale(path: Path) -> None:
    """Remove copies left by updates that were killed (their process is gone)."""
    for old in path.parent.glob(f".{path.name}.new-*"):
        pid = old.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                old.unlink(missing_ok=True)
            except PermissionError:
                pass


# -- the update ----------------------------------------------------------------------------------------


def update_db(path: Path, sources: list[Source], ecosystems: list[str] | None = None) -> Report:
    """Update the database at ``path`` from ``sources`` (all or nothing); see the module docstring."""
    report = Report()
    with staged(path) as vdb:
        for src in sources:
            if src.kind == "debian":
                _update_debian(vdb, src, path.parent, report)
                continue
            with Fetcher(src.location, path.parent) as fetcher:
                if src.kind == "osv":
                    _update_osv(vdb, src, fetcher, ecosystems, report)
                else:
                    _update_alpine(vdb, src, fetcher, report)
        if all(step.status == "absent" for step in report.steps):
            raise NotFound(f"no vulnerability data at {', '.join(s.location for s in sources)} (an OSV "
                           "mirror has <Ecosystem>/all.zip; see 'dockyard scan db update --help')")
        dates = [float(st.get("last_modified") or 0) for st in vdb.source_states().values()]
        report.data_date = max(dates, default=0.0) or time.time()
        vdb.set_meta(data_date=report.data_date, source=", ".join(s.name for s in sources))
    return report


def _ecosystems(src: Source, fetcher: Fetcher, wanted: list[str] | None) -> list[str]:
    if wanted:
        return wanted
    listing = fetcher.text("ecosystems.txt")
    if listing is not None:
        names = [line.strip() for line in listing.splitlines() if line.strip() and ":" not in line]
        if src.location.rstrip("/") == OSV_BUCKET:
            names = [n for n in names if n in DEFAULT_ECOSYSTEMS]
        return names
    if not fetcher.is_http:
        return sorted(p.parent.name for p in Path(src.location).glob("*/all.zip"))
    return list(DEFAULT_ECOSYSTEMS)


def _update_osv(vdb: VulnDB, src: Source, fetcher: Fetcher, wanted: list[str] | None, report: Report) -> None:
    for eco in _ecosystems(src, fetcher, wanted):
        key = f"{src.name}/{eco}"
        state = vdb.source_state(key)
        if state and _incremental(vdb, key, eco, fetcher, state, report):
            continue
        got = fetcher.get(f"{eco}/all.zip", state, verify=True)
        if got is None:
            report.steps.append(Step(src.name, eco, "absent"))
            continue
        if got is NOT_MODIFIED:
            report.steps.append(Step(src.name, eco, "unchanged"))
            continue
        assert isinstance(got, Fetched)
        ids: list[str] = []

        def records(got: Fetched = got, eco: str = eco,
                    ids: list[str] = ids) -> Iterator[tuple[str, dict[str, Any]]]:
            for where, rec in _zip_records(got.path, fetcher.where(f"{eco}/all.zip")):
                ids.append(str(rec["id"]))
                yield where, rec

        count = vdb.put_records(records(), key)
        removed = vdb.retain(key, ids)
        csv = fetcher.get(f"{eco}/modified_id.csv", {})
        got.state["incremental"] = isinstance(csv, Fetched)
        vdb.set_source_state(key, got.state)
        report.steps.append(Step(src.name, eco, "updated", count, removed, got.state.get("checked", "")))


def _incremental(vdb: VulnDB, key: str, eco: str, fetcher: Fetcher, state: dict[str, Any],
                 report: Report) -> bool:
    """Update one ecosystem from ``modified_id.csv`` and single records; False to use all.zip instead."""
    if not state.get("incremental"):
        return False
    csv = fetcher.get(f"{eco}/modified_id.csv", state.get("csv", {}))
    if csv is None:
        return False
    if csv is NOT_MODIFIED:
        report.steps.append(Step(key.rpartition("/")[0], eco, "unchanged"))
        return True
    assert isinstance(csv, Fetched)
    listed: dict[str, str] = {}
    for n, line in enumerate(csv.path.read_text("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        stamp, sep, vid = line.strip().partition(",")
        if not sep or not vid:
            raise CorruptData(f"{fetcher.where(eco + '/modified_id.csv')}:{n}: expected '<modified>,<id>'")
        listed[vid.rpartition("/")[2]] = stamp
    have = vdb.modified(key)
    changed = [vid for vid, stamp in listed.items() if _newer(stamp, have.get(vid, ""))]
    if len(changed) > _INCREMENTAL_LIMIT:
        return False

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        for vid in changed:
            rel = f"{eco}/{vid}.json"
            got = fetcher.get(rel, {})
            if not isinstance(got, Fetched):
                raise CorruptData(f"{fetcher.where(rel)}: listed in modified_id.csv but missing")
            yield from parse_records(got.path.read_bytes(), fetcher.where(rel))

    count = vdb.put_records(records(), key)
    removed = vdb.retain(key, listed)
    new_state = dict(state)
    new_state["csv"] = {k: v for k, v in csv.state.items() if k in ("etag", "last_modified")}
    new_state["last_modified"] = max(float(state.get("last_modified") or 0), csv.last_modified)
    vdb.set_source_state(key, new_state)
    status = "incremental" if count or removed else "unchanged"
    report.steps.append(Step(key.rpartition("/")[0], eco, status, count, removed))
    return True


def _newer(stamp: str, have: str) -> bool:
    return not have or parse_time(stamp) > parse_time(have)


def _zip_records(path: Path, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # every member's CRC: a truncated or damaged download stops here
            if bad is not None:
                raise CorruptData(f"{where}: member {bad} fails its CRC check")
            for name in sorted(zf.namelist()):
                if name.endswith(".json"):
                    yield from parse_records(zf.read(name), f"{where}:{name}")
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise CorruptData(f"{where}: not a valid zip file: {exc}") from None


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts or time.time()))


def _update_debian(vdb: VulnDB, src: Source, workdir: Path, report: Report) -> None:
    """The Debian tracker: one JSON file at ``src.location`` (a URL or a file path)."""
    base, _, rel = src.location.rstrip("/").rpartition("/")
    state = vdb.source_state(src.name)
    with Fetcher(base or "/", workdir) as f:
        got = f.get(rel, state, verify=True)
        if isinstance(got, Fetched):
            data = got.path.read_bytes()
    if got is None:
        raise CorruptData(f"{src.location}: not found")
    if got is NOT_MODIFIED:
        report.steps.append(Step(src.name, "tracker", "unchanged"))
        return
    assert isinstance(got, Fetched)
    ids: list[str] = []

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        for where, rec in debian_tracker(data, src.location, _stamp(got.last_modified)):
            ids.append(rec["id"])
            yield where, rec

    count = vdb.put_records(records(), src.name)
    removed = vdb.retain(src.name, ids)
    vdb.set_source_state(src.name, got.state)
    report.steps.append(Step(src.name, "tracker", "updated", count, removed))


def _update_alpine(vdb: VulnDB, src: Source, fetcher: Fetcher, report: Report) -> None:
    state = vdb.source_state(src.name)
    before: dict[str, Any] = state.get("parts", {})
    got_parts: dict[str, Any] = {}  # Fetched or NOT_MODIFIED
    for branch in ALPINE_BRANCHES:
        for repo in ("main", "community"):
            rel = f"{branch}/{repo}.json"
            got = fetcher.get(rel, before.get(rel, {}))
            if got is not None:
                got_parts[rel] = got
    if not got_parts:
        report.steps.append(Step(src.name, "secdb", "absent"))
        return
    if all(g is NOT_MODIFIED for g in got_parts.values()) and set(got_parts) == set(before):
        report.steps.append(Step(src.name, "secdb", "unchanged"))
        return
    files: list[tuple[bytes, str]] = []
    parts: dict[str, Any] = {}
    for rel, got in got_parts.items():
        if not isinstance(got, Fetched):  # unchanged, but every file is needed to rebuild the records
            got = fetcher.get(rel, {})
        if isinstance(got, Fetched):
            parts[rel] = got.state
            files.append((got.path.read_bytes(), fetcher.where(rel)))
    newest = max(float(p.get("last_modified") or 0) for p in parts.values())
    ids: list[str] = []

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        for where, rec in alpine_secdb(files, _stamp(newest)):
            ids.append(rec["id"])
            yield where, rec

    count = vdb.put_records(records(), src.name)
    removed = vdb.retain(src.name, ids)
    vdb.set_source_state(src.name, {"parts": parts, "last_modified": newest})
    report.steps.append(Step(src.name, "secdb", "updated", count, removed))


# -- bundles: the whole database in one file, for air-gapped sites --------------------------------------

BUNDLE_MANIFEST = "dockyard-vulndb.json"
_BUNDLE_DB = "vulndb.sqlite"


def export_bundle(path: Path, dest: Path) -> dict[str, Any]:
    """Write the database at ``path`` to the zip ``dest`` (a manifest with its digest, and the file)."""
    with VulnDB(path) as vdb:
        vdb.check()
        info = vdb.info()
    dest.parent.mkdir(parents=True, exist_ok=True)
    snap = dest.with_name(f".{dest.name}.db-{os.getpid()}")
    part = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        src, dst = sqlite3.connect(path), sqlite3.connect(snap)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        manifest = {"format": 1, "schema": SCHEMA_VERSION, "sha256": file_sha256(snap),
                    "size": snap.stat().st_size, "data_date": info["data_date"], "updated": info["updated"],
                    "vulnerabilities": info["vulnerabilities"], "sources": sorted(info["sources"])}
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(BUNDLE_MANIFEST, json.dumps(manifest, indent=2))
            zf.write(snap, _BUNDLE_DB)
        os.replace(part, dest)
    finally:
        snap.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
    return manifest


def is_bundle(path: Path) -> bool:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return BUNDLE_MANIFEST in zf.namelist()


def import_bundle(path: Path, bundle: Path) -> dict[str, Any]:
    """Replace the database at ``path`` with the one in ``bundle``, after checking its digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    try:
        with zipfile.ZipFile(bundle) as zf:
            try:
                manifest = json.loads(zf.read(BUNDLE_MANIFEST))
            except (ValueError, KeyError) as exc:
                raise CorruptData(f"{bundle}: bad {BUNDLE_MANIFEST}: {exc}") from None
            if not isinstance(manifest, dict) or manifest.get("format") != 1:
                raise CorruptData(f"{bundle}: unknown bundle format {manifest.get('format')!r}")
            if int(manifest.get("schema", 0)) > SCHEMA_VERSION:
                raise CorruptData(f"{bundle}: database schema {manifest['schema']} is newer than this "
                                  f"dockyard reads ({SCHEMA_VERSION})")
            with zf.open(_BUNDLE_DB) as fin, tmp.open("wb") as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)
    except zipfile.BadZipFile as exc:
        tmp.unlink(missing_ok=True)
        raise CorruptData(f"{bundle}: not a valid zip file: {exc}") from None
    except KeyError:
        tmp.unlink(missing_ok=True)
        raise CorruptData(f"{bundle}: no {_BUNDLE_DB} in the bundle") from None
    try:
        digest = file_sha256(tmp)
        if digest != manifest.get("sha256"):
            raise CorruptData(f"{bundle}: database sha256 {digest} does not match the manifest's "
                              f"{manifest.get('sha256')}")
        with VulnDB(tmp) as vdb:
            vdb.check()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return dict(manifest)


def import_records(path: Path, source: Path) -> int:
    """Import OSV records (a .json file, a directory, a zip) into the database, all or nothing."""
    with staged(path) as vdb:
        return vdb.import_path(source)


# -- how old the data may be ------------------------------------------------------------------------

DEFAULT_MAX_AGE = 7 * 86400.0


def parse_age(text: str, where: str = "--max-db-age") -> float:
    """``7d``, ``2w``, or a Go duration (``36h``, ``90m``) in seconds; ``0`` turns the warning off."""
    from dockyard.goformat import parse_duration

    m = re.fullmatch(r"\s*(\d+)\s*([dw])\s*", text)
    if m:
        return int(m.group(1)) * (86400.0 if m.group(2) == "d" else 7 * 86400.0)
    try:
        seconds = parse_duration(text.strip()) / 1e9
    except ValueError as exc:
        raise InvalidArgument(f"{where}: {text!r} is not an age like 7d, 2w or 36h ({exc})") from None
    if seconds < 0:
        raise InvalidArgument(f"{where}: {text!r} is negative")
    return seconds


def data_age(info: dict[str, Any], now: float | None = None) -> float:
    """Seconds since the date of the database's data (see ``VulnDB.info``)."""
    return max(0.0, (time.time() if now is None else now) - float(info.get("data_date") or 0.0))


def describe_age(seconds: float) -> str:
    days = seconds / 86400
    if days >= 2:
        return f"{days:.0f} days"
    hours = seconds / 3600
    return f"{hours:.0f} hours" if hours >= 2 else f"{seconds / 60:.0f} minutes"
