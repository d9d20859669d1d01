"""Template values as Go sees them: nil and missing values, structs, ``%v`` text, JSON, truth."""

from __future__ import annotations

import datetime as _dt
import json as _json
import math
from collections.abc import Mapping
from typing import Any

from dockyard import goformat
from dockyard.gotemplate.errors import CallError
from dockyard.record import fields, is_record


class NoValue:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = NoValue()


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




def go_type(v: Any) -> str:
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


def go_float(f: float) -> str:
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
        return go_float(v)
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, _dt.datetime):
        return goformat.format_time(v)
    if isinstance(v, Context):
        return "{" + " ".join(go_str(x, top=False) for x in v.values()) + "}"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{go_str(k, top=False)}:{go_str(v[k], top=False)}"
                                 for k in sorted_keys(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x, top=False) for x in v) + "]"
    if is_record(v):
        return "{" + " ".join(go_str(getattr(v, f.name), top=False) for f in fields(v)) + "}"
    return str(v)


def sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
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
        keys = sorted_keys(v) if sort else list(v)
        return {str(k): _jsonable(v[k], sort=sort) for k in keys}
    if isinstance(v, list | tuple):
        return [_jsonable(x, sort=sort) for x in v]
    if is_record(v):
        return {f.name: _jsonable(getattr(v, f.name), sort=sort) for f in fields(v)}
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


def json_float(f: float) -> str:
    """encoding/json's float64: plain decimal, exponent form below 1e-6 and from 1e21 on (``1e-7``)."""
    if math.isnan(f) or math.isinf(f):
        raise CallError(f"json: unsupported value: {go_float(f)}")
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
        out.append(json_float(v))
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


def go_json(v: Any) -> str:
    """Docker's ``json`` template function: compact, map keys sorted, HTML not escaped."""
    out: list[str] = []
    _json_encode(_jsonable(v, sort=True), out)
    text = "".join(out)
    if isinstance(v, Context):
        # docker's row contexts marshal themselves with json.Marshal, which escapes HTML.
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def truth(v: Any) -> bool:
    """Go's template truth: zero values and empty collections are false, structs always true."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, Context) or is_record(v):
        return True
    if isinstance(v, str | bytes | bool | int | float | Mapping | list | tuple):
        return bool(v)
    return True
