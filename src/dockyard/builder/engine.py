"""The build: Dockerfile -> stages -> cached steps -> an image in the local store.

Stages run in parallel threads as soon as the stages they need are done; stages the target does
not need are skipped. Every step has a cache key (its parent's key plus its own definition, with
the content checksum of what it copies); a hit restores the step's image config, and files are
unpacked only when a later step that misses needs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dockyard.builder.context import HashCache, LocalContext
from dockyard.builder.dispatch_config import plan_config
from dockyard.builder.dispatch_copy import download, execute_copy, plan_copy
from dockyard.builder.dispatch_run import cache_dir_name, execute_run, plan_run
from dockyard.builder.fsutil import clean_path, mkdir_all, secure_join
from dockyard.builder.options import BuildOptions, BuildResult
from dockyard.builder.state import StageState, derive_key
from dockyard.builder.workspace import Workspace
from dockyard.dockerfile import (
    AddInstruction,
    ArgInstruction,
    BuildPlan,
    CopyInstruction,
    Instruction,
    MountSpec,
    PatternMatcher,
    Platform,
    RunInstruction,
    Stage,
    WorkdirInstruction,
    parse,
    parse_instruction,
    parse_stages,
    pick_ignore_file,
    read_ignore_file,
)
from dockyard.errors import BuildError, DockerfileError, DockyardError, NotFound
from dockyard.executor import Executor, cleanup_stale, resolve_user
from dockyard.executor.base import open_executor
from dockyard.image import chain_ids
from dockyard.imageops import Store
from dockyard.imageops.commit import commit_image
from dockyard.imageops.gc import clean_tmp
from dockyard.imageops.images import load_config, resolve
from dockyard.imageops.unpack import unpack_layers
from dockyard.metadata import CacheRecord
from dockyard.oci.config import RUN_CONFIG_KEYS, ImageConfig
from dockyard.progress import Event, Status

CACHE_KIND = "image"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def build(store: Store, options: BuildOptions) -> BuildResult:
    """Build ``options.context_dir`` and return the image ID (and tags) it produced.

    Several platforms (``linux/amd64,linux/arm64``) build side by side into one OCI index."""
    if "," in options.platform:
        from dockyard.builder.multiplatform import build_platforms, split_platforms

        platforms = split_platforms(options.platform)
        if len(platforms) > 1:
            return build_platforms(store, options, platforms)
        options = dataclasses.replace(options, platform=platforms[0])
    builder = Builder(store, options)
    try:
        return builder.run()
    finally:
        builder.close()


def recover(store: Store) -> None:
    """Undo what killed builds left: their executor runs, mounts and scratch directories."""
    cleanup_stale(store.root / "exec")
    clean_tmp(store)


class Builder:
    """One build's shared state: the plan, the context, the workspace and the stage results."""

    def __init__(self, store: Store, options: BuildOptions) -> None:
        self.store = store
        self.options = options
        recover(store)
        self.warnings: list[str] = []
        if not os.path.isdir(options.context_dir):
            raise BuildError(f'unable to prepare context: path "{options.context_dir}" not found')
        self.plan = self._load_plan()
        self.lease = store.lease(ttl=6 * 3600.0)
        self.workspace = Workspace(store, self.lease)
        self.context = LocalContext(options.context_dir, self._ignore_rules(),
                                    HashCache(store.root / "build" / "context-hashes.db"))
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()
        self._stage_futures: dict[int, Future[StageState]] = {}
        # One thread per stage: a stage waits on the stages it needs, so a bounded pool could deadlock
        # on a long chain. How many steps run at once is bounded separately.
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.plan.stages)), thread_name_prefix="stage")
        self._busy = threading.BoundedSemaphore(max(1, options.max_parallel))
        self._urls: dict[str, tuple[Path, str, str, float | None]] = {}
        self._url_lock = threading.Lock()
        self._image_cache: dict[str, tuple[str, ImageConfig]] = {}
        self._image_lock = threading.Lock()
        self._event_lock = threading.Lock()
        self.steps = 0
        self.cached = 0
        self._labels: dict[str, str] = {}

    # -- set-up ----------------------------------------------------------------------------------

    def _dockerfile(self) -> tuple[str, str]:
        opts = self.options
        if opts.dockerfile_text is not None:
            return opts.dockerfile_text, opts.dockerfile or "Dockerfile"
        path = opts.dockerfile or os.path.join(opts.context_dir, "Dockerfile")
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return f.read(), path
        except FileNotFoundError:
            raise BuildError(f"failed to read dockerfile: open {path}: no such file or directory") from None
        except IsADirectoryError:
            raise BuildError(f"failed to read dockerfile: read {path}: is a directory") from None

    def _load_plan(self) -> BuildPlan:
        text, path = self._dockerfile()
        self.dockerfile_path = path
        result = parse(text, os.path.basename(path))
        self.warnings.extend(str(w) for w in result.warnings)
        target = Platform.parse(self.options.platform) if self.options.platform else None
        plan = parse_stages(result, self.options.build_args, target_platform=target)
        if plan.unused_args_warning():
            self.warnings.append(str(plan.unused_args_warning()))
        return plan

    def _ignore_rules(self) -> Callable[[str, bool], bool] | None:
        ctx = self.options.context_dir
        try:
            names = os.listdir(ctx)
        except FileNotFoundError:
            raise BuildError(f'unable to prepare context: path "{ctx}" not found') from None
        dockerfile = self.dockerfile_path
        candidates = [os.path.basename(dockerfile) + ".dockerignore", ".dockerignore"]
        picked = None
        dockerfile_dir = os.path.dirname(os.path.abspath(dockerfile))
        if os.path.exists(os.path.join(dockerfile_dir, candidates[0])):
            picked = os.path.join(dockerfile_dir, candidates[0])
        else:
            chosen = pick_ignore_file(os.path.basename(dockerfile), names)
            if chosen:
                picked = os.path.join(ctx, chosen)
        if picked is None:
            return None
        with open(picked, encoding="utf-8", errors="replace") as f:
            patterns = read_ignore_file(f.read())
        if not patterns:
            return None
        matcher = PatternMatcher(patterns)
        exceptions = [p.cleaned + "/" for p in matcher.patterns if p.exclusion]

        def excluded(rel: str, is_dir: bool) -> bool:
            if not matcher.matches(rel):
                return False
            # As Docker 20.10's context walker: an excluded directory is still walked (and kept) only
            # when a "!" exception starts with its path; otherwise it goes with all inside it.
            return not (is_dir and any(e.startswith(rel + "/") for e in exceptions))

        return excluded

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._executor is not None:
            self._executor.close()
        self.workspace.close()
        if self.context.cache is not None:
            self.context.cache.close()
        self.lease.release()

    @property
    def executor(self) -> Executor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = open_executor(self.store.root / "exec", self.options.runtime)
            return self._executor

    def emit(self, event: Event) -> None:
        with self._event_lock:
            self.options.progress(event)

    def vertex(self, step_id: str, label: str, status: Status, **extra: str) -> None:
        """A build step's state changed (BuildKit calls a step a vertex)."""
        if status != "running":
            self._labels[step_id] = label
        self.emit(Event(step_id, label, status, extra={"kind": "vertex", **extra}))

    def substatus(self, step_id: str, label: str, text: str) -> None:
        """A finished sub-task of a step (BuildKit's ``#9 writing image sha256:... done``)."""
        self.emit(Event(step_id, label, "done", extra={"kind": "vertex", "status": text}))

    def log(self, step_id: str, chunk: bytes, stream: int = 1) -> None:
        """Output of a running step."""
        self.emit(Event(step_id, self._labels.get(step_id, ""), "running", log=chunk, stream=stream,
                        extra={"kind": "vertex"}))

    # -- the build -------------------------------------------------------------------------------

    def run(self) -> BuildResult:
        started = time.monotonic()
        name = os.path.basename(self.dockerfile_path)
        self.vertex("load-def", f"[internal] load build definition from {name}", "done")
        target = self.plan.stage(self.options.target) if self.options.target else self.plan.stages[-1]
        future = self._stage_future(target.index)
        try:
            state = future.result()
        except DockerfileError:
            raise
        except DockyardError as exc:
            raise BuildError(str(exc)) from None
        config = state.config
        if self.options.labels:
            labels = dict(config.config.get("Labels") or {})
            labels.update(self.options.labels)
            config.config["Labels"] = labels
        raw = config.to_json()
        self.vertex("export", "exporting to image", "started")
        record = commit_image(self.store, raw, names=self.options.tags)
        self.substatus("export", "exporting to image", f"writing image {record.id}")
        for name in self.options.tags:
            self.substatus("export", "exporting to image", f"naming to {_full_name(name)}")
        if self.options.outputs:
            from dockyard.builder.export import export_outputs

            export_outputs(self, state, str(record.id))
        self.vertex("export", "exporting to image", "done", seconds=f"{time.monotonic() - started:.1f}")
        return BuildResult(image_id=str(record.id), tags=list(self.options.tags), warnings=self.warnings,
                           steps=self.steps, cached=self.cached)

    def _stage_future(self, index: int) -> Future[StageState]:
        with self._image_lock:
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
        # Start what this stage needs first, so independent stages run side by side.
        deps = [self._stage_future(i) for i in dict.fromkeys(self._dependencies(stage))]
        state = self._base_state(stage)
        for dep in deps:
            dep.result()
        instructions = self._onbuild_triggers(state) + list(stage.instructions)
        total = len(instructions) + 1
        prefix = stage.name or f"stage-{stage.index}"
        if len(self.plan.stages) == 1:
            prefix = ""
        first = f"[{prefix} 1/{total}]" if prefix else f"[1/{total}]"
        if stage.base_stage is None and stage.base_name != "scratch":
            self.vertex(f"s{stage.index}.1", f"{first} FROM {_full_name(stage.base_name)}", "done")
        for number, instr in enumerate(instructions, 2):
            label = f"[{prefix} {number}/{total}]" if prefix else f"[{number}/{total}]"
            self._dispatch(stage, state, instr, f"{label} {_display(instr)}", f"s{stage.index}.{number}")
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
                              run_config_from_base={k for k, v in config.config.items() if v})
        if stage.base_name == "scratch":
            plat = Platform.parse(platform)
            config = ImageConfig(architecture=plat.architecture, os=plat.os, variant=plat.variant,
                                 config={"Env": [DEFAULT_PATH]})
            key = _root_key(["scratch", platform], epoch)
            return StageState(config=config, key=key, env=env_plan.stage_env(stage, config.config["Env"]),
                              lowerdirs=[], chain=None, epoch=epoch)
        base_ref = stage.base_name
        named = self._named(base_ref)
        if named is not None:
            if named[0] != "image":
                raise BuildError(f"FROM {base_ref}: a local directory context cannot be a base image")
            base_ref = named[1]
        image_id, config = self._image(base_ref, stage.platform)
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
                          run_config_from_base={k for k, v in config.config.items() if v})

    def _image(self, ref: str, platform: str) -> tuple[str, ImageConfig]:
        """An image by reference: from the local store, pulled when missing (or always with --pull).

        ``platform`` ("" when the Dockerfile and the command line name none) must match the local
        image, as Docker requires; a mismatch pulls the right one when a registry is reachable.
        """
        wanted = platform or self.options.platform
        cache_key = f"{ref}|{wanted}"
        with self._image_lock:
            known = self._image_cache.get(cache_key)
        if known is not None:
            return known
        image_id = ""
        if not self.options.pull:
            with contextlib.suppress(NotFound):
                image_id = str(resolve(self.store, ref))
        if image_id and wanted:
            local, _raw = load_config(self.store, image_id)
            want = Platform.parse(wanted)
            if (local.os, local.architecture) != (want.os, want.architecture) or (
                    want.variant and local.variant and want.variant != local.variant):
                if self.options.puller is None:
                    have = "/".join(p for p in (local.os, local.architecture, local.variant) if p)
                    raise BuildError(f"image with reference {ref} was found but does not match the specified "
                                     f"platform: wanted {want}, actual: {have}")
                image_id = ""
        if not image_id:
            if self.options.puller is None:
                raise BuildError(f"failed to resolve source metadata for {ref}: no such image in the local "
                                 "store (pull it first, or import it)")
            self.vertex(f"pull:{ref}", f"[internal] load metadata for {ref}", "started")
            image_id = self.options.puller(ref, wanted)
            self.vertex(f"pull:{ref}", f"[internal] load metadata for {ref}", "done")
        config, _raw = load_config(self.store, image_id)
        self.lease.add_image(image_id)
        with self._image_lock:
            self._image_cache[cache_key] = (image_id, config)
        return image_id, config

    # -- steps -----------------------------------------------------------------------------------

    def _dispatch(self, stage: Stage, state: StageState, instr: Instruction, label: str,
                  step_id: str) -> None:
        try:
            arg_text = ""
            if isinstance(instr, ArgInstruction):
                # History shows the ARG as written (defaults expanded before it), not build-arg values.
                arg_text = " ".join(a.key if a.value is None else f"{a.key}={state.env.expand(a.value)}"
                                    for a in instr.args)
                state.declared_args.extend(a.key for a in instr.args)
            expanded = state.env.apply(instr)
            planned = plan_config(expanded, state, arg_text)
            if planned is not None:
                definition, created_by, apply = planned
                self._step(state, label, step_id, definition, created_by, apply, None)
                return
            if isinstance(expanded, RunInstruction):
                run_instr = expanded
                definition, created_by = plan_run(self, run_instr, state)
                self._step(state, label, step_id, definition, created_by, None,
                           lambda upper, work: execute_run(self, run_instr, state, upper, work, step_id))
                return
            if isinstance(expanded, CopyInstruction | AddInstruction):
                copy_instr = expanded
                definition, created_by = plan_copy(self, copy_instr, state)
                self._step(state, label, step_id, definition, created_by, None,
                           lambda upper, work: execute_copy(self, copy_instr, state, upper, work))
                return
            if isinstance(expanded, WorkdirInstruction):
                path = expanded.path
                if not path.startswith("/"):
                    path = clean_path(f"{state.workdir}/{path}")
                # else kept as written (BuildKit joins, and so cleans, only a relative path): /w//x

                def set_workdir(s: StageState) -> None:
                    s.run["WorkingDir"] = path

                user = state.user

                def make(upper: Path, work: Path) -> None:
                    with self.workspace.mounted(self.lowerdirs(state), upper, work) as merged:
                        # BuildKit's mkdir -p runs as the USER: every directory it makes (parents
                        # too) is the user's; existing ones are left alone.
                        owner = resolve_user(merged, user) if user else None
                        mkdir_all(merged, path, 0o755, *((owner.uid, owner.gid) if owner else (-1, -1)))

                # BuildKit makes no directory (so no layer) for WORKDIR /.
                self._step(state, label, step_id, ["workdir", path, user], f"WORKDIR {path}", set_workdir,
                           make if clean_path(path) != "/" else None)
                return
        except (DockerfileError, BuildError):
            raise
        except DockyardError as exc:
            raise BuildError(f"{label}: {exc}") from None
        raise BuildError(f"{label}: unsupported instruction {instr.name.upper()}")

    def _step(self, state: StageState, label: str, step_id: str, definition: Any, created_by: str,
              apply: Callable[[StageState], None] | None,
              action: Callable[[Path, Path], None] | None) -> None:
        key = derive_key(state.key, definition)
        self.steps += 1
        if not self.options.no_cache and self._restore(state, key):
            self.cached += 1
            self.vertex(step_id, label, "cached")
            return
        self.vertex(step_id, label, "started")
        try:
            if apply is not None:
                apply(state)
            committed = None
            if action is not None:
                lowers = self.lowerdirs(state)
                upper, work = self.workspace.new_upper()
                with self._busy:
                    action(upper, work)
                committed = self.workspace.commit(upper, state.chain,
                                                  mtime_clamp=self.options.source_date_epoch)
                if committed is not None:
                    state.config.diff_ids.append(committed.layer.diff_id)
                    state.chain = committed.chain_id
                    state.lowerdirs = [committed.snapshot, *lowers]
            if created_by or committed is not None:
                state.add_history(created_by, empty=committed is None)
            info = self.store.content.ingest(state.config.to_json(), before_publish=self.lease.add_blob)
            size = committed.layer.uncompressed_size if committed is not None else 0
            self.store.meta.put_cache(CacheRecord(key=key, kind=CACHE_KIND, ref=str(info.digest), size=size,
                                                  data=json.dumps({"created_by": created_by})))
            state.key = key
        except BaseException as exc:
            self.vertex(step_id, label, "error", error=str(exc).split("\n")[0])
            raise
        self.vertex(step_id, label, "done")

    def _restore(self, state: StageState, key: str) -> bool:
        rec = self.store.meta.get_cache(key)
        if rec is None or not self.store.content.exists(rec.ref):
            return False
        config = ImageConfig.from_json(self.store.content.read(rec.ref), f"cached config {rec.ref}")
        for diff_id in config.diff_ids:
            if not any(self.store.content.exists(f.digest) for f in self.store.meta.layer_blobs(diff_id)):
                return False
        self.lease.add_blob(rec.ref)
        previous = len(state.config.diff_ids)
        state.config = config
        state.key = key
        if len(config.diff_ids) != previous or state.lowerdirs is None:
            state.lowerdirs = None
        ids = chain_ids(config.diff_ids)
        state.chain = ids[-1] if ids else None
        return True

    # -- services for the dispatchers ------------------------------------------------------------

    def lowerdirs(self, state: StageState) -> list[Path]:
        """The stage's layers as snapshot directories, top first (unpacked on first need)."""
        if state.lowerdirs is None:
            state.lowerdirs = unpack_layers(self.store, state.config.diff_ids, lease=self.lease)
        return state.lowerdirs

    def _named(self, ref: str) -> tuple[str, str] | None:
        """A ``--build-context`` of that name: ("dir", path) or ("image", reference)."""
        value = self.options.build_contexts.get(ref)
        if value is None:
            return None
        if value.startswith("docker-image://"):
            return "image", value.removeprefix("docker-image://")
        if "://" in value:
            raise BuildError(f"build context {ref}={value}: only local directories and docker-image:// "
                             "are supported")
        if not os.path.isdir(value):
            raise BuildError(f'build context {ref}: path "{value}" not found')
        return "dir", os.path.realpath(value)

    def is_local_dir(self, ref: str) -> bool:
        """Whether ``COPY --from=ref`` reads a local directory (files then belong to root, as from the
        main context)."""
        named = self._named(ref)
        return named is not None and named[0] == "dir"

    def _source_state(self, ref: str) -> tuple[str, list[Path]]:
        named = self._named(ref)
        if named is not None and named[0] == "image":
            ref = named[1]
        stage = self._stage_ref(ref) if named is None else None
        if stage is not None:
            st = self._stage_future(stage.index).result()
            return st.key, self.lowerdirs(st)
        image_id, config = self._image(ref, "")
        return image_id, unpack_layers(self.store, config.diff_ids, lease=self.lease)

    def source_key(self, ref: str) -> str:
        """What identifies another stage's or image's content in a cache key."""
        named = self._named(ref)
        if named is not None:
            if named[0] == "dir":
                return LocalContext(named[1]).checksum(["."])
            return self._image(named[1], "")[0]
        stage = self._stage_ref(ref)
        if stage is not None:
            return self._stage_future(stage.index).result().key
        return self._image(ref, "")[0]

    def source_root(self, ref: str, stack: contextlib.ExitStack) -> str:
        """A read-only view of another stage or an image, mounted for the life of ``stack``."""
        named = self._named(ref)
        if named is not None and named[0] == "dir":
            return named[1]
        _key, lowers = self._source_state(ref)
        return stack.enter_context(self.workspace.mounted(lowers))

    def mount_definition(self, spec: MountSpec, state: StageState) -> Any:
        source = ""
        if spec.type == "bind":
            if spec.from_:
                source = self.source_key(spec.from_)
            else:
                source = self.context.checksum([spec.source or "/"])
        elif spec.type == "cache" and spec.from_:
            source = self.source_key(spec.from_)  # a new seed makes a new cache (see cache_mount_dir)
        fields = dataclasses.asdict(spec)
        fields["source_content"] = source
        return fields

    def cache_mount_dir(self, spec: MountSpec, target: str) -> Path:
        cache_id = spec.cache_id or target
        if spec.uid is not None or spec.gid is not None or spec.mode is not None:
            # BuildKit seeds such a cache from a mkdir with those owners/mode, and the seed is part of
            # the cache's identity: the same id without (or with other) uid/gid/mode is another cache.
            mode = spec.mode if spec.mode is not None else 0o755
            cache_id += f"\0{spec.uid or 0}:{spec.gid or 0}:{mode:o}"
        if spec.from_:
            # from=<stage|image>,source=<path>: the cache starts as a copy of that path, and (as the
            # seed's snapshot is in BuildKit's key) another seed content is another cache.
            cache_id += f"\0{self.source_key(spec.from_)}\0{clean_path(spec.source or '/')}"
        path = self.store.root / "cache-mounts" / cache_dir_name(cache_id)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.workspace.new_dir("cache")
            if spec.from_:
                with contextlib.ExitStack() as stack:
                    seed = secure_join(self.source_root(spec.from_, stack), spec.source or "/")
                    if not os.path.isdir(seed):
                        raise BuildError(f"cache mount source {spec.source or '/'} in {spec.from_}: "
                                         "not a directory")
                    tmp.rmdir()
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

    def fetch_url(self, url: str, checksum: str) -> tuple[Path, str, str, float | None]:
        with self._url_lock:
            known = self._urls.get(url)
            if known is None:
                known = download(url, self.workspace.new_dir("url"))
                self._urls[url] = known
        if checksum and known[1] != checksum:
            raise BuildError(f"digest mismatch {known[1]}: {checksum}")
        return known


def _root_key(definition: list[Any], epoch: int | None) -> str:
    """A stage's first cache key. SOURCE_DATE_EPOCH is in it: each step clamps its layer's mtimes and
    dates its history as it commits, so a step cached under another epoch holds other times."""
    return derive_key("", definition if epoch is None else [*definition, ["source-date-epoch", epoch]])


def _full_name(ref: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``, as BuildKit titles a FROM step."""
    with contextlib.suppress(DockyardError):
        from dockyard.oci.reference import parse_normalized

        return str(parse_normalized(ref).tag_or_latest())
    return ref


def _display(instr: Instruction) -> str:
    text = " ".join(instr.original.split())
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["Builder", "build", "recover"]
