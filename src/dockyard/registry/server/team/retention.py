"""Tag retention per project: which tags and manifests a run deletes, and doing it.

A project's rules (all optional)::

    {"keep_last": 5,                 # per repository, the 5 most recently pushed tags stay
     "keep_tags": ["v*", "latest"],  # tags matching these globs stay
     "untagged_older_than": 604800}  # manifests with no tag, older than this (seconds), go

With ``keep_last`` or ``keep_tags`` set, every tag neither rule (nor an immutable pattern) keeps is
deleted, and so is its manifest unless a kept tag still reaches it. Reaching is through an index's
children and the referrers (SBOMs, signatures) of a reached manifest; what a deleted manifest reaches
and nothing kept does goes with it. Push times come from what the registry recorded at push; a
manifest pushed before that uses its blob's modification time.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.record import field, record

from ..app import remove_manifest
from ..storage import Storage
from .accounts import Project
from .kv import KV
from .policies import immutable_pattern
from .usage import project_repositories

PUSHES = "pushes"  # "<repo>:<tag>" -> {"digest", "time", "by"}
MANIFESTS = "manifests"  # "<repo>@<digest>" -> {"time", "by", "size", "pulls"}


@record
class Plan:
    """What a run deletes: tags (repo, tag, digest) and manifests (repo, digest, why)."""

    tags: list[tuple[str, str, str]] = field(default_factory=list)
    manifests: list[tuple[str, str, str]] = field(default_factory=list)


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s`` or seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = text.strip().lower()
    scale = units.get(value[-1:], 0)
    number = value[:-1] if scale else value
    try:
        amount = float(number)
    except ValueError:
        amount = -1
    if amount < 0:
        raise InvalidArgument(f"invalid duration {text!r}: expected e.g. 7d, 12h, 30m or seconds")
    return amount * (scale or 1)


def check_rules(rules: dict[str, Any]) -> dict[str, Any]:
    keep_last = rules.get("keep_last")
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise InvalidArgument(f"retention keep_last {keep_last!r}: expected a count (0 or more)")
    return {k: v for k, v in rules.items() if v not in (None, [], "")}


class Retention:
    """Plans and applies a project's rules against the storage and the push records."""

    def __init__(self, storage: Storage, kv: KV) -> None:
        self.storage = storage
        self.kv = kv

    def _pushed(self, repo: str, tag: str, digest: str) -> float:
        rec = self.kv.get(PUSHES, f"{repo}:{tag}")
        if rec is not None and rec.get("digest") == digest:
            return float(rec["time"])
        return self._age_of(repo, digest)

    def _age_of(self, repo: str, digest: str) -> float:
        rec = self.kv.get(MANIFESTS, f"{repo}@{digest}")
        if rec is not None:
            return float(rec["time"])
        info = self.storage.blob_stat(digest)
        return info.mtime if info is not None else 0.0

    def _children(self, repo: str, digest: str) -> list[str]:
        """What a manifest holds on to: an index's manifests, and the referrers of the manifest."""
        found = [str(d["digest"]) for d in self.storage.referrers(repo, digest)]
        try:
            body = json.loads(self.storage.blob_read(digest))
        except (OSError, ValueError):
            return found
        if isinstance(body, dict) and isinstance(body.get("manifests"), list):
            found += [str(m.get("digest")) for m in body["manifests"] if isinstance(m, dict)]
        return found

    def _closure(self, repo: str, roots: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            digest = todo.pop()
            if digest in seen:
                continue
            seen.add(digest)
            todo += self._children(repo, digest)
        return seen

    def plan(self, project: Project, now: float) -> Plan:
        rules = project.retention
        keep_last, keep_tags = rules.get("keep_last"), list(rules.get("keep_tags") or [])
        older = rules.get("untagged_older_than")
        plan = Plan()
        if keep_last is None and not keep_tags and older is None:
            return plan
        for repo in project_repositories(self.storage, project.name):
            tags = self.storage.tags(repo)
            doomed_tags: dict[str, str] = {}
            if keep_last is not None or keep_tags:
                newest = sorted(tags, key=lambda t: (self._pushed(repo, t, tags[t]), t), reverse=True)
                kept = set(newest[:keep_last] if keep_last is not None else [])
                kept |= {t for t in tags if any(fnmatch.fnmatchcase(t, g) for g in keep_tags)}
                kept |= {t for t in tags if immutable_pattern(project, t)}  # immutability wins
                doomed_tags = {t: d for t, d in tags.items() if t not in kept}
            live = self._closure(repo, {d for t, d in tags.items() if t not in doomed_tags})
            manifests = set(self.storage.manifests(repo))
            doomed: dict[str, str] = {}
            for digest in sorted(set(doomed_tags.values()) - live):
                doomed[digest] = "its tags were deleted"
            if older is not None:
                tagged = set(tags.values())
                for digest in sorted(manifests - live - tagged - set(doomed)):
                    if now - self._age_of(repo, digest) > float(older):
                        doomed[digest] = f"untagged for more than {older:g}s"
            # What only the doomed reach goes with them (an index's children, an image's SBOM).
            for digest in sorted(self._closure(repo, set(doomed)) - live - set(doomed)):
                if digest in manifests:
                    doomed[digest] = "held only by a deleted manifest"
            plan.tags += [(repo, t, d) for t, d in sorted(doomed_tags.items())]
            plan.manifests += [(repo, d, why) for d, why in doomed.items()]
        return plan

    def apply(self, plan: Plan) -> None:
        for repo, tag, _digest in plan.tags:
            self.storage.tag_delete(repo, tag)
        for repo, digest, _why in plan.manifests:
            remove_manifest(self.storage, repo, digest)
