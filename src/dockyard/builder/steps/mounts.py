"""RUN's ``--mount`` flags: their part of the cache key, and the mounts they give the process."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from dockyard.builder.fsutil import clean_path, mkdir_all, secure_join
from dockyard.builder.state import StageState
from dockyard.builder.steps import StepContext
from dockyard.dockerfile import MountSpec
from dockyard.errors import BuildError
from dockyard.executor import Mount
from dockyard.record import asdict


def definition(ctx: StepContext, spec: MountSpec) -> Any:
    """A mount's part of the RUN's cache key: its flags and the content of a bind source or cache seed."""
    source = ""
    if spec.type == "bind":
        source = ctx.source_key(spec.from_) if spec.from_ else ctx.context.checksum([spec.source or "/"])
    elif spec.type == "cache" and spec.from_:
        source = ctx.source_key(spec.from_)  # a new seed makes a new cache (see cache_mount_dir)
    fields = asdict(spec)
    fields["source_content"] = source
    return fields


def cache_mount_dir(ctx: StepContext, spec: MountSpec, target: str, instance: int = 0) -> Path:
    """The directory of a ``type=cache`` mount, made (and seeded) on first use.

    ``instance`` > 0 is another copy of the same cache (``sharing=private`` while the first is in
    use): it starts as the cache does (empty, or its seed), is kept for later private users, and is
    neither restored from nor exported to a remote cache."""
    cache_id = spec.cache_id or target
    if spec.uid is not None or spec.gid is not None or spec.mode is not None:
        # BuildKit seeds such a cache from a mkdir with those owners/mode, and the seed is part of
        # the cache's identity: the same id without (or with other) uid/gid/mode is another cache.
        mode = spec.mode if spec.mode is not None else 0o755
        cache_id += f"\0{spec.uid or 0}:{spec.gid or 0}:{mode:o}"
    if spec.from_:
        # from=<stage|image>,source=<path>: the cache starts as a copy of that path, and (as the
        # seed's snapshot is in BuildKit's key) another seed content is another cache.
        cache_id += f"\0{ctx.source_key(spec.from_)}\0{clean_path(spec.source or '/')}"
    path = ctx.cache_root / cache_dir_name(cache_id)
    if instance:
        path = path.with_name(f"{path.name}.{instance}")
    else:
        ctx.note_cache_mount(path, spec.cache_id or target)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = ctx.workspace.new_dir("cache")
        if not instance and ctx.restore_cache_mount(path.name, tmp):
            # Another runner's content (--cache-from ... of a cache exported with mounts=true).
            os.chmod(tmp, spec.mode if spec.mode is not None else 0o755)
            os.chown(tmp, spec.uid or 0, spec.gid or 0)
        elif spec.from_:
            with contextlib.ExitStack() as stack:
                seed = secure_join(ctx.source_root(spec.from_, stack), spec.source or "/")
                if not os.path.isdir(seed):
                    raise BuildError(f"cache mount source {spec.source or '/'} in {spec.from_}: "
                                     "not a directory")
                tmp.rmdir()
                import subprocess  # a seeded cache mount is rare: not at import

                done = subprocess.run(["cp", "-a", "--", seed, str(tmp)], capture_output=True,
                                      check=False)
                if done.returncode != 0:
                    raise BuildError(f"cannot seed cache mount from {spec.from_}: "
                                     f"{done.stderr.decode(errors='replace').strip()}")
        else:
            os.chmod(tmp, spec.mode if spec.mode is not None else 0o755)
            os.chown(tmp, spec.uid or 0, spec.gid or 0)
        try:
            os.rename(tmp, path)
        except OSError:
            pass  # another build made it first
    return path


def make_mountpoints(ctx: StepContext, lowers: list[Path], upper: Path, work: Path,
                      mounts: list[Mount]) -> None:
    """Create mount points in the layer as BuildKit leaves them: a target's parent directories, and
    the target itself when it is a directory (a file target leaves only its parents)."""
    if not mounts:
        return
    with ctx.workspace.mounted(lowers, upper, work) as merged:
        for m in mounts:
            is_dir = m.type == "tmpfs" or (m.type == "bind" and os.path.isdir(m.source))
            mkdir_all(merged, m.target if is_dir else os.path.dirname(m.target))


def _private_cache(ctx: StepContext, spec: MountSpec, target: str, stack: contextlib.ExitStack) -> Path:
    """``sharing=private``: the first copy of the cache no other step holds (the cache itself when
    free), held for this step; a new copy when every one is in use."""
    instance = 0
    while True:
        path = cache_mount_dir(ctx, spec, target, instance)
        fd = os.open(path.parent / (path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            instance += 1
            continue
        stack.callback(os.close, fd)
        return path


def make_mount(ctx: StepContext, spec: MountSpec, state: StageState, env: dict[str, str],
                stack: contextlib.ExitStack) -> Mount | None:
    target = spec.target
    if target and not target.startswith("/"):
        target = clean_path(f"{state.workdir}/{target}")
    if spec.type == "bind":
        root = ctx.source_root(spec.from_, stack) if spec.from_ else ctx.context.root
        source = secure_join(root, spec.source or "/")
        if not os.path.exists(source):
            raise BuildError(f'failed to compute cache key: "{clean_path(spec.source or "/")}": not found')
        if os.path.ismount(root):
            source = _materialize(ctx, source)
        return Mount(target=target, source=source, readonly=spec.readonly, discard_writes=not spec.readonly)
    if spec.type == "cache":
        if spec.cache_sharing == "private":
            return Mount(target=target, source=str(_private_cache(ctx, spec, target, stack)),
                         readonly=spec.readonly)
        cache_dir = cache_mount_dir(ctx, spec, target)
        if spec.cache_sharing == "locked":
            fd = os.open(cache_dir.parent / (cache_dir.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return Mount(target=target, source=str(cache_dir), readonly=spec.readonly)
    if spec.type == "tmpfs":
        return Mount(target=target, type="tmpfs", size=spec.size_limit)
    if spec.type == "secret":
        sid = spec.cache_id or os.path.basename(spec.target)
        data = ctx.secrets.get(sid)
        if data is None:
            if spec.required:
                raise BuildError(f"secret {sid} not found")
            return None
        if spec.env:
            env[spec.env] = data.decode(errors="replace")
            if not spec.target:
                return None
        target = target or f"/run/secrets/{sid}"
        mode = spec.mode if spec.mode is not None else 0o400
        return Mount(target=target, type="secret", data=data, mode=mode, uid=spec.uid or 0, gid=spec.gid or 0)
    if spec.type == "ssh":
        sid = spec.cache_id or "default"
        sock = ctx.ssh.get(sid)
        if sock is None:
            if spec.required:
                raise BuildError(f'no SSH key "{sid}" forwarded from the client')
            return None
        target = target or "/run/buildkit/ssh_agent.0"
        env.setdefault("SSH_AUTH_SOCK", target)
        return Mount(target=target, source=sock, readonly=True)
    raise BuildError(f"unsupported mount type {spec.type!r}")


def _materialize(ctx: StepContext, source: str) -> str:
    """A copy of ``source`` (owners, modes, links kept) outside any mount of ours.

    The executor's container is forked ahead of time with its own mount namespace, so it cannot see
    an overlay of another stage mounted after that; a plain directory it can.
    """
    import subprocess  # not at import: most builds bind no other stage's files

    dest = ctx.workspace.new_dir("bind") / "src"
    done = subprocess.run(["cp", "-a", "--", source, str(dest)], capture_output=True, check=False)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()
        raise BuildError(f"cannot prepare bind mount of {source}: {why}")
    return str(dest)


def cache_dir_name(cache_id: str) -> str:
    return hashlib.sha256(cache_id.encode()).hexdigest()[:32]
