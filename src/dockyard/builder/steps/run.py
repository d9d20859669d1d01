"""RUN: a process in the executor on an overlay of the stage's layers, with BuildKit's mounts."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from dockyard.builder.state import StageState
from dockyard.builder.steps import OutputSink, Step, StepContext, mounts
from dockyard.dockerfile import RunInstruction
from dockyard.dockerfile.stages import PROXY_ARGS
from dockyard.errors import BuildError
from dockyard.executor import Mount, ProcessSpec, RootfsSpec
from dockyard.executor.spec import Network, network_mode
from dockyard.record import asdict

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


def plan(ctx: StepContext, instr: RunInstruction, state: StageState) -> Step:
    """The step of a RUN: its cache definition, history text and the process to run."""
    if instr.security == "insecure" and "security.insecure" not in ctx.entitlements:
        # BuildKit refuses the step unless the build grants the entitlement: a Dockerfile alone must
        # not be able to lift its own sandbox (seccomp).
        raise BuildError("security.insecure is not allowed: grant it with --allow security.insecure")
    args, scripts = command_args(instr, state)
    env = [f"{k}={v}" for k, v in state.env.run_env().items()]
    mount_defs = [mounts.definition(ctx, m) for m in instr.mounts]
    network = _network(ctx, instr)
    devices = [asdict(d) for d in instr.devices]
    # A heredoc run as a mounted script is not in ``args``: its content is keyed on its own.
    definition = ["run", args, env, state.user, state.workdir, network, mount_defs, instr.security, devices,
                  sorted(scripts.items())]
    # BuildKit lists every ARG this stage declared, in declaration order, valueless ones too; the
    # value is the ENV's when an ENV has that name, else the ARG's ("" for none); proxy args never.
    hargs = [f"{k}={state.env.env.get(k, state.env.args.get(k, ''))}" for k in state.declared_args
             if k not in PROXY_ARGS]
    prefix = f"|{len(hargs)} {' '.join(hargs)} " if hargs else ""

    def action(upper: Path, work: Path, output: OutputSink) -> None:
        execute(ctx, instr, state, upper, work, output)

    return Step(definition, f"RUN {prefix}{' '.join(args)} # buildkit", action=action)


def _network(ctx: StepContext, instr: RunInstruction) -> Network:
    """``RUN --network``, else the build's ``--network``; ``default`` is the private network (its own
    namespace with outbound access, shared by the build's RUN steps), as BuildKit's sandbox."""
    return network_mode(instr.network if instr.network != "default" else ctx.network)


def execute(ctx: StepContext, instr: RunInstruction, state: StageState, upper: Path, work: Path,
            output: OutputSink) -> None:
    """Run the process; its file changes end up in ``upper``, its output goes to ``output``.

    A failure's error is BuildKit's: the command and its exit code, not its output (the progress
    display shows that once)."""
    args, scripts = command_args(instr, state)
    env = dict(state.env.run_env())
    with contextlib.ExitStack() as stack:
        given: list[Mount] = []
        if scripts:
            pipes = ctx.workspace.new_dir("pipes")
            for name, data in scripts.items():
                (pipes / name).write_text(data)
                os.chmod(pipes / name, 0o755)
            given.append(Mount(target=PIPES, source=str(pipes), readonly=True))
        for spec in instr.mounts:
            mount = mounts.make_mount(ctx, spec, state, env, stack)
            if mount is not None:
                given.append(mount)
        lowers = ctx.lowerdirs(state)
        mounts.make_mountpoints(ctx, lowers, upper, work, [m for m in given if m.target != PIPES])
        rootfs = RootfsSpec(lowerdirs=[Path(p) for p in reversed(ctx.workspace.lowers(lowers))],
                            upperdir=upper, workdir=work)
        process = ProcessSpec(args=args, env=[f"{k}={v}" for k, v in env.items()], cwd=state.workdir,
                              user=state.user, hostname=HOSTNAME, network=_network(ctx, instr),
                              mounts=given, primary_group_in_groups=False,  # as BuildKit's RUN
                              seccomp=None if instr.security == "insecure" else "default")
        code = ctx.executor.run(process, rootfs, stdout=lambda c: output(c, 1),
                                stderr=lambda c: output(c, 2), cancel=ctx.cancel)
    if code != 0:
        shown = " ".join(args)
        raise BuildError(f'process "{shown}" did not complete successfully: exit code: {code}')
