"""The build: Dockerfile -> stages -> cached steps -> an image in the local store.

Stages run in parallel threads as soon as the stages they need are done; stages the target does
not need are skipped. Each instruction is planned into a ``Step`` (``builder.steps``) that sees the
build only through ``StepContext``; this module orders the steps, numbers them as BuildKit does,
reports their progress, and derives, restores and records their cache keys: a step's key is its
parent's key plus its own definition (with the content checksum of what it copies); a hit restores
the step's image config, and files are unpacked only when a later step that misses needs them.

Ctrl-C (KeyboardInterrupt in the calling thread) cancels the build: the running processes are
killed, their steps end ``canceled``, no step starts after, and ``Interrupted`` is raised.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.builder import prehash
from dockyard.builder.context import MAX_EXPLAINED_FILES, HashCache, LocalContext
from dockyard.builder.definition import context_patterns, load_definition
from dockyard.builder.explain import Candidates, Inputs, explain
from dockyard.builder.fsutil import clean_path
from dockyard.builder.options import BuildOptions, BuildResult
from dockyard.builder.remotecache.base import BrokenCacheBlob, Entry, SharedRegistry
from dockyard.builder.remotecache.document import INLINE_KEY
from dockyard.builder.sources import Download, Sources
from dockyard.builder.state import StageState, derive_key
from dockyard.builder.steps import Step, makes_step, plan_step
from dockyard.builder.steps.workdir import resolve as resolve_workdir
from dockyard.builder.workspace import Workspace
from dockyard.dockerfile import (
    ArgInstruction,
    CopyInstruction,
    Instruction,
    Platform,
    RunInstruction,
    Stage,
    WorkdirInstruction,
    parse,
    parse_instruction,
)
from dockyard.errors import BuildError, DockerfileError, DockyardError, Interrupted
from dockyard.executor.isolation import choose as choose_isolation
from dockyard.image import chain_ids
from dockyard.imageops import Store
from dockyard.imageops.commit import commit_image
from dockyard.imageops.gc import clean_tmp
from dockyard.imageops.layers import has_layer
from dockyard.interruptible import result
from dockyard.metadata import CacheRecord
from dockyard.oci.config import RUN_CONFIG_KEYS, ImageConfig
from dockyard.progress import Outcome, ProgressEvent, VertexCompleted, VertexLog, VertexStarted, VertexStatus
from dockyard.record import replace

if TYPE_CHECKING:
    from dockyard.builder.remotecache.remote import RemoteCache
    from dockyard.executor import Executor

CACHE_KIND = "image"
_ATTEMPTS = 4  # a build restarts when a remote cache blob is unusable; each bad blob is dropped once
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def build(store: Store, options: BuildOptions, cancel: threading.Event | None = None) -> BuildResult:
    """Build ``options.context_dir`` and return the image ID (and tags) it produced.

    Several platforms (``linux/amd64,linux/arm64``) build side by side into one OCI index. Setting
    ``cancel`` (from another thread) cancels the build as Ctrl-C does."""
    if "," in options.platform:
        from dockyard.builder.multiplatform import build_platforms, split_platforms

        platforms = split_platforms(options.platform)
        if len(platforms) > 1:
            return build_platforms(store, options, platforms)
        options = replace(options, platform=platforms[0])
    registry = SharedRegistry(options.registry)
    remote = None
    if options.cache_from and not options.no_cache:
        from dockyard.builder.remotecache.remote import RemoteCache

        remote = RemoteCache(store, options.cache_from, registry, options.platform)
        remote.start()
    try:
        for attempt in range(_ATTEMPTS):
            builder = Builder(store, options, cancel, remote=remote, registry=registry)
            try:
                return builder.run()
            except BrokenCacheBlob:
                # A cache blob turned out missing or corrupt after its steps were restored: start
                # over without it (what ran is in the local cache now, so this costs little).
                if attempt + 1 == _ATTEMPTS:
                    raise BuildError("remote build cache: too many unusable blobs") from None
                if cancel is not None:
                    cancel.clear()
            except KeyboardInterrupt:
                builder.cancel.set()
                raise Interrupted("Canceled: context canceled") from None
            except BaseException:
                # As BuildKit, a failed build cancels what still runs (those steps end "canceled").
                builder.cancel.set()
                raise
            finally:
                builder.close()  # waits for every stage thread
        raise AssertionError("unreachable")
    finally:
        registry.close()


def recover(store: Store) -> None:
    """Undo what killed builds left: their scratch directories and the mounts in them. Their executor
    runs (mounts, pasta) are swept when this build opens its executor (``open_executor``, at its first
    RUN step), as every ``run`` does: once, and only by what will use that state."""
    clean_tmp(store)


class Builder:
    """One build's shared state: the plan, the context, the workspace and the stage results.

    It is the ``StepContext`` its steps are planned with."""

    def __init__(self, store: Store, options: BuildOptions, cancel: threading.Event | None = None, *,
                 remote: RemoteCache | None = None, registry: SharedRegistry | None = None) -> None:
        self.store = store
        self.options = options
        self.remote = remote
        self.registry = registry if registry is not None else SharedRegistry(options.registry)
        # Every step's (cache key, resulting config): what --cache-to exports.
        self.entries: list[Entry] = []
        self.cache_mounts: dict[Path, str] = {}  # RUN --mount=type=cache directories used -> their id
        # Why steps missed: asked for, or implied by a remote cache that was expected to hit.
        self._explaining = options.explain_cache or bool(options.cache_from)
        self._explain_lock = threading.Lock()
        self._candidates: Candidates | None = None
        self._missed: dict[str, str] = {}   # key of a step that ran -> why
        self._hits: set[str] = set()  # local cache records used: marked used in one write at the end
        self._layers_here: set[str] = set()  # diff IDs seen stored by this build
        self.explanations: list[tuple[str, str, str]] = []
        recover(store)
        definition = load_definition(options)
        self.plan = definition.plan
        self.dockerfile_path = definition.path
        self.warnings = list(definition.warnings)
        self.lease = store.lease(ttl=6 * 3600.0)
        self.isolation = choose_isolation(options.isolation, store.root / "exec")
        self.workspace = Workspace(store, self.lease, copying=self.isolation.isolation == "chroot",
                                   fuse=self.isolation.mounter == "fuse-overlayfs")
        self.context = LocalContext(options.context_dir, definition.ignore,
                                    HashCache(store.root / "build" / "context-hashes.db"))
        self.context.prehashed = prehash.take(options.context_dir, options.dockerfile)
        self.sources = Sources(store, options, self.lease, self.workspace, self.emit)
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()
        self._stage_futures: dict[int, Future[StageState]] = {}
        # One thread per stage: a stage waits on the stages it needs, so a bounded pool could deadlock
        # on a long chain. How many steps run at once is bounded separately.
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.plan.stages)), thread_name_prefix="stage")
        self._busy = threading.BoundedSemaphore(max(1, options.max_parallel))
        self._stage_lock = threading.Lock()
        self._event_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.steps = 0
        self._target_chain: set[int] = set()  # the stages whose layers the exported image has
        self.cached = 0
        # Set on Ctrl-C: running processes are killed and no step starts after.
        self.cancel = cancel if cancel is not None else threading.Event()
        self._failure: BaseException | None = None
        # Stage jobs under way, counted by the jobs themselves: a Ctrl-C inside the pool's submit can
        # leave a started thread out of the pool's list, which shutdown() then does not wait for.
        self._jobs = threading.Condition()
        self._running = 0
        self._closed = False
        self._prestart: threading.Thread | None = None
        self._prestart_lock = threading.Lock()
        if options.no_cache and self._runs_ahead():
            # Every RUN step runs: start the executor now, while the build reads its context and base
            # images, not when the first RUN step waits for it.
            self._start_early()

    def _runs_ahead(self) -> bool:
        """Whether a stage the target needs has a RUN instruction."""
        try:
            target = self.plan.stage(self.options.target) if self.options.target else self.plan.stages[-1]
        except DockerfileError:
            return False  # run() reports it
        return any(isinstance(instr, RunInstruction)
                   for stage in self._needed_stages(target) for instr in stage.instructions)

    def _needed_stages(self, target: Stage) -> Iterator[Stage]:
        """The target and every stage it needs, each once."""
        seen: set[int] = set()
        todo = [target.index]
        while todo:
            index = todo.pop()
            if index in seen:
                continue
            seen.add(index)
            stage = self.plan.stages[index]
            yield stage
            todo.extend(self._dependencies(stage))

    def _start_early(self) -> None:
        """Start the executor on a thread of its own (once): its helper (~0.1 s) and, for RUN steps on
        the private network, the network's pasta (~0.05 s) then start beside the steps before the
        first RUN instead of inside it."""
        if self.isolation.isolation != "namespaces":
            return
        with self._prestart_lock:
            if self._prestart is None:
                self._prestart = threading.Thread(target=self._start_executor, name="executor-start",
                                                  daemon=True)
                self._prestart.start()

    def _start_executor(self) -> None:
        # A failure here is the first RUN step's to report (it opens the executor again).
        with contextlib.suppress(Exception):
            executor = self.executor
            start = getattr(executor, "start", None)
            if start is not None:
                start()
            prepare = getattr(executor, "prepare_network", None)
            if prepare is not None:
                from dockyard.executor.spec import network_mode

                if network_mode(self.options.network) == "private":
                    prepare()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._jobs:
            self._closed = True  # a job not yet begun now never begins
            self._jobs.wait_for(lambda: self._running == 0)
        if self._prestart is not None:
            self._prestart.join()  # the executor it may still be opening is closed below
        if self._executor is not None:
            self._executor.close()
        self.workspace.close()
        if self.context.prehashed is not None:
            self.context.prehashed.close()
        if self.context.cache is not None:
            self.context.cache.close()
        with self.store.meta.transaction():
            self.store.meta.touch_caches(self._hits)
            self.lease.release()

    @property
    def executor(self) -> Executor:
        with self._executor_lock:
            if self._executor is None:
                from dockyard.executor.base import open_executor  # the first step that runs

                self._executor = open_executor(self.store.root / "exec", self.options.runtime,
                                               self.isolation.isolation, self.isolation.mounter)
            return self._executor

    # -- the StepContext's read-only views of the options ----------------------------------------

    @property
    def network(self) -> str:
        return self.options.network

    @property
    def entitlements(self) -> frozenset[str]:
        return self.options.allow

    @property
    def secrets(self) -> Mapping[str, bytes]:
        return self.options.secrets

    @property
    def ssh(self) -> Mapping[str, str]:
        return self.options.ssh

    @property
    def cache_root(self) -> Path:
        return self.store.root / "cache-mounts"

    # -- progress (the contract is in dockyard.progress) -------------------------------------------

    def emit(self, event: ProgressEvent) -> None:
        with self._event_lock:
            self.options.progress(event)

    def started(self, step_id: str, label: str) -> None:
        self.emit(VertexStarted(step_id, label))

    def completed(self, step_id: str, label: str, outcome: Outcome, error: str = "") -> None:
        self.emit(VertexCompleted(step_id, label, outcome, error))

    def substatus(self, step_id: str, text: str) -> None:
        """A finished sub-task of a step (BuildKit's ``#9 writing image sha256:... done``)."""
        self.emit(VertexStatus(step_id, text, done=True))

    def log(self, step_id: str, chunk: bytes, stream: int = 1) -> None:
        """Output of a running step."""
        self.emit(VertexLog(step_id, chunk, stream))

    # -- the build -------------------------------------------------------------------------------

    def run(self) -> BuildResult:
        name = os.path.basename(self.dockerfile_path)
        self.completed("load-def", f"[internal] load build definition from {name}", "done")
        if self.options.isolation == "auto" or self.isolation.fell_back:
            self.completed("isolation", f"[internal] {self.isolation.describe()}", "done")
        target = self.plan.stage(self.options.target) if self.options.target else self.plan.stages[-1]
        self._target_chain = self._stage_chain(target)
        self._warm_context(target)
        future = self._stage_future(target.index)
        try:
            state = result(future)  # Ctrl-C may reach another thread: see dockyard.interruptible
        except DockyardError as exc:
            first = self._failure if isinstance(self._failure, DockyardError) else exc
            if isinstance(first, DockerfileError | Interrupted):
                raise first from None
            raise BuildError(str(first)) from None
        config = state.config
        if self.options.labels:
            labels = dict(config.config.get("Labels") or {})
            labels.update(self.options.labels)
            config.config["Labels"] = labels
        if self.remote is not None:
            if self.options.push:
                self.remote.premount(self.registry, self.options.tags, config.diff_ids)
            self.remote.ensure(config.diff_ids, self.lease)  # the image is stored here: its layers too
        target_stages = self._stage_chain(target)
        if any(spec.type == "inline" for spec in self.options.cache_to):
            entries = [e for e in self.entries if e.stage in target_stages]
            from dockyard.builder.remotecache.export import inline_document

            config.extra[INLINE_KEY] = inline_document(self.store, entries)
        raw = config.to_json()
        self.started("export", "exporting to image")
        record = commit_image(self.store, raw, names=self.options.tags)
        self.substatus("export", f"writing image {record.id}")
        for name in self.options.tags:
            self.substatus("export", f"naming to {_full_name(name)}")
        if self.options.outputs:
            from dockyard.builder.export import export_outputs

            export_outputs(self, state, str(record.id))
        self.completed("export", "exporting to image", "done")
        if self.options.cache_to and not self.options.defer_cache_export:
            from dockyard.builder.remotecache.export import export_caches

            self.warnings.extend(export_caches(
                self.store, self.options.cache_to, self.entries, target_stages, lease=self.lease,
                registry=self.registry, remote=self.remote, mounts=list(self.cache_mounts.items()),
                emit=self.emit))
        warnings = [*self.warnings, *(self.remote.warnings if self.remote is not None else [])]
        return BuildResult(image_id=str(record.id), tags=list(self.options.tags), warnings=warnings,
                           steps=self.steps, cached=self.cached, explanations=self.explanations,
                           cache_entries=list(self.entries), target_stages=target_stages,
                           cache_mounts=list(self.cache_mounts.items()))

    def _warm_context(self, target: Stage) -> None:
        """Start hashing what the COPY steps of the stages the target needs read from the context."""
        self.context.cancel = self.cancel
        for stage in self._needed_stages(target):
            for instr in stage.instructions:
                patterns = context_patterns(instr)
                if patterns is not None:
                    self.context.warm(patterns)

    def _stage_chain(self, stage: Stage) -> set[int]:
        """The stage and those it is built FROM: whose steps make the exported image's layers."""
        chain = {stage.index}
        while stage.base_stage is not None:
            stage = self.plan.stages[stage.base_stage]
            chain.add(stage.index)
        return chain

    def _record(self, step_id: str, key: str, config: str) -> None:
        index = int(step_id[1:].partition(".")[0])
        stage = self.plan.stages[index]
        with self._count_lock:
            self.entries.append(Entry(key, config, index, stage.name or f"stage-{index}"))

    def _stage_future(self, index: int) -> Future[StageState]:
        with self._stage_lock:
            fut = self._stage_futures.get(index)
            if fut is None:
                fut = self._pool.submit(self._build_stage, self.plan.stages[index])
                self._stage_futures[index] = fut
            return fut

    def _stage_ref(self, ref: str) -> Stage | None:
        """The stage ``ref`` names (by name or index), or None for an image reference."""
        for st in self.plan.stages:
            if st.name and st.name == ref.lower():
                return st
        if ref.isdigit() and int(ref) < len(self.plan.stages):
            return self.plan.stages[int(ref)]
        return None

    def _dependencies(self, stage: Stage) -> list[int]:
        deps: list[int] = []
        if stage.base_stage is not None:
            deps.append(stage.base_stage)
        for instr in stage.instructions:
            refs: list[str] = []
            if isinstance(instr, CopyInstruction) and instr.from_:
                refs.append(instr.from_)
            if isinstance(instr, RunInstruction):
                for raw in instr.raw_mounts:
                    for part in raw.split(","):
                        key, _, value = part.partition("=")
                        if key.strip().lower() == "from" and value:
                            refs.append(value)
            for ref in refs:
                if ref in self.options.build_contexts:
                    continue
                dep = self._stage_ref(ref)
                if dep is not None and dep.index < stage.index:
                    deps.append(dep.index)
        return deps

    def _build_stage(self, stage: Stage) -> StageState:
        with self._jobs:
            if self._closed:
                raise Interrupted("Canceled: context canceled")
            self._running += 1
        try:
            return self._run_stage(stage)
        except BaseException as exc:
            if not (self.cancel.is_set() or isinstance(exc, Interrupted | KeyboardInterrupt)):
                # As BuildKit, the first failure cancels every other running step at once; it is
                # the error the build reports, not the cancellations it caused.
                with self._count_lock:
                    if self._failure is None:
                        self._failure = exc
                self.cancel.set()
            raise
        finally:
            with self._jobs:
                self._running -= 1
                self._jobs.notify_all()

    def _run_stage(self, stage: Stage) -> StageState:
        # Start what this stage needs first, so independent stages run side by side.
        deps = [self._stage_future(i) for i in dict.fromkeys(self._dependencies(stage))]
        state = self._base_state(stage)
        for dep in deps:
            dep.result()
        triggers = self._onbuild_triggers(state)
        numbers = _StepNumbers(stage, triggers, single=len(self.plan.stages) == 1)
        if stage.base_stage is None and stage.base_name != "scratch":
            label = numbers.next(f"FROM {_full_name(stage.base_name)}", self._title_platform(state))
            self.completed(f"s{stage.index}.0", label, "done")
        for number, instr in enumerate([*triggers, *stage.instructions], 1):
            onbuild = number <= len(triggers)
            self._dispatch(state, instr, numbers, f"s{stage.index}.{number}", onbuild=onbuild)
        return state

    def _onbuild_triggers(self, state: StageState) -> list[Instruction]:
        triggers = list(state.run.get("OnBuild") or [])
        if not triggers:
            return []
        state.run["OnBuild"] = None
        out: list[Instruction] = []
        for text in triggers:
            node = parse(str(text), "ONBUILD").children
            for n in node:
                instr = parse_instruction(n, "ONBUILD")
                if instr.name in ("onbuild", "from", "maintainer"):
                    raise BuildError(f"{instr.name.upper()} isn't allowed as an ONBUILD trigger")
                out.append(instr)
        return out

    def _base_state(self, stage: Stage) -> StageState:
        platform = stage.platform or str(self.plan.target_platform)
        epoch = self.options.source_date_epoch
        env_plan = self.plan
        if stage.base_stage is not None:
            base = self._stage_future(stage.base_stage).result()
            config = base.config.copy()
            env = env_plan.stage_env(stage, config.config.get("Env") or [])
            # As BuildKit, a stage built FROM another sees all its variables, ARGs too (as of its
            # end, later assignments winning), though its history lists only its own ARGs.
            env.vars.update(base.env.vars)
            return StageState(config=config, key=base.key, env=env,
                              lowerdirs=base.lowerdirs, chain=base.chain, epoch=epoch,
                              run_config_from_base={k for k, v in config.config.items() if v},
                              platform=base.platform)
        if stage.base_name == "scratch":
            plat = Platform.parse(platform)
            # BuildKit's emptyImage(): the default PATH and WorkingDir "/".
            config = ImageConfig(architecture=plat.architecture, os=plat.os, variant=plat.variant,
                                 config={"Env": [DEFAULT_PATH], "WorkingDir": "/"})
            key = _root_key(["scratch", platform], epoch)
            return StageState(config=config, key=key, env=env_plan.stage_env(stage, config.config["Env"]),
                              lowerdirs=[], chain=None, epoch=epoch, platform=platform)
        base_ref = stage.base_name
        named = self.sources.named(base_ref)
        if named is not None:
            if named[0] != "image":
                raise BuildError(f"FROM {base_ref}: a local directory context cannot be a base image")
            base_ref = named[1]
        image_id, config = self.sources.image(base_ref, stage.platform)
        config = config.copy()
        # Like BuildKit, keep the base's run config, layers and history, not its builder's bookkeeping.
        config.extra = {}
        config.author = ""
        # BuildKit reads the base's run config into its own struct: only these keys survive, and empty
        # ones are omitted (a classic builder's "WorkingDir": "", "AttachStdin": false... are dropped).
        config.config = {k: config.config[k] for k in RUN_CONFIG_KEYS if config.config.get(k)}
        if not config.config.get("Env"):
            config.config["Env"] = [DEFAULT_PATH]
        ids = chain_ids(config.diff_ids)
        return StageState(config=config, key=_root_key(["from", image_id], epoch),
                          env=env_plan.stage_env(stage, config.config.get("Env") or []), lowerdirs=None,
                          chain=ids[-1] if ids else None, epoch=epoch,
                          run_config_from_base={k for k, v in config.config.items() if v},
                          base=f"{stage.base_name}@{image_id}", platform=platform)

    # -- steps -----------------------------------------------------------------------------------

    def _title_platform(self, state: StageState) -> str:
        """The platform in a multi-platform build's step titles (buildx's ``[linux/amd64->arm64 2/3]``
        when the stage runs as one platform and declares TARGET* args naming another), else ""."""
        if not self.options.platform_titles:
            return ""
        from dockyard.builder.multiplatform import title_platform  # multi-platform builds only

        return title_platform(state.platform or str(self.plan.target_platform), state.env.vars)

    def _dispatch(self, state: StageState, instr: Instruction, numbers: _StepNumbers, step_id: str,
                  *, onbuild: bool = False) -> None:
        text = ("ONBUILD " if onbuild else "") + _display(instr)
        label = text
        try:
            arg_text = ""
            if isinstance(instr, ArgInstruction):
                # History shows the ARG as written (defaults expanded before it), not build-arg values.
                # Names are expanded too (BuildKit's ArgCommand.Expand).
                keys = [state.env.expand(a.key) for a in instr.args]
                arg_text = " ".join(k if a.value is None else f"{k}={state.env.expand(a.value)}"
                                    for k, a in zip(keys, instr.args, strict=True))
                state.declared_args.extend(keys)
            expanded = state.env.apply(instr)
            # BuildKit shows (and numbers) only the steps that run something: RUN, COPY, ADD and a
            # WORKDIR other than /; config-only instructions are no vertex of their own.
            shown = makes_step(expanded) and not (isinstance(expanded, WorkdirInstruction)
                                                  and clean_path(resolve_workdir(expanded, state)) == "/")
            if shown:
                label = numbers.next(text, self._title_platform(state))
            step = plan_step(self, expanded, state, arg_text)
            if step is None:
                raise BuildError(f"{label}: unsupported instruction {instr.name.upper()}")
            self._step(state, label, step_id, step, shown=shown)
        except (DockerfileError, BuildError, Interrupted):
            raise
        except DockyardError as exc:
            raise BuildError(f"{label}: {exc}") from None

    def _step(self, state: StageState, label: str, step_id: str, step: Step, *, shown: bool) -> None:
        if self.cancel.is_set():
            raise Interrupted("Canceled: context canceled")
        parent = state.key
        key = derive_key(parent, step.definition)
        with self._count_lock:
            self.steps += 1
        stage = int(step_id[1:].partition(".")[0])
        restored = None if self.options.no_cache else self._restore(state, key, stage)
        if restored is not None:
            self._record(step_id, key, restored)
            with self._count_lock:
                self.cached += 1
                if shown and self._explaining:
                    self.explanations.append((label, "cached", ""))
            if shown:
                self.completed(step_id, label, "cached")
            return
        if self._prestart is None and any(isinstance(i, RunInstruction)
                                          for i in self.plan.stages[stage].instructions):
            self._start_early()  # a step of a stage with RUN steps missed: the RUN steps after it will
        inputs = self._inputs(state, parent, step)
        if shown:
            self.started(step_id, label)
        if self._explaining and not self.options.no_cache:
            reason = self._why(parent, key, inputs)
            if shown:
                self.log(step_id, f"cache miss: {reason}\n".encode())
                with self._count_lock:
                    self.explanations.append((label, "ran", reason))
        try:
            if step.apply is not None:
                step.apply(state)
            # One metadata transaction per step: the layer, the snapshot, the config and the record.
            with contextlib.ExitStack() as publishing:
                committed = None
                if step.action is not None:
                    lowers = self.lowerdirs(state)
                    upper, work = self.workspace.new_upper()
                    with self._busy:
                        step.action(upper, work, lambda chunk, stream: self.log(step_id, chunk, stream))
                    committed = publishing.enter_context(
                        self.workspace.commit(upper, state.chain, mtime_clamp=self.options.source_date_epoch))
                    if committed.snapshot is None:
                        self.workspace.reuse_upper(upper, work)  # the step changed nothing
                    state.config.diff_ids.append(committed.layer.diff_id)
                    state.chain = committed.chain_id
                    # An empty layer adds nothing to an overlay: the next steps mount one lower fewer.
                    state.lowerdirs = lowers if committed.snapshot is None else [committed.snapshot, *lowers]
                else:
                    publishing.enter_context(self.store.gc_lock())
                    publishing.enter_context(self.store.meta.transaction())
                if step.created_by or committed is not None:
                    state.add_history(step.created_by, empty=committed is None)
                # Not synced (1-2 ms of every step): a config a machine crash lost or tore is a
                # miss (_local_hit); the image's own config is stored durably by commit_image.
                info = self.store.content.ingest(state.config.to_json(), before_publish=self.lease.add_blob,
                                                 durable=False)
                size = committed.layer.uncompressed_size if committed is not None else 0
                self.store.meta.put_cache(CacheRecord(key=key, kind=CACHE_KIND, ref=str(info.digest),
                                                      size=size,
                                                      data=json.dumps({"created_by": step.created_by,
                                                                       "inputs": inputs.to_data()})))
            state.key = key
            self._record(step_id, key, str(info.digest))
        except BaseException as exc:
            if shown:
                if self.cancel.is_set() or isinstance(exc, Interrupted | KeyboardInterrupt):
                    self.completed(step_id, label, "canceled")
                else:
                    self.completed(step_id, label, "error", str(exc).split("\n")[0])
            raise
        if shown:
            self.completed(step_id, label, "done")

    def _inputs(self, state: StageState, parent: str, step: Step) -> Inputs:
        """What the step's cache key was made of, kept in its record to explain a later miss."""
        files: dict[str, str] = {}
        d = step.definition
        if (isinstance(d, list) and len(d) > 5 and d[0] in ("copy", "add") and isinstance(d[5], list)
                and any(isinstance(x, list) and x and x[0] == "context" for x in d[5])):
            # More files than every record can keep: none (a miss then says "the copied content changed").
            files = self.context.file_digests([s for s in d[1] if not s.startswith(("http://", "https://"))],
                                              limit=MAX_EXPLAINED_FILES)
        first = state.base and parent == derive_key("", ["from", state.base.rpartition("@")[2]])
        return Inputs.make(parent, d, files, state.base if first else "")

    def _why(self, parent: str, key: str, inputs: Inputs) -> str:
        """The first reason this step missed; a step after one that ran carries that one's reason."""
        with self._explain_lock:
            reason = self._missed.get(parent)
            if reason is None:
                if self._candidates is None:
                    self._candidates = Candidates()
                    # Most recently used first: a miss is explained against the last build.
                    records = sorted(self.store.meta.cache_records(), key=lambda r: -r.last_used)
                    self._candidates.add_data(_json(r.data).get("inputs") for r in records)
                    if self.remote is not None:
                        self._candidates.add_data(self.remote.inputs())
                reason = explain(inputs, self._candidates)
                if reason.startswith("the content of the source"):
                    # COPY --from a stage that ran here: say why that stage ran.
                    source = _from_key(inputs.definition)
                    if source in self._missed:
                        reason = f"its source stage ran: {self._missed[source]}"
            self._missed[key] = reason
            return reason

    def _restore(self, state: StageState, key: str, stage: int) -> str | None:
        """Restore the step with ``key`` from the local cache, else a remote one; its config digest."""
        hit = self._local_hit(key)
        remote = False
        if hit is None and self.remote is not None:
            remote = True
            found = self.remote.lookup(key)
            if found is None:
                return None
            raw, parsed = found
            # Not synced, as a step's own config.
            info = self.store.content.ingest(raw, before_publish=self.lease.add_blob, durable=False)
            hit = str(info.digest), parsed
            self.store.meta.put_cache(CacheRecord(key=key, kind=CACHE_KIND, ref=hit[0], size=0,
                                                  data=json.dumps({"remote": True})))
        if hit is None:
            return None
        ref, config = hit
        self.lease.add_blob(ref)
        if remote and self.remote is not None and stage in self._target_chain:
            # The exported image has these layers (or a later step that runs needs their files).
            self.remote.prefetch(config.diff_ids, self.lease)
        previous = len(state.config.diff_ids)
        state.config = config
        state.key = key
        if len(config.diff_ids) != previous or state.lowerdirs is None:
            state.lowerdirs = None
        ids = chain_ids(config.diff_ids)
        state.chain = ids[-1] if ids else None
        return ref

    def _local_hit(self, key: str) -> tuple[str, ImageConfig] | None:
        """The config (digest, parsed) the local cache has for ``key``, if all its layers are here."""
        rec = self.store.meta.get_cache(key, touch=False)
        if rec is None or not self.store.content.exists(rec.ref):
            return None
        try:
            config = ImageConfig.from_json(self.store.content.read(rec.ref), f"cached config {rec.ref}")
        except DockyardError:
            return None  # torn by a machine crash (step configs are not synced): the step runs again
        for diff_id in config.diff_ids:
            if diff_id in self._layers_here:
                continue  # the steps of a stage share their lower layers: each is looked up once
            if not has_layer(self.store, diff_id):  # a blob, or the snapshot a build kept it as
                return None
            self._layers_here.add(diff_id)
        self._hits.add(key)
        return rec.ref, config

    # -- the StepContext: what steps may use of the build --------------------------------------------

    def note_cache_mount(self, path: Path, cache_id: str) -> None:
        with self._count_lock:
            self.cache_mounts.setdefault(path, cache_id)

    def restore_cache_mount(self, name: str, dest: Path) -> bool:
        return self.remote is not None and self.remote.restore_mount(name, dest)

    def lowerdirs(self, state: StageState) -> list[Path]:
        """The stage's layers as snapshot directories, top first (unpacked on first need)."""
        if state.lowerdirs is None:
            if self.remote is not None:
                self.remote.ensure(state.config.diff_ids, self.lease)
            from dockyard.imageops.unpack import unpack_layers  # a step that runs needs the files

            state.lowerdirs = unpack_layers(self.store, state.config.diff_ids, lease=self.lease)
        return state.lowerdirs

    def is_local_dir(self, ref: str) -> bool:
        """Whether ``COPY --from=ref`` reads a local directory (files then belong to root, as from the
        main context)."""
        named = self.sources.named(ref)
        return named is not None and named[0] == "dir"

    def _source_state(self, ref: str) -> tuple[str, list[Path]]:
        named = self.sources.named(ref)
        if named is not None and named[0] == "image":
            ref = named[1]
        stage = self._stage_ref(ref) if named is None else None
        if stage is not None:
            st = self._stage_future(stage.index).result()
            return st.key, self.lowerdirs(st)
        image_id, config = self.sources.image(ref, "")
        from dockyard.imageops.unpack import unpack_layers

        return image_id, unpack_layers(self.store, config.diff_ids, lease=self.lease)

    def source_key(self, ref: str) -> str:
        """What identifies another stage's or image's content in a cache key."""
        named = self.sources.named(ref)
        if named is not None:
            if named[0] == "dir":
                return LocalContext(named[1]).checksum(["."])
            return self.sources.image(named[1], "")[0]
        stage = self._stage_ref(ref)
        if stage is not None:
            return self._stage_future(stage.index).result().key
        return self.sources.image(ref, "")[0]

    def source_root(self, ref: str, stack: contextlib.ExitStack) -> str:
        """A read-only view of another stage or an image, mounted for the life of ``stack``."""
        named = self.sources.named(ref)
        if named is not None and named[0] == "dir":
            return named[1]
        _key, lowers = self._source_state(ref)
        return stack.enter_context(self.workspace.mounted(lowers))

    def fetch_url(self, url: str, checksum: str) -> Download:
        return self.sources.url(url, checksum)


def _root_key(definition: list[object], epoch: int | None) -> str:
    """A stage's first cache key. SOURCE_DATE_EPOCH is in it: each step clamps its layer's mtimes and
    dates its history as it commits, so a step cached under another epoch holds other times."""
    return derive_key("", definition if epoch is None else [*definition, ["source-date-epoch", epoch]])


def _full_name(ref: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``, as BuildKit titles a FROM step."""
    with contextlib.suppress(DockyardError):
        from dockyard.oci.reference import parse_normalized

        return str(parse_normalized(ref).tag_or_latest())
    return ref


class _StepNumbers:
    """BuildKit's step titles: ``[stage-1 2/3] RUN ...``. The total counts a FROM of an image, each
    RUN, COPY, ADD and WORKDIR, and every ONBUILD trigger; only the steps shown take a number, right
    aligned to the width of the total (``[ 2/12]``). A single stage has no stage name in the title."""

    def __init__(self, stage: Stage, triggers: list[Instruction], *, single: bool) -> None:
        self.total = len(triggers) + sum(1 for i in stage.instructions if makes_step(i))
        if stage.base_stage is None and stage.base_name != "scratch":
            self.total += 1
        self.prefix = "" if single else f"{stage.name or f'stage-{stage.index}'} "
        self.index = 0

    def next(self, text: str, platform: str = "") -> str:
        if self.total == 0:
            return text
        self.index += 1
        width = int(1 + math.log10(self.total))
        where = f"{platform} " if platform else ""
        return f"[{where}{self.prefix}{self.index:>{width}}/{self.total}] {text}"


def _from_key(definition: object) -> str:
    """The key of the stage or image a COPY --from definition reads ("" for others)."""
    if isinstance(definition, list) and len(definition) > 5 and isinstance(definition[5], list):
        for item in definition[5]:
            if isinstance(item, list) and len(item) == 2 and item[0] == "from":
                return str(item[1])
    return ""


def _json(text: str) -> dict[str, object]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _display(instr: Instruction) -> str:
    text = " ".join(instr.original.split())
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["Builder", "build", "recover"]
