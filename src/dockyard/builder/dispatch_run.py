"""RUN: a process in the executor on an overlay of the stage's layers, with BuildKit's mounts."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import subprocess
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.builder.fsutil import clean_path, mkdir_all, secure_join
from dockyard.builder.state import StageState
from dockyard.dockerfile import MountSpec, RunInstruction
from dockyard.dockerfile.stages import PROXY_ARGS
from dockyard.errors import BuildError
from dockyard.executor import Mount, ProcessSpec, RootfsSpec

if TYPE_CHECKING:
    from dockyard.builder.engine import Builder

HOSTNAME = "buildkitsandbox"
# Where a RUN heredoc script is mounted (BuildKit uses /dev/pipes; our /dev is built fresh per run).
PIPES = "/run/dockyard-pipes"
_HEREDOC_ONLY = re.compile(r"^\s*\d?<<-?\s*(['\"]?)([A-Za-z0-9_]+)\1\s*$")


def command_args(instr: RunInstruction, state: StageState) -> tuple[list[str], dict[str, str]]:
    """The argv to run, and heredoc scripts to mount at ``PIPES`` (name -> content)."""
    scripts: dict[str, str] = {}
    if not instr.prepend_shell:
        return list(instr.cmd_line), scripts
    text = " ".join(instr.cmd_line)
    if instr.files:
        only = _HEREDOC_ONLY.match(text)
        if only and len(instr.files) == 1:
            f = instr.files[0]
            scripts[f.name] = f.data
            path = f"{PIPES}/{f.name}"
            return ([path] if f.data.startswith("#!") else [*state.shell, path]), scripts
        text += "\n" + "".join(f"{f.data}{f.name}\n" for f in instr.files)
    return [*state.shell, text], scripts


def plan_run(builder: Builder, instr: RunInstruction, state: StageState) -> tuple[Any, str]:
    """The cache definition and history text of a RUN."""
    args, scripts = command_args(instr, state)
    env = [f"{k}={v}" for k, v in state.env.run_env().items()]
    mounts = [builder.mount_definition(m, state) for m in instr.mounts]
    network = _network(builder, instr)
    devices = [dataclasses.asdict(d) for d in instr.devices]
    # A heredoc run as a mounted script is not in ``args``: its content is keyed on its own.
    definition = ["run", args, env, state.user, state.workdir, network, mounts, instr.security, devices,
                  sorted(scripts.items())]
    # BuildKit lists every ARG this stage declared, in declaration order, valueless ones too; the
    # value is the ENV's when an ENV has that name, else the ARG's ("" for none); proxy args never.
    hargs = [f"{k}={state.env.env.get(k, state.env.args.get(k, ''))}" for k in state.declared_args
             if k not in PROXY_ARGS]
    prefix = f"|{len(hargs)} {' '.join(hargs)} " if hargs else ""
    return definition, f"RUN {prefix}{' '.join(args)} # buildkit"


def _network(builder: Builder, instr: RunInstruction) -> str:
    mode = instr.network if instr.network != "default" else builder.options.network
    return "none" if mode == "none" else "host"


def execute_run(builder: Builder, instr: RunInstruction, state: StageState, upper: Path, work: Path,
                step_id: str) -> None:
    """Run the step; its changes end up in ``upper``."""
    args, scripts = command_args(instr, state)
    env = dict(state.env.run_env())
    with contextlib.ExitStack() as stack:
        mounts: list[Mount] = []
        if scripts:
            pipes = builder.workspace.new_dir("pipes")
            for name, data in scripts.items():
                (pipes / name).write_text(data)
                os.chmod(pipes / name, 0o755)
            mounts.append(Mount(target=PIPES, source=str(pipes), readonly=True))
        for spec in instr.mounts:
            mount = _make_mount(builder, spec, state, env, stack)
            if mount is not None:
                mounts.append(mount)
        lowers = builder.lowerdirs(state)
        _make_mountpoints(builder, lowers, upper, work, [m for m in mounts if m.target != PIPES])
        rootfs = RootfsSpec(lowerdirs=[Path(p) for p in reversed(builder.workspace.lowers(lowers))],
                            upperdir=upper, workdir=work)
        process = ProcessSpec(args=args, env=[f"{k}={v}" for k, v in env.items()], cwd=state.workdir,
                              user=state.user, hostname=HOSTNAME, network=_network(builder, instr),  # type: ignore[arg-type]
                              mounts=mounts, primary_group_in_groups=False)  # as BuildKit's RUN
        tail: deque[bytes] = deque(maxlen=6)
        partial = [b""]

        def output(chunk: bytes, stream: int = 1) -> None:
            builder.log(step_id, chunk, stream)
            data = partial[0] + chunk
            *lines, partial[0] = data.split(b"\n")
            tail.extend(lines)

        code = builder.executor.run(process, rootfs, stdout=output,
                                    stderr=lambda c: output(c, 2))
        if partial[0]:
            tail.append(partial[0])
    if code != 0:
        shown = " ".join(args)
        last = "\n".join(line.decode(errors="replace") for line in tail)
        detail = f"\n{last}" if last else ""
        raise BuildError(f'process "{shown}" did not complete successfully: exit code: {code}{detail}')


def _make_mountpoints(builder: Builder, lowers: list[Path], upper: Path, work: Path,
                      mounts: list[Mount]) -> None:
    """Create mount points in the layer as BuildKit leaves them: a target's parent directories, and
    the target itself when it is a directory (a file target leaves only its parents)."""
    if not mounts:
        return
    with builder.workspace.mounted(lowers, upper, work) as merged:
        for m in mounts:
            is_dir = m.type == "tmpfs" or (m.type == "bind" and os.path.isdir(m.source))
            mkdir_all(merged, m.target if is_dir else os.path.dirname(m.target))


def _make_mount(builder: Builder, spec: MountSpec, state: StageState, env: dict[str, str],
                stack: contextlib.ExitStack) -> Mount | None:
    target = spec.target
    if target and not target.startswith("/"):
        target = clean_path(f"{state.workdir}/{target}")
    if spec.type == "bind":
        root = builder.source_root(spec.from_, stack) if spec.from_ else builder.context.root
        source = secure_join(root, spec.source or "/")
        if not os.path.exists(source):
            raise BuildError(f'failed to compute cache key: "{clean_path(spec.source or "/")}": not found')
        if os.path.ismount(root):
            source = _materialize(builder, source)
        return Mount(target=target, source=source, readonly=spec.readonly, discard_writes=not spec.readonly)
    if spec.type == "cache":
        cache_dir = builder.cache_mount_dir(spec, target)
        if spec.cache_sharing == "locked":
            fd = os.open(cache_dir.parent / (cache_dir.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return Mount(target=target, source=str(cache_dir), readonly=spec.readonly)
    if spec.type == "tmpfs":
        return Mount(target=target, type="tmpfs", size=spec.size_limit)
    if spec.type == "secret":
        sid = spec.cache_id or os.path.basename(spec.target)
        data = builder.options.secrets.get(sid)
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
        sock = builder.options.ssh.get(sid)
        if sock is None:
            if spec.required:
                raise BuildError(f'no SSH key "{sid}" forwarded from the client')
            return None
        target = target or "/run/buildkit/ssh_agent.0"
        env.setdefault("SSH_AUTH_SOCK", target)
        return Mount(target=target, source=sock, readonly=True)
    raise BuildError(f"unsupported mount type {spec.type!r}")


def _materialize(builder: Builder, source: str) -> str:
    """A copy of ``source`` (owners, modes, links kept) outside any mount of ours.

    The executor's container is forked ahead of time with its own mount namespace, so it cannot see
    an overlay of another stage mounted after that; a plain directory it can.
    """
    dest = builder.workspace.new_dir("bind") / "src"
    done = subprocess.run(["cp", "-a", "--", source, str(dest)], capture_output=True, check=False)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()
        raise BuildError(f"cannot prepare bind mount of {source}: {why}")
    return str(dest)


def cache_dir_name(cache_id: str) -> str:
    return hashlib.sha256(cache_id.encode()).hexdigest()[:32]
