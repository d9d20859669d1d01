"""The offline vulnerability database: OSV records imported into one SQLite file.

    db = VulnDB(path)
    db.import_path("osv.zip")       # a .json file (one record or a list), a directory of them, or a zip
    db.info()                       # {"vulnerabilities": n, "affected": m, "ecosystems": {...}, ...}
    db.affected("Debian:12", "openssl")   # [(vuln, affected-entry dict)] for one package

Severity comes from ``database_specific.severity`` (record or affected entry; GitHub's MODERATE
is MEDIUM), else from a CVSS v3 vector in ``severity`` (base score -> rating), else UNKNOWN.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import CorruptData, InvalidArgument, NotFound

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vulns (id TEXT PRIMARY KEY, summary TEXT NOT NULL, severity TEXT NOT NULL,
    aliases TEXT NOT NULL, modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS affected (vuln_id TEXT NOT NULL, ecosystem TEXT NOT NULL, family TEXT NOT NULL,
    name TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS affected_by_name ON affected (family, name);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Vuln:
    """One advisory as stored: ID, one-line title, severity and aliases (CVE IDs)."""

    id: str
    title: str
    severity: str
    aliases: tuple[str, ...]


def family(ecosystem: str) -> str:
    """``Debian:12`` -> ``debian`` (the key packages are matched by)."""
    return ecosystem.split(":", 1)[0].strip().lower()


def normalize_name(ecosystem: str, name: str) -> str:
    """PyPI names are compared PEP 503-normalised; others as given."""
    if family(ecosystem) == "pypi":
        from dockyard.tools.scan.sbom import pypi_name

        return pypi_name(name)
    return name


# -- CVSS v3 base score (FIRST's specification, section 7) -------------------------------------------

_W = {"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}, "AC": {"L": 0.77, "H": 0.44},
      "UI": {"N": 0.85, "R": 0.62}, "C": {"H": 0.56, "L": 0.22, "N": 0.0}}


def _roundup(x: float) -> float:
    i = round(x * 100000)
    return i / 100000.0 if i % 10000 == 0 else (math.floor(i / 10000) + 1) / 10.0


def cvss3_score(vector: str) -> float | None:
    """Base score of a ``CVSS:3.x/AV:..`` vector; None if it is not one."""
    if not vector.startswith("CVSS:3"):
        return None
    m = dict(p.split(":", 1) for p in vector.split("/")[1:] if ":" in p)
    try:
        scope_changed = m["S"] == "C"
        pr = {"N": 0.85, "L": 0.68 if scope_changed else 0.62, "H": 0.5 if scope_changed else 0.27}[m["PR"]]
        iss = 1 - (1 - _W["C"][m["C"]]) * (1 - _W["C"][m["I"]]) * (1 - _W["C"][m["A"]])
        exploit = 8.22 * _W["AV"][m["AV"]] * _W["AC"][m["AC"]] * pr * _W["UI"][m["UI"]]
    except KeyError:
        return None
    impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 if scope_changed else 6.42 * iss
    if impact <= 0:
        return 0.0
    total = 1.08 * (impact + exploit) if scope_changed else impact + exploit
    return _roundup(min(total, 10.0))


def rating(score: float) -> str:
    """CVSS v3 qualitative rating of a base score."""
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0.0:
        return "LOW"
    return "UNKNOWN"


def _norm_severity(value: object) -> str:
    s = str(value or "").strip().upper()
    s = {"MODERATE": "MEDIUM", "IMPORTANT": "HIGH", "NEGLIGIBLE": "LOW", "UNIMPORTANT": "LOW"}.get(s, s)
    return s if s in SEVERITIES else ""


def record_severity(record: dict[str, Any]) -> str:
    """The record's severity word (see the module docstring for the order of sources)."""
    spec = record.get("database_specific")
    if isinstance(spec, dict) and (s := _norm_severity(spec.get("severity"))):
        return s
    for aff in record.get("affected") or []:
        for key in ("database_specific", "ecosystem_specific"):
            spec = aff.get(key) if isinstance(aff, dict) else None
            if isinstance(spec, dict) and (s := _norm_severity(spec.get("severity"))):
                return s
    best = -1.0
    for sev in record.get("severity") or []:
        if isinstance(sev, dict) and str(sev.get("type", "")).startswith("CVSS_V3"):
            score = cvss3_score(str(sev.get("score", "")))
            if score is not None:
                best = max(best, score)
    return rating(best) if best >= 0 else "UNKNOWN"


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
                raise NotFound(f"no vulnerability database at {self.path}: import one with "
                               "'dockyard scan db import FILE' (OSV JSON, a directory or a zip)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(self.path)
                conn.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise CorruptData(f"vulnerability database {self.path} is unreadable: {exc}") from None
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
        conn = self._open(create=True)
        count = 0
        with conn:
            for where, record in _records(Path(source)):
                self._put(conn, record, where)
                count += 1
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (str(time.time()),))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('source', ?)", (str(Path(source).resolve()),))
        return count

    def _put(self, conn: sqlite3.Connection, record: dict[str, Any], where: str) -> None:
        vid = record.get("id")
        if not isinstance(vid, str) or not vid:
            raise CorruptData(f"{where}: OSV record without an 'id'")
        if record.get("withdrawn"):  # retracted advisories must not match (drop an older import too)
            conn.execute("DELETE FROM affected WHERE vuln_id = ?", (vid,))
            conn.execute("DELETE FROM vulns WHERE id = ?", (vid,))
            return
        aliases = [a for a in record.get("aliases") or [] if isinstance(a, str)]
        conn.execute("DELETE FROM affected WHERE vuln_id = ?", (vid,))
        conn.execute("INSERT OR REPLACE INTO vulns VALUES (?, ?, ?, ?, ?)",
                     (vid, _title(record), record_severity(record), json.dumps(aliases),
                      str(record.get("modified", ""))))
        affected = record.get("affected") or []
        if not isinstance(affected, list):
            raise CorruptData(f"{where}: record {vid}: 'affected' is not a list")
        for aff in affected:
            pkg = aff.get("package") if isinstance(aff, dict) else None
            if not isinstance(pkg, dict) or not pkg.get("ecosystem") or not pkg.get("name"):
                continue
            eco = str(pkg["ecosystem"])
            data = {"ranges": aff.get("ranges") or [], "versions": aff.get("versions") or []}
            conn.execute("INSERT INTO affected VALUES (?, ?, ?, ?, ?)",
                         (vid, eco, family(eco), normalize_name(eco, str(pkg["name"])), json.dumps(data)))

    def info(self) -> dict[str, Any]:
        """Counts per ecosystem, total records, when it was last imported and from where."""
        conn = self._open(create=False)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        ecos = dict(conn.execute("SELECT ecosystem, COUNT(DISTINCT vuln_id) FROM affected "
                                 "GROUP BY ecosystem ORDER BY ecosystem").fetchall())
        updated = float(meta["updated"]) if "updated" in meta else 0.0
        return {"path": str(self.path),
                "vulnerabilities": conn.execute("SELECT COUNT(*) FROM vulns").fetchone()[0],
                "affected": conn.execute("SELECT COUNT(*) FROM affected").fetchone()[0],
                "ecosystems": ecos, "updated": updated, "source": meta.get("source", "")}

    def affected(self, ecosystem: str, name: str) -> list[tuple[Vuln, str, dict[str, Any]]]:
        """(vuln, record ecosystem, {"ranges", "versions"}) for every entry naming this package in
        the ecosystem's family; the caller checks the release part (``Debian:12``)."""
        conn = self._open(create=False)
        rows = conn.execute(
            "SELECT v.id, v.summary, v.severity, v.aliases, a.ecosystem, a.data FROM affected a "
            "JOIN vulns v ON v.id = a.vuln_id WHERE a.family = ? AND a.name = ?",
            (family(ecosystem), normalize_name(ecosystem, name))).fetchall()
        return [(Vuln(r[0], r[1], r[2], tuple(json.loads(r[3]))), r[4], json.loads(r[5])) for r in rows]


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
