"""``--chmod`` values: octal (``0755``) or symbolic (``u+x,go-w``, ``a=rX``), as chmod(1) reads them."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable

from dockyard.errors import BuildError

_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*|[ugo])$")
_WHO = {"u": stat.S_IRWXU | stat.S_ISUID, "g": stat.S_IRWXG | stat.S_ISGID, "o": stat.S_IRWXO}


def parse_chmod(value: str) -> Callable[[int, bool], int] | None:
    """A function (old mode, is_dir) -> new mode, or None when ``value`` is empty."""
    if not value:
        return None
    if re.fullmatch(r"[0-7]{1,4}", value):
        fixed = int(value, 8)
        return lambda _old, _is_dir: fixed
    clauses = []
    for part in value.split(","):
        m = _CLAUSE.match(part)
        if m is None:
            raise BuildError(f"invalid chmod parameter: {value}")
        clauses.append((m.group(1) or "a", m.group(2), m.group(3)))

    def apply(old: int, is_dir: bool) -> int:
        mode = old & 0o7777
        for who, op, perms in clauses:
            targets = "ugo" if "a" in who else who
            bits = 0
            if perms in ("u", "g", "o"):
                shift = {"u": 6, "g": 3, "o": 0}[perms]
                copied = (mode >> shift) & 0o7
                for t in targets:
                    bits |= copied << {"u": 6, "g": 3, "o": 0}[t]
            else:
                for t in targets:
                    shift = {"u": 6, "g": 3, "o": 0}[t]
                    if "r" in perms:
                        bits |= 0o4 << shift
                    if "w" in perms:
                        bits |= 0o2 << shift
                    if "x" in perms or ("X" in perms and (is_dir or mode & 0o111)):
                        bits |= 0o1 << shift
                    if "s" in perms and t == "u":
                        bits |= stat.S_ISUID
                    if "s" in perms and t == "g":
                        bits |= stat.S_ISGID
                if "t" in perms:
                    bits |= stat.S_ISVTX
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                clear = 0
                for t in targets:
                    clear |= _WHO[t]
                mode = (mode & ~clear) | bits
        return mode

    return apply
