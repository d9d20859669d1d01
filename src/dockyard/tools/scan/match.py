"""Match an SBOM against the vulnerability database (OSV's range semantics, per-ecosystem versions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cmp_to_key
from typing import Any

from dockyard.client import Client
from dockyard.errors import InvalidArgument
from dockyard.record import field, record, replace
from dockyard.tools.scan.db import SEVERITIES, Vuln, VulnDB
from dockyard.tools.scan.sbom import SBOM, OSInfo, Package, image_sbom
from dockyard.tools.scan.versions import comparator
from dockyard.tools.scan.vex import SUPPRESSING, VexDocument, statement_text, vex_status


@record(frozen=True, slots=True)
class Finding:
    """One vulnerability in one installed package."""

    package: Package
    vuln: Vuln
    fixed: str

    @property
    def severity(self) -> str:
        return self.vuln.severity


@record(frozen=True, slots=True)
class Suppressed:
    """A finding an OpenVEX statement accepts (``status`` not_affected or fixed), and why."""

    finding: Finding
    status: str
    statement: str
    source: str


@record(slots=True)
class ScanResult:
    """An image's SBOM, the findings at the requested severities, and those VEX suppressed."""

    sbom: SBOM
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out


def package_ecosystem(pkg: Package, os_info: OSInfo) -> tuple[str, str, str] | None:
    """(OSV ecosystem, name, version) under which ``pkg`` is looked up; None if unsupported.

    Distribution advisories name source packages, so deb/apk match by source name and version."""
    if pkg.type == "deb":
        if os_info.id == "ubuntu":
            return f"Ubuntu:{os_info.version_id}", pkg.src_name, pkg.src_version
        major = os_info.version_id.split(".", 1)[0]
        return (f"Debian:{major}" if major else "Debian"), pkg.src_name, pkg.src_version
    if pkg.type == "apk":
        release = ".".join(os_info.version_id.split(".")[:2])
        return (f"Alpine:v{release}" if release else "Alpine"), pkg.src_name, pkg.version
    if pkg.type == "rpm":
        major = os_info.version_id.split(".", 1)[0]
        eco = {"rocky": "Rocky Linux", "almalinux": "AlmaLinux", "rhel": "Red Hat"}.get(os_info.id)
        if eco is None:
            return None
        return (f"{eco}:{major}" if major and eco != "Red Hat" else eco), pkg.name, pkg.version
    if pkg.type == "pypi":
        return "PyPI", pkg.name, pkg.version
    if pkg.type == "npm":
        return "npm", pkg.name, pkg.version
    if pkg.type == "gobinary":
        return "Go", pkg.name, pkg.version
    return None


def _release_matches(wanted: str, record: str) -> bool:
    """``Debian:12`` accepts records for ``Debian:12`` and for ``Debian`` (every release);
    ``Ubuntu:22.04`` those for ``Ubuntu:22.04:LTS`` too."""
    rel = [*record.split(":"), ""][1].strip().lower()
    want = [*wanted.split(":"), ""][1].strip().lower()
    return not rel or not want or rel == want


def check_affected(ecosystem: str, version: str, data: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether ``version`` is affected per OSV ``ranges``/``versions``; and the fixed versions above it."""
    cmp = comparator(ecosystem)
    hit = version in [str(v) for v in data.get("versions") or []]
    fixes: list[str] = []
    for rng in data.get("ranges") or []:
        if not isinstance(rng, dict) or rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        rcmp = comparator("npm") if rng["type"] == "SEMVER" else cmp
        events: list[tuple[str, str]] = []
        for ev in rng.get("events") or []:
            for kind in ("introduced", "fixed", "last_affected", "limit"):
                if isinstance(ev, dict) and kind in ev:
                    events.append((kind, str(ev[kind])))

        def order(a: tuple[str, str], b: tuple[str, str], rcmp: Any = rcmp) -> int:
            if a[1] == b[1]:
                return 0
            if a[1] == "0":
                return -1
            if b[1] == "0":
                return 1
            return int(rcmp(a[1], b[1]))

        events.sort(key=cmp_to_key(order))
        state = False
        for kind, ev_version in events:
            if kind == "introduced" and (ev_version == "0" or rcmp(version, ev_version) >= 0):
                state = True
            elif kind in ("fixed", "last_affected"):
                # a fix applies from its version on; last_affected only after it
                state = state and rcmp(version, ev_version) < (0 if kind == "fixed" else 1)
        if state:
            hit = True
            fixes += [v for k, v in events if k == "fixed" and rcmp(version, v) < 0]
    return hit, fixes


def match(sbom: SBOM, db: VulnDB, severities: Sequence[str] = SEVERITIES, *,
          ignore_unfixed: bool = False) -> list[Finding]:
    """Findings for every package of ``sbom``, filtered to ``severities`` (and to those with a fixed
    version when ``ignore_unfixed``)."""
    wanted = {s.upper() for s in severities}
    bad = wanted - set(SEVERITIES)
    if bad:
        raise InvalidArgument(f"unknown severity {sorted(bad)[0]!r}: use {','.join(SEVERITIES)}")
    found: dict[tuple[str, str, str, str], Finding] = {}
    for pkg in sbom.packages:
        lookup = package_ecosystem(pkg, sbom.os)
        if lookup is None:
            continue
        ecosystem, name, version = lookup
        for vuln, record_eco, data in db.affected(ecosystem, name):
            if data.get("severity") and data["severity"] != vuln.severity:  # e.g. urgency per release
                vuln = replace(vuln, severity=str(data["severity"]))
            if vuln.severity not in wanted or not _release_matches(ecosystem, record_eco):
                continue
            hit, fixes = check_affected(ecosystem, version, data)
            if not hit:
                continue
            key = (pkg.name, pkg.version, pkg.path, vuln.id)
            fixed = ", ".join(sorted(set(fixes), key=cmp_to_key(comparator(ecosystem))))
            old = found.get(key)
            if old is None or (fixed and not old.fixed):
                found[key] = Finding(pkg, vuln, fixed)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted((f for f in found.values() if f.fixed or not ignore_unfixed),
                  key=lambda f: (f.package.type, f.package.name, rank[f.severity], f.vuln.id))


def parse_severities(text: str | Iterable[str]) -> list[str]:
    """``"CRITICAL,HIGH"`` -> ["CRITICAL", "HIGH"] (``InvalidArgument`` for an unknown word)."""
    words = text.split(",") if isinstance(text, str) else list(text)
    out = [w.strip().upper() for w in words if w.strip()]
    for w in out:
        if w not in SEVERITIES:
            raise InvalidArgument(f"unknown severity {w!r}: use {','.join(SEVERITIES)}")
    return out or list(SEVERITIES)


def scan_image(client: Client, ref: str, db: VulnDB | None, severities: Sequence[str] = SEVERITIES, *,
               ignore_unfixed: bool = False, vex: Sequence[VexDocument] = ()) -> ScanResult:
    """SBOM of ``ref`` and, with a database, its findings (less those the VEX documents accept)."""
    sbom = image_sbom(client, ref)
    result = ScanResult(sbom, match(sbom, db, severities, ignore_unfixed=ignore_unfixed)
                        if db is not None else [])
    return apply_vex(result, vex)


def apply_vex(result: ScanResult, docs: Sequence[VexDocument]) -> ScanResult:
    """Move the findings a not_affected/fixed statement covers into ``result.suppressed``."""
    kept: list[Finding] = []
    for f in result.findings:
        hit = None
        for doc in docs:
            st = vex_status(doc, f.vuln.id, f.vuln.aliases, f.package.purl, result.sbom.image,
                            result.sbom.image_id)
            if st is not None:
                hit = (st, doc.source)
        if hit is not None and hit[0].status in SUPPRESSING:
            result.suppressed.append(Suppressed(f, hit[0].status, statement_text(hit[0]), hit[1]))
        else:
            kept.append(f)
    result.findings = kept
    return result
