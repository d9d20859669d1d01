"""COPY and ADD: sources from the context, another stage, an image, a URL or a heredoc."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.builder.chmod import parse_chmod
from dockyard.builder.copy import CopySpec, apply_copy, into_dir
from dockyard.builder.definition import is_url as _is_url
from dockyard.builder.fsutil import clean_path, mkdir_all, secure_join
from dockyard.builder.state import StageState
from dockyard.builder.steps import OutputSink, Step, StepContext
from dockyard.dockerfile import AddInstruction, CopyInstruction, PatternMatcher
from dockyard.errors import BuildError, DockyardError
from dockyard.executor import resolve_user

Sources = CopyInstruction | AddInstruction


def _is_git(src: str) -> bool:
    return src.startswith("git@") or src.endswith(".git") or src.startswith("git://")


def destination(instr: Sources, state: StageState) -> tuple[str, bool]:
    """The absolute destination and whether it names a directory."""
    dest = instr.dest
    is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = f"{state.workdir}/{dest}"
    return clean_path(dest), is_dir


def from_ref(instr: Sources, state: StageState) -> str:
    return state.env.expand(instr.from_) if isinstance(instr, CopyInstruction) and instr.from_ else ""


def plan(ctx: StepContext, instr: Sources, state: StageState) -> Step:
    """The step: its cache definition holds the content checksum of the sources."""
    # Several sources onto a destination without a trailing slash are not refused: as BuildKit, each is
    # copied onto it in turn (see copy.apply_copy).
    dest, is_dir = destination(instr, state)
    source = from_ref(instr, state)
    sums: list[Any] = []
    local = [s for s in instr.sources if not _is_url(s)]
    if source:
        sums.append(["from", ctx.source_key(source)])
    elif local:
        sums.append(["context", ctx.context.checksum(local)])
    for s in instr.sources:
        if _is_url(s):
            if not isinstance(instr, AddInstruction):
                raise BuildError(f"source can't be a URL for COPY: {s}")
            # As BuildKit's HTTP source key: the bytes, and the file name and mtime the server gave.
            _path, digest, name, mtime = ctx.fetch_url(s, instr.checksum)
            sums.append(["url", s, digest, name, mtime])
    sums.append(["inline", [(c.path, c.data) for c in instr.contents]])
    flags = {"chown": instr.chown, "chmod": instr.chmod, "excludes": instr.excludes,
             "parents": isinstance(instr, CopyInstruction) and instr.parents,
             "unpack": isinstance(instr, AddInstruction) and instr.unpack,
             # These three leave the same files, but BuildKit keys them: another value, another step.
             "link": instr.link, "checksum": isinstance(instr, AddInstruction) and instr.checksum,
             "keep_git_dir": isinstance(instr, AddInstruction) and instr.keep_git_dir}
    definition = [instr.name, instr.sources, dest, is_dir, flags, sums]
    shown = " ".join([*instr.sources, *(c.path for c in instr.contents), instr.dest])

    def action(upper: Path, work: Path, output: OutputSink) -> None:
        del output  # a copy prints nothing
        execute(ctx, instr, state, upper, work)

    return Step(definition, f"{instr.name.upper()} {shown} # buildkit", action=action)


def execute(ctx: StepContext, instr: Sources, state: StageState, upper: Path, work: Path) -> None:
    """Copy the sources into ``upper`` (an overlay over the stage's layers)."""
    dest, is_dir = destination(instr, state)
    mode = parse_chmod(instr.chmod)
    excludes = PatternMatcher(instr.excludes) if instr.excludes else None
    with contextlib.ExitStack() as stack:
        merged = stack.enter_context(ctx.workspace.mounted(ctx.lowerdirs(state), upper, work))
        chown = _chown(merged, instr.chown)
        uid, gid = chown if chown else (-1, -1)
        source = from_ref(instr, state)
        local = [s for s in instr.sources if not _is_url(s)]

        def exclude(rel: str, is_dir_: bool) -> bool:
            if source == "" and ctx.context.is_excluded(rel, is_dir_):
                return True
            return excludes is not None and excludes.matches(rel)

        spec = CopySpec(sources=local, dest=dest + ("/" if is_dir else ""), dest_is_dir=is_dir, chown=chown,
                        mode=mode,
                        preserve_owner=bool(source) and not ctx.is_local_dir(source), exclude=exclude,
                        parents=isinstance(instr, CopyInstruction) and instr.parents, cancel=ctx.cancel,
                        dest_fuse=ctx.workspace.fuse)
        if isinstance(instr, AddInstruction) and instr.unpack is not False and not source:
            spec.unpack = _unpack_archive
        if local:
            root = ctx.source_root(source, stack) if source else ctx.context.root
            if not source:
                for pattern in local:
                    if not ctx.context.sources(pattern) and not any(c in pattern for c in "*?["):
                        shown = clean_path(pattern)
                        raise BuildError(f'failed to calculate checksum of ref: "{shown}": not found')
            apply_copy(root, spec, merged, src_label=source)
        for src in instr.sources:
            if _is_url(src):
                path, _digest, name, mtime = ctx.fetch_url(src, getattr(instr, "checksum", ""))
                target = f"{dest}/{name}" if into_dir(merged, dest, is_dir) else dest
                mkdir_all(merged, os.path.dirname(target), 0o755, uid, gid)
                _place_file(merged, path, target, 0o600, chown, mtime, mode)
        if instr.contents:
            inline = ctx.workspace.new_dir("inline")
            for content in instr.contents:
                target = f"{dest}/{content.path}" if into_dir(merged, dest, is_dir) else dest
                (inline / "f").write_text(content.data)
                mkdir_all(merged, os.path.dirname(target), 0o755, uid, gid)
                _place_file(merged, inline / "f", target, 0o644, chown, None, mode)


def _chown(root: str, value: str) -> tuple[int, int] | None:
    if not value:
        return None
    user, _, group = value.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        uid = int(user)
        return uid, int(group) if group else uid
    resolved = resolve_user(root, f"{user}:{group}" if group else user)
    gid = resolved.gid if (group or not user.isdigit()) else resolved.uid
    return resolved.uid, gid


def _place_file(root: str, source: Path, target: str, default_mode: int, chown: tuple[int, int] | None,
                mtime: float | None, mode: Any) -> None:
    host = secure_join(root, target)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(host).st_mode):
            raise BuildError(f"cannot replace directory {target} with a file")
        os.unlink(host)
    data = source.read_bytes()
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(host, mode(default_mode, False) if mode else default_mode)
    uid, gid = chown if chown else (0, 0)
    os.lchown(host, uid, gid)
    if mtime is not None:
        os.utime(host, (mtime, mtime))


def _unpack_archive(host_file: str, make_dest: Callable[[], str]) -> bool:
    """ADD's auto-extraction: a local tar (plain, gzip, bzip2, xz, zstd) unpacks into the directory
    ``make_dest`` makes (only once it is known to be an archive, so a plain file is copied as is)."""
    from dockyard.archive import apply_layer, detect, open_decompressed  # a build that runs ADD only

    with open(host_file, "rb") as f:
        head = f.read(512)
        kind = detect(head)
        f.seek(0)
        if kind == "none" and (len(head) < 262 or head[257:262] != b"ustar"):
            return False
        try:
            raw, _ = open_decompressed(f)
            first = b""
            while len(first) < 512 and (chunk := raw.read(512 - len(first))):
                first += chunk
        except DockyardError:
            return False
        if len(first) < 512 or first[257:262] != b"ustar":
            return False
        f.seek(0)
        raw, _ = open_decompressed(f)
        apply_layer(raw, make_dest())
    return True
