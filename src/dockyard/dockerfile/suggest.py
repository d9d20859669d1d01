"""'Did you mean' suggestions: the closest known word by edit distance."""

from __future__ import annotations

from collections.abc import Iterable


def levenshtein(a: str, b: str) -> int:
    """Edit distance between two strings."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def search(value: str, options: Iterable[str], case_sensitive: bool = False) -> str | None:
    """The option closest to ``value`` (at most 2 edits, and fewer than half its length), if any."""
    if not value:
        return None
    v = value if case_sensitive else value.lower()
    best: str | None = None
    best_dist = 0
    for opt in options:
        o = opt if case_sensitive else opt.lower()
        if o == v:
            return None
        dist = levenshtein(v, o)
        if dist <= 2 and dist * 2 < max(len(v), 2) + 1 and (best is None or dist < best_dist):
            best, best_dist = opt, dist
    return best


def wrap_suggestion(message: str, value: str, options: Iterable[str], *, prefix: str = "",
                    match_case: bool = False) -> str:
    """``message`` plus `` (did you mean X?)`` when a close option exists."""
    found = search(value, options)
    if found is None:
        return message
    if match_case and value.isupper():
        found = found.upper()
    return f"{message} (did you mean {prefix}{found}?)"
