"""The Dockerfile syntax tree, shaped like BuildKit's ``parser.Node``: nodes, heredocs, the parse result."""

from __future__ import annotations

from typing import Any

from dockyard import goformat
from dockyard.record import field, record

# Instructions that may carry heredocs, and those that may wrap one (ONBUILD RUN <<EOF).
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
HEREDOC_COMPOUND_INSTRUCTIONS = frozenset({"onbuild"})


@record
class Heredoc:
    """A heredoc attached to an instruction: ``<<[-]NAME`` and the lines up to ``NAME``."""

    name: str
    content: str = ""
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "content": self.content, "file_descriptor": self.file_descriptor,
                "expand": self.expand, "chomp": self.chomp}


@record(slots=True)
class Node:
    """One syntax tree node, shaped like BuildKit's: ``value`` then a ``next`` chain of arguments.

    An instruction node has ``value`` = the instruction word as written, ``flags`` (``--x=y`` words),
    ``next`` = its argument chain, ``attributes`` (``json`` for exec form), ``original`` (the joined
    line), ``start_line``/``end_line`` (1-based), ``heredocs`` and ``prev_comment`` (comment lines
    just above it). ONBUILD's argument is a node whose ``children`` hold the wrapped instruction.
    """

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    prev_comment: list[str] = field(default_factory=list)
    column: int = 1  # 1-based column where the instruction starts on its first line

    @property
    def is_json(self) -> bool:
        return self.attributes.get("json", False)

    def values(self) -> list[str]:
        """The argument values after this node (the ``next`` chain)."""
        out: list[str] = []
        n = self.next
        while n is not None:
            out.append(n.value)
            n = n.next
        return out

    def sub_node(self) -> Node | None:
        """The wrapped instruction of an ONBUILD node, if any."""
        if self.next is not None and self.next.children:
            return self.next.children[0]
        return None

    def can_contain_heredoc(self) -> bool:
        node: Node = self
        if node.value.lower() in HEREDOC_COMPOUND_INSTRUCTIONS:
            sub = node.sub_node()
            if sub is not None:
                node = sub
        if node.value.lower() not in HEREDOC_INSTRUCTIONS:
            return False
        return not node.is_json

    def dump(self) -> str:
        """BuildKit's ``Node.Dump()``: ``(cmd ["--flag"] "arg" ...)`` lines for a root node."""
        parts = [self.value.lower()]
        if self.flags:
            parts.append(" [" + " ".join(goformat.quote(f) for f in self.flags) + "]")
        for child in self.children:
            parts.append("(" + child.dump() + ")\n")
        n = self.next
        while n is not None:
            if n.children:
                parts.append(" " + n.dump())
            else:
                parts.append(" " + goformat.quote(n.value))
            n = n.next
        return "".join(parts).strip(" \t\n\v\f\r")

    def location(self) -> tuple[int, int]:
        return self.start_line, self.end_line

    def to_json(self) -> dict[str, Any]:
        """The instruction as a JSON object: cmd, sub_cmd, json, original, lines, flags, value, heredocs."""
        sub = self.sub_node()
        target = sub if sub is not None else self
        return {
            "cmd": self.value.lower(),
            "sub_cmd": sub.value.lower() if sub is not None else "",
            "json": target.is_json,
            "original": self.original,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "flags": list(target.flags) if sub is not None else list(self.flags),
            "value": target.values(),
            "heredocs": [h.to_json() for h in self.heredocs],
        }


@record
class ParseWarning:
    """A parser warning (e.g. an empty continuation line), with where it was found."""

    short: str
    detail: list[str]
    url: str
    line: int


@record
class Directive:
    """A parser directive line: ``# name=value``."""

    name: str
    value: str
    line: int


@record
class ParseResult:
    """The syntax tree (``ast.children`` are the instructions), directives, warnings, escape token."""

    ast: Node
    warnings: list[ParseWarning]
    escape_token: str
    directives: list[Directive]
    filename: str = "Dockerfile"

    @property
    def children(self) -> list[Node]:
        return self.ast.children

    def dump(self) -> str:
        """The BuildKit test dump of the whole file (what the ``result`` files hold, minus a newline)."""
        return self.ast.dump()
