"""dive's CI rules (``.dive-ci``): lowestEfficiency, highestWastedBytes, highestUserWastedPercent.

Defaults as dive's: efficiency at least 0.9, user-wasted percent at most 0.1, wasted bytes
disabled. A value of ``disabled`` skips a rule. Byte thresholds parse like go-humanize
(``20MB`` = 20,000,000; ``20MiB`` = 20 * 2**20).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from dockyard.errors import InvalidArgument
from dockyard.record import record
from dockyard.tools.analyze.core import Analysis

DEFAULT_RULES = {"lowestEfficiency": "0.9", "highestWastedBytes": "disabled",
                 "highestUserWastedPercent": "0.1"}
RULE_ORDER = ("highestUserWastedPercent", "highestWastedBytes", "lowestEfficiency")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "ki": 2**10, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mi": 2**20, "mib": 2**20, "g": 10**9, "gb": 10**9, "gi": 2**30, "gib": 2**30,
          "t": 10**12, "tb": 10**12, "ti": 2**40, "tib": 2**40}
_BYTES = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str, what: str = "size") -> int:
    """``20MB`` -> 20000000, ``1.5KiB`` -> 1536 (go-humanize's ParseBytes)."""
    m = _BYTES.match(text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise InvalidArgument(f"invalid {what} {text!r}: expected a number of bytes like 20MB or 512KiB")
    return int(float(m.group(1)) * _UNITS[unit])


def _parse_ratio(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected a number like 0.9") from None
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"invalid {what} {text!r}: must be between 0 and 1")
    return value


def _go(x: float) -> str:
    """A float as Go's %v prints it (shortest round-trip digits; +Inf, NaN)."""
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


@record(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome: ``PASS``, ``FAIL`` or ``SKIP`` with dive's message."""

    name: str
    status: str
    message: str = ""


@record(frozen=True, slots=True)
class CiReport:
    """All rule outcomes; ``passed`` is False when any rule failed."""

    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        return not any(r.status == "FAIL" for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def load_ci_config(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``rules:`` of a ``.dive-ci`` YAML file (flat ``name: value`` lines; comments allowed)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read CI config {path}: {exc.strerror}") from None
    rules: dict[str, str] = {}
    in_rules = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            in_rules = line.strip() == "rules:"
            continue
        if in_rules:
            key, sep, value = line.strip().partition(":")
            if not sep or key not in DEFAULT_RULES:
                raise InvalidArgument(f"{path}:{number}: expected one of {', '.join(RULE_ORDER)}: VALUE")
            rules[key] = value.strip().strip("\"'")
    return rules


def evaluate(analysis: Analysis, rules: dict[str, str] | None = None) -> CiReport:
    """Check ``analysis`` against dive's rules (missing ones take dive's defaults)."""
    cfg = {**DEFAULT_RULES, **(rules or {})}
    unknown = set(cfg) - set(DEFAULT_RULES)
    if unknown:
        raise InvalidArgument(f"unknown CI rule {sorted(unknown)[0]!r}: use one of {', '.join(RULE_ORDER)}")
    out: list[RuleResult] = []
    for name in RULE_ORDER:
        value = cfg[name].strip()
        if value.lower() == "disabled":
            out.append(RuleResult(name, "SKIP", "rule disabled"))
            continue
        if name == "lowestEfficiency":
            limit = _parse_ratio(value, name)
            ok = analysis.efficiency >= limit
            msg = (f"image efficiency is too low (efficiency={_go(analysis.efficiency)} "
                   f"< threshold={_go(limit)})")
        elif name == "highestWastedBytes":
            limit_bytes = parse_bytes(value, name)
            ok = analysis.wasted <= limit_bytes
            msg = f"too many bytes wasted (wasted-bytes={analysis.wasted} > threshold={limit_bytes})"
        else:
            limit = _parse_ratio(value, name)
            pct = analysis.user_wasted_percent
            ok = not pct > limit
            msg = ("too many bytes wasted, relative to the user bytes added "
                   f"(%-user-wasted-bytes={_go(pct)} > threshold={_go(limit)})")
        out.append(RuleResult(name, "PASS" if ok else "FAIL", "" if ok else msg))
    return CiReport(tuple(out))
