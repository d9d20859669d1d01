"""``Record``: value classes without dataclasses compare, print and hash as a (non-frozen) dataclass."""

from __future__ import annotations

import pytest

from dockyard.image import ImageRecord
from dockyard.imageops.images import ImageSummary
from dockyard.oci.digest import Digest

ID = Digest("sha256:" + "a" * 64)


def test_equal_by_every_field() -> None:
    a = ImageRecord(ID, created="2024-01-01T00:00:00Z", labels={"x": "1"}, diff_ids=[ID])
    assert a == ImageRecord(ID, created="2024-01-01T00:00:00Z", labels={"x": "1"}, diff_ids=[ID])
    assert a != ImageRecord(ID, created="2024-01-01T00:00:00Z", labels={"x": "2"}, diff_ids=[ID])
    assert a != ImageRecord(ID, created="2024-01-01T00:00:00Z", labels={"x": "1"}, diff_ids=[ID], added=1.0)
    # Another class with fields of the same values is not equal.
    summary = ImageSummary(ID, [], [], 0.0, 0, {})
    assert summary == ImageSummary(ID, [], [], 0.0, 0, {})
    assert summary != ImageRecord(ID)
    assert summary != (ID, [], [], 0.0, 0, {}, "", 0)


def test_defaults_are_not_shared() -> None:
    a, b = ImageRecord(ID), ImageRecord(ID)
    a.labels["x"] = "1"
    a.diff_ids.append(ID)
    assert b.labels == {} and b.diff_ids == []


def test_repr_names_the_fields_in_order() -> None:
    assert repr(ImageSummary(ID, ["busybox:latest"], [], 1.5, 3, {})) == (
        f"ImageSummary(id={ID!r}, repo_tags=['busybox:latest'], repo_digests=[], created=1.5, size=3, "
        "labels={}, parent='', containers=0)")


def test_unhashable_and_slotted() -> None:
    with pytest.raises(TypeError):
        hash(ImageRecord(ID))
    with pytest.raises(AttributeError):
        ImageRecord(ID).nope = 1  # type: ignore[attr-defined]


# -- @record: each case is written twice, as a stdlib dataclass (the reference) and as a record, and
# -- what a caller can observe must be the same.

import copy  # noqa: E402
import dataclasses  # noqa: E402
import pickle  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

from dockyard import record as rec  # noqa: E402


def _pair(**options: Any) -> tuple[Any, Any]:
    """The same class body made by dataclasses and by @record."""
    made = []
    for deco, field in ((dataclasses.dataclass, dataclasses.field), (rec.record, rec.field)):
        class Point:
            kind: ClassVar[str] = "point"
            x: int
            y: int = 2
            tags: list[str] = field(default_factory=list, hash=False)
            note: str = field(default="", compare=False, repr=False)
        made.append(deco(**options)(Point))
    return made[0], made[1]


OPTIONS = [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True}, {"order": True}]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_records_behave_as_dataclasses(options: dict[str, bool]) -> None:
    ref, ours = _pair(**options)
    for cls in (ref, ours):
        a, b = cls(1), cls(1, 2, [], note="other")
        c = cls(1, y=3, tags=["t"])
        assert a == b and a != c and (a == (1, 2)) is False
        assert a.tags is not cls(1).tags  # a fresh list each time
        assert cls.kind == "point" and "kind" not in repr(a)
        assert cls.__match_args__ == ("x", "y", "tags", "note")
    assert repr(ours(1, tags=["a"])) == repr(ref(1, tags=["a"]))
    assert repr(ours(1, tags=["a"])).endswith("Point(x=1, y=2, tags=['a'])")
    with pytest.raises(TypeError):
        ours()  # x has no default
    with pytest.raises(TypeError):
        ours(1, 2, [], "", 5)
    if options.get("frozen"):
        for cls in (ref, ours):
            obj = cls(1)
            assert hash(obj) == hash(cls(1, note="not compared"))
            with pytest.raises(AttributeError):
                obj.x = 5
            with pytest.raises(AttributeError):
                del obj.x
        with pytest.raises(rec.FrozenInstanceError):
            ours(1).y = 1
    else:
        for cls in (ref, ours):
            with pytest.raises(TypeError):
                hash(cls(1))
            obj = cls(1)
            obj.x = 7
            assert obj.x == 7
    if options.get("slots"):
        for cls in (ref, ours):
            assert not hasattr(cls(1), "__dict__")
            with pytest.raises((AttributeError, TypeError)):
                cls(1).other = 1
    if options.get("order"):
        assert sorted([ours(3), ours(1), ours(2)]) == [ours(1), ours(2), ours(3)]
        assert ours(1, 2) < ours(1, 3) and ours(2) >= ours(1, 9)
    else:
        with pytest.raises(TypeError):
            _ = ours(1) < ours(2)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_records_copy_and_pickle(options: dict[str, bool]) -> None:
    _, ours = _pair(**options)
    globals()["Point"] = ours  # pickle finds classes by name
    ours.__qualname__ = "Point"
    try:
        obj = ours(1, 5, ["a"], note="n")
        for again in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
            assert again == obj and again.note == "n" and again is not obj
    finally:
        del globals()["Point"]


def test_replace_asdict_fields() -> None:
    ref, ours = _pair(frozen=True)
    obj = ours(1, tags=["a"])
    assert rec.replace(obj, y=9) == ours(1, 9, ["a"])
    assert rec.asdict(obj) == dataclasses.asdict(ref(1, tags=["a"]))
    assert [f.name for f in rec.fields(ours)] == [f.name for f in dataclasses.fields(ref)]
    assert rec.fields(obj) == rec.fields(ours)
    with pytest.raises(TypeError):
        rec.fields(object())

    @rec.record
    class Outer:
        inner: Any
        items: list[Any]
        table: dict[str, Any]
    nested = Outer(obj, [obj, (obj,)], {"k": obj})
    as_dict = rec.asdict(nested)
    assert as_dict["inner"] == rec.asdict(obj) and as_dict["items"][1] == (rec.asdict(obj),)
    assert as_dict["table"]["k"]["tags"] == ["a"] and as_dict["table"]["k"]["tags"] is not obj.tags
    assert rec.is_record(obj) and not rec.is_record(ours) and not rec.is_record(1)


def test_post_init_inheritance_and_explicit_methods() -> None:
    seen: list[int] = []

    @rec.record(frozen=True, slots=True)
    class Base:
        a: int
        b: int = 0

        def __post_init__(self) -> None:
            seen.append(self.a)

    @rec.record(frozen=True, slots=True)
    class Child(Base):
        c: str = "c"
        b: int = 5  # an inherited field keeps its place, with a new default

    child = Child(1)
    assert (child.a, child.b, child.c) == (1, 5, "c") and seen == [1]
    assert [f.name for f in rec.fields(Child)] == ["a", "b", "c"]
    assert Child(1) != Base(1, 5)  # another class is never equal

    @rec.record
    class Custom:
        x: int

        def __eq__(self, other: object) -> bool:
            return True

        def __repr__(self) -> str:
            return "custom"

    assert Custom(1) == Custom(2) and repr(Custom(1)) == "custom"
    with pytest.raises(ValueError, match="mutable default"):
        @rec.record
        class Bad:
            items: list[int] = []  # noqa: RUF012
    with pytest.raises(TypeError, match="__setattr__"):
        @rec.record(frozen=True)
        class Overrides:
            x: int

            def __setattr__(self, name: str, value: object) -> None:
                pass
