"""Value classes without ``dataclasses``' start-up cost.

``@record`` makes the value classes of the whole library: a class with annotated fields gets an
``__init__``, ``__repr__``, ``__eq__`` (and ``__hash__`` when frozen, ordering with ``order=True``) that
behave as a dataclass's do. ``dataclasses`` generates and compiles four to six functions per class
and imports ``inspect``: a cached build creates about a hundred such classes, which was a sixth of its
time. Here ``__init__`` is compiled once per field shape and given each class's names; the other
methods are shared functions reading the class's field tables. ``field``, ``replace``, ``asdict``
and ``fields`` stand in for their ``dataclasses`` namesakes; type checkers read ``@record`` as a
dataclass (PEP 681's ``dataclass_transform``).
"""

from __future__ import annotations

from operator import attrgetter
from types import CodeType, FunctionType

# Not ``typing.TYPE_CHECKING``: ``dockyard images`` imports this module and no ``typing``.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kw: object) -> object:
        return lambda f: f

__all__ = ["MISSING", "Field", "FrozenInstanceError", "asdict", "field", "fields", "record",
           "replace"]


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field of a record: its name, default or default factory, and where it counts."""

    __slots__ = ("compare", "default", "default_factory", "hash", "name", "repr")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True,
                 compare: bool = True, hash: bool | None = None) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare
        self.hash = hash

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def field(*, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True,
          compare: bool = True, hash: bool | None = None) -> Any:
    """A field with options, as ``dataclasses.field``."""
    return Field(default, default_factory, repr, compare, hash)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar", "t.ClassVar"))


_MUTABLE = (list, dict, set)


@dataclass_transform(field_specifiers=(field, Field))
def record(cls: Any = None, /, *, frozen: bool = False, slots: bool = False, order: bool = False) -> Any:
    """Make ``cls`` a value class, as ``dataclasses.dataclass`` would (eq on, init on)."""
    def wrap(c: type) -> type:
        return _make(c, frozen, slots, order)
    return wrap if cls is None else wrap(cls)


def _make(cls: type, frozen: bool, slots: bool, order: bool) -> type:
    table: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        inherited = base.__dict__.get("__record_fields__")
        if inherited:
            table.update(inherited)
    own: list[str] = []
    body = cls.__dict__
    for name, annotation in body.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = body.get(name, MISSING)
        if isinstance(value, Field):
            spec = value
        else:
            if isinstance(value, _MUTABLE):
                raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: "
                                 "use default_factory")
            spec = Field(value)
        spec.name = name
        table[name] = spec
        own.append(name)
        if isinstance(value, Field):  # the class keeps the plain default, as with dataclasses
            if spec.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    specs = list(table.values())
    if slots:
        slotted = {name for base in cls.__mro__[1:] for name in getattr(base, "__slots__", ())}
        cls = _with_slots(cls, own, [name for name in own if name not in slotted])
    cls.__record_fields__ = table  # type: ignore[attr-defined]
    cls.__record_compare__ = _getter([f.name for f in specs if f.compare])  # type: ignore[attr-defined]
    cls.__record_repr__ = tuple(f.name for f in specs if f.repr)  # type: ignore[attr-defined]
    cls.__match_args__ = tuple(f.name for f in specs)  # type: ignore[attr-defined,misc]
    body = cls.__dict__
    if "__init__" not in body:
        cls.__init__ = _init(cls, specs, frozen)  # type: ignore[misc]
    if "__repr__" not in body:
        cls.__repr__ = _repr  # type: ignore[assignment]
    if "__eq__" not in body:
        cls.__eq__ = _eq  # type: ignore[assignment]
    if "__hash__" not in body or body["__hash__"] is None:
        if frozen:
            cls.__record_hash__ = _getter(  # type: ignore[attr-defined]
                [f.name for f in specs if (f.compare if f.hash is None else f.hash)])
            cls.__hash__ = _hash  # type: ignore[assignment]
        else:
            cls.__hash__ = None  # type: ignore[assignment]
    if frozen:
        for name, fn in (("__setattr__", _frozen_setattr), ("__delattr__", _frozen_delattr)):
            if name in body:
                raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
            setattr(cls, name, fn)
        if slots:
            cls.__getstate__ = _getstate  # type: ignore[assignment]
            cls.__setstate__ = _setstate  # type: ignore[attr-defined]
    if order:
        cls.__lt__ = _lt  # type: ignore[operator]
        cls.__le__ = _le  # type: ignore[operator]
        cls.__gt__ = _gt  # type: ignore[operator]
        cls.__ge__ = _ge  # type: ignore[operator]
    return cls


def _with_slots(cls: type, own: list[str], names: list[str]) -> type:
    """The class made again with ``__slots__`` (slots cannot be added to a class that exists)."""
    body = dict(cls.__dict__)
    for name in own:  # the defaults: in __init__, not in the way of the slots
        body.pop(name, None)
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    body["__slots__"] = tuple(names)
    body["__qualname__"] = cls.__qualname__
    return type(cls)(cls.__name__, cls.__bases__, body)


# Compiled ``__init__`` bodies by shape (frozen, __post_init__, which fields have a factory), with
# placeholder names: most classes share a shape with one made before, and a compile costs 2-3 times
# the rest of making a record class. Each class gets the code with its own names put in.
_TEMPLATES: dict[tuple[bool, bool, tuple[bool, ...]], CodeType] = {}


def _init(cls: type, specs: list[Field], frozen: bool) -> Any:
    """``__init__`` for the class's fields."""
    factories = tuple(spec.default_factory is not MISSING for spec in specs)
    shape = (frozen, hasattr(cls, "__post_init__"), factories)
    template = _TEMPLATES.get(shape)
    if template is None:
        template = _TEMPLATES[shape] = _template(*shape)
    scope: dict[str, Any] = {"_MISSING": MISSING, "_setattr": object.__setattr__}
    rename: dict[str, str] = {}
    defaults: list[Any] = []
    for i, spec in enumerate(specs):
        rename[f"_a{i}"] = spec.name
        if spec.default_factory is not MISSING:
            scope[f"_f{i}"] = spec.default_factory
            defaults.append(MISSING)
        elif spec.default is not MISSING:
            defaults.append(spec.default)
        elif defaults:
            raise TypeError(f"non-default argument {spec.name!r} follows default argument")
    names = rename.get
    code = template.replace(
        co_varnames=tuple(map(names, template.co_varnames, template.co_varnames)),
        co_names=tuple(map(names, template.co_names, template.co_names)),
        co_consts=tuple([names(c, c) if type(c) is str else c for c in template.co_consts]),
        co_qualname=f"{cls.__qualname__}.__init__")
    init = FunctionType(code, scope, "__init__", tuple(defaults) or None)
    init.__module__ = cls.__module__
    return init


def _template(frozen: bool, post_init: bool, factories: tuple[bool, ...]) -> CodeType:
    lines = []
    for i, factory in enumerate(factories):
        value = f"_f{i}() if _a{i} is _MISSING else _a{i}" if factory else f"_a{i}"
        lines.append(f"_setattr(self, '_a{i}', {value})" if frozen else f"self._a{i} = {value}")
    if post_init:
        lines.append("self.__post_init__()")
    params = "".join(f", _a{i}" for i in range(len(factories)))
    scope: dict[str, Any] = {}
    exec(f"def __init__(self{params}):\n " + ("\n ".join(lines) or "pass"), scope)  # placeholder names only
    code: CodeType = scope["__init__"].__code__
    return code


def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record_repr__)
    return f"{type(self).__qualname__}({inner})"


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The fields ``names`` of an instance, as one tuple (``attrgetter``: in C)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def _key(self: Any) -> tuple[Any, ...]:
    return type(self).__record_compare__(self)  # type: ignore[no-any-return]


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented  # type: ignore[no-any-return]
    return bool(_key(self) == _key(other))


def _hash(self: Any) -> int:
    return hash(type(self).__record_hash__(self))


def _lt(self: Any, other: Any) -> bool:
    return _key(self) < _key(other) if other.__class__ is self.__class__ else NotImplemented


def _le(self: Any, other: Any) -> bool:
    return _key(self) <= _key(other) if other.__class__ is self.__class__ else NotImplemented


def _gt(self: Any, other: Any) -> bool:
    return _key(self) > _key(other) if other.__class__ is self.__class__ else NotImplemented


def _ge(self: Any, other: Any) -> bool:
    return _key(self) >= _key(other) if other.__class__ is self.__class__ else NotImplemented


def _frozen_setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, name) for name in type(self).__record_fields__]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(type(self).__record_fields__, state, strict=True):
        object.__setattr__(self, name, value)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    cls: Any = obj if isinstance(obj, type) else type(obj)
    try:
        return tuple(cls.__record_fields__.values())
    except AttributeError:
        raise TypeError(f"{cls.__name__} is not a record") from None


def is_record(obj: object) -> bool:
    """Whether ``obj`` is an instance of a ``@record`` class."""
    return not isinstance(obj, type) and hasattr(type(obj), "__record_fields__")


def replace(obj: _T, /, **changes: Any) -> _T:
    """A new record with some fields changed (``__init__`` runs again, as with ``dataclasses.replace``)."""
    cls: Any = type(obj)
    for name in cls.__record_fields__:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return cls(**changes)  # type: ignore[no-any-return]


def asdict(obj: Any) -> dict[str, Any]:
    """The record as a dict, records, lists, tuples and dicts inside copied the same way."""
    return {name: _copy(getattr(obj, name)) for name in type(obj).__record_fields__}


def _copy(value: Any) -> Any:
    if is_record(value):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {_copy(k): _copy(v) for k, v in value.items()}
    return value
