"""Software bill of materials: installed packages read straight from an image's layer tars.

Sources: dpkg (``var/lib/dpkg/status`` and distroless ``status.d/*``), apk (``lib/apk/db/installed``),
Python (``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO``), npm (every ``package.json`` with a name
and version below a ``node_modules`` directory, as trivy counts them) and Go binaries (the module list
the linker embeds; see ``gobinary``).
Layers are read in order; a later layer's file replaces an earlier one, whiteouts and opaque
directories delete. Nothing is unpacked to disk; only the few metadata files are kept in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from urllib.parse import quote

from dockyard.archive import TarEntry, TarReader
from dockyard.archive.tarheader import SYMTYPE
from dockyard.archive.whiteout import OPAQUE, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX
from dockyard.client import Client
from dockyard.errors import CorruptData
from dockyard.record import field, record
from dockyard.tools.analyze.layers import clean_path, image_layers, open_layer
from dockyard.tools.scan.enrich import LINK_MARK, enrich
from dockyard.tools.scan.gobinary import ELF_MAGIC, find_buildinfo, parse_modinfo
from dockyard.tools.scan.licenses import npm_licenses, python_licenses

_WANTED = re.compile(
    r"^/(?:var/lib/dpkg/status|var/lib/dpkg/status\.d/[^/]+|lib/apk/db/installed|etc/os-release"
    r"|usr/lib/os-release|.*/[^/]+\.dist-info/METADATA|.*/[^/]+\.egg-info/PKG-INFO"
    r"|(?:.*/)?node_modules/.+/package\.json|(?:.*/)?package-lock\.json"
    r"|usr/share/doc/[^/]+(?:/copyright)?"
    r"|(?:var/lib/rpm|usr/lib/sysimage/rpm)/rpmdb\.sqlite|var/lib/rpm/Packages)$")
_DOC_DIR = re.compile(r"^/usr/share/doc/[^/]+$")
_MAX_FILE = 256 << 20  # refuse to hold a "metadata" file larger than this in memory
GO_MARK = b"\0go-buildinfo\n"  # marks a Go binary's module list among the collected files


@record(frozen=True, slots=True)
class OSInfo:
    """The image's distribution from os-release (``debian``, ``12``); empty when unknown."""

    id: str = ""
    version_id: str = ""
    pretty_name: str = ""


@record(frozen=True, slots=True)
class Package:
    """One installed package; ``type`` is ``deb``, ``apk``, ``pypi``, ``npm`` or ``gobinary``."""

    type: str
    name: str
    version: str
    purl: str
    path: str
    arch: str = ""
    src_name: str = ""
    src_version: str = ""
    licenses: tuple[str, ...] = ()
    cpes: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # what the metadata asks for (names; "a|b" alternatives)
    provides: tuple[str, ...] = ()  # virtual names it satisfies (dpkg Provides, rpm PROVIDENAME)
    depends: tuple[str, ...] = ()  # bom refs (see ``ref``) of the installed packages it depends on

    @property
    def key(self) -> tuple[str, str, str]:
        return self.type, self.name, self.version

    @property
    def ref(self) -> str:
        """A reference unique in the image: the purl, with the metadata path for language packages."""
        if self.path in ("/var/lib/dpkg/status", "/lib/apk/db/installed") or self.type == "rpm":
            return self.purl
        return f"{self.purl}#{self.path}"


@record(slots=True)
class SBOM:
    """An image's packages (sorted by type, name, version) and its OS."""

    image: str
    image_id: str
    os: OSInfo
    packages: list[Package] = field(default_factory=list)


# -- reading the layers -------------------------------------------------------------------------------


def collect_files(layers: Iterable[Iterable[tuple[TarEntry, bytes | None]]]) -> dict[str, bytes]:
    """The final content of every wanted metadata file, from layers of (entry, body-or-None)."""
    files: dict[str, bytes] = {}
    for entries in layers:
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        opaque: list[str] = []
        for entry, body in entries:
            path = clean_path(entry.name)
            if not path:
                continue
            parent, _, base = path.rpartition("/")
            if base.startswith(WHITEOUT_META_PREFIX):
                if base == OPAQUE:
                    opaque.append(parent)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                deleted.append(f"{parent}/{base[len(WHITEOUT_PREFIX):]}")
                continue
            if body is not None:
                added[path] = body
            else:
                deleted.append(path)  # replaced by a directory, link or device in this layer
        for gone in deleted:
            files.pop(gone, None)
            _drop_below(files, gone)
        for d in opaque:
            _drop_below(files, d)
        files.update(added)
    return files


def _drop_below(files: dict[str, bytes], directory: str) -> None:
    prefix = directory.rstrip("/") + "/"
    for p in [p for p in files if p.startswith(prefix)]:
        del files[p]


def image_files(client: Client, ref: str) -> tuple[str, dict[str, bytes]]:
    """Stream the image's layers and return (image ID, wanted metadata files)."""
    info = image_layers(client, ref)

    def layers() -> Iterator[Iterator[tuple[TarEntry, bytes | None]]]:
        for layer in info.layers:
            with open_layer(client, layer) as reader:
                def entries(reader: TarReader = reader, diff_id: str = layer.diff_id) -> Iterator[
                        tuple[TarEntry, bytes | None]]:
                    for entry in reader:
                        path = clean_path(entry.name)
                        base = path.rpartition("/")[2]
                        if base.startswith(WHITEOUT_PREFIX):
                            yield entry, None
                        elif (entry.isreg() and entry.mode & 0o111 and 1024 <= entry.size <= _MAX_FILE
                              and not _WANTED.match(path)):
                            # an executable: keep a Go binary's module list, not its bytes
                            head = reader.read(4)
                            if head == ELF_MAGIC:
                                found = find_buildinfo(head + reader.read())
                                yield entry, (GO_MARK + "\n".join(found).encode()) if found else None
                        elif _WANTED.match(path):
                            if entry.type == SYMTYPE and _DOC_DIR.match(path):
                                yield entry, LINK_MARK + entry.linkname.encode()
                            elif entry.isreg():
                                if entry.size > _MAX_FILE:
                                    raise CorruptData(f"{path} in layer {diff_id} is too large "
                                                      f"({entry.size} bytes) to be package metadata")
                                yield entry, reader.read()
                            elif not entry.isdir():
                                yield entry, None
                yield entries()

    return info.image_id, collect_files(layers())


# -- parsers -------------------------------------------------------------------------------------------


def parse_os_release(text: str) -> OSInfo:
    """ID, VERSION_ID and PRETTY_NAME of an os-release file."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key:
            values[key] = value.strip().strip("\"'")
    return OSInfo(values.get("ID", ""), values.get("VERSION_ID", ""), values.get("PRETTY_NAME", ""))


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style paragraphs (dpkg status, apk's db uses one-letter keys the same way)."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t":
            if last:
                fields[last] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def _q(s: str) -> str:
    return quote(s, safe="")


def parse_dpkg(text: str, path: str, os_info: OSInfo) -> list[Package]:
    """Installed packages of a dpkg status file (Status ``... installed``; no Status: distroless)."""
    distro = f"{os_info.id}-{os_info.version_id}" if os_info.id and os_info.version_id else ""
    namespace = os_info.id or "debian"
    out: list[Package] = []
    for f in _stanzas(text):
        name, version = f.get("Package", ""), f.get("Version", "")
        status = f.get("Status")
        if not name or not version or (status is not None and status.split()[-1:] != ["installed"]):
            continue
        arch = f.get("Architecture", "")
        src_name, src_version = name, version
        if f.get("Source"):
            src = f["Source"].split()
            src_name = src[0]
            if len(src) > 1:
                src_version = src[1].strip("()")
        epoch, _, bare = version.rpartition(":") if ":" in version else ("", "", version)
        quals = [("arch", arch), ("distro", distro), ("epoch", epoch)]
        qual = "&".join(f"{k}={_q(v)}" for k, v in quals if v)
        purl = f"pkg:deb/{namespace}/{_q(name)}@{_q(bare)}" + (f"?{qual}" if qual else "")
        requires = tuple(group for key in ("Pre-Depends", "Depends")
                         for group in _dpkg_relations(f.get(key, "")))
        provides = tuple(g.split("|")[0] for g in _dpkg_relations(f.get("Provides", "")))
        out.append(Package("deb", name, version, purl, path, arch, src_name, src_version,
                           requires=requires, provides=provides))
    return out


def _dpkg_relations(field_text: str) -> list[str]:
    """``a (>= 1) | b:any, c`` -> ["a|b", "c"]: alternatives joined by ``|``, versions and arch dropped."""
    groups = []
    for group in field_text.replace("\n", " ").split(","):
        names = [alt.strip().split(" ", 1)[0].split("(", 1)[0].split(":", 1)[0] for alt in group.split("|")]
        names = [n for n in names if n]
        if names:
            groups.append("|".join(names))
    return groups


def parse_apk(text: str, path: str, os_info: OSInfo) -> list[Package]:
    """Packages of apk's installed database (``P:``, ``V:``, ``A:``, ``o:`` origin, ``L:`` license)."""
    out: list[Package] = []
    for f in _stanzas(text):
        name, version = f.get("P", ""), f.get("V", "")
        if not name or not version:
            continue
        arch = f.get("A", "")
        quals = [("arch", arch), ("distro", os_info.version_id)]
        qual = "&".join(f"{k}={_q(v)}" for k, v in quals if v)
        purl = f"pkg:apk/{os_info.id or 'alpine'}/{_q(name)}@{_q(version)}" + (f"?{qual}" if qual else "")
        lic = tuple(x for x in [f.get("L", "")] if x)
        requires = tuple(d.split("=", 1)[0].split(">", 1)[0].split("<", 1)[0].split("~", 1)[0]
                         for d in f.get("D", "").split() if not d.startswith("!"))
        provides = tuple(p.split("=", 1)[0] for p in f.get("p", "").split())
        out.append(Package("apk", name, version, purl, path, arch, f.get("o", name), version, lic,
                           requires=requires, provides=provides))
    return out


def pypi_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_python_metadata(text: str, path: str) -> Package | None:
    """A ``METADATA``/``PKG-INFO`` file's Name and Version (headers end at the first blank line)."""
    fields: dict[str, str] = {}
    classifiers: list[str] = []
    requires: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if not sep or line[0].isspace():
            continue
        if key == "Classifier":
            classifiers.append(value.strip())
        elif key == "Requires-Dist":
            spec, _, marker = value.partition(";")
            if "extra" not in marker:  # optional extras are not installed dependencies
                m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
                if m:
                    requires.append(pypi_name(m.group(1)))
        elif key not in fields:
            fields[key] = value.strip()
    name, version = fields.get("Name", ""), fields.get("Version", "")
    if not name or not version:
        return None
    lic = python_licenses(fields.get("License", ""), fields.get("License-Expression", ""), classifiers)
    purl = f"pkg:pypi/{_q(pypi_name(name))}@{_q(version)}"
    return Package("pypi", name, version, purl, path, licenses=lic, requires=tuple(requires))


def parse_package_json(data: bytes, path: str) -> Package | None:
    """An npm package's name and version from its ``package.json`` (None if it has neither)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    licenses = npm_licenses(doc)
    deps = doc.get("dependencies")
    requires = tuple(str(k) for k in deps) if isinstance(deps, dict) else ()
    if name.startswith("@") and "/" in name:
        scope, _, bare = name.partition("/")
        purl = f"pkg:npm/{_q(scope)}/{_q(bare)}@{_q(version)}"
    else:
        purl = f"pkg:npm/{_q(name)}@{_q(version)}"
    return Package("npm", name, version, purl, path, licenses=licenses, requires=requires)


def parse_go(text: str, path: str) -> list[Package]:
    """A Go binary's packages as trivy lists them: ``stdlib`` at the Go version, the main module
    (unless ``(devel)``) and every dependency module."""
    go_version, _, modinfo = text.partition("\n")
    info = parse_modinfo(go_version, modinfo)
    mods: list[tuple[str, str]] = []
    if go_version.startswith("go"):
        mods.append(("stdlib", "v" + go_version[2:].split()[0]))
    main = info.main if info.main and info.main[1] and info.main[1] != "(devel)" else None
    if main:
        mods.append(main)
    mods += info.deps
    linked = tuple(name for name, _ in mods if main is None or name != main[0])
    return [Package("gobinary", name, version, f"pkg:golang/{quote(name, safe='/')}@{_q(version)}", path,
                    requires=linked if main is not None and name == main[0] else ())
            for name, version in mods]


def packages_from_files(files: dict[str, bytes]) -> tuple[OSInfo, list[Package]]:
    """The OS and every package the collected metadata files describe."""
    raw_os = files.get("/etc/os-release") or files.get("/usr/lib/os-release") or b""
    os_info = parse_os_release(raw_os.decode("utf-8", "replace"))
    pkgs: list[Package] = []
    for path in sorted(files):
        data = files[path]
        if data.startswith(GO_MARK):
            pkgs += parse_go(data[len(GO_MARK):].decode("utf-8", "replace"), path)
        elif path == "/var/lib/dpkg/status" or path.startswith("/var/lib/dpkg/status.d/"):
            if path.endswith(".md5sums"):
                continue
            pkgs += parse_dpkg(data.decode("utf-8", "replace"), path, os_info)
        elif path == "/lib/apk/db/installed":
            pkgs += parse_apk(data.decode("utf-8", "replace"), path, os_info)
        elif path.endswith(("/METADATA", "/PKG-INFO")):
            p = parse_python_metadata(data.decode("utf-8", "replace"), path)
            if p is not None:
                pkgs.append(p)
        elif path.endswith("/package.json"):
            p = parse_package_json(data, path)
            if p is not None:
                pkgs.append(p)
        elif path.endswith("/rpmdb.sqlite"):
            from dockyard.tools.scan.rpmdb import parse_rpmdb_sqlite

            pkgs += parse_rpmdb_sqlite(data, path, os_info)
        elif path == "/var/lib/rpm/Packages":
            from dockyard.tools.scan.rpmdb import parse_rpmdb_bdb

            pkgs += parse_rpmdb_bdb(data, path, os_info)
    unique = {(p.type, p.name, p.version, p.path): p for p in pkgs}
    ordered = sorted(unique.values(), key=lambda p: (p.type, p.name.lower(), p.version, p.path))
    return os_info, enrich(ordered, files)


def image_sbom(client: Client, ref: str) -> SBOM:
    """The SBOM of an image in the local store."""
    image_id, files = image_files(client, ref)
    os_info, pkgs = packages_from_files(files)
    return SBOM(ref, image_id, os_info, pkgs)
