"""Go-compatible texts: ``time.ParseDuration``, ``Duration.String``, ``Time.String``, ``%q``/``%v``.

Docker's messages and history texts are printed by Go; this is the one place that writes them the
same way (durations in nanoseconds, as Go's ``time.Duration``).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable

__all__ = ["format_duration", "format_list", "format_time", "parse_duration", "parse_time", "quote",
           "quote_list", "quote_rune"]

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
_UNITS = {"ns": NANOSECOND, "us": MICROSECOND, "\u00b5s": MICROSECOND, "\u03bcs": MICROSECOND,
          "ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR}
_DIGITS = frozenset("0123456789")
_MAX = 1 << 63  # Duration is an int64; the magnitude is accumulated unsigned, as Go does


def _time_quote(s: str) -> str:
    """The ``time`` package's own quote: non-ASCII and control bytes as ``\\xNN`` of their UTF-8."""
    out = ['"']
    for ch in s:
        if ch < " " or ord(ch) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def _invalid(orig: str) -> ValueError:
    return ValueError(f"time: invalid duration {_time_quote(orig)}")


def _leading_int(s: str) -> tuple[int, str]:
    i = 0
    x = 0
    while i < len(s) and s[i] in _DIGITS:
        x = x * 10 + ord(s[i]) - 48
        if x > _MAX:
            raise OverflowError
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, int, str]:
    """Digits after the point: value, scale (a power of ten) and the rest; extra digits are dropped."""
    i = 0
    x = 0
    scale = 1
    overflow = False
    while i < len(s) and s[i] in _DIGITS:
        if not overflow:
            y = x * 10 + ord(s[i]) - 48
            if x > (_MAX - 1) // 10 or y > _MAX:
                overflow = True
            else:
                x = y
                scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds: ``1h30m``, ``10us``, ``1.5s``, ``-2m``, ``0``.

    A malformed text raises ValueError with Go's message (``time: invalid duration "x"``,
    ``time: missing unit in duration "1"``, ``time: unknown unit "d" in duration "1d"``).
    """
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise _invalid(text)
    total = 0
    while s:
        if s[0] != "." and s[0] not in _DIGITS:
            raise _invalid(text)
        before = len(s)
        try:
            whole, s = _leading_int(s)
        except OverflowError:
            raise _invalid(text) from None
        pre = len(s) != before
        post = False
        frac, scale = 0, 1
        if s[:1] == ".":
            s = s[1:]
            before = len(s)
            frac, scale, s = _leading_fraction(s)
            post = len(s) != before
        if not pre and not post:
            raise _invalid(text)
        i = 0
        while i < len(s) and s[i] != "." and s[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_time_quote(text)}")
        name, s = s[:i], s[i:]
        unit = _UNITS.get(name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_time_quote(name)} in duration {_time_quote(text)}")
        if whole > _MAX // unit:
            raise _invalid(text)
        value = whole * unit
        if frac > 0:
            # Go computes the fraction in float64 (nanosecond exact up to hours) and truncates.
            value += int(float(frac) * (float(unit) / float(scale)))
            if value > _MAX:
                raise _invalid(text)
        total += value
        if total > _MAX:
            raise _invalid(text)
    if neg:
        return -total
    if total > _MAX - 1:
        raise _invalid(text)
    return total


def _fraction(value: int, unit: int) -> str:
    """``value / unit`` with the fraction's trailing zeros (and a bare point) dropped, as Go's fmtFrac."""
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(ns: int) -> str:
    """Go's ``Duration.String``: ``0s``, ``1.5µs``, ``500ms``, ``1.5s``, ``1m0s``, ``1h2m3s``, ``-2m0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < SECOND:
        for unit, size in (("ms", MILLISECOND), ("\u00b5s", MICROSECOND), ("ns", NANOSECOND)):
            if u >= size:
                return sign + _fraction(u, size) + unit
    hours, rest = divmod(u, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    secs = _fraction(rest, SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\"}


def _escape(ch: str, quote_char: str) -> str:
    """One character as ``strconv`` writes it inside ``quote_char`` quotes."""
    if ch == quote_char:
        return "\\" + ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape): Go prints the byte
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # not a valid rune: Go reads it as U+FFFD, which is printable
        return "\ufffd"
    if ch.isprintable():
        return ch
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote(s: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints for a string): ``"a\\tb"``."""
    return '"' + "".join(_escape(ch, '"') for ch in s) + '"'


def quote_rune(n: int) -> str:
    """Go's ``%q`` of an integer: a quoted rune literal (``'A'``, ``'\\x03'``); U+FFFD if not a rune."""
    if not 0 <= n < 0x110000 or 0xD800 <= n <= 0xDFFF:
        n = 0xFFFD
    return "'" + _escape(chr(n), "'") + "'"


def quote_list(items: Iterable[str]) -> str:
    """Go's ``%q`` of a string slice: ``["/bin/sh" "-c"]``."""
    return "[" + " ".join(quote(i) for i in items) + "]"


def format_list(items: Iterable[str]) -> str:
    """Go's ``%v`` of a string slice: ``[/bin/sh -c]``."""
    return "[" + " ".join(items) + "]"


def format_time(t: _dt.datetime, nanos: int | None = None) -> str:
    """Go's ``Time.String``: ``2026-11-27 21:12:15.553393688 +0000 UTC`` (a naive time is UTC).

    ``nanos`` gives the fraction of the second when it is finer than the datetime's microseconds.
    """
    dt = t if t.tzinfo else t.replace(tzinfo=_dt.UTC)
    ns = dt.microsecond * 1000 if nanos is None else nanos
    frac = f".{ns:09d}".rstrip("0") if ns else ""
    offset = dt.utcoffset() or _dt.timedelta(0)
    sign = "-" if offset < _dt.timedelta(0) else "+"
    mins = int(abs(offset).total_seconds()) // 60
    numeric = f"{sign}{mins // 60:02d}{mins % 60:02d}"
    zone = dt.tzname() or ""
    # Python names a fixed offset "UTC+05:30"; Go prints the numeric offset as the zone name then.
    if zone in ("", "UTC+00:00") or (zone.startswith("UTC") and zone != "UTC"):
        zone = numeric if mins else "UTC"
    return f"{dt:%Y-%m-%d %H:%M:%S}{frac} {numeric} {zone}"


# The layout elements ``parse_time`` knows (enough for RFC 3339 and the forms Docker derives from it).
_LAYOUT_ELEMENT = re.compile(r"(2006|Z07:00|\.999999999|01|02|15|04|05)")
_RANGES = {"01": ("month", 1, 12), "02": ("day", 1, 31), "15": ("hour", 0, 23), "04": ("minute", 0, 59),
           "05": ("second", 0, 59)}


class _ParseError(ValueError):
    pass


def _two_digits(s: str, fixed: bool) -> tuple[int, str]:
    """Go's getnum: one or two leading digits (exactly two when ``fixed``)."""
    if s[:1] not in _DIGITS:
        raise _ParseError
    if s[1:2] not in _DIGITS or len(s) < 2:
        if fixed:
            raise _ParseError
        return int(s[0]), s[1:]
    return int(s[:2]), s[2:]


def _fraction_ns(s: str) -> tuple[int, str]:
    """A ``.123`` (or ``,123``) fraction of a second in nanoseconds; digits past the ninth are dropped."""
    n = 1
    while n < len(s) and s[n] in _DIGITS:
        n += 1
    return int((s[1:n] + "000000000")[:9]), s[n:]


def parse_time(layout: str, value: str, tz: _dt.tzinfo = _dt.UTC) -> tuple[_dt.datetime, int]:
    """Go's ``time.Parse`` for layouts made of ``2006 01 02 15 04 05 .999999999 Z07:00`` and literals.

    Returns the time (in the value's zone, else ``tz``) to the second and its nanoseconds; a bad value
    raises ValueError with Go's text (``parsing time "x" as "2006-01-02": cannot parse "x" as "2006"``).
    """
    def fail(value_elem: str, layout_elem: str) -> _ParseError:
        return _ParseError(f"parsing time {_time_quote(value)} as {_time_quote(layout)}: cannot parse "
                           f"{_time_quote(value_elem)} as {_time_quote(layout_elem)}")

    fields = {"2006": 1, "01": 1, "02": 1, "15": 0, "04": 0, "05": 0}
    nanos = 0
    zone = tz
    rest = value
    chunks = [c for c in _LAYOUT_ELEMENT.split(layout) if c]
    for i, chunk in enumerate(chunks):
        if not _LAYOUT_ELEMENT.fullmatch(chunk):
            if not rest.startswith(chunk):
                raise fail(rest, chunk)
            rest = rest[len(chunk):]
            continue
        hold = rest
        try:
            if chunk == "2006":
                if len(rest) < 4 or not all(c in _DIGITS for c in rest[:4]):
                    raise _ParseError
                fields[chunk], rest = int(rest[:4]), rest[4:]
            elif chunk in _RANGES:
                fields[chunk], rest = _two_digits(rest, fixed=chunk != "15")
                name, low, high = _RANGES[chunk]
                if not low <= fields[chunk] <= high:
                    raise _ParseError(f"parsing time {_time_quote(value)}: {name} out of range")
                following = chunks[i + 1] if i + 1 < len(chunks) else ""
                if chunk == "05" and following != ".999999999" and rest[:1] in (".", ",") \
                        and rest[1:2] in _DIGITS and len(rest) > 1:
                    nanos, rest = _fraction_ns(rest)  # Go takes a fraction the layout does not name
            elif chunk == ".999999999":
                if len(rest) >= 2 and rest[0] in ".," and rest[1] in _DIGITS:
                    nanos, rest = _fraction_ns(rest)
            elif rest[:1] == "Z":
                zone, rest = _dt.UTC, rest[1:]
            else:
                if len(rest) < 6 or rest[3] != ":" or rest[0] not in "+-":
                    raise _ParseError
                hours, _ = _two_digits(rest[1:3], fixed=True)
                minutes, _ = _two_digits(rest[4:6], fixed=True)
                sign = -1 if rest[0] == "-" else 1
                zone = _dt.timezone(sign * _dt.timedelta(hours=hours, minutes=minutes))
                rest = rest[6:]
        except _ParseError as exc:
            if exc.args:
                raise
            raise fail(hold, chunk) from None
    if rest:
        raise _ParseError(f"parsing time {_time_quote(value)}: extra text: {_time_quote(rest)}")
    try:
        moment = _dt.datetime(fields["2006"], fields["01"], fields["02"], fields["15"], fields["04"],
                              fields["05"], tzinfo=zone)
    except ValueError:
        raise _ParseError(f"parsing time {_time_quote(value)}: day out of range") from None
    return moment, nanos
