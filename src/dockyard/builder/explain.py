"""Why a step missed the cache: the first difference from the nearest cache record.

Every cache record keeps the inputs of its step (``Inputs``): its parent key, its definition, the
short digests of the context files it copied and, for a stage's first step, the base image. When a
step runs although caches exist, it is compared with the records that have the same parent: the
first differing input names the reason (which files, which build argument or environment value,
which base image digest). A step after one that ran carries that step's reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dockyard.record import field, record

MAX_NAMED = 3  # paths or variables named in a reason; the rest are counted


@record(frozen=True, slots=True)
class Inputs:
    parent: str
    definition: Any
    files: dict[str, str] = field(default_factory=dict)
    base: str = ""      # "name@image ID" for the first step of a stage built on an image

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parent": self.parent, "definition": self.definition}
        if self.files:
            out["files"] = self.files
        if self.base:
            out["base"] = self.base
        return out

    @classmethod
    def from_data(cls, data: object) -> Inputs | None:
        if not isinstance(data, dict) or not isinstance(data.get("parent"), str) or "definition" not in data:
            return None
        files = data.get("files")
        return cls(data["parent"], data["definition"],
                   {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {},
                   str(data.get("base", "")))

    @classmethod
    def make(cls, parent: str, definition: Any, files: dict[str, str], base: str) -> Inputs:
        # As stored: through JSON, so a fresh definition compares equal to a recorded one.
        plain = json.loads(json.dumps(definition, sort_keys=True, default=str))
        return cls(parent, plain, files, base)


class Candidates:
    """Cache records (local and imported) by their parent key and by their stage's base name."""

    def __init__(self) -> None:
        self.by_parent: dict[str, list[Inputs]] = {}
        self.by_base: dict[str, list[Inputs]] = {}
        self.count = 0

    def add(self, inputs: Inputs) -> None:
        self.count += 1
        self.by_parent.setdefault(inputs.parent, []).append(inputs)
        if inputs.base:
            self.by_base.setdefault(inputs.base.rpartition("@")[0], []).append(inputs)

    def add_data(self, items: Iterable[object]) -> None:
        for data in items:
            inputs = Inputs.from_data(data)
            if inputs is not None:
                self.add(inputs)


def explain(new: Inputs, candidates: Candidates) -> str:
    """The first reason ``new`` found no cache record."""
    same_parent = candidates.by_parent.get(new.parent, [])
    if same_parent:
        nearest = min(same_parent, key=lambda old: _distance(new.definition, old.definition))
        return _difference(new, nearest)
    if new.base:
        name, _, image = new.base.rpartition("@")
        for old in candidates.by_base.get(name, []):
            old_image = old.base.rpartition("@")[2]
            if old_image != image:
                return f"base image {name} moved: {_short(old_image)} -> {_short(image)}"
    for olds in candidates.by_parent.values():
        for old in olds:
            if old.definition == new.definition:
                # The same instruction is cached, after other steps: an earlier input differs.
                return f"no cache for this step (nearest: the same step after parent {_short(old.parent)})"
    return "no cache for this step"


def _distance(a: Any, b: Any) -> int:
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return sum(_distance(x, y) for x, y in zip(a, b, strict=True))
    return 0 if a == b else 1


def _difference(new: Inputs, old: Inputs) -> str:
    if new.files or old.files:
        files = _files_changed(old.files, new.files)
        if files:
            return files
    a, b = new.definition, old.definition
    if not (isinstance(a, list) and isinstance(b, list) and a and b and a[0] == b[0]):
        return "the instruction changed"
    kind = a[0]
    if kind in ("env", "arg") and len(a) > 1 and len(b) > 1:
        word = "build argument" if kind == "arg" else "environment value"
        return _values_changed(word, _pairs(b[1]), _pairs(a[1])) or "the instruction changed"
    if kind == "run" and len(a) > 2 and len(b) > 2:
        if a[2] != b[2]:
            return _values_changed("build argument or environment value", _pairs(b[2]), _pairs(a[2])) \
                or "the environment changed"
        if a[1] != b[1]:
            return "the command changed"
        fields = ["kind", "command", "environment", "user", "working directory", "network", "mounts",
                  "security"]
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"the {fields[i] if i < len(fields) else 'definition'} changed"
    if kind in ("copy", "add") and len(a) > 5 and len(b) > 5 and a[5] != b[5]:
        for x, y in zip(a[5], b[5], strict=False):
            if x != y and isinstance(x, list) and x and x[0] == "from":
                return f"the content of the source stage or image changed ({_short(str(x[1]))})"
        return "the copied content changed"
    return "the instruction changed"


def _files_changed(old: dict[str, str], new: dict[str, str]) -> str:
    changed = sorted(p for p in new if p in old and new[p] != old[p])
    added = sorted(p for p in new if p not in old)
    removed = sorted(p for p in old if p not in new)
    paths = [*changed, *added, *removed]
    if not paths:
        return ""
    counts = ", ".join(f"{n} {w}" for n, w in ((len(changed), "changed"), (len(added), "added"),
                                                  (len(removed), "removed")) if n)
    more = f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else ""
    return f"source files changed: {', '.join(paths[:MAX_NAMED])}{more} ({counts})"


def _pairs(values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values if isinstance(values, list) else []:
        if isinstance(item, list) and len(item) == 2:
            out[str(item[0])] = str(item[1])
        else:
            key, _, value = str(item).partition("=")
            out[key] = value
    return out


def _values_changed(word: str, old: dict[str, str], new: dict[str, str]) -> str:
    keys = [k for k in [*new, *(k for k in old if k not in new)] if old.get(k) != new.get(k)]
    if not keys:
        return ""
    shown = [f"{k}={old.get(k, '(unset)')} -> {new.get(k, '(unset)')}" for k in keys[:MAX_NAMED]]
    more = f" and {len(keys) - MAX_NAMED} more" if len(keys) > MAX_NAMED else ""
    return f"{word} changed: {', '.join(shown)}{more}"


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


__all__ = ["Candidates", "Inputs", "explain"]
