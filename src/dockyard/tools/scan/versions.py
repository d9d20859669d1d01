"""Version ordering per ecosystem: Debian/Ubuntu (dpkg), Alpine (apk), RPM distributions (rpmvercmp),
PyPI (PEP 440), npm/Go/crates.io (semver 2.0; Go's ``v`` prefix allowed), Maven (ComparableVersion).

``compare(ecosystem, a, b)`` returns <0, 0 or >0. Ecosystem names are OSV's (``Debian``, ``Alpine``,
``Red Hat``, ``PyPI``, ``npm``, ``Go``, ``Maven``; a ``:release`` suffix is ignored); anything else
compares as dotted numbers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

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


# -- RPM: rpmvercmp and epoch:version-release -------------------------------------------------------

_RPM_SEG = re.compile(r"\d+|[A-Za-z]+")


def rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison: digits vs letters runs, ``~`` sorts before anything (even the end),
    ``^`` after the end but before anything else; other characters only separate."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not (a[i].isascii() and a[i].isalnum()) and a[i] not in "~^":
            i += 1
        while j < len(b) and not (b[j].isascii() and b[j].isalnum()) and b[j] not in "~^":
            j += 1
        ta, tb = a[i:i + 1], b[j:j + 1]
        if ta == "~" or tb == "~":
            if ta != "~":
                return 1
            if tb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ta == "^" or tb == "^":
            if not ta:
                return -1
            if not tb:
                return 1
            if ta != "^":
                return 1
            if tb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not ta or not tb:
            break
        numeric = ta.isdigit()
        ma = _RPM_SEG.match(a, i)
        mb = re.compile(r"\d+" if numeric else r"[A-Za-z]+").match(b, j)
        assert ma is not None
        if mb is None:  # a number and letters: the number is newer
            return 1 if numeric else -1
        sa, sb = ma.group(), mb.group()
        i, j = ma.end(), mb.end()
        if numeric:
            sa, sb = sa.lstrip("0"), sb.lstrip("0")
            if len(sa) != len(sb):
                return 1 if len(sa) > len(sb) else -1
        if sa != sb:
            return 1 if sa > sb else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def _rpm_evr(v: str) -> tuple[int, str, str]:
    epoch = 0
    head, sep, rest = v.partition(":")
    if sep and head.isdigit():
        epoch, v = int(head), rest
    version, sep, release = v.rpartition("-")
    return (epoch, version, release) if sep else (epoch, v, "")


def compare_rpm(a: str, b: str) -> int:
    """RPM ordering of ``[epoch:]version[-release]`` (a missing release matches any)."""
    ea, va, ra = _rpm_evr(a.strip())
    eb, vb, rb = _rpm_evr(b.strip())
    if ea != eb:
        return -1 if ea < eb else 1
    return rpmvercmp(va, vb) or (rpmvercmp(ra, rb) if ra and rb else 0)


# -- Maven: ComparableVersion ----------------------------------------------------------------------

_MAVEN_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_MAVEN_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
# An item is ("int", n), ("str", comparable qualifier) or ("list", [items]).
_MavenItem = tuple[str, Any]


def _maven_str(text: str, followed_by_digit: bool) -> _MavenItem:
    if followed_by_digit and len(text) == 1:
        text = {"a": "alpha", "b": "beta", "m": "milestone"}.get(text, text)
    text = _MAVEN_ALIASES.get(text, text)
    if text in _MAVEN_QUALIFIERS:
        return "str", str(_MAVEN_QUALIFIERS.index(text))
    return "str", f"{len(_MAVEN_QUALIFIERS)}-{text}"


_MAVEN_RELEASE = _maven_str("", False)[1]


def _maven_is_null(item: _MavenItem) -> bool:
    kind, value = item
    return (kind == "int" and value == 0) or (kind == "str" and value == _MAVEN_RELEASE) or (
        kind == "list" and not value)


def _maven_parse(version: str) -> list[_MavenItem]:
    version = version.lower()
    root: list[_MavenItem] = []
    current, stack = root, [root]
    digit, start = False, 0

    def push() -> list[_MavenItem]:
        sub: list[_MavenItem] = []
        current.append(("list", sub))
        stack.append(sub)
        return sub

    def add(is_digit: bool, end: int, followed_by_digit: bool = False) -> None:
        nonlocal current
        text = version[start:end]
        if is_digit:
            current.append(("int", int(text)) if text else ("int", 0))
            return
        if start > 0 and version[start - 1] == ".":  # 1.0.RC1 reads as 1.0-RC1 (MNG-7644)
            current = push()
        current.append(_maven_str(text, followed_by_digit))

    for i, c in enumerate(version):
        if c in ".-":
            if i == start:
                current.append(("int", 0))
            else:
                add(digit, i)
            start = i + 1
            if c == "-":
                current = push()
        elif c.isdigit():
            if not digit and i > start:  # 1.0alpha1: the qualifier, then a sub-list for the number
                add(False, i, True)
                start = i
                current = push()
            digit = True
        else:
            if digit and i > start:
                add(True, i)
                start = i
                current = push()
            digit = False
    if len(version) > start:
        add(digit, len(version))
    for lst in reversed(stack):  # drop trailing nulls (1.0.0 == 1, 1-ga == 1)
        for k in range(len(lst) - 1, -1, -1):
            if _maven_is_null(lst[k]):
                del lst[k]
            elif lst[k][0] != "list":
                break
    return root


def _maven_cmp(a: _MavenItem | None, b: _MavenItem | None) -> int:
    if a is None:
        return -_maven_cmp(b, None) if b is not None else 0
    kind, value = a
    if kind == "int":
        if b is None:
            return 0 if value == 0 else 1
        if b[0] == "int":
            return int(value > b[1]) - int(value < b[1])
        return 1  # 1.1 > 1-sp, 1.1 > 1-1
    if kind == "str":
        if b is None:
            return int(value > _MAVEN_RELEASE) - int(value < _MAVEN_RELEASE)
        if b[0] == "str":
            return int(value > b[1]) - int(value < b[1])
        return -1
    if b is None:
        return _maven_cmp(value[0], None) if value else 0
    if b[0] == "int":
        return -1
    if b[0] == "str":
        return 1
    for x, y in itertools.zip_longest(value, b[1]):
        if c := _maven_cmp(x, y):
            return c
    return 0


def compare_maven(a: str, b: str) -> int:
    """Maven's ComparableVersion: numbers and qualifiers (alpha < beta < milestone < rc < snapshot <
    release < sp < others), ``-`` opens a sub-list, trailing zeros and release words do not count."""
    return _maven_cmp(("list", _maven_parse(a.strip())), ("list", _maven_parse(b.strip())))


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
    "npm": compare_semver, "go": compare_semver, "crates.io": compare_semver, "maven": compare_maven,
    "red hat": compare_rpm, "rocky linux": compare_rpm, "almalinux": compare_rpm, "opensuse": compare_rpm,
    "suse": compare_rpm, "mageia": compare_rpm, "rpm": compare_rpm,
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
