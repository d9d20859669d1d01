"""Version ordering per ecosystem: Debian (dpkg), Alpine (apk), PyPI (PEP 440), npm (semver).

``compare(ecosystem, a, b)`` returns <0, 0 or >0. Ecosystem names are OSV's (``Debian``, ``Alpine``,
``PyPI``, ``npm``; a ``:release`` suffix is ignored); anything else compares as dotted numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cmp_to_key

# -- Debian: dpkg's verrevcmp and parseversion -----------------------------------------------------


def _order(c: str) -> int:
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not a[i].isdigit()) or (j < lb and not b[j].isdigit()):
            ac = _order(a[i]) if i < la else 0
            bc = _order(b[j]) if j < lb else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and j < lb and a[i].isdigit() and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and a[i].isdigit():
            return 1
        if j < lb and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _deb_parse(v: str) -> tuple[int, str, str]:
    v = v.strip()
    epoch = 0
    if ":" in v:
        head, v = v.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream, sep, revision = v.rpartition("-")
    if not sep:
        upstream, revision = v, ""
    return epoch, upstream, revision


def compare_deb(a: str, b: str) -> int:
    """dpkg --compare-versions ordering (epoch, upstream, revision; ``~`` sorts before anything)."""
    ea, ua, ra = _deb_parse(a)
    eb, ub, rb = _deb_parse(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _sign(_verrevcmp(ua, ub)) or _sign(_verrevcmp(ra, rb))


# -- Alpine: apk-tools' version tokens -------------------------------------------------------------

_APK = re.compile(r"^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
                  r"(?:~[0-9a-f]+)?(?:-r(\d+))?$")
_APK_SUFFIX = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}
_SUFFIX_TOKEN = re.compile(r"_([a-z]+)(\d*)")


def compare_apk(a: str, b: str) -> int:
    """apk's ordering: numbers (later ones with a leading 0 compare as fractions), letter, suffixes
    (``_alpha`` < ``_beta`` < ``_pre`` < ``_rc`` < none < ``_cvs`` .. ``_p``), then ``-rN``."""
    ma, mb = _APK.match(a.strip()), _APK.match(b.strip())
    if not ma or not mb:
        return _generic(a, b)
    na, nb = ma.group(1).split("."), mb.group(1).split(".")
    for k, (x, y) in enumerate(zip(na, nb, strict=False)):
        if k > 0 and (x.startswith("0") or y.startswith("0")):
            c = int(x > y) - int(x < y)
        else:
            c = int(int(x) > int(y)) - int(int(x) < int(y))
        if c:
            return c
    if len(na) != len(nb):
        return 1 if len(na) > len(nb) else -1
    la, lb = ma.group(2), mb.group(2)
    if la != lb:
        return 1 if la > lb else -1
    sa = [(_APK_SUFFIX[s], int(n or 0)) for s, n in _SUFFIX_TOKEN.findall(ma.group(3))]
    sb = [(_APK_SUFFIX[s], int(n or 0)) for s, n in _SUFFIX_TOKEN.findall(mb.group(3))]
    for x2, y2 in zip(sa, sb, strict=False):
        if x2 != y2:
            return 1 if x2 > y2 else -1
    if len(sa) != len(sb):  # an extra pre-release suffix sorts lower, a post-release one higher
        extra = sa[len(sb)] if len(sa) > len(sb) else sb[len(sa)]
        sign = 1 if extra[0] > 0 else -1
        return sign if len(sa) > len(sb) else -sign
    ra, rb = int(ma.group(4) or 0), int(mb.group(4) or 0)
    return (ra > rb) - (ra < rb)


# -- PyPI: PEP 440 via packaging --------------------------------------------------------------------


def compare_pypi(a: str, b: str) -> int:
    """PEP 440 ordering (``packaging``); strings that are not PEP 440 compare as dotted numbers."""
    from packaging.version import InvalidVersion, Version

    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return _generic(a, b)
    return int(va > vb) - int(va < vb)


# -- npm: semver 2.0 --------------------------------------------------------------------------------

_SEMVER = re.compile(r"^\s*[v=]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\s*$")


def compare_semver(a: str, b: str) -> int:
    """semver 2.0 precedence: major.minor.patch, then a pre-release sorts before the release."""
    ma, mb = _SEMVER.match(a), _SEMVER.match(b)
    if not ma or not mb:
        return _generic(a, b)
    ka = tuple(int(ma.group(i) or 0) for i in (1, 2, 3))
    kb = tuple(int(mb.group(i) or 0) for i in (1, 2, 3))
    if ka != kb:
        return 1 if ka > kb else -1
    pa, pb = ma.group(4), mb.group(4)
    if pa == pb:
        return 0
    if pa is None:
        return 1
    if pb is None:
        return -1
    for x, y in zip(pa.split("."), pb.split("."), strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return 1 if int(x) > int(y) else -1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1  # numeric identifiers sort before alphanumeric ones
        return 1 if x > y else -1
    na, nb = len(pa.split(".")), len(pb.split("."))
    return (na > nb) - (na < nb)


# -- everything else --------------------------------------------------------------------------------

_PIECE = re.compile(r"\d+|[A-Za-z]+")


def _generic(a: str, b: str) -> int:
    def key(v: str) -> list[tuple[int, int, str]]:
        return [(1, int(p), "") if p.isdigit() else (0, 0, p) for p in _PIECE.findall(v)]

    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


_BY_ECOSYSTEM: dict[str, Callable[[str, str], int]] = {
    "debian": compare_deb, "ubuntu": compare_deb, "alpine": compare_apk, "pypi": compare_pypi,
    "npm": compare_semver, "go": compare_semver,
}


def comparator(ecosystem: str) -> Callable[[str, str], int]:
    """The compare function for an OSV ecosystem name (``Debian:12`` -> dpkg's)."""
    return _BY_ECOSYSTEM.get(ecosystem.split(":", 1)[0].lower(), _generic)


def compare(ecosystem: str, a: str, b: str) -> int:
    """<0, 0 or >0 as ``a`` sorts before, with or after ``b`` in ``ecosystem``."""
    return _sign(comparator(ecosystem)(a, b))


def sort_key(ecosystem: str) -> Callable[[str], object]:
    """A ``sorted`` key for version strings of ``ecosystem``."""
    return cmp_to_key(comparator(ecosystem))
