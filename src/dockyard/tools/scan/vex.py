"""Accepted risks from an OpenVEX document: ``not_affected`` and ``fixed`` statements suppress findings.

A statement applies to a finding when its ``vulnerability`` (``name`` or one of its ``aliases``; a
plain string in OpenVEX 0.0.x) names the advisory or one of its aliases, and its ``products`` (none:
every product) match: a product's ``@id`` is a package URL of the package, or of the image
(``pkg:oci/NAME``, with ``subcomponents`` narrowing it to those packages), or the image's ID. A purl in a
statement matches when type, namespace and name are equal and its version and qualifiers, where it
gives them, are the package's. Later statements override earlier ones for the same pair, as the
OpenVEX spec orders them by time.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from dockyard.errors import CorruptData, InvalidArgument
from dockyard.record import record

SUPPRESSING = ("not_affected", "fixed")
STATUSES = ("not_affected", "affected", "fixed", "under_investigation")


@record(frozen=True, slots=True)
class Statement:
    """One OpenVEX statement, reduced to what matching needs."""

    vulns: frozenset[str]
    products: tuple[tuple[str, tuple[str, ...]], ...]  # (product @id, subcomponent @ids)
    status: str
    justification: str
    impact: str


@record(frozen=True, slots=True)
class VexDocument:
    source: str
    statements: tuple[Statement, ...]


def _id(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("@id") or value.get("name") or "")
    return ""


def load_vex(path: str | Path) -> VexDocument:
    """Parse an OpenVEX JSON file; a one-line error names the file and the bad statement."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise InvalidArgument(f"--vex {where}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(f"{where}: not a JSON document: {exc}") from None
    if not isinstance(doc, dict) or "openvex" not in str(doc.get("@context", "")):
        raise CorruptData(f"{where}: not an OpenVEX document (no openvex @context)")
    raw = doc.get("statements")
    if not isinstance(raw, list):
        raise CorruptData(f"{where}: 'statements' must be a list")
    out: list[Statement] = []
    for n, st in enumerate(raw):
        if not isinstance(st, dict):
            raise CorruptData(f"{where}: statements[{n}] is not an object")
        vuln = st.get("vulnerability")
        names = {_id(vuln)} if vuln else set()
        if isinstance(vuln, dict):
            names |= {a for a in vuln.get("aliases") or [] if isinstance(a, str)}
        names.discard("")
        status = st.get("status")
        if not names:
            raise CorruptData(f"{where}: statements[{n}] has no vulnerability")
        if status not in STATUSES:
            raise CorruptData(f"{where}: statements[{n}]: status {status!r} is not one of "
                              f"{', '.join(STATUSES)}")
        products = tuple((_id(p), tuple(_id(s) for s in (p.get("subcomponents") or []) if _id(s)))
                         if isinstance(p, dict) else (_id(p), ())
                         for p in st.get("products") or [])
        out.append(Statement(frozenset(names), products, str(status), str(st.get("justification") or ""),
                             str(st.get("impact_statement") or st.get("status_notes") or "")))
    return VexDocument(where, tuple(out))


def _purl(text: str) -> tuple[str, str, dict[str, str]] | None:
    """(type/namespace/name, version, qualifiers) of a package URL; None if it is not one."""
    if not text.startswith("pkg:"):
        return None
    body = text[4:].split("#", 1)[0]
    body, _, query = body.partition("?")
    path, _, version = body.partition("@")
    return unquote(path).lower(), unquote(version), dict(parse_qsl(query))


def purl_matches(pattern: str, purl: str) -> bool:
    """Whether ``pattern`` (from a VEX statement) names the package ``purl``."""
    p, q = _purl(pattern), _purl(purl)
    if p is None or q is None or p[0] != q[0]:
        return False
    if p[1] and p[1] != q[1]:
        return False
    return all(q[2].get(k) == v for k, v in p[2].items())


def _image_ids(image: str, image_id: str) -> set[str]:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    bare = last.split(":", 1)[0]
    return {image, image_id, image_id.removeprefix("sha256:"), f"pkg:oci/{bare.lower()}", name}


def _statement_applies(st: Statement, vuln_names: set[str], pkg_purl: str, image: set[str]) -> bool:
    if not st.vulns & vuln_names:
        return False
    if not st.products:
        return True
    for product, subs in st.products:
        if purl_matches(product, pkg_purl):
            return True
        oci = _purl(product) if product.startswith("pkg:oci/") else None
        is_image = product in image or (oci is not None and f"pkg:{oci[0]}" in image)
        if is_image and (not subs or any(purl_matches(s, pkg_purl) for s in subs)):
            return True
    return False


def vex_status(doc: VexDocument, vuln_id: str, aliases: tuple[str, ...], pkg_purl: str,
               image: str, image_id: str) -> Statement | None:
    """The last statement of ``doc`` about this advisory in this package, if any."""
    names = {vuln_id, *aliases}
    ids = _image_ids(image, image_id)
    found = None
    for st in doc.statements:
        if _statement_applies(st, names, pkg_purl, ids):
            found = st
    return found


def statement_text(st: Statement) -> str:
    return st.justification + (f": {st.impact}" if st.impact else "") if st.justification else st.impact


__all__ = ["SUPPRESSING", "Statement", "VexDocument", "load_vex", "purl_matches", "statement_text",
           "vex_status"]
