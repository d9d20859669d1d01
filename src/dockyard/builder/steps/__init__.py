"""The contract between the build engine and the instructions it runs.

Planning an instruction gives a frozen ``Step``: its ``definition`` (what the cache key is derived
from, with the content checksums of what it reads), the ``created_by`` text of its history entry,
and how to apply it: ``apply`` changes the image config, ``action`` writes the step's files into a
fresh overlay upper directory. The engine derives the key, restores a hit or runs the step on a
miss, commits the layer and writes history; a step never touches the engine itself, only the
narrow ``StepContext`` it is planned with.

One module per instruction family: ``run`` (and its ``mounts``), ``copy`` (COPY and ADD),
``workdir``, ``config`` (ENV, ARG, LABEL, CMD... that change only the config).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dockyard.builder.context import LocalContext
from dockyard.builder.state import StageState
from dockyard.builder.workspace import Workspace
from dockyard.dockerfile import (
    AddInstruction,
    CopyInstruction,
    Instruction,
    RunInstruction,
    WorkdirInstruction,
)
from dockyard.record import record

if TYPE_CHECKING:
    from dockyard.executor import Executor

# Output of a running step: (bytes, stream) with stream 1 = stdout, 2 = stderr.
OutputSink = Callable[[bytes, int], None]
# A config change, made when the step misses the cache.
Apply = Callable[[StageState], None]
# A filesystem change: write into (upper, overlay work dir), sending any process output to the sink.
Action = Callable[[Path, Path, OutputSink], None]


@record(frozen=True, slots=True)
class Step:
    """One planned build step."""

    definition: Any            # canonically encoded into the cache key
    created_by: str            # history text; "" = no history entry (ONBUILD)
    apply: Apply | None = None
    action: Action | None = None


class StepContext(Protocol):
    """What a step may use of the build it belongs to."""

    @property
    def context(self) -> LocalContext: ...

    @property
    def workspace(self) -> Workspace: ...

    @property
    def executor(self) -> Executor: ...

    @property
    def network(self) -> str:
        """The build's default RUN network (``--network``)."""

    @property
    def entitlements(self) -> frozenset[str]:
        """Privileged entitlements the build was granted (``--allow``)."""

    @property
    def secrets(self) -> Mapping[str, bytes]: ...

    @property
    def ssh(self) -> Mapping[str, str]: ...

    @property
    def cancel(self) -> threading.Event:
        """Set when the build is canceled: a running process is killed at once."""

    @property
    def cache_root(self) -> Path:
        """Where ``RUN --mount=type=cache`` directories live."""

    def note_cache_mount(self, path: Path, cache_id: str) -> None:
        """A ``type=cache`` mount directory this build uses (what ``--cache-to ...,mounts=true`` sends)."""

    def restore_cache_mount(self, name: str, dest: Path) -> bool:
        """Fill the new, empty cache mount directory ``dest`` from an imported cache, if it has one."""

    def lowerdirs(self, state: StageState) -> list[Path]:
        """The stage's layers as snapshot directories, top first (unpacked on first need)."""

    def source_key(self, ref: str) -> str:
        """What identifies another stage's, image's or named context's content in a cache key."""

    def source_root(self, ref: str, stack: contextlib.ExitStack) -> str:
        """A read-only view of another stage, image or named context, for the life of ``stack``."""

    def is_local_dir(self, ref: str) -> bool:
        """Whether ``ref`` names a local directory context (its files then belong to root)."""

    def fetch_url(self, url: str, checksum: str) -> tuple[Path, str, str, float | None]:
        """A URL's download: (file, digest, file name, Last-Modified), fetched once per build."""


def makes_step(instr: Instruction) -> bool:
    """Whether BuildKit numbers the instruction as a build step (``[2/4]``); config-only ones are not."""
    return isinstance(instr, RunInstruction | CopyInstruction | AddInstruction | WorkdirInstruction)


def plan_step(ctx: StepContext, instr: Instruction, state: StageState, arg_text: str = "") -> Step | None:
    """The step for an instruction whose variables are expanded, or None for an unknown kind."""
    from dockyard.builder.steps import config, copy, run, workdir

    step: Step | None

    if isinstance(instr, RunInstruction):
        step = run.plan(ctx, instr, state)
    elif isinstance(instr, CopyInstruction | AddInstruction):
        step = copy.plan(ctx, instr, state)
    elif isinstance(instr, WorkdirInstruction):
        step = workdir.plan(ctx, instr, state)
    else:
        step = config.plan(instr, state, arg_text)
    return step


__all__ = ["Action", "Apply", "OutputSink", "Step", "StepContext", "makes_step", "plan_step"]
