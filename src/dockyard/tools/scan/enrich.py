"""What an SBOM adds to the package list: Debian licences, CPEs and the dependency graph.

Dependencies resolve to installed packages only: dpkg/apk/rpm by name or by what a package provides
(the first installed alternative of ``a | b``); Python ``Requires-Dist`` by normalised name in the
same ``site-packages``; npm by Node's lookup (``node_modules`` of the package, then of each parent
directory), from ``package.json`` and from ``package-lock.json`` (v2/v3 ``packages``); a Go binary's
main module depends on every module linked into it.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import TYPE_CHECKING

from dockyard.record import replace
from dockyard.tools.scan.licenses import copyright_licenses

if TYPE_CHECKING:
    from dockyard.tools.scan.sbom import Package

_CPE_SPECIAL = re.compile(r"([\\*?!\"#$%&'()+,/:;<=>@\[\]^`{|}~])")
LINK_MARK = b"\0symlink\n"


def _cpe_escape(value: str) -> str:
    return _CPE_SPECIAL.sub(r"\\\1", value.replace(" ", "_"))


def cpe_for(kind: str, name: str, version: str) -> str:
    """A CPE 2.3 formatted string for a package, as SBOM tools generate them (vendor guessed)."""
    vendor = product = name
    if kind == "gobinary":
        parts = name.split("/")
        vendor, product = (parts[1], parts[2]) if len(parts) >= 3 else (parts[0], parts[-1])
        if name == "stdlib":
            vendor, product = "golang", "go"
        version = version.removeprefix("v")
    elif kind == "npm" and name.startswith("@"):
        vendor, _, product = name[1:].partition("/")
    elif kind == "pypi":
        vendor = product = name.lower().replace("-", "_")
    return (f"cpe:2.3:a:{_cpe_escape(vendor.lower())}:{_cpe_escape(product.lower())}:{_cpe_escape(version)}"
            ":*:*:*:*:*:*:*")


def _doc_copyright(files: dict[str, bytes], name: str) -> bytes | None:
    """``/usr/share/doc/NAME/copyright``, following a symlinked doc directory (libstdc++6 -> gcc-12-base)."""
    doc = f"/usr/share/doc/{name}"
    for _ in range(8):
        link = files.get(doc)
        if link is None or not link.startswith(LINK_MARK):
            break
        target = link[len(LINK_MARK):].decode("utf-8", "replace")
        doc = posixpath.normpath(posixpath.join(posixpath.dirname(doc), target))
    return files.get(f"{doc}/copyright")


def enrich(packages: list[Package], files: dict[str, bytes]) -> list[Package]:
    """Packages with Debian licences, CPEs and resolved ``depends`` filled in."""
    out: list[Package] = []
    for p in packages:
        licenses = p.licenses
        if p.type == "deb" and not licenses:
            text = _doc_copyright(files, p.name)
            if text is not None:
                licenses = copyright_licenses(text.decode("utf-8", "replace"))
        out.append(replace(p, cpes=(cpe_for(p.type, p.name, p.version),), licenses=licenses))
    return _link(out, files)


def _link(plist: list[Package], files: dict[str, bytes]) -> list[Package]:
    by_name: dict[tuple[str, str], Package] = {}
    for p in plist:
        if p.type in ("deb", "apk", "rpm"):
            by_name.setdefault((p.type, p.name), p)
    for p in plist:
        for virtual in p.provides:
            by_name.setdefault((p.type, virtual), p)
    npm_by_dir = {p.path.rsplit("/", 1)[0]: p for p in plist if p.type == "npm"}
    lock_edges = _lockfile_edges(files)
    out: list[Package] = []
    for p in plist:
        deps: list[str] = []
        if p.type in ("deb", "apk", "rpm"):
            for group in p.requires:
                for alt in group.split("|"):
                    target = by_name.get((p.type, alt))
                    if target is not None:
                        if target is not p:
                            deps.append(target.ref)
                        break
        elif p.type == "pypi":
            site = p.path.rsplit("/", 2)[0]
            wanted = set(p.requires)
            deps = [q.ref for q in plist if q.type == "pypi" and q.path.rsplit("/", 2)[0] == site
                    and _pypi(q.name) in wanted]
        elif p.type == "npm":
            pkg_dir = p.path.rsplit("/", 1)[0]
            names = list(p.requires) + lock_edges.get(pkg_dir, [])
            for dep in dict.fromkeys(names):
                target = _node_resolve(npm_by_dir, pkg_dir, dep)
                if target is not None:
                    deps.append(target.ref)
        elif p.type == "gobinary" and p.requires:  # the main module: every module linked in
            wanted = set(p.requires)
            deps = [q.ref for q in plist if q.type == "gobinary" and q.path == p.path and q.name in wanted]
        out.append(replace(p, depends=tuple(dict.fromkeys(deps))) if deps else p)
    return out


def _pypi(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _node_resolve(by_dir: dict[str, Package], pkg_dir: str, dep: str) -> Package | None:
    """Node's lookup: ``<dir>/node_modules/<dep>`` from the package's directory upwards."""
    d = pkg_dir
    while True:
        hit = by_dir.get(f"{d}/node_modules/{dep}")
        if hit is not None:
            return hit
        if d in ("", "/"):
            return None
        d = posixpath.dirname(d)


def _lockfile_edges(files: dict[str, bytes]) -> dict[str, list[str]]:
    """package-lock.json v2/v3: package directory -> names of its dependencies."""
    edges: dict[str, list[str]] = {}
    for path, data in files.items():
        if not path.endswith("/package-lock.json") or "/node_modules/" in path:
            continue
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            continue
        root = path.rsplit("/", 1)[0]
        packages = doc.get("packages") if isinstance(doc, dict) else None
        if not isinstance(packages, dict):
            continue
        for key, entry in packages.items():
            if not key or not isinstance(entry, dict):
                continue
            deps = [*(entry.get("dependencies") or {}), *(entry.get("optionalDependencies") or {})]
            edges.setdefault(f"{root}/{key}", []).extend(str(d) for d in deps)
    return edges
