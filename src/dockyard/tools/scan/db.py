"""The offline vulnerability database: OSV records in one SQLite file, with where they came from.

    db = VulnDB(path)
    db.import_path("osv.zip")       # a .json file (one record or a list), a directory of them, or a zip
    db.info()                       # counts, schema version, when updated, the data's date, sources
    db.affected("Debian:12", "openssl")   # [(vuln, record ecosystem, {"ranges", "versions"})]

Each record is stored with the sources that supplied it (``origins``), so that an update from one
source can drop what that source no longer has; per-source state (ETag, Last-Modified, digest) makes
the next update incremental. Severity: see ``severity``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dockyard.errors import CorruptData, InvalidArgument, NotFound
from dockyard.record import record
from dockyard.tools.scan.severity import SEVERITIES, affected_severity, record_severity

__all__ = ["SCHEMA_VERSION", "SEVERITIES", "Vuln", "VulnDB", "family", "normalize_name", "parse_records",
           "parse_time"]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vulns (id TEXT PRIMARY KEY, summary TEXT NOT NULL, severity TEXT NOT NULL,
    aliases TEXT NOT NULL, modified TEXT NOT NULL, cvss TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS affected (vuln_id TEXT NOT NULL, ecosystem TEXT NOT NULL, family TEXT NOT NULL,
    name TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS affected_by_name ON affected (family, name);
CREATE INDEX IF NOT EXISTS affected_by_vuln ON affected (vuln_id);
CREATE TABLE IF NOT EXISTS origins (source TEXT NOT NULL, vuln_id TEXT NOT NULL,
    PRIMARY KEY (source, vuln_id));
CREATE INDEX IF NOT EXISTS origins_by_vuln ON origins (vuln_id);
CREATE TABLE IF NOT EXISTS sources (name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@record(frozen=True, slots=True)
class Vuln:
    """One advisory as stored: ID, one-line title, severity, aliases (CVE IDs), CVSS (type, vector)s."""

    id: str
    title: str
    severity: str
    aliases: tuple[str, ...]
    cvss: tuple[tuple[str, str], ...] = ()

    @property
    def score(self) -> float | None:
        """The CVSS base score the severity rests on (v3 before v4), if there is a vector."""
        from dockyard.tools.scan.severity import cvss_severity

        return cvss_severity([{"type": t, "score": v} for t, v in self.cvss])[1]


def family(ecosystem: str) -> str:
    """``Debian:12`` -> ``debian`` (the key packages are matched by)."""
    return ecosystem.split(":", 1)[0].strip().lower()


def normalize_name(ecosystem: str, name: str) -> str:
    """PyPI names are compared PEP 503-normalised; others as given."""
    if family(ecosystem) == "pypi":
        from dockyard.tools.scan.sbom import pypi_name

        return pypi_name(name)
    return name


def _title(record: dict[str, Any]) -> str:
    text = str(record.get("summary") or "").strip() or str(record.get("details") or "").strip()
    line = text.splitlines()[0] if text else ""
    return line[:200]


# -- the database ---------------------------------------------------------------------------------------


class VulnDB:
    """An SQLite file of OSV records; created on first import, read-only use otherwise."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def _open(self, create: bool) -> sqlite3.Connection:
        if self._conn is None:
            if not create and not self.path.exists():
                raise NotFound(f"no vulnerability database at {self.path}: get one with "
                               "'dockyard scan db update' (or 'scan db import FILE' offline)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path)
                conn.executescript(_SCHEMA)
                columns = {r[1] for r in conn.execute("PRAGMA table_info(vulns)")}
                if "cvss" not in columns:  # a schema 1 database
                    conn.execute("ALTER TABLE vulns ADD COLUMN cvss TEXT NOT NULL DEFAULT '[]'")
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            except sqlite3.DatabaseError as exc:
                raise CorruptData(f"vulnerability database {self.path} is unreadable: {exc}") from None
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                conn.close()
                raise CorruptData(f"vulnerability database {self.path} has schema {row[0]}; this dockyard "
                                  f"reads up to {SCHEMA_VERSION}")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> VulnDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def import_path(self, source: str | os.PathLike[str]) -> int:
        """Import OSV records from a .json file, a directory (recursively) or a .zip; return the count.

        A record with an ID already in the database replaces it."""
        count = self.put_records(_records(Path(source)), "import")
        self.set_meta(source=str(Path(source).resolve()))
        return count

    def put_records(self, records: Iterable[tuple[str, dict[str, Any]]], source: str) -> int:
        """Store (where, record) pairs as coming from ``source``, in one transaction; return the count."""
        conn = self._open(create=True)
        count = 0
        with conn:
            for where, record in records:
                self._put(conn, record, where, source)
                count += 1
            self._stamp(conn)
        return count

    def _stamp(self, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (str(time.time()),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _put(self, conn: sqlite3.Connection, record: dict[str, Any], where: str, source: str) -> None:
        vid = record.get("id")
        if not isinstance(vid, str) or not vid:
            raise CorruptData(f"{where}: OSV record without an 'id'")
        conn.execute("INSERT OR IGNORE INTO origins VALUES (?, ?)", (source, vid))
        if record.get("withdrawn"):  # retracted advisories must not match (drop an older import too)
            self._delete(conn, vid)
            return
        aliases = [a for a in record.get("aliases") or [] if isinstance(a, str)]
        affected = record.get("affected") or []
        if not isinstance(affected, list):
            raise CorruptData(f"{where}: record {vid}: 'affected' is not a list")
        conn.execute("DELETE FROM affected WHERE vuln_id = ?", (vid,))
        cvss = [[str(s.get("type")), str(s.get("score"))] for s in record.get("severity") or []
                if isinstance(s, dict) and str(s.get("type", "")).startswith("CVSS_")]
        conn.execute("INSERT OR REPLACE INTO vulns (id, summary, severity, aliases, modified, cvss) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (vid, _title(record), record_severity(record), json.dumps(aliases),
                      str(record.get("modified", "")), json.dumps(cvss)))
        for aff in affected:
            pkg = aff.get("package") if isinstance(aff, dict) else None
            if not isinstance(pkg, dict) or not pkg.get("ecosystem") or not pkg.get("name"):
                continue
            eco = str(pkg["ecosystem"])
            data: dict[str, Any] = {"ranges": aff.get("ranges") or [], "versions": aff.get("versions") or []}
            if sev := affected_severity(aff):
                data["severity"] = sev
            conn.execute("INSERT INTO affected VALUES (?, ?, ?, ?, ?)",
                         (vid, eco, family(eco), normalize_name(eco, str(pkg["name"])), json.dumps(data)))

    @staticmethod
    def _delete(conn: sqlite3.Connection, vid: str) -> None:
        conn.execute("DELETE FROM affected WHERE vuln_id = ?", (vid,))
        conn.execute("DELETE FROM vulns WHERE id = ?", (vid,))

    def modified(self, source: str) -> dict[str, str]:
        """ID -> ``modified`` of every record ``source`` supplied (for incremental updates)."""
        conn = self._open(create=True)
        return dict(conn.execute("SELECT o.vuln_id, COALESCE(v.modified, '') FROM origins o "
                                 "LEFT JOIN vulns v ON v.id = o.vuln_id WHERE o.source = ?", (source,)))

    def retain(self, source: str, ids: Iterable[str]) -> int:
        """Forget what ``source`` supplied apart from ``ids``; delete records no source has any more.
        Returns how many records were deleted."""
        keep = set(ids)
        conn = self._open(create=True)
        gone = [vid for vid in self.modified(source) if vid not in keep]
        deleted = 0
        with conn:
            for vid in gone:
                conn.execute("DELETE FROM origins WHERE source = ? AND vuln_id = ?", (source, vid))
                if conn.execute("SELECT 1 FROM origins WHERE vuln_id = ? LIMIT 1", (vid,)).fetchone() is None:
                    self._delete(conn, vid)
                    deleted += 1
        return deleted

    def source_state(self, source: str) -> dict[str, Any]:
        """What the last update remembered of ``source`` (ETag, Last-Modified, digest, ...); {} if new."""
        conn = self._open(create=True)
        row = conn.execute("SELECT state FROM sources WHERE name = ?", (source,)).fetchone()
        return dict(json.loads(row[0])) if row else {}

    def source_states(self) -> dict[str, dict[str, Any]]:
        """Every source's remembered state (see ``source_state``)."""
        conn = self._open(create=True)
        return {name: json.loads(state) for name, state in conn.execute("SELECT name, state FROM sources")}

    def set_source_state(self, source: str, state: dict[str, Any]) -> None:
        conn = self._open(create=True)
        with conn:
            conn.execute("INSERT OR REPLACE INTO sources VALUES (?, ?)", (source, json.dumps(state)))

    def set_meta(self, **values: str | float) -> None:
        conn = self._open(create=True)
        with conn:
            for key, value in values.items():
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
            self._stamp(conn)

    def check(self) -> None:
        """Raise CorruptData unless SQLite finds the file sound and it has this dockyard's tables."""
        conn = self._open(create=False)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise CorruptData(f"vulnerability database {self.path} is unreadable: {exc}") from None
        if result != "ok":
            raise CorruptData(f"vulnerability database {self.path} is damaged: {result}")

    def info(self) -> dict[str, Any]:
        """Counts per ecosystem, totals, schema, when it was updated, the data's date, its sources."""
        conn = self._open(create=False)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        ecos = dict(conn.execute("SELECT ecosystem, COUNT(DISTINCT vuln_id) FROM affected "
                                 "GROUP BY ecosystem ORDER BY ecosystem").fetchall())
        updated = float(meta["updated"]) if "updated" in meta else 0.0
        newest = conn.execute("SELECT MAX(modified) FROM vulns").fetchone()[0] or ""
        data_date = float(meta["data_date"]) if "data_date" in meta else parse_time(newest) or updated
        sources = self.source_states()
        return {"path": str(self.path), "schema": int(meta.get("schema", SCHEMA_VERSION)),
                "vulnerabilities": conn.execute("SELECT COUNT(*) FROM vulns").fetchone()[0],
                "affected": conn.execute("SELECT COUNT(*) FROM affected").fetchone()[0],
                "ecosystems": ecos, "updated": updated, "data_date": data_date, "newest_record": newest,
                "source": meta.get("source", ""), "sources": sources}

    def affected(self, ecosystem: str, name: str) -> list[tuple[Vuln, str, dict[str, Any]]]:
        """(vuln, record ecosystem, {"ranges", "versions"[, "severity"]}) for every entry naming this
        package in the ecosystem's family; the caller checks the release part (``Debian:12``)."""
        conn = self._open(create=False)
        rows = conn.execute(
            "SELECT v.id, v.summary, v.severity, v.aliases, a.ecosystem, a.data, v.cvss FROM affected a "
            "JOIN vulns v ON v.id = a.vuln_id WHERE a.family = ? AND a.name = ?",
            (family(ecosystem), normalize_name(ecosystem, name))).fetchall()
        return [(Vuln(r[0], r[1], r[2], tuple(json.loads(r[3])), tuple((t, v) for t, v in json.loads(r[6]))),
                 r[4], json.loads(r[5])) for r in rows]


def parse_time(text: str) -> float:
    """An RFC 3339 time (OSV's ``modified``) as epoch seconds; 0.0 if it is not one."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def parse_records(data: bytes, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The OSV records of one JSON document (one record or a list), checked for their basic shape."""
    for where_, doc in _parse(data, where):
        _check_shape(doc, where_)
        yield where_, doc


def _check_shape(record: dict[str, Any], where: str) -> None:
    """OSV schema essentials: a string id, a string modified time, list-typed affected/aliases."""
    vid = record.get("id")
    if not isinstance(vid, str) or not vid:
        raise CorruptData(f"{where}: OSV record without an 'id'")
    if not isinstance(record.get("modified"), str):
        raise CorruptData(f"{where}: record {vid}: 'modified' is missing or not a string")
    for key in ("affected", "aliases", "severity"):
        if key in record and not isinstance(record[key], list):
            raise CorruptData(f"{where}: record {vid}: '{key}' is not a list")
    for aff in record.get("affected") or []:
        if not isinstance(aff, dict) or not isinstance(aff.get("package", {}), dict):
            raise CorruptData(f"{where}: record {vid}: an 'affected' entry is not an object with a package")
        if not isinstance(aff.get("ranges", []), list) or not isinstance(aff.get("versions", []), list):
            raise CorruptData(f"{where}: record {vid}: 'ranges'/'versions' must be lists")


def _records(source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if source.is_dir():
        for path in sorted(source.rglob("*.json")):
            yield from _parse(path.read_bytes(), str(path))
    elif source.is_file() and zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as zf:
                for name in sorted(zf.namelist()):
                    if name.endswith(".json"):
                        yield from _parse(zf.read(name), f"{source}:{name}")
        except zipfile.BadZipFile as exc:
            raise CorruptData(f"{source}: bad zip file: {exc}") from None
    elif source.is_file():
        yield from _parse(source.read_bytes(), str(source))
    else:
        raise InvalidArgument(f"no such file or directory: {source}")


def _parse(data: bytes, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(f"{where}: not valid JSON: {exc}") from None
    items = doc if isinstance(doc, list) else [doc]
    for item in items:
        if not isinstance(item, dict):
            raise CorruptData(f"{where}: expected an OSV record (a JSON object)")
        yield where, item
