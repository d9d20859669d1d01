"""``Record``: the base of the value classes that ``dockyard images`` builds (``ImageRecord``,
``ImageSummary``), written without ``dataclasses``, whose import (``inspect``, ``ast``, ``dis``) and
per-class code generation are most of a listing's start-up.

A subclass names its fields in ``__slots__`` (in order: not sorted) and writes its ``__init__``; equality and
``repr`` follow the fields as a (non-frozen) dataclass's do, and instances are unhashable.
"""

from __future__ import annotations


class Record:
    __slots__: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"
