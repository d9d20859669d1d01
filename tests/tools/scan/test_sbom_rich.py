"""The richer SBOM: licences, CPEs and the dependency graph, read from an image's layers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.scan import ScanResult, VulnDB, image_sbom, scan_image, to_cyclonedx, to_spdx
from dockyard.tools.scan.licenses import copyright_licenses, python_licenses, spdx_id
from dockyard.tools.scan.vex import load_vex
from tests.tools.analyze.kit import make_image
from tests.tools.scan.fixtures import OS_RELEASE, dpkg_status
from tests.tools.scan.mirror import DATA

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: zlib
Source: http://zlib.net/

Files: *
Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
License: Zlib

Files: contrib/dotzlib/*
Copyright: 2004 Henrik Ravn
License: BSL-1.0 or GPL-2+

License: Zlib
 This software is provided 'as-is', without any express or implied warranty.
"""

FREE_FORM_COMMON = """This is the Debian prepackaged version of the GNU C Library version 2.36.

Copyright (C) 1991-2023 Free Software Foundation, Inc.

On Debian systems, the complete text of the GNU Library General Public License can be found in
`/usr/share/common-licenses/LGPL-2.1'.
and the GNU General Public License in `/usr/share/common-licenses/GPL-2'.
"""

FREE_FORM_TEXT = """This package was debianized by someone.

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction.
"""


def test_copyright_parsing() -> None:
    assert copyright_licenses(DEP5) == ("Zlib", "BSL-1.0", "GPL-2+")
    assert copyright_licenses(FREE_FORM_COMMON) == ("LGPL-2.1", "GPL-2")
    assert copyright_licenses(FREE_FORM_TEXT) == ("Expat",)
    assert copyright_licenses("Copyright: nobody\n") == ()
    assert [spdx_id(n) for n in ("GPL-2+", "LGPL-2.1", "GPL-3", "Expat", "BSD-3-clause", "Zlib",
                                 "GPL-3+ with Bison exception", "public-domain")] == [
        "GPL-2.0-or-later", "LGPL-2.1-only", "GPL-3.0-only", "MIT", "BSD-3-Clause", "Zlib", None, None]
    assert python_licenses("", "", ["License :: OSI Approved :: MIT License",
                                    "Programming Language :: Python"]) == ("MIT",)
    assert python_licenses("BSD", "Apache-2.0 OR MIT", []) == ("Apache-2.0 OR MIT",)
    assert python_licenses("Copyright 2020\nlong text", "", []) == ()


def _image(client: Client) -> None:
    status = dpkg_status(
        ("libc6", "2.36-9+deb12u4", "Source: glibc\nDepends: libgcc-s1\n"),
        ("libgcc-s1", "12.2.0-14", "Source: gcc-12\nDepends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)\n"),
        ("gcc-12-base", "12.2.0-14", "Source: gcc-12\n"),
        ("zlib1g", "1:1.2.13.dfsg-1", "Source: zlib\nPre-Depends: libc6 (>= 2.14)\n"),
        ("mawk", "1.3.4.20200120-3.1", "Provides: awk\nPre-Depends: libc6 (>= 2.34)\n"),
        ("base-files", "12.4", "Pre-Depends: awk | gawk, missing-pkg\n"))
    npm_lock = json.dumps({"name": "app", "lockfileVersion": 3, "packages": {
        "": {"dependencies": {"express": "^4"}},
        "node_modules/express": {"version": "4.18.2", "dependencies": {"debug": "2.6.9"}},
        "node_modules/debug": {"version": "2.6.9", "dependencies": {"ms": "2.0.0"}},
        "node_modules/ms": {"version": "2.0.0"}}}).encode()
    make_image(client, "rich:1", [[
        ("etc/os-release", OS_RELEASE), ("var/lib/dpkg/status", status),
        ("usr/share/doc/zlib1g/copyright", DEP5.encode()),
        ("usr/share/doc/libc6/copyright", FREE_FORM_COMMON.encode()),
        ("usr/share/doc/gcc-12-base/copyright", FREE_FORM_TEXT.encode()),
        ("usr/share/doc/mawk/copyright", b"Format: https://www.debian.org/doc/packaging-manuals/"
                                         b"copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2\n"),
        ("usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA",
         b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n"
         b"Classifier: License :: OSI Approved :: Apache Software License\n"
         b"Requires-Dist: urllib3 (<3,>=1.21.1)\n"
         b"Requires-Dist: PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'\n"
         b"Requires-Dist: charset_normalizer<4,>=2\n\nbody\n"),
        ("usr/lib/python3/dist-packages/urllib3-2.0.7.dist-info/METADATA",
         b"Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.7\nLicense-Expression: MIT\n\n"),
        ("usr/lib/python3/dist-packages/cryptography-42.0.5.dist-info/METADATA",
         b"Metadata-Version: 2.4\nName: cryptography\nVersion: 42.0.5\n"
         b"License-Expression: Apache-2.0 OR BSD-3-Clause\n"
         b"Classifier: License :: OSI Approved :: Apache Software License\n"
         b"Classifier: License :: OSI Approved :: BSD License\n\n"),
        ("usr/lib/python3/dist-packages/charset_normalizer-3.3.2.dist-info/METADATA",
         b"Metadata-Version: 2.1\nName: charset-normalizer\nVersion: 3.3.2\nLicense: MIT\n\n"),
        ("app/package-lock.json", npm_lock),
        ("app/node_modules/express/package.json",
         json.dumps({"name": "express", "version": "4.18.2", "license": "MIT"}).encode()),
        ("app/node_modules/debug/package.json",
         json.dumps({"name": "debug", "version": "2.6.9", "license": {"type": "MIT"}}).encode()),
        ("app/node_modules/ms/package.json",
         json.dumps({"name": "ms", "version": "2.0.0", "licenses": [{"type": "MIT"}]}).encode()),
        ("app/node_modules/debug/node_modules/ms/package.json",  # debug's own nested copy wins
         json.dumps({"name": "ms", "version": "2.1.3", "license": "MIT", "dependencies": {}}).encode()),
    ]])
    # libgcc-s1's doc directory is a symlink to gcc-12-base's, as in Debian: a second layer adds it
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("usr/share/doc/libgcc-s1")
        info.type, info.linkname = tarfile.SYMTYPE, "gcc-12-base"
        tar.addfile(info)
    config = json.loads(client.image_config("rich:1").to_json())
    config["rootfs"]["diff_ids"].append(str(client.store_layer(buf.getvalue()).diff_id))
    config["history"].append({"created": "2026-01-01T00:00:00Z", "created_by": "ln -s"})
    client.commit_image(json.dumps(config).encode(), names=["rich:1"])


def test_licences_cpes_and_graph(client: Client) -> None:
    _image(client)
    sbom = image_sbom(client, "rich:1")
    pkgs = {(p.type, p.name, p.version): p for p in sbom.packages}
    lic = {name: p.licenses for (_, name, _), p in pkgs.items()}
    assert lic["zlib1g"] == ("Zlib", "BSL-1.0", "GPL-2+")
    assert lic["libc6"] == ("LGPL-2.1", "GPL-2")
    assert lic["gcc-12-base"] == ("Expat",)
    assert lic["libgcc-s1"] == ("Expat",)  # through the symlinked doc directory
    assert lic["mawk"] == ("GPL-2",)
    assert lic["requests"] == ("Apache-2.0",) and lic["urllib3"] == ("MIT",)
    assert lic["debug"] == ("MIT",) and pkgs[("npm", "ms", "2.0.0")].licenses == ("MIT",)
    assert pkgs[("deb", "zlib1g", "1:1.2.13.dfsg-1")].cpes == (
        "cpe:2.3:a:zlib1g:zlib1g:1\\:1.2.13.dfsg-1:*:*:*:*:*:*:*",)

    def deps(kind: str, name: str, version: str) -> list[str]:
        names = {p.ref: f"{p.name}@{p.version}" for p in sbom.packages}
        return sorted(names[d] for d in pkgs[(kind, name, version)].depends)

    assert deps("deb", "libgcc-s1", "12.2.0-14") == ["gcc-12-base@12.2.0-14", "libc6@2.36-9+deb12u4"]
    assert deps("deb", "base-files", "12.4") == ["mawk@1.3.4.20200120-3.1"]  # awk, provided by mawk
    assert deps("deb", "zlib1g", "1:1.2.13.dfsg-1") == ["libc6@2.36-9+deb12u4"]
    assert deps("pypi", "requests", "2.31.0") == ["charset-normalizer@3.3.2", "urllib3@2.0.7"]  # no extras
    assert deps("npm", "express", "4.18.2") == ["debug@2.6.9"]  # from the lockfile
    assert deps("npm", "debug", "2.6.9") == ["ms@2.1.3"]  # Node's lookup: the nested copy first
    cdx = to_cyclonedx(ScanResult(sbom))
    refs = {c["bom-ref"] for c in cdx["components"]}
    graph = {d["ref"]: d["dependsOn"] for d in cdx["dependencies"]}
    assert all(r in refs for targets in graph.values() for r in targets)
    libgcc = next(c for c in cdx["components"] if c["name"] == "libgcc-s1")
    assert len(graph[libgcc["bom-ref"]]) == 2 and libgcc["cpe"].startswith("cpe:2.3:a:libgcc-s1:")
    zlib = next(c for c in cdx["components"] if c["name"] == "zlib1g")
    assert zlib["licenses"] == [{"license": {"id": "Zlib"}}, {"license": {"id": "BSL-1.0"}},
                                {"license": {"id": "GPL-2.0-or-later"}}]
    crypto = next(c for c in cdx["components"] if c["name"] == "cryptography")
    assert crypto["licenses"] == [{"expression": "Apache-2.0 OR BSD-3-Clause"}]
    spdx = to_spdx(ScanResult(sbom))
    by_name = {p["name"]: p for p in spdx["packages"]}
    assert by_name["zlib1g"]["licenseDeclared"] == "Zlib AND BSL-1.0 AND GPL-2.0-or-later"
    assert by_name["libc6"]["licenseDeclared"] == "LGPL-2.1-only AND GPL-2.0-only"
    assert by_name["cryptography"]["licenseDeclared"] == "Apache-2.0 OR BSD-3-Clause"
    assert by_name["base-files"]["licenseDeclared"] == "NOASSERTION"
    assert all(e["licenseId"].startswith("LicenseRef-") for e in spdx.get("hasExtractedLicensingInfos", []))
    depends_on = [r for r in spdx["relationships"] if r["relationshipType"] == "DEPENDS_ON"]
    assert len(depends_on) == sum(len(p.depends) for p in sbom.packages) > 8
    assert {"SECURITY"} <= {e["referenceCategory"] for e in by_name["zlib1g"]["externalRefs"]}


@pytest.mark.slow
def test_documents_pass_their_validators(client: Client, debian_image: str, db: VulnDB,
                                        tmp_path: Path) -> None:
    """CycloneDX 1.5 (the schema cyclonedx-python-lib ships) and SPDX 2.3 (spdx-tools), with
    licences, CPEs, the graph, vulnerabilities with CVSS ratings and a VEX-suppressed finding."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    _image(client)
    db.import_path(DATA / "mirror" / "PyPI")  # requests 2.28.1: a finding with a CVSS vector
    vex = tmp_path / "vex.json"
    vex.write_text(json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "statements": [
        {"vulnerability": {"name": "CVE-2024-0001"}, "status": "not_affected",
         "justification": "vulnerable_code_not_present"}]}))
    results = [ScanResult(image_sbom(client, "rich:1")),
               scan_image(client, "deb:1", db, vex=[load_vex(vex)])]
    assert results[1].suppressed and any(f.vuln.score for f in results[1].findings)
    for result in results:
        cdx = to_cyclonedx(result)
        assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(cdx)) is None
        path = tmp_path / "doc.spdx.json"
        path.write_text(json.dumps(to_spdx(result)))
        assert [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))] == []
