"""A cheap picture of a build context, to notice edits without reading file contents.

    snapshot(context_dir, dockerfile="") -> dict[str, Signature]
    changed(before, after) -> list[str]

Each file (and symlink, and directory) is reduced to its stat signature: type, mode, size, mtime in
nanoseconds and inode, which is how BuildKit's own context transfer skips unchanged files. Paths
``.dockerignore`` drops are not visited; the Dockerfile and the ignore file always are, since a
change to either changes the build.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from dockyard.dockerfile import PatternMatcher, pick_ignore_file, read_ignore_file

__all__ = ["Signature", "changed", "ignore_rules", "snapshot"]

Signature = tuple[int, int, int, int]  # (mode, size, mtime_ns, inode)


def _ignore_file(context_dir: str, dockerfile: str) -> str | None:
    """The ignore file a build would use: ``<Dockerfile>.dockerignore`` beside it, else in the context."""
    name = os.path.basename(dockerfile) if dockerfile else "Dockerfile"
    if dockerfile:
        beside = os.path.join(os.path.dirname(os.path.abspath(dockerfile)), name + ".dockerignore")
        if os.path.exists(beside):
            return beside
    try:
        names = os.listdir(context_dir)
    except OSError:
        return None
    chosen = pick_ignore_file(name, names)
    return os.path.join(context_dir, chosen) if chosen else None


def ignore_rules(context_dir: str, dockerfile: str = "") -> Callable[[str], tuple[bool, bool]] | None:
    """``rule(rel) -> (excluded, walk_anyway)`` for the context's ignore file, or None if it has none.

    ``walk_anyway`` is True for an excluded directory when "!" patterns may let something inside back."""
    path = _ignore_file(context_dir, dockerfile)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            patterns = read_ignore_file(f.read())
    except OSError:
        return None
    if not patterns:
        return None
    matcher = PatternMatcher(patterns)
    descend = bool(matcher.exclusions)

    def rule(rel: str) -> tuple[bool, bool]:
        return (True, descend) if matcher.matches(rel) else (False, True)

    return rule


def _sig(st: os.stat_result) -> Signature:
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)


def snapshot(context_dir: str, dockerfile: str = "") -> dict[str, Signature]:
    """Stat signatures of everything a build of ``context_dir`` could read, by path relative to it.

    ``dockerfile`` (a path) and the ignore file are included under their absolute paths when they
    live outside the context. A missing context gives an empty picture (the build will say why)."""
    root = os.path.abspath(context_dir)
    excluded = ignore_rules(root, dockerfile)
    out: dict[str, Signature] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel_dir) if rel_dir else root)
        except OSError:
            continue
        with it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed while we looked: the next picture will not have it either
                is_dir = stat.S_ISDIR(st.st_mode)
                dropped, walk = excluded(rel) if excluded is not None else (False, True)
                if not dropped:
                    # A directory's own mtime moves when an entry is added or removed, which the
                    # entries already show; keep only its mode so a chmod still counts.
                    out[rel] = (st.st_mode, 0, 0, 0) if is_dir else _sig(st)
                if is_dir and walk:
                    stack.append(rel)
    for extra in (dockerfile or os.path.join(root, "Dockerfile"), _ignore_file(root, dockerfile)):
        if not extra:
            continue
        path = os.path.abspath(extra)
        rel = os.path.relpath(path, root)
        key = rel if not rel.startswith("..") else path
        try:
            out[key] = _sig(os.stat(path))
        except OSError:
            out.pop(key, None)
    return out


def changed(before: dict[str, Signature], after: dict[str, Signature]) -> list[str]:
    """Paths added, removed or modified between two pictures, sorted."""
    keys = before.keys() | after.keys()
    return sorted(k for k in keys if before.get(k) != after.get(k))
