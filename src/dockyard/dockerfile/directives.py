"""Parser directives (``# syntax=``, ``# escape=``, ``# check=``) at the top of a Dockerfile, as BuildKit."""

from __future__ import annotations

import json
import re

from dockyard.dockerfile.tree import Directive
from dockyard.errors import DockerfileError

DEFAULT_ESCAPE_TOKEN = "\\"
_VALID_DIRECTIVES = frozenset({"escape", "syntax", "check"})
# Go's \s is [\t\n\f\r ]; Python's is wider, so spell it out.
_GO_S = r"[\t\n\f\r ]"
_GO_SPACES = "\t\n\f\r "


class DirectiveParser:
    """Reads parser directives from the top of a file until the first line that is not one."""

    def __init__(self, comment: str = "#", line: int = 0) -> None:
        self.seen: set[str] = set()
        self.done = False
        self.line = line
        # BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, with the value trimmed in code:
        # the lazy group is quadratic in Python's backtracking engine on a long run of spaces.
        self._re = re.compile("^" + re.escape(comment) + _GO_S + r"*([a-zA-Z][a-zA-Z0-9]*)" + _GO_S
                              + "*=(.*)", re.DOTALL)

    def parse_line(self, line: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        m = self._re.match(line)
        if m is None:
            self.done = True
            return None
        rest = m.group(2)
        value = rest.strip(_GO_SPACES)
        if value == "":
            if rest == "":
                self.done = True
                return None
            value = rest[-1]  # the regex gives back one space for the value when there is nothing else
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return None
        if key in self.seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        return Directive(key, value, self.line)

    def parse_all(self, text: str) -> list[Directive]:
        out: list[Directive] = []
        for line in text.splitlines():
            if self.done:
                break
            d = self.parse_line(line)
            if d is not None:
                out.append(d)
        return out


def _discard_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def parse_directive(key: str, text: str | bytes) -> tuple[str, str, int] | None:
    """BuildKit's ``ParseDirective``: find directive ``key`` at the top of a Dockerfile.

    Returns ``(value, cmdline, line)`` (value = cmdline up to the first space) or None. ``#!`` on the
    first line is skipped; ``//key=`` and a JSON object are also accepted for ``syntax``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _discard_bom(text)
    line = 0
    first, _, rest = text.partition("\n")
    if first.startswith("#!"):
        text = rest
        line = 1
    comments = ["#", "//"] if key == "syntax" else ["#"]
    for comment in comments:
        parser = DirectiveParser(comment, line)
        try:
            directives = parser.parse_all(text)
        except DockerfileError:
            directives = []
        for d in directives:
            if d.name == key:
                return d.value.split(" ", 1)[0], d.value, d.line
    if key == "syntax":
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if isinstance(obj, dict) and isinstance(obj.get(key), str):
            return obj[key], obj[key], line
    return None


def detect_syntax(text: str | bytes) -> tuple[str, str, int] | None:
    """The ``# syntax=`` frontend reference, if the file names one (see :func:`parse_directive`)."""
    return parse_directive("syntax", text)


class DirectiveState:
    """The directives of the file being parsed: the directive reader and the escape token so far."""

    __slots__ = ("escape_token", "line_continuation", "parser")

    def __init__(self) -> None:
        self.parser = DirectiveParser()
        self.escape_token = DEFAULT_ESCAPE_TOKEN
        self.line_continuation = "\\"

    def set_escape_token(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise DockerfileError(f"invalid escape token '{s}' does not match ` or \\")
        self.escape_token = s
        self.line_continuation = s
