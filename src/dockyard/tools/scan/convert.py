"""Distribution feeds turned into OSV records, so that one matcher serves every source.

Debian security tracker JSON (``/tracker/data/json``): ``{source package: {CVE: {description,
releases: {codename: {status, fixed_version, urgency}}}}}``. Each CVE becomes ``DEBIAN-<CVE>`` (the ID
OSV gives the same data) with one affected entry per (package, release): ``resolved`` with a version ->
fixed there (``0``: never affected, skipped); ``open``/``undetermined`` -> affected, no fix yet. The
urgency travels in ``ecosystem_specific.urgency``.

Alpine secdb (``v3.18/main.json``): ``packages[].pkg.secfixes = {version: [CVE, ...]}``; each CVE
becomes ``ALPINE-<CVE>`` fixed in that version of that branch (version ``0``: not affected, skipped).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dockyard.errors import CorruptData

DEBIAN_RELEASES = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}


def _load(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(f"{where}: not valid JSON: {exc}") from None


def debian_tracker(data: bytes, where: str, modified: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """OSV records from the Debian security tracker's JSON; ``modified`` stamps every record."""
    doc = _load(data, where)
    if not isinstance(doc, dict):
        raise CorruptData(f"{where}: expected the tracker's object of source packages")
    by_cve: dict[str, dict[str, Any]] = {}
    for package, cves in doc.items():
        if not isinstance(cves, dict):
            raise CorruptData(f"{where}: package {package!r}: expected an object of CVEs")
        for cve, entry in cves.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("releases", {}), dict):
                raise CorruptData(f"{where}: {package} {cve}: expected an object with 'releases'")
            for codename, rel in entry.get("releases", {}).items():
                number = DEBIAN_RELEASES.get(codename)
                if number is None or not isinstance(rel, dict):
                    continue
                status, fixed = rel.get("status"), str(rel.get("fixed_version") or "")
                if status == "resolved" and (not fixed or fixed == "0"):
                    continue  # not affected (or never shipped) in this release
                if status not in ("resolved", "open", "undetermined"):
                    continue
                events: list[dict[str, str]] = [{"introduced": "0"}]
                if status == "resolved":
                    events.append({"fixed": fixed})
                rec = by_cve.setdefault(cve, {
                    "id": f"DEBIAN-{cve}", "modified": modified,
                    "aliases": [cve] if cve.startswith("CVE-") else [],
                    "details": str(entry.get("description") or ""), "affected": []})
                rec["affected"].append({
                    "package": {"ecosystem": f"Debian:{number}", "name": package},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    "ecosystem_specific": {"urgency": str(rel.get("urgency") or "")}})
    for cve in sorted(by_cve):
        yield f"{where}:{cve}", by_cve[cve]


def alpine_secdb(files: list[tuple[bytes, str]], modified: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """OSV records from Alpine secdb files (branches' ``main.json``, ``community.json``), one per CVE
    across all of them."""
    by_cve: dict[str, dict[str, Any]] = {}
    for data, where in files:
        doc = _load(data, where)
        if not isinstance(doc, dict) or not isinstance(doc.get("packages"), list):
            raise CorruptData(f"{where}: expected a secdb object with a 'packages' list")
        branch = str(doc.get("distroversion") or "")
        if not branch:
            raise CorruptData(f"{where}: secdb without 'distroversion'")
        for item in doc["packages"]:
            pkg = item.get("pkg") if isinstance(item, dict) else None
            if not isinstance(pkg, dict) or not isinstance(pkg.get("secfixes", {}), dict):
                raise CorruptData(f"{where}: a 'packages' entry is not {{pkg: {{name, secfixes}}}}")
            name = str(pkg.get("name") or "")
            for version, ids in (pkg.get("secfixes") or {}).items():
                if not name or str(version) == "0" or not isinstance(ids, list):
                    continue
                for raw in ids:
                    words = str(raw).split()
                    if not words:
                        continue
                    cve = words[0]
                    rec = by_cve.setdefault(cve, {"id": f"ALPINE-{cve}", "modified": modified,
                                                  "aliases": [cve] if cve.startswith("CVE-") else [],
                                                  "affected": []})
                    rec["affected"].append({"package": {"ecosystem": f"Alpine:{branch}", "name": name},
                                            "ranges": [{"type": "ECOSYSTEM", "events": [
                                                {"introduced": "0"}, {"fixed": str(version)}]}]})
    for cve in sorted(by_cve):
        yield f"alpine secdb:{cve}", by_cve[cve]
