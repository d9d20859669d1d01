"""Go's ``fmt`` for template values: ``print``, ``println`` and ``printf`` with its verbs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dockyard import goformat
from dockyard.gotemplate.values import NO_VALUE, go_float, go_str, go_type


def go_sprint(args: Sequence[Any]) -> str:
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a, top=False) if a is not NO_VALUE else "<nil>")
    return "".join(out)


def go_sprintln(args: Sequence[Any]) -> str:
    return " ".join(go_str(a, top=False) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?([a-zA-Z%])")


def go_sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use (%s %v %d %q %x %X %t %f %e %g %c %o %b %T %%)."""
    out: list[str] = []
    ai = 0
    pos = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if width == "*":
            width = str(args[ai]) if ai < len(args) else ""
            ai += 1
        if prec == "*":
            prec = str(args[ai]) if ai < len(args) else ""
            ai += 1
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        out.append(_fmt_one(flags, width, prec, verb, a))
    out.append(fmt[pos:])
    if ai < len(args):
        extra = ", ".join(f"{go_type(a)}={go_str(a, top=False)}" for a in args[ai:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _fmt_one(flags: str, width: str | None, prec: str | None, verb: str, a: Any) -> str:
    def pad(s: str) -> str:
        if not width:
            return s
        w = int(width)
        if "-" in flags:
            return s.ljust(w)
        if "0" in flags and verb in "dxXobeEfFgG":
            sign = s[0] if s[:1] in "+-" else ""
            return sign + s[len(sign):].rjust(w - len(sign), "0")
        return s.rjust(w)

    def bad() -> str:
        return f"%!{verb}({go_type(a)}={go_str(a, top=False)})"

    if verb == "T":
        return pad(go_type(a))
    if verb == "v":
        return pad(go_str(a, top=False) if not (isinstance(a, str) and prec) else a[:int(prec)])
    if verb == "s":
        if isinstance(a, int | float | bool) or a is None:
            return bad()
        s = go_str(a, top=False)
        if prec is not None:
            s = s[:int(prec or 0)]
        return pad(s)
    if verb == "q":
        if isinstance(a, str):
            return pad(goformat.quote(a))
        if isinstance(a, int) and not isinstance(a, bool):
            return pad("'" + chr(a) + "'")
        return bad()
    if verb == "t":
        return pad("true" if a else "false") if isinstance(a, bool) else bad()
    if verb in "dboxXc":
        if isinstance(a, bool):
            return bad()
        if isinstance(a, int):
            if verb == "c":
                return pad(chr(a))
            base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            sign_flag = "+" if "+" in flags else (" " if " " in flags else "")
            alt = "#" if "#" in flags and verb != "d" else ""
            return pad(format(a, f"{sign_flag}{alt}{base}"))
        if isinstance(a, str) and verb in "xX":
            h = a.encode().hex()
            return pad(h.upper() if verb == "X" else h)
        return bad()
    if verb in "eEfFgG":
        if isinstance(a, int) and not isinstance(a, bool):
            return bad()
        if not isinstance(a, float):
            return bad()
        if verb in "gG" and prec is None:
            return pad(go_float(a) if verb == "g" else go_float(a).upper())
        p = prec if prec is not None else "6"
        return pad(format(a, f"{'+' if '+' in flags else ''}.{p}{verb}"))
    return f"%!{verb}({go_type(a)}={go_str(a, top=False)})"
