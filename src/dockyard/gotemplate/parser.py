"""The template parser: tokens into a tree of nodes, checking names and nesting as Go does."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NoReturn

from dockyard import goformat
from dockyard.gotemplate.errors import TemplateError
from dockyard.gotemplate.lexer import Lexer, Tok, line_of
from dockyard.gotemplate.nodes import (
    Action,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    Field,
    Ident,
    Literal,
    Node,
    Pipe,
    Text,
    Variable,
)


class Parser:
    def __init__(self, text: str, func_names: Collection[str]) -> None:
        self.text = text
        self.func_names = func_names
        self.toks = Lexer(text).run()
        self.i = 0
        self.vars: list[str] = ["$"]
        self.loop_stack: list[str] = []

    def fail(self, msg: str, pos: int | None = None) -> NoReturn:
        if pos is None:
            pos = self.toks[min(self.i, len(self.toks) - 1)].pos
        raise TemplateError(f"template: :{line_of(self.text, pos)}: {msg}")

    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def next_nonspace(self) -> Tok:
        t = self.next()
        while t.kind == "space":
            t = self.next()
        return t

    def peek_nonspace(self) -> Tok:
        j = self.i
        while self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def parse(self) -> list[Node]:
        body, _stop = self.list_until(top=True)
        return body

    def list_until(self, *, top: bool = False) -> tuple[list[Node], str]:
        """Parse nodes until {{end}} / {{else}} (returned as the stopper) or EOF at top level."""
        nodes: list[Node] = []
        while True:
            t = self.next()
            if t.kind == "eof":
                if top:
                    return nodes, "eof"
                self.fail("unexpected EOF", t.pos)
            if t.kind == "text":
                nodes.append(Text(t.val))
                continue
            # left delimiter
            kw = self.peek_nonspace()
            if kw.kind == "keyword":
                self.next_nonspace()
                if kw.val in ("end", "else"):
                    if top:
                        self.fail(f"unexpected {{{{{kw.val}}}}}", kw.pos)
                    if kw.val == "end":
                        self.expect_right("end")
                    return nodes, kw.val
                nodes.append(self.keyword(kw))
                continue
            pipe = self.pipeline("command", kw.pos)
            nodes.append(Action(pipe, kw.pos))

    def expect_right(self, context: str) -> None:
        t = self.next_nonspace()
        if t.kind != "right":
            self.fail(f"unexpected {self.describe(t)} in {context}", t.pos)

    def describe(self, t: Tok) -> str:
        if t.kind == "eof":
            return "EOF"
        if t.kind == "right":
            return "\"}}\""
        if t.kind == "string":
            return goformat.quote(t.val)
        return f"<{t.val}>" if t.kind in ("ident", "keyword", "field", "variable") else goformat.quote(t.val)

    def keyword(self, kw: Tok) -> Node:
        if kw.val in ("if", "range", "with"):
            return self.branch(kw.val, kw.pos)
        if kw.val in ("break", "continue"):
            if "range" not in self.loop_stack:
                self.fail(f"{{{{{kw.val}}}}} outside {{{{range}}}}", kw.pos)
            self.expect_right(kw.val)
            return Break(kw.pos) if kw.val == "break" else Continue(kw.pos)
        self.fail(f"{{{{{kw.val}}}}} is not supported", kw.pos)

    def branch(self, kind: str, pos: int) -> Branch:
        mark = len(self.vars)
        pipe = self.pipeline(kind, pos)
        if not pipe.cmds:
            self.fail(f"missing value for {kind}", pos)
        self.loop_stack = [*self.loop_stack, kind]
        body, stop = self.list_until()
        self.loop_stack = self.loop_stack[:-1]
        else_body: list[Node] | None = None
        if stop == "else":
            nxt = self.peek_nonspace()
            if nxt.kind == "keyword" and nxt.val in ("if", "with") and kind in ("if", "with") \
                    and (nxt.val == kind or nxt.val == "if" or nxt.val == "with"):
                # {{else if ...}} / {{else with ...}}: a nested branch that shares our {{end}}.
                self.next_nonspace()
                del self.vars[mark:]
                else_body = [self.branch(nxt.val, nxt.pos)]
                return Branch(kind, pipe, body, else_body, pipe.pos)
            self.expect_right("else")
            del self.vars[mark:]
            else_body, stop2 = self.list_until()
            if stop2 != "end":
                self.fail("expected end; found {{else}}", pos)
        del self.vars[mark:]
        return Branch(kind, pipe, body, else_body, pipe.pos)

    def pipeline(self, context: str, pos: int, *, end: str = "right") -> Pipe:
        start = self.peek_nonspace()
        if start.kind not in ("right", "rparen", "eof"):
            pos = start.pos
        decl: list[str] = []
        is_assign = False
        # Variable declarations: $x := ..., $x = ..., $i, $e := ...
        save = self.i
        t = self.next_nonspace()
        if t.kind == "variable":
            names = [t.val]
            t2 = self.next_nonspace()
            if t2.kind == "comma" and context == "range":
                t3 = self.next_nonspace()
                if t3.kind != "variable":
                    self.fail("range can only initialize variables", t3.pos)
                names.append(t3.val)
                t2 = self.next_nonspace()
            if t2.kind in ("declare", "assign") and self.toks[self.i - 1].kind == t2.kind:
                is_assign = t2.kind == "assign"
                if is_assign:
                    for nm in names:
                        if nm not in self.vars:
                            self.fail(f"undefined variable \"{nm}\"", t.pos)
                else:
                    self.vars.extend(names)
                decl = names
            else:
                self.i = save
        else:
            self.i = save
        cmds: list[Command] = []
        while True:
            t = self.peek_nonspace()
            if t.kind == end:
                self.next_nonspace()
                break
            if t.kind in ("right", "rparen", "eof"):
                self.fail(f"unexpected {self.describe(t)} in {'operand' if t.kind != 'eof' else context}",
                          t.pos)
            cmds.append(self.command(end))
            t = self.peek_nonspace()
            if t.kind == "pipe":
                self.next_nonspace()
                if self.peek_nonspace().kind in (end, "pipe"):
                    self.fail("missing command", t.pos)
        if decl and not cmds:
            self.fail(f"missing value for {context}", pos)
        if not cmds and context == "command":
            self.fail("missing value for command", pos)
        for k, c in enumerate(cmds[1:], start=2):
            first = c.args[0]
            if isinstance(first, Literal | Dot):
                self.fail(f"non executable command in pipeline stage {k}", c.pos)
        return Pipe(decl, is_assign, cmds, pos)

    def command(self, end: str) -> Command:
        args: list[Node] = []
        pos = self.peek_nonspace().pos
        while True:
            t = self.peek()
            if t.kind == "space":
                self.next()
                continue
            if t.kind in (end, "pipe", "right", "rparen") or t.kind == "eof":
                break
            args.append(self.operand())
            nt = self.peek()
            if nt.kind not in ("space", end, "pipe", "right", "rparen"):
                self.fail(f"unexpected {self.describe(nt)} in operand", nt.pos)
        if not args:
            self.fail("empty command", pos)
        return Command(args, pos)

    def operand(self) -> Node:
        t = self.next()
        node: Node
        # Like Go, a chain of fields is positioned at its second element (where the chain starts).
        chain_pos = self.peek().pos if self.peek().kind == "field" else t.pos
        if t.kind == "field":
            names = [t.val[1:]]
            while self.peek().kind == "field":
                names.append(self.next().val[1:])
            return Field(names, chain_pos)
        if t.kind == "variable":
            if t.val not in self.vars:
                self.fail(f"undefined variable \"{t.val}\"", t.pos)
            fields: list[str] = []
            while self.peek().kind == "field":
                fields.append(self.next().val[1:])
            return Variable(t.val, fields, chain_pos)
        if t.kind == "dot":
            node = Dot(t.pos)
        elif t.kind == "ident":
            if t.val not in self.func_names:
                self.fail(f"function \"{t.val}\" not defined", t.pos)
            node = Ident(t.val, t.pos)
        elif t.kind == "string":
            node = Literal(t.val, goformat.quote(t.val), t.pos)
        elif t.kind == "number":
            node = Literal(_parse_number(t.val, self), t.val, t.pos)
        elif t.kind == "bool":
            node = Literal(t.val == "true", t.val, t.pos)
        elif t.kind == "nil":
            node = Literal(None, "nil", t.pos)
        elif t.kind == "lparen":
            node = self.pipeline("parenthesized pipeline", t.pos, end="rparen")
        else:
            self.fail(f"unexpected {self.describe(t)} in operand", t.pos)
        if self.peek().kind == "field":
            chain_pos = self.peek().pos
            fields = []
            while self.peek().kind == "field":
                fields.append(self.next().val[1:])
            if isinstance(node, Literal) and node.value is None:
                self.fail("nil is not a command", t.pos)
            return Chain(node, fields, chain_pos)
        return node


def _parse_number(s: str, parser: Parser) -> int | float:
    clean = s.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+)", clean):
            return int(clean, 0)
        if re.fullmatch(r"[+-]?\d+", clean):
            return int(clean, 10)
        return float(clean)
    except ValueError:
        parser.fail(f"bad number syntax: \"{s}\"")
