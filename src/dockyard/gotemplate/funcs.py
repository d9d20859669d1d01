"""text/template's predefined functions (``eq``, ``index``, ``printf``...) and the ``Func`` signature."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any

from dockyard.gotemplate.errors import ArgError, CallError
from dockyard.gotemplate.printf import go_sprint, go_sprintf, go_sprintln
from dockyard.gotemplate.values import NO_VALUE, Context, go_type, truth
from dockyard.record import record


def want_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or v is NO_VALUE:
        raise ArgError("invalid value; expected string")
    raise ArgError(f"wrong type for value; expected string; got {go_type(v)}")


def want_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if v is None or v is NO_VALUE:
        raise ArgError("invalid value; expected int")
    raise ArgError(f"wrong type for value; expected int; got {go_type(v)}")


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


def eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise CallError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in bs:
        kb = _basic_kind(b)
        if ka == "nil" or kb == "nil":
            if ka == kb:
                return True
            continue
        if ka == "other" or kb == "other":
            if ka != kb:
                raise CallError("incompatible types for comparison")
            try:
                if a == b:
                    return True
            except Exception:
                raise CallError("non-comparable types")
            continue
        if ka != kb:
            raise CallError("incompatible types for comparison")
        if a == b:
            return True
    return False


def lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("bool", "nil", "other") or kb in ("bool", "nil", "other"):
        raise CallError("invalid type for comparison")
    if ka != kb:
        raise CallError("incompatible types for comparison")
    return bool(a < b)


def length(v: Any) -> int:
    if isinstance(v, Context):
        raise CallError(f"len of type {v.go_type.lstrip('*')}")
    if isinstance(v, str | bytes | list | tuple | Mapping):
        return len(v.encode() if isinstance(v, str) else v)
    raise CallError(f"len of type {go_type(v)}")


def index_item(item: Any, *indexes: Any) -> Any:
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
                raise CallError(f"can't index item of type {v.go_type}")
            else:
                v = "" if all(isinstance(x, str) for x in v.values()) else None
        elif isinstance(v, list | tuple | str | bytes):
            if not isinstance(ix, int) or isinstance(ix, bool):
                raise CallError(f"cannot index slice/array with type {go_type(ix)}")
            if ix < 0 or ix >= len(v):
                raise CallError(f"index out of range: {ix}")
            v = v[ix] if not isinstance(v, str) else v.encode()[ix]
        else:
            raise CallError(f"can't index item of type {go_type(v)}")
    return v


def slice_item(item: Any, *idx: Any) -> Any:
    if not isinstance(item, str | list | tuple):
        raise CallError(f"can't slice item of type {go_type(item)}")
    if len(idx) > 3:
        raise CallError(f"too many slice indexes: {len(idx)}")
    if len(idx) == 3 and isinstance(item, str):
        raise CallError("cannot 3-index slice a string")
    ints = [want_int(i) for i in idx]
    for i in ints:
        if i < 0 or i > len(item):
            raise CallError(f"index out of range: {i}")
    bounds = [*ints, len(item)][:max(2, len(ints))] if ints else [0, len(item)]
    for a, b in pairwise(bounds):
        if a > b:
            raise CallError(f"invalid slice index: {a} > {b}")
    return item[bounds[0]:bounds[1]]



def js_escape(s: str) -> str:
    out: list[str] = []
    for ch in s:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            .replace("'", "&#39;").replace("\0", "\ufffd"))


def urlquery(s: str) -> str:
    import urllib.parse  # deferred: rarely used, and costs start-up time

    return urllib.parse.quote_plus(s)


def call_fn(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise CallError(f"non-function of type {go_type(fn)}")
    return fn(*args)



def has_type(value: Any, want: str) -> bool:
    if want == "string":
        return isinstance(value, str)
    if want == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if want == "[]string":
        return isinstance(value, list | tuple) and all(isinstance(x, str) for x in value)
    return True


@record(frozen=True)
class Func:
    """A template function and the Go signature the executor checks before calling it.

    ``arity`` is the fixed number of parameters (None: variadic, at least ``min_args``); ``params``
    names the Go types of the leading parameters ("string", "int", "[]string") that are checked.
    """

    fn: Callable[..., Any]
    arity: int | None = None
    min_args: int = 0
    params: tuple[str, ...] = ()


# text/template's predefined functions.
BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: next((x for x in a if not truth(x)), a[-1]), min_args=1),
    "or": Func(lambda *a: next((x for x in a if truth(x)), a[-1]), min_args=1),
    "not": Func(lambda a: not truth(a), arity=1),
    "len": Func(length, arity=1),
    "index": Func(index_item, min_args=1),
    "slice": Func(slice_item, min_args=1),
    "print": Func(lambda *a: go_sprint(a)),
    "printf": Func(lambda f, *a: go_sprintf(want_str(f), *a), min_args=1, params=("string",)),
    "println": Func(lambda *a: go_sprintln(a)),
    "eq": Func(eq, min_args=1),
    "ne": Func(lambda a, b: not eq(a, b), arity=2),
    "lt": Func(lt, arity=2),
    "le": Func(lambda a, b: lt(a, b) or eq(a, b), arity=2),
    "gt": Func(lambda a, b: not (lt(a, b) or eq(a, b)), arity=2),
    "ge": Func(lambda a, b: not lt(a, b), arity=2),
    "html": Func(lambda *a: html_escape(go_sprint(a))),
    "js": Func(lambda *a: js_escape(go_sprint(a))),
    "urlquery": Func(lambda *a: urlquery(go_sprint(a))),
    "call": Func(call_fn, min_args=1),
}
