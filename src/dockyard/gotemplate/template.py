"""``Template``: parse once with a function set, execute against data (Go's ``New("").Funcs(f).Parse``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.gotemplate.errors import TemplateError
from dockyard.gotemplate.exec import ExecError, Executor, Stop
from dockyard.gotemplate.funcs import BUILTINS, Func
from dockyard.gotemplate.parser import Parser


class Template:
    """A parsed template. Errors (parse and execution) are ``TemplateError`` with Go's message.

    ``funcs`` adds functions to text/template's predefined ones (Go's ``Template.Funcs``);
    ``missing_key`` is Go's ``missingkey`` option: "default" prints ``<no value>``, "error" fails.
    """

    def __init__(self, text: str, *, funcs: Mapping[str, Func] | None = None,
                 missing_key: str = "default") -> None:
        if missing_key not in ("default", "error"):
            raise ValueError(f"missing_key must be 'default' or 'error', not {missing_key!r}")
        self.text = text
        self.missing_key = missing_key
        self.funcs: dict[str, Func] = {**BUILTINS, **(funcs or {})}
        self._nodes = Parser(text, self.funcs).parse()

    def execute(self, data: Any, *, funcs: Mapping[str, Func] | None = None, partial: bool = False) -> str:
        """Render with ``data`` as dot. ``funcs`` replaces some functions for this run (names already
        known at parse time); ``partial`` returns the output written before an error instead of raising."""
        ex = Executor(self.text, data, {**self.funcs, **funcs} if funcs else self.funcs, self.missing_key)
        try:
            ex.walk(data, self._nodes)
        except ExecError as exc:
            if partial:
                return "".join(ex.out)
            raise TemplateError(f"{ex.location(exc.node)}: {exc.message}") from None
        except Stop:
            pass
        return "".join(ex.out)
