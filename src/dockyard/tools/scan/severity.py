"""Severity of an advisory: its own word, a distribution's urgency, or a CVSS v3 / v4 base score.

Order (first that gives a known word wins): ``database_specific.severity`` of the record or of an
affected entry (GitHub's MODERATE is MEDIUM); a distribution's ``urgency`` (Debian security tracker:
unimportant/low -> LOW, medium -> MEDIUM, high -> HIGH, "not yet assigned" and end-of-life -> none,
as trivy maps them); Ubuntu's priority (a ``severity`` entry of type ``Ubuntu``; negligible -> LOW);
a CVSS v3 vector, then a CVSS v4 vector (the highest base score -> its rating).
"""

from __future__ import annotations

from typing import Any

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")

_WORDS = {"MODERATE": "MEDIUM", "IMPORTANT": "HIGH", "NEGLIGIBLE": "LOW", "UNIMPORTANT": "LOW"}
# Debian's urgency words; "**" marks an urgency the security team has not confirmed yet.
_URGENCY = {"unimportant": "LOW", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}


def norm_severity(value: object) -> str:
    """A severity word in SEVERITIES (aliases mapped), or "" when it is none."""
    s = str(value or "").strip().upper()
    s = _WORDS.get(s, s)
    return s if s in SEVERITIES else ""


def urgency_severity(value: object) -> str:
    """Debian urgency -> severity word ("" for not yet assigned, end-of-life, anything else)."""
    return _URGENCY.get(str(value or "").strip().lower().rstrip("*").strip(), "")


def cvss3_score(vector: str) -> float | None:
    """Base score of a ``CVSS:3.x/...`` vector; None if it is not a valid one."""
    if not vector.startswith("CVSS:3"):
        return None
    from cvss import CVSS3
    from cvss.exceptions import CVSSError

    try:
        return float(CVSS3(vector).base_score)
    except (CVSSError, ValueError, KeyError):
        return None


def cvss4_score(vector: str) -> float | None:
    """Base score of a ``CVSS:4.0/...`` vector (FIRST's macro-vector method); None if invalid."""
    if not vector.startswith("CVSS:4"):
        return None
    from cvss import CVSS4
    from cvss.exceptions import CVSSError

    try:
        return float(CVSS4(vector).base_score)
    except (CVSSError, ValueError, KeyError):
        return None


def rating(score: float) -> str:
    """CVSS v3/v4 qualitative rating of a base score (0.0 is "None": UNKNOWN here)."""
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0.0:
        return "LOW"
    return "UNKNOWN"


def _specific(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for key in ("database_specific", "ecosystem_specific")
            if isinstance(s := entry.get(key), dict)]


def affected_severity(aff: dict[str, Any]) -> str:
    """The severity an affected entry states itself (a word or a Debian urgency); "" if none."""
    for spec in _specific(aff):
        if s := norm_severity(spec.get("severity")):
            return s
        if s := urgency_severity(spec.get("urgency")):
            return s
    return ""


def cvss_severity(entries: object) -> tuple[str, float | None]:
    """(rating, score) from an OSV ``severity`` list: the best v3 score, else the best v4 score."""
    for kind, scorer in (("CVSS_V3", cvss3_score), ("CVSS_V4", cvss4_score)):
        scores = [sc for sev in (entries if isinstance(entries, list) else [])
                  if isinstance(sev, dict) and sev.get("type") == kind
                  and (sc := scorer(str(sev.get("score", "")))) is not None]
        if scores:
            return rating(max(scores)), max(scores)
    return "", None


def record_severity(record: dict[str, Any]) -> str:
    """The record's severity word (see the module docstring for the order of sources)."""
    for spec in _specific(record):
        if s := norm_severity(spec.get("severity")):
            return s
    for aff in record.get("affected") or []:
        if isinstance(aff, dict) and (s := affected_severity(aff)):
            return s
    for sev in record.get("severity") or []:  # Ubuntu's priority: {"type": "Ubuntu", "score": "medium"}
        if isinstance(sev, dict) and sev.get("type") == "Ubuntu" and (s := norm_severity(sev.get("score"))):
            return s
    return cvss_severity(record.get("severity"))[0] or "UNKNOWN"
