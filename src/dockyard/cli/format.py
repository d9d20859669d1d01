"""Docker-style output for every command: ``--format`` templates, tables, humanised values, filters.

Stdlib only (``dockyard images`` must start fast). The API, in the order a command needs it::

    # rows: dicts (Go maps) or Context (a docker formatter row: unknown fields are errors)
    out = format_rows(fmt, rows, headers=IMAGE_HEADERS, default=DEFAULT_IMAGE_TABLE, raw=IMAGE_RAW)
    # fmt "" / "table" -> default; "raw" -> raw; "table {{.A}}\\t{{.B}}" -> tabwriter table with headers;
    # "json" -> one JSON object per row; anything else -> one template execution per row.
    render(text, data, *, missing_key="default") -> str     # one template, docker's funcs
    parse_template(text) -> Template; Template.execute(data) -> str
    tabwrite(text) -> str                                     # Go tabwriter, docker settings (10, 1, 3, ' ')

    human_size(n) "1.98MB" (precision 3, images)   human_size(n, 4) "1.984MB" (system df)
    bytes_size(n) "1.5KiB"   human_duration(seconds) "About a minute"   created_since(ts) "2 weeks ago"
    go_time(ts) "2026-11-27 21:12:15 +0000 UTC"   rfc3339(ts)   short_id(id)   ellipsis(s, n)
    history_created_by(s, trunc=True) (45 columns + "…")   reclaimable(r, total) "1.984MB (100%)"

    filters = parse_filters(["dangling=true", "label=a=b"])   # Filters: name -> list of values
    filters.validate({"dangling", "label", ...}); filters.get_bool("dangling")
    filters.match_labels(labels); match_reference(patterns, ref); parse_timestamp("24h")
    flt = image_filter(filters, created_of=lambda ref: ...)   # validates; resolves before/since/until
    flt.match(created=ts, labels=labels, refs=["busybox:latest"]); flt.refs(refs) -> refs to list

Template values follow Go: a dict is a Go map (sorted in range/print/json, a missing key prints
``<no value>``), a ``Context`` or any other object is a struct (a missing field is an error), None is
``<nil>``, lists print as ``[a b]``, dicts as ``map[k:v]``. A callable field value is called (with the
action's arguments), like a Go method. Every template error is an ``InvalidArgument`` whose message is
docker's: ``template parsing error: template: :1:2: executing "" at <.Foo>: ...``.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import math
import re
import sys
import time as _time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

from dockyard import goformat
from dockyard.errors import InvalidArgument

__all__ = [
    "BUILD_CACHE_HEADERS", "DEFAULT_BUILD_CACHE_TABLE", "DEFAULT_DF_TABLE", "DEFAULT_HISTORY_TABLE",
    "DEFAULT_IMAGE_TABLE", "DEFAULT_IMAGE_TABLE_DIGEST", "DF_HEADERS", "HISTORY_HEADERS", "IMAGE_FILTERS",
    "IMAGE_HEADERS", "IMAGE_RAW", "IMAGE_RAW_DIGEST", "Context", "Filters", "ImageFilter", "Template",
    "bytes_size", "created_since", "ellipsis", "format_rows", "go_time", "header_for", "history_created_by",
    "human_duration", "human_size", "image_filter", "match_reference", "parse_filters",
    "parse_template", "parse_timestamp", "reclaimable", "render", "rfc3339", "short_id", "tabwrite",
]

# --------------------------------------------------------------------------------------------------
# Values


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class Context(dict[str, Any]):
    """A row as docker's formatter sees it: a struct, so an unknown ``{{.Field}}`` is an error.

    ``type_name`` names it in that error the way docker does (``imageContext`` ->
    ``can't evaluate field Foo in type *formatter.imageContext``). ``{{json .}}`` of a Context gives
    sorted keys with ``<``, ``>``, ``&`` escaped, as docker's ``marshalJSON`` does.
    """

    def __init__(self, fields: Mapping[str, Any] | None = None, /, *, type_name: str = "context",
                 **kwargs: Any) -> None:
        super().__init__(fields or {}, **kwargs)
        self.type_name = type_name

    @property
    def go_type(self) -> str:
        return f"*formatter.{self.type_name}"


def _is_dataclass(v: Any) -> bool:
    # Not dataclasses.is_dataclass: importing dataclasses costs 30 ms of start-up.
    return hasattr(type(v), "__dataclass_fields__") and not isinstance(v, type)


def _dc_fields(v: Any) -> tuple[Any, ...]:
    # A dataclass instance exists, so its module is already imported.
    fields: Callable[[Any], tuple[Any, ...]] = sys.modules["dataclasses"].fields
    return fields(v)


def _go_type(v: Any) -> str:
    """The Go type name docker would print for a Python value (in error messages and %T)."""
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes):
        return "[]uint8"
    if isinstance(v, Context):
        return v.go_type
    if isinstance(v, Mapping):
        if v and all(isinstance(x, str) for x in v.values()):
            return "map[string]string"
        return "map[string]interface {}"
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    return type(v).__name__


def _go_float(f: float) -> str:
    """Go's %v for a float64: shortest digits, exponent form below 1e-4 and from 1e+06 on."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        return sign + "0"
    digits, point = _float_digits(f)
    exp = point - 1
    if exp < -4 or exp >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_str(v: Any, *, top: bool = True) -> str:
    """Go's fmt %v of a template value (strings bare, lists ``[a b]``, maps ``map[k:v]``, nil ``<nil>``)."""
    if v is NO_VALUE:
        return "<no value>" if top else "<nil>"
    if v is None:
        return "<nil>"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, _dt.datetime):
        return go_time(v)
    if isinstance(v, Context):
        return "{" + " ".join(go_str(x, top=False) for x in v.values()) + "}"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{go_str(k, top=False)}:{go_str(v[k], top=False)}"
                                 for k in _sorted_keys(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x, top=False) for x in v) + "]"
    if _is_dataclass(v):
        return "{" + " ".join(go_str(getattr(v, f.name), top=False) for f in _dc_fields(v)) + "}"
    return str(v)


def _sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(m)
    except TypeError:
        return sorted(m, key=str)


def _jsonable(v: Any, *, sort: bool) -> Any:
    """A structure ``json.dumps`` writes the way Go's encoding/json writes the Go value."""
    if v is NO_VALUE or v is None:
        return None
    if isinstance(v, str | bool | int | float):
        return v
    if isinstance(v, bytes):
        import base64
        return base64.b64encode(v).decode()
    if isinstance(v, _dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, Context):
        return {str(k): _jsonable(v[k], sort=sort) for k in sorted(v)}
    if isinstance(v, Mapping):
        keys = _sorted_keys(v) if sort else list(v)
        return {str(k): _jsonable(v[k], sort=sort) for k in keys}
    if isinstance(v, list | tuple):
        return [_jsonable(x, sort=sort) for x in v]
    if _is_dataclass(v):
        return {f.name: _jsonable(getattr(v, f.name), sort=sort) for f in _dc_fields(v)}
    return str(v)


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(f) and the decimal point position: value = 0.DIGITS x 10**point."""
    mant, _, exp_s = repr(abs(f)).partition("e")
    int_part, _, frac = mant.partition(".")
    raw = int_part + frac
    point = len(int_part) + (int(exp_s) if exp_s else 0)
    digits = raw.lstrip("0")
    point -= len(raw) - len(digits)
    return digits.rstrip("0") or "0", point


def _json_float(f: float) -> str:
    """encoding/json's float64: plain decimal, exponent form below 1e-6 and from 1e21 on (``1e-7``)."""
    if math.isnan(f) or math.isinf(f):
        raise _CallError(f"json: unsupported value: {_go_float(f)}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    digits, point = _float_digits(f)
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        exp = point - 1
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _json_encode(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(_json_float(v))
    elif isinstance(v, str):
        out.append(_json.dumps(v, ensure_ascii=False).replace("\u2028", "\\u2028")
                   .replace("\u2029", "\\u2029"))
    elif isinstance(v, dict):
        out.append("{")
        for i, (k, x) in enumerate(v.items()):
            if i:
                out.append(",")
            _json_encode(k, out)
            out.append(":")
            _json_encode(x, out)
        out.append("}")
    else:
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _json_encode(x, out)
        out.append("]")


def _go_json(v: Any) -> str:
    """Docker's ``json`` template function: compact, map keys sorted, HTML not escaped."""
    out: list[str] = []
    _json_encode(_jsonable(v, sort=True), out)
    text = "".join(out)
    if isinstance(v, Context):
        # docker's row contexts marshal themselves with json.Marshal, which escapes HTML.
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def _truth(v: Any) -> bool:
    """Go's template truth: zero values and empty collections are false, structs always true."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, Context) or (_is_dataclass(v)):
        return True
    if isinstance(v, str | bytes | bool | int | float | Mapping | list | tuple):
        return bool(v)
    return True


# --------------------------------------------------------------------------------------------------
# Lexer


class _TemplateError(Exception):
    """Raised inside the engine; turned into InvalidArgument with docker's prefix at the boundary."""


_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}


class _Tok:
    __slots__ = ("kind", "pos", "val")

    def __init__(self, kind: str, val: str, pos: int) -> None:
        self.kind = kind
        self.val = val
        self.pos = pos

    def __repr__(self) -> str:
        return f"_Tok({self.kind}, {self.val!r}, {self.pos})"


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[_Tok] = []

    def fail(self, msg: str, pos: int) -> NoReturn:
        raise _TemplateError(f"template: :{_line_of(self.text, pos)}: {msg}")

    def run(self) -> list[_Tok]:
        text = self.text
        i = 0
        trim_next = False
        while True:
            j = text.find("{{", i)
            chunk = text[i:] if j < 0 else text[i:j]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            trim_left = j >= 0 and text.startswith("{{-", j) and j + 3 < len(text) and text[j + 3] in _SPACE
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.toks.append(_Tok("text", chunk, i))
            if j < 0:
                break
            k = j + (4 if trim_left else 2)
            i, trim_next = self._action(j, k)
        self.toks.append(_Tok("eof", "", len(text)))
        return self.toks

    def _right_delim(self, k: int) -> tuple[int, bool] | None:
        """If a right delimiter (optionally trimmed) starts at k, return (end, trims)."""
        text = self.text
        if text.startswith("}}", k):
            return k + 2, False
        if text.startswith(" -}}", k) or text.startswith("\t-}}", k) or text.startswith("\n-}}", k) \
                or text.startswith("\r-}}", k):
            return k + 4, True
        return None

    def _action(self, start: int, k: int) -> tuple[int, bool]:
        text = self.text
        # Comments: {{/* ... */}} with only optional trim markers around them.
        m = k
        while m < len(text) and text[m] in _SPACE and k != start + 2:
            m += 1
        if text.startswith("/*", m):
            end = text.find("*/", m + 2)
            if end < 0:
                self.fail("unclosed comment", start)
            rd = self._right_delim(end + 2)
            if rd is None:
                self.fail("comment ends before closing delimiter", start)
            return rd
        self.toks.append(_Tok("left", "{{", start))
        depth = 0
        n = len(text)
        while True:
            if k >= n:
                self.fail("unclosed action", start)
            rd = self._right_delim(k)
            if rd is not None and depth == 0:
                self.toks.append(_Tok("right", "}}", k))
                return rd
            if rd is not None and depth > 0:
                self.fail("unclosed left paren", k)
            c = text[k]
            if c in _SPACE:
                e = k
                while e < n and text[e] in _SPACE and self._right_delim(e) is None:
                    e += 1
                if e == k:  # a space that starts " -}}"
                    e = k + 1
                self.toks.append(_Tok("space", text[k:e], k))
                k = e
            elif c == "=":
                self.toks.append(_Tok("assign", "=", k))
                k += 1
            elif c == ":":
                if not text.startswith(":=", k):
                    self.fail("expected :=", k)
                self.toks.append(_Tok("declare", ":=", k))
                k += 2
            elif c == "|":
                self.toks.append(_Tok("pipe", "|", k))
                k += 1
            elif c == ",":
                self.toks.append(_Tok("comma", ",", k))
                k += 1
            elif c == "(":
                depth += 1
                self.toks.append(_Tok("lparen", "(", k))
                k += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    self.fail(f"unexpected right paren {_quote_rune(c)}", k)
                self.toks.append(_Tok("rparen", ")", k))
                k += 1
            elif c == '"':
                e = k + 1
                while True:
                    if e >= n or text[e] == "\n":
                        self.fail("unterminated quoted string", k)
                    if text[e] == "\\":
                        e += 2
                        continue
                    if text[e] == '"':
                        break
                    e += 1
                self.toks.append(_Tok("string", _unquote(text[k:e + 1], self, k), k))
                k = e + 1
            elif c == "`":
                e = text.find("`", k + 1)
                if e < 0:
                    self.fail("unterminated raw quoted string", k)
                self.toks.append(_Tok("string", text[k + 1:e].replace("\r", ""), k))
                k = e + 1
            elif c == "'":
                e = k + 1
                while e < n and text[e] not in "'\n":
                    e += 2 if text[e] == "\\" else 1
                if e >= n or text[e] == "\n":
                    self.fail("unterminated character constant", k)
                s = _unquote('"' + text[k + 1:e] + '"', self, k)
                if len(s) != 1:
                    self.fail(f"malformed character constant: {text[k:e + 1]}", k)
                self.toks.append(_Tok("number", str(ord(s)), k))
                k = e + 1
            elif c == "$":
                e = k + 1
                while e < n and (text[e].isalnum() or text[e] == "_"):
                    e += 1
                self.toks.append(_Tok("variable", text[k:e], k))
                k = e
            elif c == "." and not (k + 1 < n and text[k + 1].isdigit()):
                e = k + 1
                while e < n and (text[e].isalnum() or text[e] == "_"):
                    e += 1
                self.toks.append(_Tok("field" if e > k + 1 else "dot", text[k:e], k))
                k = e
            elif c.isdigit() or c in "+-." :
                m2 = _NUMBER.match(text, k)
                if not m2 or (m2.end() < n and (text[m2.end()].isalnum())):
                    e = m2.end() if m2 else k + 1
                    while e < n and text[e].isalnum():
                        e += 1
                    self.fail(f"bad number syntax: {text[k:e]!r}".replace("'", '"'), k)
                self.toks.append(_Tok("number", m2.group(), k))
                k = m2.end()
            elif c.isalpha() or c == "_":
                e = k
                while e < n and (text[e].isalnum() or text[e] == "_"):
                    e += 1
                word = text[k:e]
                kind = "keyword" if word in _KEYWORDS else "bool" if word in ("true", "false") \
                    else "nil" if word == "nil" else "ident"
                self.toks.append(_Tok(kind, word, k))
                k = e
            else:
                self.fail(f"unrecognized character in action: {_quote_rune(c)}", k)


_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
    r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")


def _quote_rune(c: str) -> str:
    return f"U+{ord(c):04X} '{c}'"


def _unquote(lit: str, lexer: _Lexer, pos: int) -> str:
    """Decode a Go interpreted string literal."""
    body = lit[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1:i + 2]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            hexs = body[i + 2:i + 2 + width]
            if len(hexs) != width or not all(h in "0123456789abcdefABCDEF" for h in hexs):
                lexer.fail(f"invalid syntax: {lit}", pos)
            out.append(chr(int(hexs, 16)))
            i += 2 + width
        elif nxt.isdigit():
            octs = body[i + 1:i + 4]
            out.append(chr(int(octs, 8)))
            i += 4
        else:
            lexer.fail(f"invalid syntax: {lit}", pos)
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# Parse tree


class _Node:
    pos: int = 0


class _Text(_Node):
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Field(_Node):
    def __init__(self, names: list[str], pos: int) -> None:
        self.names = names
        self.pos = pos

    def __str__(self) -> str:
        return "".join("." + n for n in self.names)


class _Variable(_Node):
    def __init__(self, name: str, fields: list[str], pos: int) -> None:
        self.name = name
        self.fields = fields
        self.pos = pos

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.fields)


class _Dot(_Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class _Ident(_Node):
    def __init__(self, name: str, pos: int) -> None:
        self.name = name
        self.pos = pos

    def __str__(self) -> str:
        return self.name


class _Literal(_Node):
    def __init__(self, value: Any, source: str, pos: int) -> None:
        self.value = value
        self.source = source
        self.pos = pos

    def __str__(self) -> str:
        return self.source


class _Chain(_Node):
    def __init__(self, node: _Node, fields: list[str], pos: int) -> None:
        self.node = node
        self.fields = fields
        self.pos = pos

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return inner + "".join("." + n for n in self.fields)


class _Command(_Node):
    def __init__(self, args: list[_Node], pos: int) -> None:
        self.args = args
        self.pos = pos

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


class _Pipe(_Node):
    def __init__(self, decl: list[str], is_assign: bool, cmds: list[_Command], pos: int) -> None:
        self.decl = decl
        self.is_assign = is_assign
        self.cmds = cmds
        self.pos = pos

    def __str__(self) -> str:
        s = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ") + s
        return s


class _Action(_Node):
    def __init__(self, pipe: _Pipe, pos: int) -> None:
        self.pipe = pipe
        self.pos = pos

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


class _Branch(_Node):
    def __init__(self, kind: str, pipe: _Pipe, body: list[_Node], else_body: list[_Node] | None,
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


class _Break(_Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{break}}"


class _Continue(_Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{continue}}"


# Functions known at parse time (Go checks names when parsing).
_FUNC_NAMES = {"and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
               "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
               "json", "split", "join", "title", "lower", "upper", "pad", "truncate"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _Lexer(text).run()
        self.i = 0
        self.vars: list[str] = ["$"]
        self.loop_stack: list[str] = []

    def fail(self, msg: str, pos: int | None = None) -> NoReturn:
        if pos is None:
            pos = self.toks[min(self.i, len(self.toks) - 1)].pos
        raise _TemplateError(f"template: :{_line_of(self.text, pos)}: {msg}")

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def next_nonspace(self) -> _Tok:
        t = self.next()
        while t.kind == "space":
            t = self.next()
        return t

    def peek_nonspace(self) -> _Tok:
        j = self.i
        while self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def parse(self) -> list[_Node]:
        body, _stop = self.list_until(top=True)
        return body

    def list_until(self, *, top: bool = False) -> tuple[list[_Node], str]:
        """Parse nodes until {{end}} / {{else}} (returned as the stopper) or EOF at top level."""
        nodes: list[_Node] = []
        while True:
            t = self.next()
            if t.kind == "eof":
                if top:
                    return nodes, "eof"
                self.fail("unexpected EOF", t.pos)
            if t.kind == "text":
                nodes.append(_Text(t.val))
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
            nodes.append(_Action(pipe, kw.pos))

    def expect_right(self, context: str) -> None:
        t = self.next_nonspace()
        if t.kind != "right":
            self.fail(f"unexpected {self.describe(t)} in {context}", t.pos)

    def describe(self, t: _Tok) -> str:
        if t.kind == "eof":
            return "EOF"
        if t.kind == "right":
            return "\"}}\""
        if t.kind == "string":
            return goformat.quote(t.val)
        return f"<{t.val}>" if t.kind in ("ident", "keyword", "field", "variable") else goformat.quote(t.val)

    def keyword(self, kw: _Tok) -> _Node:
        if kw.val in ("if", "range", "with"):
            return self.branch(kw.val, kw.pos)
        if kw.val in ("break", "continue"):
            if "range" not in self.loop_stack:
                self.fail(f"{{{{{kw.val}}}}} outside {{{{range}}}}", kw.pos)
            self.expect_right(kw.val)
            return _Break(kw.pos) if kw.val == "break" else _Continue(kw.pos)
        self.fail(f"{{{{{kw.val}}}}} is not supported", kw.pos)

    def branch(self, kind: str, pos: int) -> _Branch:
        mark = len(self.vars)
        pipe = self.pipeline(kind, pos)
        if not pipe.cmds:
            self.fail(f"missing value for {kind}", pos)
        self.loop_stack = [*self.loop_stack, kind]
        body, stop = self.list_until()
        self.loop_stack = self.loop_stack[:-1]
        else_body: list[_Node] | None = None
        if stop == "else":
            nxt = self.peek_nonspace()
            if nxt.kind == "keyword" and nxt.val in ("if", "with") and kind in ("if", "with") \
                    and (nxt.val == kind or nxt.val == "if" or nxt.val == "with"):
                # {{else if ...}} / {{else with ...}}: a nested branch that shares our {{end}}.
                self.next_nonspace()
                del self.vars[mark:]
                else_body = [self.branch(nxt.val, nxt.pos)]
                return _Branch(kind, pipe, body, else_body, pipe.pos)
            self.expect_right("else")
            del self.vars[mark:]
            else_body, stop2 = self.list_until()
            if stop2 != "end":
                self.fail("expected end; found {{else}}", pos)
        del self.vars[mark:]
        return _Branch(kind, pipe, body, else_body, pipe.pos)

    def pipeline(self, context: str, pos: int, *, end: str = "right") -> _Pipe:
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
        cmds: list[_Command] = []
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
            if isinstance(first, _Literal | _Dot):
                self.fail(f"non executable command in pipeline stage {k}", c.pos)
        return _Pipe(decl, is_assign, cmds, pos)

    def command(self, end: str) -> _Command:
        args: list[_Node] = []
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
        return _Command(args, pos)

    def operand(self) -> _Node:
        t = self.next()
        node: _Node
        # Like Go, a chain of fields is positioned at its second element (where the chain starts).
        chain_pos = self.peek().pos if self.peek().kind == "field" else t.pos
        if t.kind == "field":
            names = [t.val[1:]]
            while self.peek().kind == "field":
                names.append(self.next().val[1:])
            return _Field(names, chain_pos)
        if t.kind == "variable":
            if t.val not in self.vars:
                self.fail(f"undefined variable \"{t.val}\"", t.pos)
            fields: list[str] = []
            while self.peek().kind == "field":
                fields.append(self.next().val[1:])
            return _Variable(t.val, fields, chain_pos)
        if t.kind == "dot":
            node = _Dot(t.pos)
        elif t.kind == "ident":
            if t.val not in _FUNC_NAMES:
                self.fail(f"function \"{t.val}\" not defined", t.pos)
            node = _Ident(t.val, t.pos)
        elif t.kind == "string":
            node = _Literal(t.val, goformat.quote(t.val), t.pos)
        elif t.kind == "number":
            node = _Literal(_parse_number(t.val, self), t.val, t.pos)
        elif t.kind == "bool":
            node = _Literal(t.val == "true", t.val, t.pos)
        elif t.kind == "nil":
            node = _Literal(None, "nil", t.pos)
        elif t.kind == "lparen":
            node = self.pipeline("parenthesized pipeline", t.pos, end="rparen")
        else:
            self.fail(f"unexpected {self.describe(t)} in operand", t.pos)
        if self.peek().kind == "field":
            chain_pos = self.peek().pos
            fields = []
            while self.peek().kind == "field":
                fields.append(self.next().val[1:])
            if isinstance(node, _Literal) and node.value is None:
                self.fail("nil is not a command", t.pos)
            return _Chain(node, fields, chain_pos)
        return node


def _parse_number(s: str, parser: _Parser) -> int | float:
    clean = s.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+)", clean):
            return int(clean, 0)
        if re.fullmatch(r"[+-]?\d+", clean):
            return int(clean, 10)
        return float(clean)
    except ValueError:
        parser.fail(f"bad number syntax: \"{s}\"")


# --------------------------------------------------------------------------------------------------
# Execution


class _Stop(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


class _ExecError(Exception):
    def __init__(self, node: _Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def _want_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or v is NO_VALUE:
        raise _ArgError("invalid value; expected string")
    raise _ArgError(f"wrong type for value; expected string; got {_go_type(v)}")


def _want_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if v is None or v is NO_VALUE:
        raise _ArgError("invalid value; expected int")
    raise _ArgError(f"wrong type for value; expected int; got {_go_type(v)}")


class _ArgError(Exception):
    """A function argument had the wrong type (reported without 'error calling')."""


class _CallError(Exception):
    """A function returned an error (reported as 'error calling NAME: ...')."""


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is NO_VALUE:
        return "nil"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _CallError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in bs:
        kb = _basic_kind(b)
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            continue
        if ka == "other" or kb == "other":
            if ka != kb:
                raise _CallError("incompatible types for comparison")
            try:
                if a == b:
                    return True
            except Exception:
                raise _CallError("non-comparable types")
            continue
        if ka != kb:
            raise _CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("bool", "nil", "other") or kb in ("bool", "nil", "other"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return bool(a < b)


def _length(v: Any) -> int:
    if isinstance(v, Context):
        raise _CallError(f"len of type {v.go_type.lstrip('*')}")
    if isinstance(v, str | bytes | list | tuple | Mapping):
        return len(v.encode() if isinstance(v, str) else v)
    raise _CallError(f"len of type {_go_type(v)}")


def _index(item: Any, *indexes: Any) -> Any:
    v = item
    for ix in indexes:
        if v is None or v is NO_VALUE:
            # A nil map indexes to its zero value; the maps commands pass (labels) hold strings.
            v = ""
            continue
        if isinstance(v, Mapping):
            if ix in v:
                v = v[ix]
            elif isinstance(v, Context):
                raise _CallError(f"can't index item of type {v.go_type}")
            else:
                v = "" if all(isinstance(x, str) for x in v.values()) else None
        elif isinstance(v, list | tuple | str | bytes):
            if not isinstance(ix, int) or isinstance(ix, bool):
                raise _CallError(f"cannot index slice/array with type {_go_type(ix)}")
            if ix < 0 or ix >= len(v):
                raise _CallError(f"index out of range: {ix}")
            v = v[ix] if not isinstance(v, str) else v.encode()[ix]
        else:
            raise _CallError(f"can't index item of type {_go_type(v)}")
    return v


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, str | list | tuple):
        raise _CallError(f"can't slice item of type {_go_type(item)}")
    if len(idx) > 3 or (len(idx) == 3 and isinstance(item, str)):
        raise _CallError("too many slice indexes")
    ints = [_want_int(i) for i in idx]
    lo = ints[0] if ints else 0
    hi = ints[1] if len(ints) > 1 else len(item)
    if lo < 0 or hi < lo or hi > len(item):
        raise _CallError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _go_sprint(args: Sequence[Any]) -> str:
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a, top=False) if a is not NO_VALUE else "<nil>")
    return "".join(out)


def _go_sprintln(args: Sequence[Any]) -> str:
    return " ".join(go_str(a, top=False) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?([a-zA-Z%])")


def go_sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use (%s %v %d %q %x %X %t %f %e %g %c %o %b %T %%)."""
    out: list[str] = []
    ai = 0
    pos = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if width == "*":
            width = str(args[ai]) if ai < len(args) else ""
            ai += 1
        if prec == "*":
            prec = str(args[ai]) if ai < len(args) else ""
            ai += 1
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        out.append(_fmt_one(flags, width, prec, verb, a))
    out.append(fmt[pos:])
    if ai < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_str(a, top=False)}" for a in args[ai:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _fmt_one(flags: str, width: str | None, prec: str | None, verb: str, a: Any) -> str:
    def pad(s: str) -> str:
        if not width:
            return s
        w = int(width)
        if "-" in flags:
            return s.ljust(w)
        if "0" in flags and verb in "dxXobeEfFgG":
            sign = s[0] if s[:1] in "+-" else ""
            return sign + s[len(sign):].rjust(w - len(sign), "0")
        return s.rjust(w)

    def bad() -> str:
        return f"%!{verb}({_go_type(a)}={go_str(a, top=False)})"

    if verb == "T":
        return pad(_go_type(a))
    if verb == "v":
        return pad(go_str(a, top=False) if not (isinstance(a, str) and prec) else a[:int(prec)])
    if verb == "s":
        if isinstance(a, int | float | bool) or a is None:
            return bad()
        s = go_str(a, top=False)
        if prec is not None:
            s = s[:int(prec or 0)]
        return pad(s)
    if verb == "q":
        if isinstance(a, str):
            return pad(goformat.quote(a))
        if isinstance(a, int) and not isinstance(a, bool):
            return pad("'" + chr(a) + "'")
        return bad()
    if verb == "t":
        return pad("true" if a else "false") if isinstance(a, bool) else bad()
    if verb in "dboxXc":
        if isinstance(a, bool):
            return bad()
        if isinstance(a, int):
            if verb == "c":
                return pad(chr(a))
            base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
            sign_flag = "+" if "+" in flags else (" " if " " in flags else "")
            alt = "#" if "#" in flags and verb != "d" else ""
            return pad(format(a, f"{sign_flag}{alt}{base}"))
        if isinstance(a, str) and verb in "xX":
            h = a.encode().hex()
            return pad(h.upper() if verb == "X" else h)
        return bad()
    if verb in "eEfFgG":
        if isinstance(a, int) and not isinstance(a, bool):
            return bad()
        if not isinstance(a, float):
            return bad()
        if verb in "gG" and prec is None:
            return pad(_go_float(a) if verb == "g" else _go_float(a).upper())
        p = prec if prec is not None else "6"
        return pad(format(a, f"{'+' if '+' in flags else ''}.{p}{verb}"))
    return f"%!{verb}({_go_type(a)}={go_str(a, top=False)})"


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


def _js_escape(s: str) -> str:
    out: list[str] = []
    for ch in s:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            .replace("'", "&#39;").replace("\0", "\ufffd"))


def _urlquery(s: str) -> str:
    import urllib.parse  # deferred: rarely used, and costs start-up time

    return urllib.parse.quote_plus(s)


def _call_fn(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _CallError(f"non-function of type {_go_type(fn)}")
    return fn(*args)


_FUNCS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
    "not": lambda a: not _truth(a),
    "len": _length,
    "index": _index,
    "slice": _slice,
    "print": lambda *a: _go_sprint(a),
    "printf": lambda f, *a: go_sprintf(_want_str(f), *a),
    "println": lambda *a: _go_sprintln(a),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _lt,
    "le": lambda a, b: _lt(a, b) or _eq(a, b),
    "gt": lambda a, b: not (_lt(a, b) or _eq(a, b)),
    "ge": lambda a, b: not _lt(a, b),
    "html": lambda *a: _html_escape(_go_sprint(a)),
    "js": lambda *a: _js_escape(_go_sprint(a)),
    "urlquery": lambda *a: _urlquery(_go_sprint(a)),
    "call": _call_fn,
    # docker's additions (github.com/docker/cli/templates)
    "json": _go_json,
    "split": _split,
    "join": _join,
    "title": lambda s: _title(_want_str(s)),
    "lower": lambda s: _want_str(s).lower(),
    "upper": lambda s: _want_str(s).upper(),
    "pad": _pad,
    "truncate": _truncate,
}
# Functions with a fixed number of parameters (the others are variadic).
_ARITY = {"not": 1, "len": 1, "ne": 2, "lt": 2, "le": 2, "gt": 2, "ge": 2, "json": 1, "split": 2, "join": 2,
          "title": 1, "lower": 1, "upper": 1, "pad": 3, "truncate": 2}
_MIN_ARGS = {"and": 1, "or": 1, "index": 1, "slice": 1, "printf": 1, "eq": 1, "call": 1}

# docker's HeaderFunctions: in a table header these pass the column name through untouched.
_HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    **_FUNCS,
    "json": lambda v: v,
    "split": lambda v, _s: v,
    "join": lambda v, _s: v,
    "title": lambda v: v,
    "lower": lambda v: v,
    "upper": lambda v: v,
    "truncate": lambda v, _n: v,
}


class _Exec:
    def __init__(self, text: str, root: Any, funcs: Mapping[str, Callable[..., Any]],
                 missing_key: str) -> None:
        self.text = text
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.funcs = funcs
        self.missing_error = missing_key == "error"
        self.out: list[str] = []

    def fail(self, node: _Node, msg: str) -> NoReturn:
        raise _ExecError(node, msg)

    def location(self, node: _Node) -> str:
        pos = node.pos
        line_start = self.text.rfind("\n", 0, pos) + 1
        col = len(self.text[line_start:pos].encode())
        context = str(node)
        if len(context) > 20:
            context = context[:20] + "..."
        return f"template: :{_line_of(self.text, pos)}:{col}: executing \"\" at <{context}>"

    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                val = self.pipe(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append(go_str(val))
            elif isinstance(node, _Branch):
                self.branch(dot, node)
            elif isinstance(node, _Break):
                raise _Stop("break")
            elif isinstance(node, _Continue):
                raise _Stop("continue")

    def branch(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            val = self.pipe(dot, node.pipe, declare_ok=node.kind != "range")
            if node.kind == "if":
                if _truth(val):
                    self.walk(dot, node.body)
                elif node.else_body is not None:
                    self.walk(dot, node.else_body)
            elif node.kind == "with":
                if _truth(val):
                    self.walk(val, node.body)
                elif node.else_body is not None:
                    self.walk(dot, node.else_body)
            else:
                self.range(dot, node, val, mark)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: _Branch, val: Any, mark: int) -> None:
        items: list[tuple[Any, Any]]
        if val is None or val is NO_VALUE:
            items = []
        elif isinstance(val, Context):
            self.fail(node.pipe, f"range can't iterate over {go_str(val)}")
        elif isinstance(val, Mapping):
            items = [(k, val[k]) for k in _sorted_keys(val)]
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
            except _Stop as stop:
                if stop.kind == "break":
                    break

    def pipe(self, dot: Any, pipe: _Pipe, *, declare_ok: bool = True) -> Any:
        val: Any = _UNSET
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

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        rest = cmd.args[1:]
        if isinstance(first, _Field):
            return self.field_chain(dot, dot, first, first.names, rest, final)
        if isinstance(first, _Chain):
            base = self.arg(dot, first.node)
            return self.field_chain(dot, base, first, first.fields, rest, final)
        if isinstance(first, _Variable):
            base = self.lookup(first.name)
            if not first.fields:
                self.no_args(first, rest, final)
                return base
            return self.field_chain(dot, base, first, first.fields, rest, final)
        if isinstance(first, _Ident):
            return self.call(dot, first, cmd, rest, final)
        self.no_args(first, rest, final)
        if isinstance(first, _Pipe):
            return self.sub_pipe(dot, first)
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Literal):
            return first.value
        self.fail(first, "can't evaluate command")

    def no_args(self, node: _Node, rest: list[_Node], final: Any) -> None:
        if rest or final is not _UNSET:
            self.fail(node, f"can't give argument to non-function {node}")

    def sub_pipe(self, dot: Any, pipe: _Pipe) -> Any:
        mark = len(self.vars)
        try:
            return self.pipe(dot, pipe)
        finally:
            del self.vars[mark:]

    def arg(self, dot: Any, node: _Node) -> Any:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Field):
            return self.field_chain(dot, dot, node, node.names, [], _UNSET)
        if isinstance(node, _Variable):
            base = self.lookup(node.name)
            return self.field_chain(dot, base, node, node.fields, [], _UNSET) if node.fields else base
        if isinstance(node, _Pipe):
            return self.sub_pipe(dot, node)
        if isinstance(node, _Chain):
            base = self.arg(dot, node.node)
            return self.field_chain(dot, base, node, node.fields, [], _UNSET)
        if isinstance(node, _Ident):
            return self.call(dot, node, _Command([node], node.pos), [], _UNSET)
        self.fail(node, "can't evaluate argument")

    def field_chain(self, dot: Any, receiver: Any, node: _Node, names: list[str], rest: list[_Node],
                    final: Any) -> Any:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            receiver = self.field(dot, receiver, node, name, rest if last else [], final if last else _UNSET)
        return receiver

    def field(self, dot: Any, receiver: Any, node: _Node, name: str, rest: list[_Node], final: Any) -> Any:
        has_args = bool(rest) or final is not _UNSET
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
            self.fail(node, f"can't evaluate field {name} in type {_go_type(receiver)}")
        else:
            value = getattr(receiver, name)
        if callable(value) and not isinstance(value, type):
            args = [self.arg(dot, a) for a in rest]
            if final is not _UNSET:
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

    def call(self, dot: Any, ident: _Ident, cmd: _Command, rest: list[_Node], final: Any) -> Any:
        name = ident.name
        fn = self.funcs[name]
        if name in ("and", "or"):
            # Short-circuit: evaluate arguments lazily, as Go 1.18+ does.
            nodes: list[Any] = list(rest)
            if final is not _UNSET:
                nodes.append(_Literal(final, "", ident.pos))
            if not nodes:
                self.fail(cmd, f"wrong number of args for {name}: want at least 1 got 0")
            val: Any = None
            for n in nodes:
                val = self.arg(dot, n)
                if _truth(val) == (name == "or"):
                    return val
            return val
        count = len(rest) + (final is not _UNSET)
        nargs = _ARITY.get(name)
        if nargs is not None and count != nargs:
            self.fail(ident, f"wrong number of args for {name}: want {nargs} got {count}")
        if nargs is None and count < _MIN_ARGS.get(name, 0):
            self.fail(ident, f"wrong number of args for {name}: want at least {_MIN_ARGS[name]} got {count}")
        sig = _SIGNATURES.get(name, ())
        args: list[Any] = []
        for i, node in enumerate(rest):
            want = sig[i] if i < len(sig) else ""
            if want and isinstance(node, _Literal):
                value = node.value
                if not _has_type(value, want):
                    # Go checks a constant against the parameter type before calling.
                    kind = {"string": "string", "int": "integer"}.get(want)
                    self.fail(node, f"expected {kind}; found {node}" if kind
                              else f"can't handle {node} for arg of type {want}")
            else:
                value = self.arg(dot, node)
                if want:
                    self.check_type(node, value, want)
            args.append(value)
        if final is not _UNSET:
            want = sig[len(rest)] if len(rest) < len(sig) else ""
            if want:
                self.check_type(cmd, final, want)
            args.append(final)
        args = [None if a is NO_VALUE else a for a in args]
        try:
            return fn(*args)
        except _ArgError as exc:
            self.fail(cmd, str(exc))
        except _CallError as exc:
            self.fail(cmd, f"error calling {name}: {exc}")
        except ValueError as exc:
            self.fail(cmd, f"error calling {name}: {exc}")

    def check_type(self, node: _Node, value: Any, want: str) -> None:
        if value is None or value is NO_VALUE:
            self.fail(node, f"invalid value; expected {want}")
        if not _has_type(value, want):
            self.fail(node, f"wrong type for value; expected {want}; got {_go_type(value)}")


# Parameter types of the functions whose Go signatures are typed (docker's and printf's format).
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "split": ("string", "string"), "join": ("[]string", "string"), "title": ("string",),
    "lower": ("string",), "upper": ("string",), "pad": ("string", "int", "int"),
    "truncate": ("string", "int"), "printf": ("string",),
}


def _has_type(value: Any, want: str) -> bool:
    if want == "string":
        return isinstance(value, str)
    if want == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if want == "[]string":
        return isinstance(value, list | tuple) and all(isinstance(x, str) for x in value)
    return True


_UNSET: Any = object()


class Template:
    """A parsed template; ``execute(data)`` renders it (raises ``InvalidArgument`` on errors)."""

    def __init__(self, text: str, *, missing_key: str = "default") -> None:
        if missing_key not in ("default", "error"):
            raise ValueError(f"missing_key must be 'default' or 'error', not {missing_key!r}")
        self.text = text
        self.missing_key = missing_key
        try:
            self._nodes = _Parser(text).parse()
        except _TemplateError as exc:
            raise InvalidArgument(f"template parsing error: {exc}") from None

    def execute(self, data: Any, *, header: bool = False, partial: bool = False) -> str:
        """Render with ``data`` as dot; ``header`` uses docker's pass-through table header functions;
        ``partial`` returns the output written before an error instead of raising."""
        ex = _Exec(self.text, data, _HEADER_FUNCS if header else _FUNCS, self.missing_key)
        try:
            ex.walk(data, self._nodes)
        except _ExecError as exc:
            if partial:
                return "".join(ex.out)
            raise InvalidArgument(f"template parsing error: {ex.location(exc.node)}: {exc.message}") from None
        except _Stop:
            pass
        return "".join(ex.out)


def parse_template(text: str, *, missing_key: str = "default") -> Template:
    """Parse a Go text/template (docker's function set); errors are ``InvalidArgument``."""
    return Template(text, missing_key=missing_key)


def render(text: str, data: Any, *, missing_key: str = "default") -> str:
    """Parse and execute one template (``docker inspect --format`` style; no trailing newline added)."""
    return Template(text, missing_key=missing_key).execute(data)


# --------------------------------------------------------------------------------------------------
# Tables


def _cell_width(s: str) -> int:
    """Display width as docker's tabwriter measures it (East Asian wide = 2, combining = 0)."""
    if s.isascii():
        return len(s)
    w = 0
    for ch in s:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def tabwrite(text: str, *, minwidth: int = 10, padding: int = 3, padchar: str = " ") -> str:
    """Align tab-terminated cells like Go's text/tabwriter (docker: minwidth 10, tabwidth 1, padding 3).

    Columns are blocks of consecutive lines that have a cell in that column; the text after a line's
    last tab is not part of any column and is never padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts: list[str] = []
            for j, c in enumerate(cells):
                parts.append(c)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(padchar * (widths[j] - _cell_width(c)))
            out.append("".join(parts))
            if i + 1 < len(lines):
                out.append("\n")

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, _cell_width(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "".join(out)


IMAGE_HEADERS: dict[str, str] = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
HISTORY_HEADERS: dict[str, str] = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
    "Size": "SIZE", "Comment": "COMMENT",
}
DF_HEADERS: dict[str, str] = {
    "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
}
BUILD_CACHE_HEADERS: dict[str, str] = {
    "ID": "CACHE ID", "Parent": "PARENT", "CacheType": "CACHE TYPE", "Type": "CACHE TYPE", "Size": "SIZE",
    "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "InUse": "IN USE",
    "Shared": "SHARED", "Description": "DESCRIPTION",
}
DEFAULT_DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DEFAULT_BUILD_CACHE_TABLE = ("table {{.ID}}\t{{.Type}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t"
                             "{{.UsageCount}}\t{{.Shared}}\t{{.Description}}")
DEFAULT_IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DEFAULT_IMAGE_TABLE_DIGEST = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}"
                              "\t{{.Size}}")
IMAGE_RAW = ("repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\n"
             "virtual_size: {{.Size}}\n")
IMAGE_RAW_DIGEST = ("repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\n"
                    "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
DEFAULT_HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def header_for(field: str) -> str:
    """Docker-style column name for a field without a declared header: ``CreatedAt`` -> ``CREATED AT``."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", field)
    return " ".join(words).upper() if words else field.upper()


def _prepare(fmt: str) -> tuple[str, bool]:
    """docker's preFormat: strip ``table``, map ``json``, trim spaces, literal \\t \\n -> tab, newline."""
    table = fmt.startswith("table")
    if table:
        text = fmt[len("table"):]
    elif fmt == "json":
        text = "{{json .}}"
    else:
        text = fmt
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return text, table


class _Headers(dict[str, Any]):
    """The header row's data: declared names first, then a derived name for any other field."""

    def __missing__(self, key: str) -> str:
        return header_for(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)


def format_rows(fmt: str, rows: Iterable[Any], *, headers: Mapping[str, str] | None = None,
                default: str = "", raw: str = "") -> str:
    """Render rows the way docker's formatter does; returns the text with a newline after each row.

    ``fmt`` "" or "table" means ``default``, "raw" means ``raw`` when the command has one; a ``table``
    prefix prints a header row (fields named by ``headers``, else ``header_for``) and aligns columns
    with ``tabwrite``; ``json`` prints one JSON object per row; anything else is a template executed
    once per row.
    """
    if fmt in ("", "table"):
        fmt = default
    elif fmt == "raw" and raw:
        fmt = raw
    text, table = _prepare(fmt)
    tmpl = Template(text)
    body = "".join(tmpl.execute(row) + "\n" for row in rows)
    if not table:
        return body
    # docker ignores errors in the header pass and keeps what was written before them.
    head = tmpl.execute(_Headers(headers or {}), header=True, partial=True)
    return tabwrite(head + "\n" + body)


# --------------------------------------------------------------------------------------------------
# Humanised values

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _go_g(value: float, precision: int) -> str:
    """Go's %.Ng (Python's %g differs only in cases sizes never reach)."""
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: SI units, base 1000 (``docker images``: 3, ``system df``: 4)."""
    i = 0
    value = float(size)
    while value >= 1000.0 and i < len(_DECIMAL) - 1:
        value /= 1000.0
        i += 1
    return _go_g(value, precision) + _DECIMAL[i]


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, base 1024, 4 significant digits."""
    i = 0
    value = float(size)
    while value >= 1024.0 and i < len(_BINARY) - 1:
        value /= 1024.0
        i += 1
    return _go_g(value, 4) + _BINARY[i]


def reclaimable(amount: int, total: int) -> str:
    """``system df``'s RECLAIMABLE cell: ``1.984MB (100%)``, no percentage when the total is 0."""
    if total > 0:
        return f"{human_size(amount, 4)} ({amount * 100 // total}%)"
    return human_size(amount, 4)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / 3600 + 0.5)  # Go's math.Round (half away from zero; d > 0)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _timestamp(t: float | _dt.datetime | str) -> float:
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
        return t.timestamp()
    if isinstance(t, str):
        return _parse_rfc3339(t)
    return float(t)


def _parse_rfc3339(s: str) -> float:
    """An OCI config ``created`` time (RFC 3339, nanoseconds allowed) as unix seconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s.strip(),
                     flags=re.IGNORECASE)
    if not m:
        raise InvalidArgument(f"parsing time {goformat.quote(s)}: not an RFC 3339 timestamp")
    base = _dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3).upper() == "Z" else m.group(3)))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def created_since(created: float | _dt.datetime | str, now: float | None = None) -> str:
    """``CREATED`` column: HumanDuration(now - created) + " ago"; "N/A" for a missing (zero) time."""
    ts = _timestamp(created) if created not in ("", None) else 0.0
    if ts <= 0:
        return "N/A"
    current = _time.time() if now is None else now
    return human_duration(current - ts) + " ago"


def go_time(t: float | _dt.datetime | str, tz: _dt.tzinfo | None = None) -> str:
    """Go's time.Time.String(): ``2026-11-27 21:12:15.553393688 +0000 UTC`` (local zone by default)."""
    nanos = 0
    if isinstance(t, str):
        m = re.search(r"\.(\d+)", t)
        nanos = int((m.group(1) + "000000000")[:9]) if m else 0
        ts = _timestamp(t)
        dt = _dt.datetime.fromtimestamp(math.floor(ts), tz or _local_tz())
    elif isinstance(t, _dt.datetime):
        dt = t if t.tzinfo else t.replace(tzinfo=_dt.UTC)
        nanos = dt.microsecond * 1000
        dt = dt.astimezone(tz) if tz else dt
    else:
        whole = math.floor(float(t))
        nanos = round((float(t) - whole) * 1e9)
        dt = _dt.datetime.fromtimestamp(whole, tz or _local_tz())
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    offset = dt.utcoffset() or _dt.timedelta(0)
    sign = "-" if offset < _dt.timedelta(0) else "+"
    mins = int(abs(offset).total_seconds()) // 60
    zone = dt.tzname() or ""
    if zone in ("", "UTC+00:00") or (zone.startswith("UTC") and zone != "UTC"):
        zone = f"{sign}{mins // 60:02d}{mins % 60:02d}" if mins else "UTC"
    return f"{dt:%Y-%m-%d %H:%M:%S}{frac} {sign}{mins // 60:02d}{mins % 60:02d} {zone}"


def _local_tz() -> _dt.tzinfo:
    tz = _dt.datetime.now().astimezone().tzinfo
    return tz if tz is not None else _dt.UTC


def short_id(image_id: str) -> str:
    """stringid.TruncateID: drop an ``algo:`` prefix, keep 12 characters."""
    _, sep, rest = image_id.partition(":")
    return (rest if sep else image_id)[:12]


def ellipsis(s: str, max_width: int) -> str:
    """docker's formatter.Ellipsis: cut to ``max_width`` display columns, the last one being ``…``.

    As docker: a width of 1 keeps just the first character, East Asian wide characters count 2.
    """
    if max_width <= 0:
        return ""
    if max_width == 1:
        return s[:1]
    if s.isascii():
        return s if len(s) <= max_width else s[:max_width - 1] + "…"
    widths = [2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s]
    if sum(widths) <= max_width:
        return s
    total = 0
    for i, w in enumerate(widths):
        if total + w > max_width - 1:
            # docker returns the string whole when even the first character does not fit.
            return s[:i] + "…" if i > 0 else s
        total += w
    return s


def history_created_by(created_by: str, *, trunc: bool = True) -> str:
    """``docker history``'s CREATED BY cell: tabs become spaces; cut to 45 columns unless ``--no-trunc``."""
    text = created_by.replace("\t", " ")
    return ellipsis(text, 45) if trunc else text


def rfc3339(t: float | _dt.datetime | str) -> str:
    """Go's ``time.Unix(t, 0).UTC().Format(time.RFC3339)``: ``2026-11-27T21:12:15Z`` (history CreatedAt)."""
    ts = math.floor(_timestamp(t))
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# Filters


class Filters(dict[str, list[str]]):
    """``--filter`` values by (lower-cased) name, in the order given; docker's ``filters.Args``."""

    def add(self, name: str, value: str) -> None:
        values = self.setdefault(name, [])
        if value not in values:
            values.append(value)

    def validate(self, accepted: Iterable[str]) -> None:
        """Raise docker's ``invalid filter 'NAME'`` for any name not in ``accepted``."""
        allowed = set(accepted)
        for name in self:
            if name not in allowed:
                raise InvalidArgument(f"invalid filter '{name}'")

    def get_bool(self, name: str, default: bool = False) -> bool:
        """A true/false (or 1/0) filter; conflicting or other values are ``invalid filter 'name=v'``."""
        values = self.get(name)
        if not values:
            return default
        lowered = {v.lower() for v in values}
        is_true = bool(lowered & {"1", "true"})
        is_false = bool(lowered & {"0", "false"})
        if len(values) > 1 or is_true == is_false:
            raise InvalidArgument(f"invalid filter '{name}={','.join(values)}'")
        return is_true

    def match_labels(self, labels: Mapping[str, str] | None, name: str = "label") -> bool:
        """Every ``label=key`` / ``label=key=value`` filter holds for ``labels`` (docker's MatchKVList)."""
        wanted = self.get(name)
        if not wanted:
            return True
        if not labels:
            return False
        for spec in wanted:
            key, sep, value = spec.partition("=")
            if key not in labels:
                return False
            if sep and labels[key] != value:
                return False
        return True

    def timestamp(self, name: str, now: float | None = None) -> float | None:
        """The earliest time given for ``name`` (``until=``), parsed by ``parse_timestamp``; None if unset."""
        values = self.get(name)
        if not values:
            return None
        return min(parse_timestamp(v, now) for v in values)


def parse_filters(values: Iterable[str]) -> Filters:
    """Parse repeated ``--filter key=value`` flags (name lower-cased, both sides trimmed, as docker)."""
    filters = Filters()
    for raw in values:
        if raw == "":
            continue
        if "=" not in raw:
            raise InvalidArgument(f"invalid argument {goformat.quote(raw)} for \"-f, --filter\" flag: "
                                  "bad format of filter (expected name=value)")
        name, _, value = raw.partition("=")
        filters.add(name.strip().lower(), value.strip())
    return filters


def match_reference(patterns: Iterable[str], ref: Any) -> bool:
    """docker's ``reference=`` filter: any pattern path-matches the familiar ``name:tag`` or name.

    ``ref`` is a ``dockyard.oci.reference`` Reference or a reference string; a malformed pattern
    raises ``InvalidArgument("syntax error in pattern")``. No patterns match everything.
    """
    from dockyard.oci import reference  # deferred: keeps ``import format`` stdlib-only

    pats = list(patterns)
    if not pats:
        return True
    parsed = reference.parse_normalized(ref) if isinstance(ref, str) else ref
    return any(reference.familiar_match(p, parsed) for p in pats)


def parse_timestamp(value: str, now: float | None = None) -> float:
    """docker's ``until=``/``since=`` time: a Go duration before ``now``, an RFC 3339 time or date
    (local zone when none is given), or unix seconds (``1700000000.5``)."""
    current = _time.time() if now is None else now
    if value != "0":
        try:
            return current - goformat.parse_duration(value) / goformat.SECOND
        except ValueError:
            pass
    in_location = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?"
                     r"(Z|z|[+-]\d\d:\d\d)?", value)
    if m:
        year, month, day, hour, minute, sec, frac, zone = m.groups()
        try:
            tz: _dt.tzinfo
            if zone in ("Z", "z"):
                tz = _dt.UTC
            elif zone:
                sign = -1 if zone[0] == "-" else 1
                tz = _dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
            else:
                tz = _local_tz()
            if not zone and not in_location:
                raise ValueError("missing zone")
            dt = _dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                              int(sec or 0), tzinfo=tz)
        except ValueError:
            raise InvalidArgument(f"parsing time {goformat.quote(value)}: value out of range") from None
        return dt.timestamp() + (float("0." + frac) if frac else 0.0)
    if "-" in value:
        raise InvalidArgument(f"parsing time {goformat.quote(value)}: cannot parse as RFC 3339")
    if re.fullmatch(r"\d+(\.\d{1,9})?", value):
        return float(value)
    raise InvalidArgument(f"failed to parse value as time or duration: {goformat.quote(value)}")


IMAGE_FILTERS = ("before", "dangling", "label", "reference", "since", "until")


class ImageFilter:
    """docker's ``images --filter`` semantics, built once by ``image_filter`` and asked per image."""

    def __init__(self, filters: Filters, *, before: float | None, since: float | None,
                 until: float | None) -> None:
        self.filters = filters
        self.dangling = filters.get_bool("dangling") if "dangling" in filters else None
        self.references = filters.get("reference", [])
        self.before = before
        self.since = since
        self.until = until

    def refs(self, refs: Iterable[str]) -> list[str]:
        """The image's references (familiar ``name:tag``) that pass ``reference=``; all if none is set."""
        return [r for r in refs if match_reference(self.references, r)]

    def match(self, *, created: float, labels: Mapping[str, str] | None, refs: Sequence[str]) -> bool:
        """Whether an image created at ``created`` (unix seconds) with these labels and refs is listed."""
        dangling = not refs
        if self.dangling is not None and self.dangling != dangling:
            return False
        if self.before is not None and not created < self.before:
            return False
        if self.since is not None and not created > self.since:
            return False
        if self.until is not None and not created < self.until:
            return False
        if not self.filters.match_labels(labels):
            return False
        return not self.references or bool(self.refs(refs))


def image_filter(filters: Filters, *, created_of: Callable[[str], float], now: float | None = None,
                 accepted: Iterable[str] = IMAGE_FILTERS) -> ImageFilter:
    """Validate ``filters`` for ``images`` and resolve them: ``created_of(ref)`` gives the creation time
    of the image a ``before=``/``since=`` value names (raising NotFound if there is none).

    Several ``before`` values keep the earliest, several ``since`` the latest, as docker does.
    """
    filters.validate(accepted)
    before = min((created_of(v) for v in filters.get("before", [])), default=None)
    since = max((created_of(v) for v in filters.get("since", [])), default=None)
    for pattern in filters.get("reference", []):
        match_reference([pattern], "x")  # a malformed pattern fails now, even with no images
    return ImageFilter(filters, before=before, since=since, until=filters.timestamp("until", now))
