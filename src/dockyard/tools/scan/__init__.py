"""``scan``: an image's packages (SBOM) and their vulnerabilities from an offline OSV database.

    result = scan_image(client, "app:1", VulnDB(path), severities=["CRITICAL", "HIGH"])
    result.sbom.packages         # [Package(type, name, version, purl, path, arch, src_name, ...)]
    result.findings              # [Finding(package, vuln, fixed)]
    to_cyclonedx(result), to_spdx(result), to_json(result)   # documents (dicts)
    update_db(path, [parse_source(URL)]); VulnDB(path).import_path("osv.zip"); VulnDB(path).info()
    compare("Debian", "1.0~rc1", "1.0")  # per-ecosystem version order
"""

from __future__ import annotations

from dockyard.tools.scan.db import SEVERITIES, Vuln, VulnDB
from dockyard.tools.scan.formats import target_of, to_cyclonedx, to_json, to_spdx
from dockyard.tools.scan.match import Finding, ScanResult, check_affected, match, parse_severities, scan_image
from dockyard.tools.scan.sbom import SBOM, OSInfo, Package, image_sbom, packages_from_files
from dockyard.tools.scan.severity import cvss3_score, cvss4_score, record_severity
from dockyard.tools.scan.update import parse_source, update_db
from dockyard.tools.scan.versions import compare

__all__ = ["SBOM", "SEVERITIES", "Finding", "OSInfo", "Package", "ScanResult", "Vuln", "VulnDB",
           "check_affected", "compare", "cvss3_score", "cvss4_score", "image_sbom", "match",
           "packages_from_files", "parse_severities", "parse_source", "record_severity", "scan_image",
           "target_of", "to_cyclonedx", "to_json", "to_spdx", "update_db"]
