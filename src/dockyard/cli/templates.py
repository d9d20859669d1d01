"""Docker's ``--format`` templates: the template engine (``dockyard.gotemplate``) with docker's
functions (``json``, ``split``, ``join``, ``title``, ``lower``, ``upper``, ``pad``, ``truncate``), its
table header pass and error prefix. Imported only by a command given a template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockyard import gotemplate
from dockyard.errors import InvalidArgument
from dockyard.gotemplate import ArgError as _ArgError
from dockyard.gotemplate import Func, TemplateError, go_json
from dockyard.gotemplate import go_type as _go_type
from dockyard.gotemplate import want_int as _want_int
from dockyard.gotemplate import want_str as _want_str
from dockyard.record import replace

# --------------------------------------------------------------------------------------------------
# Templates: docker's functions (github.com/docker/cli/templates)


def _title(s: str) -> str:
    out: list[str] = []
    prev = " "
    for ch in s:
        boundary = not (prev.isalnum() or prev == "_" or prev == "'")
        out.append(ch.upper() if boundary else ch)
        prev = ch
    return "".join(out)


def _split(s: Any, sep: Any) -> list[str]:
    text, sp = _want_str(s), _want_str(sep)
    if sp == "":
        return list(text)
    return text.split(sp)


def _join(items: Any, sep: Any) -> str:
    sp = _want_str(sep)
    if isinstance(items, str) or not isinstance(items, list | tuple):
        raise _ArgError(f"wrong type for value; expected []string; got {_go_type(items)}")
    if not all(isinstance(x, str) for x in items):
        raise _ArgError(f"wrong type for value; expected []string; got {_go_type(items)}")
    return sp.join(items)


def _pad(s: Any, prefix: Any, suffix: Any) -> str:
    text = _want_str(s)
    p, q = _want_int(prefix), _want_int(suffix)
    if text == "":
        return text
    return " " * p + text + " " * q


def _truncate(s: Any, length: Any) -> str:
    text = _want_str(s)
    n = _want_int(length)
    raw = text.encode()
    if len(raw) < n:
        return text
    return raw[:n].decode(errors="ignore")




DOCKER_FUNCS: dict[str, Func] = {
    "json": Func(go_json, arity=1),
    "split": Func(_split, arity=2, params=("string", "string")),
    "join": Func(_join, arity=2, params=("[]string", "string")),
    "title": Func(lambda s: _title(_want_str(s)), arity=1, params=("string",)),
    "lower": Func(lambda s: _want_str(s).lower(), arity=1, params=("string",)),
    "upper": Func(lambda s: _want_str(s).upper(), arity=1, params=("string",)),
    "pad": Func(_pad, arity=3, params=("string", "int", "int")),
    "truncate": Func(_truncate, arity=2, params=("string", "int")),
}
# docker's HeaderFunctions: in a table header these pass the column name through untouched.
_HEADER_FNS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v, "split": lambda v, _s: v, "join": lambda v, _s: v, "title": lambda v: v,
    "lower": lambda v: v, "upper": lambda v: v, "truncate": lambda v, _n: v,
}
HEADER_FUNCS: dict[str, Func] = {name: replace(DOCKER_FUNCS[name], fn=fn) for name, fn in _HEADER_FNS.items()}


class Template:
    """A template with docker's functions; ``execute(data)`` renders it (``InvalidArgument`` on errors)."""

    def __init__(self, text: str, *, missing_key: str = "default") -> None:
        try:
            self._tmpl = gotemplate.Template(text, funcs=DOCKER_FUNCS, missing_key=missing_key)
        except TemplateError as exc:
            raise InvalidArgument(f"template parsing error: {exc}") from None
        self.text = text

    def execute(self, data: Any, *, header: bool = False, partial: bool = False) -> str:
        """Render with ``data`` as dot; ``header`` uses docker's pass-through table header functions;
        ``partial`` returns the output written before an error instead of raising."""
        try:
            return self._tmpl.execute(data, funcs=HEADER_FUNCS if header else None, partial=partial)
        except TemplateError as exc:
            raise InvalidArgument(f"template parsing error: {exc}") from None


def parse_template(text: str, *, missing_key: str = "default") -> Template:
    """Parse a Go text/template (docker's function set); errors are ``InvalidArgument``."""
    return Template(text, missing_key=missing_key)


def render(text: str, data: Any, *, missing_key: str = "default") -> str:
    """Parse and execute one template (``docker inspect --format`` style; no trailing newline added)."""
    return Template(text, missing_key=missing_key).execute(data)
