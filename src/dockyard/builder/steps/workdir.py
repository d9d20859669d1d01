"""WORKDIR: sets the working directory and makes it (as the USER), a layer unless it is ``/``."""

from __future__ import annotations

from pathlib import Path

from dockyard.builder.fsutil import clean_path, mkdir_all
from dockyard.builder.state import StageState
from dockyard.builder.steps import OutputSink, Step, StepContext
from dockyard.dockerfile import WorkdirInstruction
from dockyard.executor import resolve_user


def resolve(instr: WorkdirInstruction, state: StageState) -> str:
    """The new working directory: BuildKit joins (and so cleans) only a relative path; an absolute
    one is kept as written (``/w//x``)."""
    path = instr.path
    return path if path.startswith("/") else clean_path(f"{state.workdir}/{path}")


def plan(ctx: StepContext, instr: WorkdirInstruction, state: StageState) -> Step:
    path = resolve(instr, state)
    user = state.user

    def set_workdir(s: StageState) -> None:
        s.run["WorkingDir"] = path

    def make(upper: Path, work: Path, output: OutputSink) -> None:
        del output
        with ctx.workspace.mounted(ctx.lowerdirs(state), upper, work) as merged:
            # BuildKit's mkdir -p runs as the USER: every directory it makes (parents too) is the
            # user's; existing ones are left alone.
            owner = resolve_user(merged, user) if user else None
            mkdir_all(merged, path, 0o755, *((owner.uid, owner.gid) if owner else (-1, -1)))

    # BuildKit makes no directory (so no layer) for WORKDIR /.
    return Step(["workdir", path, user], f"WORKDIR {path}", set_workdir,
                make if clean_path(path) != "/" else None)
