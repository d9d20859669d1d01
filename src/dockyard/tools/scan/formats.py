"""Documents for a scan: trivy-like JSON, CycloneDX 1.5 JSON and SPDX 2.3 JSON."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from dockyard import __version__
from dockyard.tools.scan.licenses import spdx_expression, spdx_id
from dockyard.tools.scan.match import Finding, ScanResult
from dockyard.tools.scan.sbom import Package


def _now(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def _finding(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "VulnerabilityID": f.vuln.id, "PkgName": f.package.name, "PkgPath": f.package.path,
        "PkgType": f.package.type, "PURL": f.package.purl, "InstalledVersion": f.package.version,
        "FixedVersion": f.fixed, "Status": "fixed" if f.fixed else "affected", "Severity": f.severity,
        "Title": f.vuln.title, "Aliases": list(f.vuln.aliases)}
    if f.vuln.cvss:
        out["CVSS"] = {kind: vector for kind, vector in f.vuln.cvss}
        if f.vuln.score is not None:
            out["CVSSScore"] = f.vuln.score
    return out


def to_json(result: ScanResult) -> dict[str, Any]:
    """trivy's JSON report shape: ArtifactName, Metadata.OS, Results[] with Packages/Vulnerabilities."""
    sbom = result.sbom
    by_type: dict[str, list[Package]] = {}
    for p in sbom.packages:
        by_type.setdefault(p.type, []).append(p)
    results = []
    for kind, pkgs in sorted(by_type.items()):
        vulns = [_finding(f) for f in result.findings if f.package.type == kind]
        entry: dict[str, Any] = {
            "Target": _target(result, kind), "Type": kind,
            "Packages": [{"Name": p.name, "Version": p.version, "PURL": p.purl, "Path": p.path,
                          "Arch": p.arch, "SrcName": p.src_name, "SrcVersion": p.src_version,
                          "Licenses": list(p.licenses)} for p in pkgs],
            "Vulnerabilities": vulns}
        # what a VEX statement accepted, in trivy's shape for it
        modified = [{"Type": "vulnerability", "Status": s.status, "Statement": s.statement,
                     "Source": s.source, "Finding": _finding(s.finding)}
                    for s in result.suppressed if s.finding.package.type == kind]
        if modified:
            entry["ExperimentalModifiedFindings"] = modified
        results.append(entry)
    return {"SchemaVersion": 2, "ArtifactName": sbom.image, "ArtifactType": "container_image",
            "Metadata": {"ImageID": sbom.image_id, "OS": {"Family": sbom.os.id, "Name": sbom.os.version_id}},
            "Results": results}


def _target(result: ScanResult, kind: str) -> str:
    os_info = result.sbom.os
    if kind in ("deb", "apk"):
        return f"{result.sbom.image} ({os_info.id} {os_info.version_id})".replace(" )", ")")
    return {"pypi": "Python", "npm": "Node.js", "gobinary": "Go binaries"}.get(kind, kind)


def target_of(result: ScanResult, kind: str) -> str:
    """The heading trivy prints above a package type's table."""
    return _target(result, kind)


def to_cyclonedx(result: ScanResult, *, timestamp: float | None = None) -> dict[str, Any]:
    """A CycloneDX 1.5 BOM: the image as the subject, one library component per package (with purl),
    the OS as an operating-system component, and the findings as ``vulnerabilities``."""
    sbom = result.sbom
    image_ref = f"image:{sbom.image_id}"
    components: list[dict[str, Any]] = []
    if sbom.os.id:
        components.append({"bom-ref": f"os:{sbom.os.id}-{sbom.os.version_id}", "type": "operating-system",
                           "name": sbom.os.id, "version": sbom.os.version_id})
    for p in sbom.packages:
        comp: dict[str, Any] = {"bom-ref": _ref(p), "type": "library", "name": p.name, "version": p.version,
                                "purl": p.purl}
        if p.cpes:
            comp["cpe"] = p.cpes[0]
        if p.licenses:
            comp["licenses"] = _cdx_licenses(p.licenses)
        props = [("dockyard:PkgType", p.type), ("dockyard:FilePath", p.path)]
        if p.src_name and p.src_name != p.name:
            props.append(("dockyard:SrcName", p.src_name))
        if p.src_version and p.src_version != p.version:
            props.append(("dockyard:SrcVersion", p.src_version))
        comp["properties"] = [{"name": k, "value": v} for k, v in props]
        components.append(comp)
    doc: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.5", "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {"timestamp": _now(timestamp),
                     "tools": {"components": [{"type": "application", "name": "dockyard",
                                               "version": __version__}]},
                     "component": {"bom-ref": image_ref, "type": "container", "name": sbom.image,
                                   "properties": [{"name": "dockyard:ImageID", "value": sbom.image_id}]}},
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]}]
        + [{"ref": _ref(p), "dependsOn": list(p.depends)} for p in sbom.packages],
    }
    vulns: dict[str, dict[str, Any]] = {}
    states = {"not_affected": "not_affected", "fixed": "resolved"}
    for f, suppressed in [(f, None) for f in result.findings] + [(s.finding, s) for s in result.suppressed]:
        v = vulns.setdefault(f.vuln.id if suppressed is None else f"{f.vuln.id} (VEX)", {
            "id": f.vuln.id, "ratings": _ratings(f), "description": f.vuln.title, "affects": []})
        if f.vuln.aliases:
            v["references"] = [{"id": a, "source": {"name": "alias"}} for a in f.vuln.aliases]
        v["affects"].append({"ref": _ref(f.package)})
        if f.fixed:
            v.setdefault("recommendation", f"Upgrade {f.package.name} to {f.fixed}")
        if suppressed is not None:
            v["analysis"] = {"state": states[suppressed.status], "detail": suppressed.statement}
    if vulns:
        doc["vulnerabilities"] = list(vulns.values())
    return doc


def _ratings(f: Finding) -> list[dict[str, Any]]:
    """The severity, with the CVSS score, vector and method it rests on when known."""
    rating: dict[str, Any] = {"severity": f.severity.lower() if f.severity != "UNKNOWN" else "unknown"}
    for kind, vector in f.vuln.cvss:
        method = {"CVSS_V3": "CVSSv31" if vector.startswith("CVSS:3.1") else "CVSSv3", "CVSS_V4": "CVSSv4"}
        if kind in method and f.vuln.score is not None:
            rating.update(method=method[kind], vector=vector, score=f.vuln.score)
            break
    return [rating]


def _ref(p: Package) -> str:
    return p.ref


def _cdx_licenses(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """SPDX IDs where a name maps to one (``GPL-2+`` -> ``GPL-2.0-or-later``), else the names; a
    lone SPDX expression as CycloneDX's ``expression`` (which must then be the only entry)."""
    if len(names) == 1 and spdx_id(names[0]) is None and (expr := spdx_expression(names[0])):
        return [{"expression": expr}]
    return [{"license": {"id": spdx}} if (spdx := spdx_id(n)) else {"license": {"name": n}} for n in names]


def spdx_license_expression(licenses: tuple[str, ...]) -> tuple[str, list[dict[str, str]]]:
    """An SPDX 2.3 ``licenseDeclared`` value for a package's licences, and the extracted-licence
    entries (``LicenseRef-...``) the names without an SPDX ID need; NOASSERTION when there are none."""
    if not licenses:
        return "NOASSERTION", []
    terms: list[str] = []
    extracted: list[dict[str, str]] = []
    for name in licenses:
        spdx = spdx_expression(name)
        if spdx is None:
            ref = "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")
            extracted.append({"licenseId": ref, "name": name,
                              "extractedText": f"The package states its licence as: {name}"})
            spdx = ref
        terms.append(spdx)
    unique = list(dict.fromkeys(terms))
    if len(unique) == 1:
        return unique[0], extracted
    return " AND ".join(f"({t})" if " " in t else t for t in unique), extracted


def to_spdx(result: ScanResult, *, timestamp: float | None = None) -> dict[str, Any]:
    """An SPDX 2.3 JSON document: the image package CONTAINS one package per installed package, each
    with its declared licences, purl and CPE, and DEPENDS_ON its dependencies."""
    sbom = result.sbom
    packages: list[dict[str, Any]] = [{
        "name": sbom.image, "SPDXID": "SPDXRef-Image", "versionInfo": sbom.image_id,
        "downloadLocation": "NONE", "filesAnalyzed": False, "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION"}]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": "SPDXRef-Image"}]
    if sbom.os.id:
        packages.append({"name": sbom.os.id, "SPDXID": "SPDXRef-OperatingSystem",
                         "versionInfo": sbom.os.version_id, "downloadLocation": "NONE",
                         "filesAnalyzed": False,
                         "primaryPackagePurpose": "OPERATING-SYSTEM", "licenseConcluded": "NOASSERTION",
                         "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION"})
        relationships.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                              "relatedSpdxElement": "SPDXRef-OperatingSystem"})
    ids = {p.ref: f"SPDXRef-Package-{i}" for i, p in enumerate(sbom.packages, 1)}
    extracted: dict[str, dict[str, str]] = {}
    for p in sbom.packages:
        element = ids[p.ref]
        declared, refs = spdx_license_expression(p.licenses)
        extracted.update((r["licenseId"], r) for r in refs)
        external = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": p.purl}]
        external += [{"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                      "referenceLocator": cpe} for cpe in p.cpes]
        packages.append({
            "name": p.name, "SPDXID": element, "versionInfo": p.version, "downloadLocation": "NONE",
            "filesAnalyzed": False, "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared, "copyrightText": "NOASSERTION",
            "sourceInfo": f"installed package metadata: {p.path}", "externalRefs": external})
        relationships.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                              "relatedSpdxElement": element})
        relationships += [{"spdxElementId": element, "relationshipType": "DEPENDS_ON",
                           "relatedSpdxElement": ids[dep]} for dep in p.depends if dep in ids]
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": sbom.image,
        "documentNamespace": f"https://dockyard.invalid/spdx/{sbom.image_id.removeprefix('sha256:')}/"
                             f"{uuid.uuid4()}",
        "creationInfo": {"created": _now(timestamp), "creators": [f"Tool: dockyard-{__version__}"]},
        "packages": packages, "relationships": relationships,
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = list(extracted.values())
    return doc
