"""One report of an image: lint findings, sizes and removable bytes, vulnerabilities, joined on the
Dockerfile line that caused each.

    report = build_report(client, "app:1", dockerfile_text, "Dockerfile", context_dir, vulndb)
    to_json(report); to_sarif(report)        # documents (dicts); render_html(report) in .html
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from pathlib import Path
from typing import Any

from dockyard import __version__
from dockyard.client import Client
from dockyard.record import field, record
from dockyard.tools.analyze import Analysis, analyze_image
from dockyard.tools.analyze.lines import dockerfile_lines
from dockyard.tools.lint import Finding, LintInput, lint_many
from dockyard.tools.scan import SEVERITIES, ScanResult, VulnDB, scan_image


@record(frozen=True, slots=True)
class Vulnerability:
    """A vulnerable package with the layer (and Dockerfile line) that put it there."""

    id: str
    severity: str
    package: str
    version: str
    fixed: str
    title: str
    layer: int | None
    line: int | None


@record(slots=True)
class LineEntry:
    """Everything the report says about one Dockerfile line."""

    line: int
    text: str
    lint: list[Finding] = field(default_factory=list)
    removable: int = 0
    fixes: list[str] = field(default_factory=list)
    vulnerabilities: list[Vulnerability] = field(default_factory=list)


@record(slots=True)
class Report:
    """The joined report; ``vuln_note`` says why there are no vulnerabilities when there is no database."""

    image: str
    analysis: Analysis
    dockerfile: str
    layer_lines: list[int | None]
    lint: list[Finding]
    lint_note: str
    vulnerabilities: list[Vulnerability]
    vuln_note: str
    lines: list[LineEntry]
    lines_note: str = ""  # where the image history stopped matching the Dockerfile
    scan: ScanResult | None = None  # the scan behind ``vulnerabilities`` (when a database exists)

    @property
    def notes(self) -> list[str]:
        """Why parts of the report are missing or approximate."""
        return [n for n in (self.lines_note, self.lint_note, self.vuln_note) if n]

    def waste_by_directory(self, depth: int = 2, top: int = 12) -> list[tuple[str, int]]:
        """Removable bytes per directory (the first ``depth`` levels), biggest first."""
        totals: Counter[str] = Counter()
        waste = self.analysis.waste
        for item in waste.items if waste else []:
            parts = posixpath.dirname(item.path).strip("/").split("/")
            totals["/" + "/".join(p for p in parts[:depth] if p)] += item.size
        return totals.most_common(top)

    def severity_counts(self) -> dict[str, int]:
        """Lint findings by level and vulnerabilities by severity, in one table."""
        counts: dict[str, int] = {}
        for f in self.lint:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        for v in self.vulnerabilities:
            key = v.severity.lower()
            counts[key] = counts.get(key, 0) + 1
        return counts


def _package_file(pkg: Any) -> list[str]:
    """Files whose layer tells when a package came: dpkg's per-package list first, then its record."""
    path = "/" + str(pkg.path).lstrip("/")
    if pkg.type == "deb":
        base = "/var/lib/dpkg/info/"
        return [f"{base}{pkg.name}:{pkg.arch}.list", f"{base}{pkg.name}.list", path]
    return [path]


def build_report(
    client: Client,
    image: str,
    dockerfile: str | None = None,
    dockerfile_name: str = "Dockerfile",
    context_dir: Path | None = None,
    vulndb: VulnDB | None = None,
    target: str | None = None,
) -> Report:
    """Analyze ``image`` (dive's numbers and removable bytes), lint the Dockerfile and, with a
    database, scan for vulnerabilities; tie each to the Dockerfile line whose layer caused it."""
    analysis = analyze_image(client, image, dockerfile, target, dockerfile_name)
    commands = [layer.command for layer in analysis.layers]
    lines: list[int | None] = [None] * len(commands)
    lines_note = ""
    if dockerfile:
        history = client.image_config(analysis.image_id).history or []
        aligned = dockerfile_lines(history, commands, dockerfile, target, dockerfile_name)
        lines, lines_note = aligned.layers, aligned.note
    findings: list[Finding] = []
    lint_note = ""
    if dockerfile is not None:
        results, lint_note = lint_many([LintInput(dockerfile, dockerfile_name, context_dir)], buildkit=True)
        findings = results[0]
    vulns: list[Vulnerability] = []
    result: ScanResult | None = None
    vuln_note = "no vulnerability database (dockyard scan db import FILE)"
    if vulndb is not None:
        result = scan_image(client, image, vulndb, SEVERITIES)
        owners = analysis.waste.layer_of if analysis.waste else {}
        for hit in result.findings:
            layer = next((owners[p] for p in _package_file(hit.package) if p in owners), None)
            vulns.append(Vulnerability(hit.vuln.id, hit.vuln.severity, hit.package.name, hit.package.version,
                                       hit.fixed, hit.vuln.title, layer,
                                       lines[layer] if layer is not None else None))
        vuln_note = ""
    text_lines = (dockerfile or "").splitlines()
    entries: dict[int, LineEntry] = {}

    def entry(line: int) -> LineEntry:
        if line not in entries:
            entries[line] = LineEntry(line, text_lines[line - 1] if 0 < line <= len(text_lines) else "")
        return entries[line]

    for f in findings:
        entry(f.line).lint.append(f)
    for lw in analysis.waste.layers if analysis.waste else []:
        if lw.line is not None:
            e = entry(lw.line)
            e.removable += lw.removable
            e.fixes.append(lw.fix)
    for v in vulns:
        if v.line is not None:
            entry(v.line).vulnerabilities.append(v)
    return Report(image, analysis, dockerfile or "", lines, findings, lint_note, vulns, vuln_note,
                  sorted(entries.values(), key=lambda e: e.line), lines_note, result)


def to_json(report: Report) -> dict[str, Any]:
    """The report as one JSON document (its fields are described in docs/report.md)."""
    from dockyard.tools.analyze import to_json as analysis_json

    a = report.analysis
    return {
        "reportVersion": 1,
        "image": report.image,
        "id": a.image_id,
        "layers": [{"index": r.index, "sizeBytes": r.size, "command": r.command,
                    "dockerfileLine": report.layer_lines[r.index]} for r in a.layers],
        "size": analysis_json(a),
        "wasteByDirectory": [{"directory": d, "sizeBytes": n} for d, n in report.waste_by_directory()],
        "lint": [{"line": f.line, "column": f.column, "code": f.code, "level": f.severity,
                  "message": f.message} for f in report.lint],
        "vulnerabilities": [{"id": v.id, "severity": v.severity, "package": v.package, "version": v.version,
                             "fixedVersion": v.fixed, "title": v.title, "layer": v.layer,
                             "dockerfileLine": v.line} for v in report.vulnerabilities],
        "notes": report.notes,
        "byLine": [{"line": e.line, "text": e.text, "lint": [f.code for f in e.lint],
                    "removableBytes": e.removable, "fixes": e.fixes,
                    "vulnerabilities": [v.id for v in e.vulnerabilities]} for e in report.lines],
    }


_REMOVABLE_RULE = {
    "id": "RemovableBytes", "name": "RemovableBytes",
    "shortDescription": {"text": "A layer makes bytes of lower layers removable"},
    "fullDescription": {"text": "Bytes a later layer overwrote, copied again, changed only the metadata "
                                "of, or deleted: the image still carries them in the lower layer. Counted "
                                "once each."},
    "help": {"text": "Write each file once: clean up in the step that creates the files, set owners and "
                     "modes with COPY --chown/--chmod, or build in a stage of its own and COPY --from the "
                     "result."},
    "defaultConfiguration": {"level": "warning"},
    "properties": {"tags": ["size", "efficiency"]},
}


def _dockerfile_location(uri: str, line: int) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": {"uri": uri},
                                 "region": {"startLine": line, "sourceLanguage": "dockerfile"}}}


def to_sarif(report: Report, dockerfile_uri: str = "Dockerfile") -> dict[str, Any]:
    """SARIF 2.1.0 with one run per tool, each with its rule metadata: ``dockyard lint`` (hadolint's,
    ShellCheck's and BuildKit's rules), ``dockyard`` scan (one rule per advisory, located on the
    Dockerfile line that installed the package, the package's file in the image as a related location)
    and ``dockyard analyze`` (removable bytes on the line of the layer that made them removable)."""
    from dockyard.tools.lint import render
    from dockyard.tools.scan.sarif import to_sarif as scan_sarif

    runs: list[dict[str, Any]] = []
    if report.dockerfile:
        runs += json.loads(render(report.lint, "sarif", filename=dockerfile_uri))["runs"]
    if report.scan is not None:
        run = scan_sarif(report.scan)["runs"][0]
        for result, vuln in zip(run["results"], report.vulnerabilities, strict=True):
            if vuln.line is not None:
                result["relatedLocations"] = [{"id": 1, **loc} for loc in result["locations"]]
                result["locations"] = [_dockerfile_location(dockerfile_uri, vuln.line)]
        runs.append(run)
    waste = report.analysis.waste
    results = [{"ruleId": "RemovableBytes", "ruleIndex": 0, "level": "warning",
                "message": {"text": f"{lw.removable} bytes removable ({lw.files} files, "
                                    + ", ".join(f"{k} {n}" for k, n in lw.by_kind.items()) + f"): {lw.fix}"},
                "properties": {"removableBytes": lw.removable, "layer": lw.index},
                **({"locations": [_dockerfile_location(dockerfile_uri, lw.line)]} if lw.line else {})}
               for lw in (waste.layers if waste else [])]
    runs.append({"tool": {"driver": {"name": "dockyard analyze", "version": __version__,
                                     "rules": [_REMOVABLE_RULE] if results else []}},
                 "results": results,
                 "properties": {"imageName": report.image, "imageID": report.analysis.image_id,
                                "notes": report.notes}})
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": runs}
