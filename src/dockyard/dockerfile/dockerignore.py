"""``.dockerignore``: reading the file and matching paths, as moby/patternmatcher does.

``read_ignore_file(text)`` gives the cleaned pattern list; ``PatternMatcher(patterns)`` compiles them
once; ``matcher.matches(path)`` says whether a context path (slash-separated, relative) is excluded,
counting a match on any parent directory and ``!`` re-inclusions in order.
``pick_ignore_file(dockerfile, names)`` chooses ``<Dockerfile>.dockerignore`` over ``.dockerignore``.
"""

from __future__ import annotations

import posixpath
import re
import warnings
from collections.abc import Collection, Iterable
from typing import Any

from dockyard.errors import InvalidArgument

BAD_PATTERN = "syntax error in pattern"


class PatternError(InvalidArgument):
    """A malformed ``.dockerignore`` pattern (Go's ``filepath.ErrBadPattern`` and friends)."""


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` on a slash-separated path."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_ignore_file(text: str | bytes | None) -> list[str]:
    """The patterns of a ``.dockerignore`` file: comments and blanks dropped, paths cleaned,
    a leading ``/`` removed, ``!`` kept."""
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    out: list[str] = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _get_esc(p: str, i: int) -> tuple[str, int]:
    n = len(p)
    if i >= n or p[i] in "-]":
        raise PatternError(BAD_PATTERN)
    if p[i] == "\\":
        i += 1
        if i >= n:
            raise PatternError(BAD_PATTERN)
    ch = p[i]
    i += 1
    if i >= n:
        raise PatternError(BAD_PATTERN)
    return ch, i


def validate_glob(p: str) -> None:
    """Raise PatternError where Go's ``filepath.Match`` reports ``ErrBadPattern``."""
    i = 0
    n = len(p)
    while i < n:
        ch = p[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError(BAD_PATTERN)
            i += 2
        elif ch == "[":
            i += 1
            if i < n and p[i] == "^":
                i += 1
            nrange = 0
            while True:
                if i < n and p[i] == "]" and nrange > 0:
                    i += 1
                    break
                _, i = _get_esc(p, i)
                if p[i] == "-":
                    _, i = _get_esc(p, i + 1)
                nrange += 1
        else:
            i += 1


_EXACT, _PREFIX, _SUFFIX, _REGEXP = range(4)
_SHOULD_ESCAPE = frozenset(".+()|{}$")


class Pattern:
    """One compiled pattern (exact, prefix, suffix or regular-expression match)."""

    __slots__ = ("cleaned", "dirs", "error", "exclusion", "kind", "regex")

    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.dirs = cleaned.split("/")
        self.regex: re.Pattern[str] | None = None
        self.error = False
        self.kind = _EXACT
        self._compile()

    def _compile(self) -> None:
        p = self.cleaned
        out = ["^"]
        kind = _EXACT
        i = 0
        n = len(p)
        first = True
        while i < n:
            ch = p[i]
            i += 1
            if ch == "*":
                if i < n and p[i] == "*":
                    i += 1
                    if i < n and p[i] == "/":  # treat "**/" as "**"
                        i += 1
                    if i >= n:
                        if kind == _EXACT:
                            kind = _PREFIX
                        else:
                            out.append(".*")
                            kind = _REGEXP
                    else:
                        out.append("(.*/)?")
                        kind = _REGEXP
                    if first:
                        kind = _SUFFIX
                else:
                    out.append("[^/]*")
                    kind = _REGEXP
            elif ch == "?":
                out.append("[^/]")
                kind = _REGEXP
            elif ch in _SHOULD_ESCAPE:
                out.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    # Go keeps the backslash: an escaped punctuation character is a literal.
                    nxt = p[i]
                    out.append("\\" + nxt if not nxt.isalnum() or nxt in "dDwWsSbB" else nxt)
                    i += 1
                    kind = _REGEXP
                else:
                    out.append("\\\\")
            elif ch in "[]":
                out.append(ch)
                kind = _REGEXP
            else:
                out.append(ch)
            first = False
        self.kind = kind
        if kind == _REGEXP:
            try:
                with warnings.catch_warnings():
                    # "[[" etc. mean the same here as in Go's regexp; Python only warns about a
                    # possible future change of set syntax.
                    warnings.simplefilter("ignore", FutureWarning)
                    self.regex = re.compile("".join(out))
            except re.error:
                # Go compiles lazily and reports a bad range at match time, not at New().
                self.error = True

    def match(self, path: str) -> bool:
        kind = self.kind
        if kind == _EXACT:
            return path == self.cleaned
        if kind == _PREFIX:
            return path.startswith(self.cleaned[:-2])
        if kind == _SUFFIX:
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        if self.error:
            raise PatternError(BAD_PATTERN)
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


def _match_args(p: Pattern) -> tuple[Any, Any]:
    """What ``PatternMatcher.matches`` compares a path with for ``p``'s kind (see ``Pattern.match``)."""
    if p.kind == _EXACT:
        return p.cleaned, None
    if p.kind == _SUFFIX:
        suffix = p.cleaned[2:]
        return suffix, suffix[1:] if suffix[:1] == "/" else None
    if p.kind == _PREFIX:
        return p.cleaned[:-2], None
    assert p.regex is not None
    return p.regex.fullmatch, None


class PatternMatcher:
    """Compiled ``.dockerignore`` patterns. Raises PatternError for a malformed pattern or a lone ``!``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = go_clean(p)
            exclusion = False
            if p[0] == "!":
                if len(p) == 1:
                    raise PatternError('illegal exclusion pattern: "!"')
                exclusion = True
                p = p[1:]
                self.exclusions = True
            validate_glob(p)
            self.patterns.append(Pattern(p, exclusion))
        # A path is excluded when the last pattern matching it or a directory above it is not an
        # exclusion (Go's loop, which skips exclusions until something matched and then inclusions,
        # comes to the same). So the check runs from the last pattern back and stops at the first
        # hit, and each directory remembers the last pattern matching it or a parent.
        self._last_above: dict[str, int] = {}
        # Go raises a bad pattern's error in pattern order: keep its loop when one is bad.
        self._ordered = any(p.error for p in self.patterns)
        self._checks = [] if self._ordered else [
            (k, p.kind, *_match_args(p)) for k, p in enumerate(self.patterns)][::-1]

    def _last_matching_dir(self, directory: str) -> int:
        """The index of the last pattern matching ``directory`` or a directory above it (-1: none)."""
        last = self._last_above.get(directory)
        if last is not None:
            return last
        head = directory.rpartition("/")[0]
        last = self._last_matching_dir(head) if head else -1
        for k, pattern in enumerate(self.patterns[last + 1:], last + 1):
            try:
                if pattern.match(directory):
                    last = k
            except PatternError:
                pass  # Go ignores errors on parent checks; the file check reports them
        if len(self._last_above) > 100_000:
            self._last_above.clear()
        self._last_above[directory] = last
        return last

    def matches(self, path: str) -> bool:
        """Whether ``path`` is excluded (Go's ``MatchesOrParentMatches``)."""
        if self._ordered:
            return self._matches_in_order(path)
        parent = path.rpartition("/")[0]
        above = self._last_matching_dir(parent) if parent else -1
        for k, kind, arg, alt in self._checks:
            if k <= above:
                break
            if kind == _EXACT:
                hit = path == arg
            elif kind == _SUFFIX:
                hit = path.endswith(arg) or path == alt
            elif kind == _PREFIX:
                hit = path.startswith(arg)
            else:
                hit = arg(path) is not None
            if hit:
                return not self.patterns[k].exclusion
        return above >= 0 and not self.patterns[above].exclusion

    def _matches_in_order(self, path: str) -> bool:
        matched = False
        parent = path.rpartition("/")[0]
        for k, pat in enumerate(self.patterns):
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit and parent:
                hit = self._last_matching_dir_of(parent, k)
            if hit:
                matched = not pat.exclusion
        return matched

    def _last_matching_dir_of(self, directory: str, k: int) -> bool:
        """Whether pattern ``k`` matches ``directory`` or a directory above it (errors: no match)."""
        while directory:
            try:
                if self.patterns[k].match(directory):
                    return True
            except PatternError:
                pass
            directory = directory.rpartition("/")[0]
        return False

    def matches_legacy(self, path: str) -> bool:
        """Go's deprecated ``PatternMatcher.Matches``: checks one parent prefix as deep as the pattern."""
        matched = False
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit and parent != "." and len(pat.dirs) <= len(parent_dirs):
                try:
                    hit = pat.match("/".join(parent_dirs[:len(pat.dirs)]))
                except PatternError:
                    hit = False
            if hit:
                matched = not pat.exclusion
        return matched


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Go's package-level ``Matches(file, patterns)`` (the path is cleaned; ``.`` never matches)."""
    pm = PatternMatcher(patterns)
    path = go_clean(path)
    if path == ".":
        return False
    return pm.matches_legacy(path)


def ignore_file_candidates(dockerfile: str) -> list[str]:
    """Where the ignore file may be, best first: ``<dir>/<Dockerfile>.dockerignore``, ``.dockerignore``."""
    return [dockerfile + ".dockerignore", ".dockerignore"]


def pick_ignore_file(dockerfile: str, names: Collection[str]) -> str | None:
    """The ignore file to use, given the Dockerfile's path and the file names that exist."""
    for cand in ignore_file_candidates(dockerfile):
        if cand in names:
            return cand
    return None
