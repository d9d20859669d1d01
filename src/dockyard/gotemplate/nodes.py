"""The parse tree: one class per node kind; ``str(node)`` is the source text Go prints in errors."""

from __future__ import annotations

from typing import Any


class Node:
    pos: int = 0


class Text(Node):
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Field(Node):
    def __init__(self, names: list[str], pos: int) -> None:
        self.names = names
        self.pos = pos

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


class Variable(Node):
    def __init__(self, name: str, fields: list[str], pos: int) -> None:
        self.name = name
        self.fields = fields
        self.pos = pos

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.fields)


class Dot(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class Ident(Node):
    def __init__(self, name: str, pos: int) -> None:
        self.name = name
        self.pos = pos

    def __str__(self) -> str:
        return self.name


class Literal(Node):
    def __init__(self, value: Any, source: str, pos: int) -> None:
        self.value = value
        self.source = source
        self.pos = pos

    def __str__(self) -> str:
        return self.source


class Chain(Node):
    def __init__(self, node: Node, fields: list[str], pos: int) -> None:
        self.node = node
        self.fields = fields
        self.pos = pos

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join("." + n for n in self.fields)


class Command(Node):
    def __init__(self, args: list[Node], pos: int) -> None:
        self.args = args
        self.pos = pos

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


class Pipe(Node):
    def __init__(self, decl: list[str], is_assign: bool, cmds: list[Command], pos: int) -> None:
        self.decl = decl
        self.is_assign = is_assign
        self.cmds = cmds
        self.pos = pos

    def __str__(self) -> str:
        s = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ") + s
        return s


class Action(Node):
    def __init__(self, pipe: Pipe, pos: int) -> None:
        self.pipe = pipe
        self.pos = pos

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


class Branch(Node):
    def __init__(self, kind: str, pipe: Pipe, body: list[Node], else_body: list[Node] | None,
                 pos: int) -> None:
        self.kind = kind
        self.pipe = pipe
        self.body = body
        self.else_body = else_body
        self.pos = pos

    def __str__(self) -> str:
        body = "".join(str(n) for n in self.body)
        tail = "" if self.else_body is None else "{{else}}" + "".join(str(n) for n in self.else_body)
        return f"{{{{{self.kind} {self.pipe}}}}}{body}{tail}{{{{end}}}}"


class Break(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{break}}"


class Continue(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{continue}}"
