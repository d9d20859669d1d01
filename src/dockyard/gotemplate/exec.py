"""The executor: walks a parse tree with a data value as dot, writing the output as Go does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from dockyard import goformat
from dockyard.gotemplate.errors import ArgError, CallError
from dockyard.gotemplate.funcs import Func, has_type
from dockyard.gotemplate.lexer import line_of
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
from dockyard.gotemplate.values import NO_VALUE, Context, go_str, go_type, sorted_keys, truth


class Stop(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


class ExecError(Exception):
    def __init__(self, node: Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


UNSET: Any = object()


class Executor:
    def __init__(self, text: str, root: Any, funcs: Mapping[str, Func],
                 missing_key: str) -> None:
        self.text = text
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.funcs = funcs
        self.missing_error = missing_key == "error"
        self.out: list[str] = []

    def fail(self, node: Node, msg: str) -> NoReturn:
        raise ExecError(node, msg)

    def location(self, node: Node) -> str:
        pos = node.pos
        line_start = self.text.rfind("\n", 0, pos) + 1
        col = len(self.text[line_start:pos].encode())
        context = str(node)
        if len(context) > 20:
            context = context[:20] + "..."
        return f"template: :{line_of(self.text, pos)}:{col}: executing \"\" at <{context}>"

    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                val = self.pipe(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append(go_str(val))
            elif isinstance(node, Branch):
                self.branch(dot, node)
            elif isinstance(node, Break):
                raise Stop("break")
            elif isinstance(node, Continue):
                raise Stop("continue")

    def branch(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            val = self.pipe(dot, node.pipe, declare_ok=node.kind != "range")
            if node.kind == "if":
                if truth(val):
                    self.walk(dot, node.body)
                elif node.else_body is not None:
                    self.walk(dot, node.else_body)
            elif node.kind == "with":
                if truth(val):
                    self.walk(val, node.body)
                elif node.else_body is not None:
                    self.walk(dot, node.else_body)
            else:
                self.range(dot, node, val, mark)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: Branch, val: Any, mark: int) -> None:
        items: list[tuple[Any, Any]]
        if val is None or val is NO_VALUE:
            items = []
        elif isinstance(val, Context):
            self.fail(node.pipe, f"range can't iterate over {go_str(val)}")
        elif isinstance(val, Mapping):
            items = [(k, val[k]) for k in sorted_keys(val)]
        elif isinstance(val, list | tuple):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            items = [(i, i) for i in range(val)]
        else:
            self.fail(node.pipe, f"range can't iterate over {go_str(val)}")
        if not items:
            if node.else_body is not None:
                self.walk(dot, node.else_body)
            return
        decl = node.pipe.decl
        for key, elem in items:
            del self.vars[mark:]
            if len(decl) == 1:
                self.vars.append((decl[0], elem if not isinstance(val, int) else key))
            elif len(decl) == 2:
                self.vars.append((decl[0], key))
                self.vars.append((decl[1], elem))
            try:
                self.walk(elem, node.body)
            except Stop as stop:
                if stop.kind == "break":
                    break

    def pipe(self, dot: Any, pipe: Pipe, *, declare_ok: bool = True) -> Any:
        val: Any = UNSET
        for cmd in pipe.cmds:
            val = self.command(dot, cmd, val)
        if pipe.decl and declare_ok:
            if pipe.is_assign:
                self.assign(pipe.decl[0], val)
            else:
                self.vars.append((pipe.decl[0], val))
        return val

    def assign(self, name: str, val: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, val)
                return

    def lookup(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        return NO_VALUE

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        first = cmd.args[0]
        rest = cmd.args[1:]
        if isinstance(first, Field):
            return self.field_chain(dot, dot, first, first.names, rest, final)
        if isinstance(first, Chain):
            base = self.arg(dot, first.node)
            return self.field_chain(dot, base, first, first.fields, rest, final)
        if isinstance(first, Variable):
            base = self.lookup(first.name)
            if not first.fields:
                self.no_args(first, rest, final)
                return base
            return self.field_chain(dot, base, first, first.fields, rest, final)
        if isinstance(first, Ident):
            return self.call(dot, first, cmd, rest, final)
        self.no_args(first, rest, final)
        if isinstance(first, Pipe):
            return self.sub_pipe(dot, first)
        if isinstance(first, Dot):
            return dot
        if isinstance(first, Literal):
            return first.value
        self.fail(first, "can't evaluate command")

    def no_args(self, node: Node, rest: list[Node], final: Any) -> None:
        if rest or final is not UNSET:
            self.fail(node, f"can't give argument to non-function {node}")

    def sub_pipe(self, dot: Any, pipe: Pipe) -> Any:
        mark = len(self.vars)
        try:
            return self.pipe(dot, pipe)
        finally:
            del self.vars[mark:]

    def arg(self, dot: Any, node: Node) -> Any:
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Field):
            return self.field_chain(dot, dot, node, node.names, [], UNSET)
        if isinstance(node, Variable):
            base = self.lookup(node.name)
            return self.field_chain(dot, base, node, node.fields, [], UNSET) if node.fields else base
        if isinstance(node, Pipe):
            return self.sub_pipe(dot, node)
        if isinstance(node, Chain):
            base = self.arg(dot, node.node)
            return self.field_chain(dot, base, node, node.fields, [], UNSET)
        if isinstance(node, Ident):
            return self.call(dot, node, Command([node], node.pos), [], UNSET)
        self.fail(node, "can't evaluate argument")

    def field_chain(self, dot: Any, receiver: Any, node: Node, names: list[str], rest: list[Node],
                    final: Any) -> Any:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            receiver = self.field(dot, receiver, node, name, rest if last else [], final if last else UNSET)
        return receiver

    def field(self, dot: Any, receiver: Any, node: Node, name: str, rest: list[Node], final: Any) -> Any:
        has_args = bool(rest) or final is not UNSET
        if receiver is NO_VALUE:
            if self.missing_error:
                self.fail(node, f"nil data; no entry for key {goformat.quote(name)}")
            return NO_VALUE
        if receiver is None:
            self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        value: Any
        if isinstance(receiver, Context):
            if name not in receiver:
                self.fail(node, f"can't evaluate field {name} in type {receiver.go_type}")
            value = receiver[name]
        elif isinstance(receiver, Mapping):
            if name not in receiver:
                if has_args:
                    self.fail(node, f"{name} is not a method but has arguments")
                if self.missing_error:
                    self.fail(node, f"map has no entry for key {goformat.quote(name)}")
                return NO_VALUE
            value = receiver[name]
        elif isinstance(receiver, str | int | float | bool | list | tuple | bytes) or name.startswith("_") \
                or not hasattr(receiver, name):
            self.fail(node, f"can't evaluate field {name} in type {go_type(receiver)}")
        else:
            value = getattr(receiver, name)
        if callable(value) and not isinstance(value, type):
            args = [self.arg(dot, a) for a in rest]
            if final is not UNSET:
                args.append(final)
            try:
                return value(*args)
            except TypeError as exc:
                self.fail(node, f"wrong number of args for {name}: {exc}")
            except (ValueError, LookupError) as exc:
                self.fail(node, f"error calling {name}: {exc}")
        if has_args:
            self.fail(node, f"{name} has arguments but cannot be invoked as function")
        return value

    def call(self, dot: Any, ident: Ident, cmd: Command, rest: list[Node], final: Any) -> Any:
        name = ident.name
        func = self.funcs[name]
        fn = func.fn
        if name in ("and", "or"):
            # Short-circuit: evaluate arguments lazily, as Go 1.18+ does.
            nodes: list[Any] = list(rest)
            if final is not UNSET:
                nodes.append(Literal(final, "", ident.pos))
            if not nodes:
                self.fail(cmd, f"wrong number of args for {name}: want at least 1 got 0")
            val: Any = None
            for n in nodes:
                val = self.arg(dot, n)
                if truth(val) == (name == "or"):
                    return val
            return val
        count = len(rest) + (final is not UNSET)
        nargs = func.arity
        if nargs is not None and count != nargs:
            self.fail(ident, f"wrong number of args for {name}: want {nargs} got {count}")
        if nargs is None and count < func.min_args:
            self.fail(ident, f"wrong number of args for {name}: want at least {func.min_args} got {count}")
        sig = func.params
        args: list[Any] = []
        for i, node in enumerate(rest):
            want = sig[i] if i < len(sig) else ""
            if want and isinstance(node, Literal):
                value = node.value
                if not has_type(value, want):
                    # Go checks a constant against the parameter type before calling.
                    kind = {"string": "string", "int": "integer"}.get(want)
                    self.fail(node, f"expected {kind}; found {node}" if kind
                              else f"can't handle {node} for arg of type {want}")
            else:
                value = self.arg(dot, node)
                if want:
                    self.check_type(node, value, want)
            args.append(value)
        if final is not UNSET:
            want = sig[len(rest)] if len(rest) < len(sig) else ""
            if want:
                self.check_type(cmd, final, want)
            args.append(final)
        args = [None if a is NO_VALUE else a for a in args]
        try:
            return fn(*args)
        except ArgError as exc:
            self.fail(cmd, str(exc))
        except CallError as exc:
            self.fail(cmd, f"error calling {name}: {exc}")
        except ValueError as exc:
            self.fail(cmd, f"error calling {name}: {exc}")

    def check_type(self, node: Node, value: Any, want: str) -> None:
        if value is None or value is NO_VALUE:
            self.fail(node, f"invalid value; expected {want}")
        if not has_type(value, want):
            self.fail(node, f"wrong type for value; expected {want}; got {go_type(value)}")
