"""Stages and the ARG/ENV scope, as Docker has them.

:func:`parse_stages` turns a :class:`ParseResult` into a :class:`BuildPlan`: the global ARGs before the
first FROM (with ``--build-arg`` overrides and the predefined platform ARGs), one :class:`Stage` per
FROM with its base name and ``--platform`` expanded, its typed instructions, and the build args that
nothing declared. :class:`StageEnv` is the scope the build engine carries through one stage: it
expands an instruction's words, and tracks ARG and ENV as they are met.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Iterable, Mapping

from dockyard.dockerfile.instructions import (
    ArgInstruction,
    ArgSpec,
    CopyInstruction,
    EnvInstruction,
    ExposeInstruction,
    FromInstruction,
    Instruction,
    OnbuildInstruction,
    RunInstruction,
    parse_instruction,
    with_changes,
)
from dockyard.dockerfile.parser import ParseResult
from dockyard.dockerfile.shell import ShellLex
from dockyard.errors import DockerfileError
from dockyard.record import field, record, replace

# Build args that any RUN sees without an ARG, and that are kept out of the image history.
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
                 "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT")

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}


@record(frozen=True)
class Platform:
    """An OCI platform: ``os/arch[/variant]``."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """Read ``linux/arm64``, ``linux/arm/v7``, ``arm64`` (os defaults to linux)."""
        parts = spec.strip().lower().split("/")
        if len(parts) == 1 and parts[0]:
            parts = ["linux", parts[0]]
        if len(parts) not in (2, 3) or not all(parts):
            raise DockerfileError(f'failed to parse platform "{spec}": invalid platform format')
        os_, arch = parts[0], _ARCH_ALIASES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else ""
        if arch == "arm64" and variant == "v8":
            variant = ""
        if arch == "arm" and not variant:
            variant = "v7"
        return cls(os_, arch, variant)

    @classmethod
    def host(cls) -> Platform:
        """The platform this process runs on."""
        machine = _platform.machine().lower()
        return cls.parse("linux/" + _ARCH_ALIASES.get(machine, machine))

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


def platform_args(target: Platform, build: Platform) -> dict[str, str]:
    """The predefined ``TARGET*`` and ``BUILD*`` ARG values."""
    return {
        "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant, "BUILDPLATFORM": str(build), "BUILDOS": build.os,
        "BUILDARCH": build.architecture, "BUILDVARIANT": build.variant,
    }


@record
class Stage:
    """One build stage: ``FROM base [AS name]`` and the instructions up to the next FROM."""

    index: int
    name: str
    base_name: str
    platform: str
    from_: FromInstruction
    instructions: list[Instruction] = field(default_factory=list)
    base_stage: int | None = None
    comment: str = ""
    # Earlier stages this one needs: its base, COPY --from and RUN --mount from= that name a stage.
    deps: set[int] = field(default_factory=set)

    @property
    def display_name(self) -> str:
        return self.name or str(self.index)


@record
class BuildPlan:
    """What :func:`parse_stages` returns."""

    stages: list[Stage]
    meta_args: list[ArgInstruction]
    global_args: dict[str, str]
    build_args: dict[str, str]
    unused_build_args: list[str]
    escape_token: str = "\\"
    filename: str = "Dockerfile"
    target_platform: Platform = field(default_factory=Platform.host)

    def stage(self, ref: str | int) -> Stage:
        """A stage by name (case-insensitive) or index; raises DockerfileError if there is none."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            i = int(ref)
            if 0 <= i < len(self.stages):
                return self.stages[i]
        else:
            for st in self.stages:
                if st.name and st.name == ref.lower():
                    return st
        raise DockerfileError(f'target stage "{ref}" could not be found', file=self.filename)

    def stage_env(self, stage: Stage, image_env: Iterable[str] = ()) -> StageEnv:
        """A fresh scope for ``stage`` on top of its base image's ``Env`` list."""
        return StageEnv(self, image_env)

    def unused_args_warning(self) -> str | None:
        """Docker's warning for build args no ARG declared, or None."""
        if not self.unused_build_args:
            return None
        return f"[Warning] One or more build-args [{' '.join(self.unused_build_args)}] were not consumed"


def parse_stages(result: ParseResult, build_args: Mapping[str, str] | None = None, *,
                 target_platform: Platform | None = None, build_platform: Platform | None = None,
                 ) -> BuildPlan:
    """Split a parsed Dockerfile into stages, with global ARGs and base names resolved."""
    build_args = dict(build_args or {})
    build_platform = build_platform or Platform.host()
    target_platform = target_platform or build_platform
    lex = ShellLex(result.escape_token)
    filename = result.filename
    meta_args: list[ArgInstruction] = []
    stages: list[Stage] = []
    scope: dict[str, str] = platform_args(target_platform, build_platform)
    declared: set[str] = set()
    global_values: dict[str, str] = {}

    def expand(word: str, node_line: int, column: int = 1) -> str:
        try:
            return lex.process_word(word, scope)
        except DockerfileError as exc:
            raise DockerfileError(exc.detail, file=filename, line=node_line, column=column) from None

    for node in result.children:
        instr = parse_instruction(node, filename)
        if not stages and isinstance(instr, ArgInstruction):
            meta_args.append(instr)
            for spec in instr.args:
                declared.add(spec.key)
                if spec.key in build_args:
                    value: str | None = build_args[spec.key]
                elif spec.value is not None:
                    value = expand(spec.value, node.start_line, node.column)
                else:
                    value = scope.get(spec.key)  # a predefined platform ARG keeps its value
                if value is not None:
                    scope[spec.key] = value
                    global_values[spec.key] = value
            continue
        if isinstance(instr, FromInstruction):
            base = expand(instr.base_name, node.start_line, node.column)
            if base == "":
                raise DockerfileError(f"base name ({instr.base_name}) should not be blank",
                                      file=filename, line=node.start_line, column=node.column)
            plat = expand(instr.platform, node.start_line, node.column) if instr.platform else ""
            if plat:
                Platform.parse(plat)  # fail early on a malformed --platform
            base_stage = None
            for st in stages:
                if st.name and st.name == base.lower():
                    base_stage = st.index
            stages.append(Stage(index=len(stages), name=instr.stage_name, base_name=base, platform=plat,
                                from_=instr, base_stage=base_stage, comment=instr.comment,
                                deps={base_stage} if base_stage is not None else set()))
            continue
        if not stages:
            raise DockerfileError("no build stage in current context", file=filename, line=node.start_line,
                                  column=node.column)
        if isinstance(instr, ArgInstruction):
            declared.update(spec.key for spec in instr.args)
        current = stages[-1]
        if isinstance(instr, CopyInstruction) and instr.from_:
            # BuildKit resolves --from before the build, so only global ARGs apply here.
            source = expand(instr.from_, node.start_line, node.column)
            instr = with_changes(instr, from_=source)
            _add_dep(current, stages, source)
        elif isinstance(instr, RunInstruction):
            for mount in instr.mounts:
                if mount.from_:
                    _add_dep(current, stages, mount.from_)
        current.instructions.append(instr)
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction", file=filename)
    # A stage ARG whose name holds a variable is named only during the build: it may take any of them.
    named_later = any("$" in k for k in declared)
    unused = [] if named_later else sorted(k for k in build_args if k not in declared and k not in PROXY_ARGS)
    all_globals = dict(platform_args(target_platform, build_platform))
    all_globals.update(global_values)
    return BuildPlan(stages=stages, meta_args=meta_args, global_args=all_globals, build_args=build_args,
                     unused_build_args=unused, escape_token=result.escape_token, filename=filename,
                     target_platform=target_platform)


def _add_dep(stage: Stage, stages: list[Stage], ref: str) -> None:
    """Record that ``stage`` reads from an earlier stage named or numbered ``ref`` (else an image)."""
    if ref.isdigit():
        index = int(ref)
        if index < stage.index:
            stage.deps.add(index)
        return
    for st in stages[:stage.index]:
        if st.name and st.name == ref.lower():
            stage.deps.add(st.index)


def needed_stages(plan: BuildPlan, target: Stage) -> list[Stage]:
    """The stages ``target`` depends on, transitively, in build order (``target`` last)."""
    seen: set[int] = set()
    todo = [target.index]
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(plan.stages[i].deps)
    return [st for st in plan.stages if st.index in seen]


class StageEnv:
    """The build-time scope of one stage, as BuildKit keeps it.

    ``env`` is the image's environment (base image ``Env`` plus ENV lines) and goes into the image
    config; ``args`` are the ARGs declared so far. Expansion and RUN see ``vars``: both, where the
    later assignment wins (BuildKit adds an ARG's value to the build state's environment, so
    ``ENV X=a`` then ``ARG X=b`` expands ``$X`` to ``b`` while the image keeps ``X=a``).

    Call :meth:`apply` on each instruction in order: it returns the instruction with its words
    expanded and records ARG/ENV values for the next ones.
    """

    def __init__(self, plan: BuildPlan, image_env: Iterable[str] = ()) -> None:
        self.plan = plan
        self.env: dict[str, str] = {}
        for item in image_env:
            k, _, v = item.partition("=")
            self.env[k] = v
        self.args: dict[str, str] = {}
        self.vars: dict[str, str] = dict(self.env)
        self.lex = ShellLex(plan.escape_token)

    def _wrap(self, instr: Instruction, exc: DockerfileError) -> DockerfileError:
        return DockerfileError(exc.detail, file=self.plan.filename, line=instr.start_line, column=1)

    def expand(self, word: str) -> str:
        """Expand one word in this scope."""
        return self.lex.process_word(word, self.vars)

    def expand_words(self, word: str) -> list[str]:
        """Expand and split in this scope."""
        return self.lex.process_words(word, self.vars)

    def declare_arg(self, spec: ArgSpec) -> None:
        """Record ``ARG key[=default]``: a build arg overrides the default; a bare name inherits
        the global value."""
        if spec.key in self.plan.build_args:
            value: str | None = self.plan.build_args[spec.key]
        elif spec.value is not None:
            value = self.expand(spec.value)
        else:
            value = self.plan.global_args.get(spec.key)
        if value is not None:
            self.args[spec.key] = value
            self.vars[spec.key] = value

    def apply(self, instr: Instruction) -> Instruction:
        """Expand ``instr`` in this scope and record what it declares; returns the expanded copy."""
        try:
            if isinstance(instr, ArgInstruction):
                # BuildKit's ArgCommand.Expand: names are expanded too, all before any is declared.
                named = [replace(spec, key=self.expand(spec.key)) for spec in instr.args]
                specs = []
                for spec in named:
                    self.declare_arg(spec)
                    specs.append(ArgSpec(spec.key, self.args.get(spec.key), spec.comment))
                return replace(instr, args=specs)
            if isinstance(instr, ExposeInstruction):
                ports = [w for p in instr.ports for w in self.expand_words(p)]
                return replace(instr, ports=ports)
            if isinstance(instr, OnbuildInstruction):
                return instr
            out = instr.expand(self.expand)
            if isinstance(out, EnvInstruction):
                for pair in out.env:
                    self.env[pair.key] = pair.value
                    self.vars[pair.key] = pair.value
            return out
        except DockerfileError as exc:
            if exc.line > 0:
                raise
            raise self._wrap(instr, exc) from None

    def run_env(self) -> dict[str, str]:
        """The environment a RUN sees: proxy build args, then ENV and ARGs in the order they came."""
        out = {k: v for k, v in self.plan.build_args.items() if k in PROXY_ARGS}
        out.update(self.vars)
        return out

    def history_args(self) -> list[str]:
        """``K=V`` of the ARGs that BuildKit prefixes to a RUN's history (proxy args left out)."""
        return [f"{k}={v}" for k, v in sorted(self.args.items()) if k not in PROXY_ARGS]
