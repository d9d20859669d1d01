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
