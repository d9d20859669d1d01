"""Test data for scan: package metadata files, a two-layer Debian-like image and OSV records."""

from __future__ import annotations

import json

OS_RELEASE = (b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
              b'VERSION_ID="12"\nID=debian\n')


def dpkg_status(*pkgs: tuple[str, str, str]) -> bytes:
    stanzas = []
    for name, version, extra in pkgs:
        stanzas.append(f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
                       f"Architecture: amd64\nVersion: {version}\n{extra}Description: {name}\n"
                       " a long\n description\n")
    return "\n".join(stanzas).encode()


def dist_info(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n\nBody: text\n".encode()


def pkg_json(name: str, version: str) -> bytes:
    return json.dumps({"name": name, "version": version, "license": "ISC"}).encode()


SITE = "usr/lib/python3/dist-packages"


def osv(vid: str, eco: str, name: str, events: list[dict[str, str]] | None = None,
        versions: list[str] | None = None, kind: str = "ECOSYSTEM", **extra: object) -> dict[str, object]:
    """One OSV record with one affected package."""
    affected: dict[str, object] = {"package": {"ecosystem": eco, "name": name}}
    if events is not None:
        affected["ranges"] = [{"type": kind, "events": events}]
    if versions is not None:
        affected["versions"] = versions
    return {"id": vid, "affected": [affected], **extra}


def fixed(version: str, introduced: str = "0") -> list[dict[str, str]]:
    return [{"introduced": introduced}, {"fixed": version}]


def sev(word: str) -> dict[str, str]:
    return {"severity": word}


OSV = [
    osv("DSA-0001-1", "Debian:12", "openssl", fixed("3.0.13-1~deb12u1"), summary="openssl: several issues",
        aliases=["CVE-2024-0001"], database_specific=sev("high")),
    osv("DSA-0002-1", "Debian:11", "openssl", fixed("9.9"), summary="openssl in bullseye"),
    osv("DEBIAN-CVE-2023-0003", "Debian:12", "curl", fixed("7.88.1-10+deb12u5"), details="curl fixed\nmore",
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]),
    osv("DEBIAN-CVE-2023-0004", "Debian", "zlib", fixed("1:1.3-1"), summary="zlib, epoch matters"),
    osv("GHSA-aaaa-bbbb-cccc", "PyPI", "Requests", fixed("2.31.0", "2.3.0"), summary="requests leaks headers",
        aliases=["CVE-2023-32681"], database_specific=sev("MODERATE")),
    osv("PYSEC-urllib3", "PyPI", "urllib3", versions=["1.26.0"], summary="urllib3 (deleted in layer 2)",
        database_specific=sev("LOW")),
    osv("PYSEC-oldlib", "PyPI", "old-lib", [{"introduced": "0"}, {"last_affected": "0.9"}],
        summary="old-lib last affected", database_specific=sev("CRITICAL")),
    osv("GHSA-lodash", "npm", "lodash", fixed("4.17.21"), kind="SEMVER", summary="lodash prototype pollution",
        database_specific=sev("HIGH")),
    osv("GHSA-minimist", "npm", "minimist", fixed("1.2.6", "1.0.0"), kind="SEMVER",
        summary="minimist prototype pollution", database_specific=sev("CRITICAL")),
    osv("GHSA-leftpad", "npm", "left-pad", versions=["1.0.0"], summary="left-pad (hidden by an opaque dir)",
        database_specific=sev("LOW")),
]


def debian_layers() -> list[list[tuple[str, bytes | None]]]:
    """Layer 1: dpkg, Python and npm packages; layer 2: upgrades, a whiteout and an opaque directory."""
    # etc/debian_version: what trivy detects Debian by (test_peers compares with it)
    base: list[tuple[str, bytes | None]] = [
        ("etc", None), ("etc/os-release", OS_RELEASE), ("etc/debian_version", b"12.5\n"),
        ("var/lib/dpkg/status", dpkg_status(
        ("libssl3", "3.0.11-1~deb12u2", "Source: openssl\n"),
        ("openssl", "3.0.11-1~deb12u2", ""),
        ("zlib1g", "1:1.2.13.dfsg-1", "Source: zlib\n"),
        ("curl", "7.88.1-10+deb12u4", ""),
        ("gone-pkg", "1.0-1", ""))),  # the next layer's status file replaces this one
        (f"{SITE}/requests-2.28.1.dist-info/METADATA", dist_info("requests", "2.28.1")),
        (f"{SITE}/Old_Lib.egg-info/PKG-INFO", dist_info("Old_Lib", "0.9")),
        (f"{SITE}/urllib3-1.26.0.dist-info/METADATA", dist_info("urllib3", "1.26.0")),
        ("app/node_modules/lodash/package.json", pkg_json("lodash", "4.17.20")),
        ("app/node_modules/@types/node/package.json", pkg_json("@types/node", "20.1.0")),
        ("app/node_modules/lodash/node_modules/minimist/package.json", pkg_json("minimist", "1.2.5")),
        ("app/node_modules/lodash/lib/package.json", pkg_json("not-a-package-root", "9.9.9")),
        ("opt/old/node_modules/left-pad/package.json", pkg_json("left-pad", "1.0.0")),
    ]
    upgrade: list[tuple[str, bytes | None]] = [("var/lib/dpkg/status", dpkg_status(
        ("libssl3", "3.0.11-1~deb12u2", "Source: openssl\n"),
        ("openssl", "3.0.11-1~deb12u2", ""),
        ("zlib1g", "1:1.2.13.dfsg-1", "Source: zlib\n"),
        ("curl", "7.88.1-10+deb12u5", "")) + b"\nPackage: purged\nStatus: deinstall ok config-files\n"
        b"Version: 1.0-1\n"),
        (f"{SITE}/.wh.urllib3-1.26.0.dist-info", b""),
        ("opt/old", None), ("opt/old/.wh..wh..opq", b""),
        ("app/node_modules/lodash/package.json", pkg_json("lodash", "4.17.21"))]
    return [base, upgrade]
