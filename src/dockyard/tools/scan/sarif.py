"""SARIF 2.1.0 for GitHub code scanning: one rule per advisory, one result per vulnerable package.

GitHub reads ``properties.security-severity`` (a CVSS-like number as a string) to rank a rule, and wants
every result to have a physical location; an image has no source lines, so the location is the
package's metadata file in the image (``var/lib/dpkg/status``), line 1, as trivy's SARIF does.
"""

from __future__ import annotations

from typing import Any

from dockyard import __version__
from dockyard.tools.scan.match import Finding, ScanResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note", "UNKNOWN": "note"}
# A score for a severity without a CVSS vector (the middle of the rating's band, as trivy uses).
_SCORE = {"CRITICAL": 9.5, "HIGH": 8.0, "MEDIUM": 5.5, "LOW": 2.0, "UNKNOWN": 0.0}
_KIND = {"deb": "OsPackageVulnerability", "apk": "OsPackageVulnerability", "rpm": "OsPackageVulnerability"}


def _link(vuln_id: str) -> str:
    return f"https://osv.dev/vulnerability/{vuln_id}"


def _message(f: Finding) -> str:
    return (f"Package: {f.package.name}\nInstalled Version: {f.package.version}\n"
            f"Vulnerability {f.vuln.id}\nSeverity: {f.severity}\nFixed Version: {f.fixed or '-'}\n"
            f"Link: [{f.vuln.id}]({_link(f.vuln.id)})")


def to_sarif(result: ScanResult) -> dict[str, Any]:
    """The findings of ``result`` as a SARIF 2.1.0 log with one run."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for f in result.findings:
        if f.vuln.id not in index:
            index[f.vuln.id] = len(rules)
            score = f.vuln.score if f.vuln.score is not None else _SCORE[f.severity]
            title = f.vuln.title or f.vuln.id
            aliases = f" ({', '.join(f.vuln.aliases)})" if f.vuln.aliases else ""
            rules.append({
                "id": f.vuln.id, "name": _KIND.get(f.package.type, "LanguageSpecificPackageVulnerability"),
                "shortDescription": {"text": title[:120]}, "fullDescription": {"text": title + aliases},
                "defaultConfiguration": {"level": _LEVEL[f.severity]}, "helpUri": _link(f.vuln.id),
                "help": {"text": f"Vulnerability {f.vuln.id}{aliases}\nSeverity: {f.severity}\n{title}",
                         "markdown": f"**Vulnerability {f.vuln.id}**{aliases}\n\n| Severity | Package | "
                                     f"Fixed Version |\n| --- | --- | --- |\n| {f.severity} | "
                                     f"{f.package.name} | {f.fixed or '-'} |\n\n{title}"},
                "properties": {"tags": ["vulnerability", "security", f.severity], "precision": "very-high",
                               "security-severity": f"{score:.1f}"}})
        uri = f.package.path.lstrip("/") or f.package.type
        results.append({
            "ruleId": f.vuln.id, "ruleIndex": index[f.vuln.id], "level": _LEVEL[f.severity],
            "message": {"text": _message(f)},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": uri, "uriBaseId": "ROOTPATH"},
                "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1}},
                "message": {"text": f"{result.sbom.image}: {f.package.name}@{f.package.version}"}}]})
    return {
        "version": "2.1.0", "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {"driver": {"name": "dockyard", "fullName": "dockyard scan", "version": __version__,
                                "rules": rules}},
            "results": results, "columnKind": "utf16CodeUnits",
            "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///"}},
            "properties": {"imageName": result.sbom.image, "imageID": result.sbom.image_id}}],
    }
