"""Typed instructions: a syntax tree node becomes a dataclass with validated flags and arguments.

:func:`parse_instruction` follows BuildKit's ``frontend/dockerfile/instructions`` (same error texts).
Words are kept as written; ``expand(fn)`` on an instruction returns a copy with the words BuildKit
expands at build time passed through ``fn`` (see :class:`dockyard.dockerfile.stages.StageEnv`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypedDict, TypeVar

from dockyard import goformat
from dockyard.dockerfile.flags import BFlags
from dockyard.dockerfile.mounts import DeviceSpec, MountSpec, parse_device, parse_mount
from dockyard.dockerfile.parser import Heredoc, Node, chomp_heredoc_content, must_parse_heredoc
from dockyard.dockerfile.suggest import wrap_suggestion
from dockyard.errors import DockerfileError
from dockyard.record import field, record

Expander = Callable[[str], str]
_T = TypeVar("_T")

INSTRUCTIONS = ("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
                "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir")


def with_changes(obj: _T, **changes: object) -> _T:
    """A shallow copy with some fields changed (``record.replace`` without re-running __init__)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


# ---------------------------------------------------------------------------------------------
# Value types


@record
class KeyValuePair:
    """One ``KEY=value`` of ENV or LABEL; ``no_delim`` for the legacy ``KEY value`` form."""

    key: str
    value: str
    no_delim: bool = False


@record
class ArgSpec:
    """One name of an ARG, with its default (None when declared without one) and doc comment."""

    key: str
    value: str | None = None
    comment: str = ""


@record
class SourceContent:
    """An inline COPY/ADD source from a heredoc: ``path`` is the heredoc name."""

    path: str
    data: str
    expand: bool


@record
class ShellInlineFile:
    """A heredoc attached to RUN/CMD/ENTRYPOINT (its content becomes the command's stdin/file)."""

    name: str
    data: str
    chomp: bool


@record
class PortSpec:
    """One exposed port (or range) and its protocol, e.g. ``8000-8010/udp``."""

    start: int
    end: int
    protocol: str = "tcp"

    def exposed_keys(self) -> list[str]:
        """The image config ``ExposedPorts`` keys: ``"80/tcp"``, one per port of a range."""
        return [f"{p}/{self.protocol}" for p in range(self.start, self.end + 1)]


# ---------------------------------------------------------------------------------------------
# Instructions


@record
class Instruction:
    """Common fields: the lower-case ``name``, ``original`` text and the line range (1-based)."""

    name: str
    original: str
    start_line: int
    end_line: int

    def expand(self, fn: Expander) -> Instruction:
        """A copy with build-time words expanded (instructions that expand nothing return self)."""
        return self

    def created_by(self) -> str:
        """The text BuildKit records in history for this step."""
        return self.original.strip()


@record
class FromInstruction(Instruction):
    """``FROM [--platform=P] image [AS name]``."""

    base_name: str = ""
    stage_name: str = ""
    platform: str = ""
    comment: str = ""


@record
class _CommandLine(Instruction):
    cmd_line: list[str] = field(default_factory=list)
    prepend_shell: bool = True
    files: list[ShellInlineFile] = field(default_factory=list)


@record
class RunInstruction(_CommandLine):
    """``RUN [--mount ...] [--network] [--security] [--device] cmd`` (shell or exec form, heredocs)."""

    mounts: list[MountSpec] = field(default_factory=list)
    raw_mounts: list[str] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"
    devices: list[DeviceSpec] = field(default_factory=list)
    flags_used: list[str] = field(default_factory=list)

    def expand(self, fn: Expander) -> RunInstruction:
        if not self.raw_mounts:
            return self
        mounts = [parse_mount(m, fn) for m in self.raw_mounts]
        return with_changes(self, mounts=mounts)


@record
class CmdInstruction(_CommandLine):
    """``CMD``."""


@record
class EntrypointInstruction(_CommandLine):
    """``ENTRYPOINT`` (an empty exec form clears it)."""


@record
class ShellInstruction(Instruction):
    """``SHELL ["exe", "args"]`` (exec form only)."""

    shell: list[str] = field(default_factory=list)


@record
class _Sources(Instruction):
    sources: list[str] = field(default_factory=list)
    contents: list[SourceContent] = field(default_factory=list)
    dest: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: list[str] = field(default_factory=list)

    def _expanded(self, fn: Expander) -> dict[str, object]:
        contents = [with_changes(c, data=fn(c.data)) if c.expand else c for c in self.contents]
        return {"sources": [fn(s) for s in self.sources], "dest": fn(self.dest), "chown": fn(self.chown),
                "chmod": fn(self.chmod), "excludes": [fn(e) for e in self.excludes], "contents": contents}


@record
class CopyInstruction(_Sources):
    """``COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude] src... dest``."""

    from_: str = ""
    parents: bool = False

    def expand(self, fn: Expander) -> CopyInstruction:
        return with_changes(self, **self._expanded(fn))


@record
class AddInstruction(_Sources):
    """``ADD [--chown --chmod --link --checksum --keep-git-dir --unpack --exclude] src... dest``."""

    checksum: str = ""
    keep_git_dir: bool = False
    unpack: bool | None = None

    def expand(self, fn: Expander) -> AddInstruction:
        return with_changes(self, checksum=fn(self.checksum), **self._expanded(fn))


@record
class EnvInstruction(Instruction):
    """``ENV k=v ...`` (or legacy ``ENV k v``)."""

    env: list[KeyValuePair] = field(default_factory=list)

    def expand(self, fn: Expander) -> EnvInstruction:
        return with_changes(
            self, env=[KeyValuePair(fn(p.key), fn(p.value), p.no_delim) for p in self.env])


@record
class LabelInstruction(Instruction):
    """``LABEL k=v ...``."""

    labels: list[KeyValuePair] = field(default_factory=list)

    def expand(self, fn: Expander) -> LabelInstruction:
        return with_changes(
            self, labels=[KeyValuePair(fn(p.key), fn(p.value), p.no_delim) for p in self.labels])


@record
class ArgInstruction(Instruction):
    """``ARG name[=default] ...``. Defaults are expanded by the stage scope, one name at a time."""

    args: list[ArgSpec] = field(default_factory=list)


@record
class ExposeInstruction(Instruction):
    """``EXPOSE port[/proto] ...`` (ranges ``a-b`` allowed); :func:`parse_port_spec` reads each."""

    ports: list[str] = field(default_factory=list)


@record
class UserInstruction(Instruction):
    """``USER user[:group]``."""

    user: str = ""

    def expand(self, fn: Expander) -> UserInstruction:
        return with_changes(self, user=fn(self.user))


@record
class WorkdirInstruction(Instruction):
    """``WORKDIR path``."""

    path: str = ""

    def expand(self, fn: Expander) -> WorkdirInstruction:
        return with_changes(self, path=fn(self.path))


@record
class VolumeInstruction(Instruction):
    """``VOLUME path ...`` or ``VOLUME ["path", ...]``."""

    volumes: list[str] = field(default_factory=list)

    def expand(self, fn: Expander) -> VolumeInstruction:
        return with_changes(self, volumes=[fn(v) for v in self.volumes])


@record
class StopSignalInstruction(Instruction):
    """``STOPSIGNAL signal``."""

    signal: str = ""

    def expand(self, fn: Expander) -> StopSignalInstruction:
        return with_changes(self, signal=fn(self.signal))


def parse_signal(value: str) -> int:
    """A STOPSIGNAL value as a number: ``9``, ``KILL``, ``SIGKILL``, ``SIGRTMIN+3`` (Linux numbering)."""
    text = value.strip()
    if text.isdigit():
        num = int(text)
        if 0 < num <= 64:
            return num
        raise DockerfileError(f"Invalid signal: {value}")
    name = text.upper().removeprefix("SIG")
    if name.startswith(("RTMIN", "RTMAX")):
        rest = name[5:]
        offset = 0
        if rest:
            sign = 1 if rest[0] == "+" else -1 if rest[0] == "-" else 0
            if sign == 0 or not rest[1:].isdigit():
                raise DockerfileError(f"Invalid signal: {value}")
            offset = sign * int(rest[1:])
        num = (34 if name.startswith("RTMIN") else 64) + offset
        if 34 <= num <= 64:
            return num
        raise DockerfileError(f"Invalid signal: {value}")
    found = _SIGNALS.get(name)
    if found is None:
        raise DockerfileError(f"Invalid signal: {value}")
    return found


# Linux signal numbers (the container's, not necessarily this host's).
_SIGNALS = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1, "ILL": 4,
    "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27, "PWR": 30, "QUIT": 3,
    "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15, "TRAP": 5, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12, "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25,
}


@record
class MaintainerInstruction(Instruction):
    """``MAINTAINER name`` (deprecated; sets the image author)."""

    maintainer: str = ""


@record
class HealthcheckInstruction(Instruction):
    """``HEALTHCHECK [--interval --timeout --start-period --start-interval --retries] CMD ...|NONE``.

    ``test`` is Docker's form: ``["NONE"]``, ``["CMD", ...]`` or ``["CMD-SHELL", "cmd"]``; durations
    are nanoseconds (0 = the default).
    """

    test: list[str] = field(default_factory=list)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@record
class OnbuildInstruction(Instruction):
    """``ONBUILD <instruction>``: ``expression`` is the trigger text stored in the image."""

    expression: str = ""


# ---------------------------------------------------------------------------------------------
# Helpers


def _at_least_one(cmd: str) -> DockerfileError:
    return DockerfileError(f"{cmd} requires at least one argument")


def _exactly_one(cmd: str) -> DockerfileError:
    return DockerfileError(f"{cmd} requires exactly one argument")


def _no_destination(cmd: str) -> DockerfileError:
    return DockerfileError(f"{cmd} requires at least two arguments, but only one was provided. "
                           "Destination could not be determined")


def node_args(node: Node) -> list[str]:
    """The argument words of an instruction node (ONBUILD: the wrapped keyword and its words)."""
    result: list[str] = []
    n = node
    while n.next is not None:
        arg = n.next
        if not arg.children:
            result.append(arg.value)
        elif len(arg.children) == 1:
            result.append(arg.children[0].value)
            result.extend(node_args(arg.children[0]))
        n = arg
    return result


def handle_json_args(args: list[str], is_json: bool) -> list[str]:
    """Exec form keeps the words; shell form joins them into one string."""
    if not args:
        return []
    if is_json:
        return list(args)
    return [" ".join(args)]


MINIMUM_DURATION = 1_000_000  # 1ms, Docker's minimum healthcheck interval


def _parse_opt_interval(name: str, value: str) -> int:
    if value == "":
        return 0
    try:
        d = goformat.parse_duration(value)
    except ValueError as exc:
        raise DockerfileError(str(exc)) from None
    if d == 0:
        return 0
    if d < MINIMUM_DURATION:
        minimum = goformat.format_duration(MINIMUM_DURATION)
        raise DockerfileError(f'Interval "{name}" cannot be less than {minimum}')
    return d


def parse_port_spec(spec: str) -> PortSpec:
    """Read one EXPOSE word: ``80``, ``80/udp``, ``8000-8010/tcp`` (protocols tcp, udp, sctp)."""
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise DockerfileError(f"invalid proto: {proto}")
    if ":" in port:
        raise DockerfileError(f"invalid containerPort: {port}")
    start_s, dash, end_s = port.partition("-")
    try:
        start = int(start_s)
        end = int(end_s) if dash else start
    except ValueError:
        raise DockerfileError(f"invalid containerPort: {port}") from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise DockerfileError(f"invalid containerPort: {port}")
    return PortSpec(start, end, proto)


_RE_OCTAL = re.compile(r"^[0-7]{1,4}$")
_RE_SYMBOLIC = re.compile(r"^[ugoa]*[-+=]([rwxXst]*|[ugo])(,[ugoa]*[-+=]([rwxXst]*|[ugo]))*$")


def validate_chmod(value: str) -> None:
    """Check a ``--chmod`` value: octal (``755``, ``0644``) or symbolic (``u+x,go-w``)."""
    if value == "" or "$" in value:
        return  # empty, or expanded later
    if _RE_OCTAL.match(value) or _RE_SYMBOLIC.match(value):
        return
    raise DockerfileError(f"invalid chmod parameter: {value!s}")


# ---------------------------------------------------------------------------------------------
# Node -> instruction


def _get_comment(comments: list[str], name: str) -> str:
    if not name:
        return ""
    prefix = name + " "
    for line in comments:
        if line.startswith(prefix):
            return line[len(prefix):]
    return ""


_VALID_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


def _parse_kvps(args: list[str], cmd: str) -> list[KeyValuePair]:
    if not args:
        raise _at_least_one(cmd)
    if len(args) % 3 != 0:
        raise DockerfileError(f"Bad input to {cmd}, too many arguments")
    out: list[KeyValuePair] = []
    for j in range(0, len(args), 3):
        if args[j] == "":
            raise DockerfileError(f"{cmd} names can not be blank")
        out.append(KeyValuePair(args[j], args[j + 1], args[j + 2] == ""))
    return out


def _sources_and_dest(args: list[str], heredocs: list[Heredoc], cmd: str
                      ) -> tuple[list[str], list[SourceContent], str]:
    srcs, dest = args[:-1], args[-1]
    if must_parse_heredoc(dest) is not None:
        raise DockerfileError(f"{cmd} cannot accept a heredoc as a destination")
    lookup = {h.name: h for h in heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = must_parse_heredoc(src)
        if doc is not None:
            found = lookup.get(doc.name)
            data = found.content if found is not None else ""
            if doc.chomp:
                data = chomp_heredoc_content(data)
            contents.append(SourceContent(doc.name, data, doc.expand))
        else:
            paths.append(src)
    return paths, contents, dest


def _files(node: Node) -> list[ShellInlineFile]:
    return [ShellInlineFile(h.name, h.content, h.chomp) for h in node.heredocs]


def _not_json(cmd: str) -> DockerfileError:
    return DockerfileError(f"{cmd} requires the arguments to be in JSON form")


def parse_instruction(node: Node, filename: str = "Dockerfile") -> Instruction:
    """Turn one syntax tree node into a typed instruction; errors carry the node's file and line."""
    try:
        return _parse(node)
    except DockerfileError as exc:
        if exc.line > 0:
            raise
        raise DockerfileError(exc.detail, file=filename, line=node.start_line,
                              column=error_column(node, exc.detail)) from None


_RE_FLAG_IN_ERROR = re.compile(r"flag: (--[\w-]+)|flag specified: ([\w-]+)|value on flag: ([\w-]+)")


def error_column(node: Node, message: str) -> int:
    """Best column for an error about ``node``: the flag it names if that is on the first line,
    else where the instruction starts."""
    m = _RE_FLAG_IN_ERROR.search(message)
    if m is not None:
        token = next(g for g in m.groups() if g)
        if not token.startswith("--"):
            token = "--" + token
        first_line = node.original
        at = first_line.find(token)
        if at >= 0:
            return node.column + at
    return node.column


class _Base(TypedDict):
    name: str
    original: str
    start_line: int
    end_line: int


def _parse(node: Node) -> Instruction:
    cmd = node.value.lower()
    args = node_args(node)
    flags = BFlags(node.flags)
    base: _Base = {"name": cmd, "original": node.original, "start_line": node.start_line,
                   "end_line": node.end_line}
    is_json = node.is_json

    if cmd in ("env", "label"):
        flags.parse()
        pairs = _parse_kvps(args, cmd.upper())
        if cmd == "env":
            return EnvInstruction(**base, env=pairs)
        return LabelInstruction(**base, labels=pairs)
    if cmd == "maintainer":
        if len(args) != 1:
            raise _exactly_one("MAINTAINER")
        flags.parse()
        return MaintainerInstruction(**base, maintainer=args[0])
    if cmd in ("add", "copy"):
        if len(args) < 2:
            raise _no_destination(cmd.upper())
        chown = flags.add_string("chown")
        chmod = flags.add_string("chmod")
        link = flags.add_bool("link")
        excludes = flags.add_strings("exclude")
        if cmd == "copy":
            from_ = flags.add_string("from")
            parents = flags.add_bool("parents")
        else:
            keep_git = flags.add_bool("keep-git-dir")
            checksum = flags.add_string("checksum")
            unpack = flags.add_bool("unpack")
        flags.parse()
        validate_chmod(chmod.value)
        paths, contents, dest = _sources_and_dest(args, node.heredocs, cmd.upper())
        if cmd == "copy":
            return CopyInstruction(**base, sources=paths, contents=contents, dest=dest, chown=chown.value,
                                   chmod=chmod.value, link=link.is_true, excludes=list(excludes.values),
                                   from_=from_.value, parents=parents.is_true)
        if checksum.value and not checksum.value.startswith("$") and ":" not in checksum.value:
            raise DockerfileError(f"invalid checksum digest format: {checksum.value}")
        return AddInstruction(**base, sources=paths, contents=contents, dest=dest, chown=chown.value,
                              chmod=chmod.value, link=link.is_true, excludes=list(excludes.values),
                              checksum=checksum.value, keep_git_dir=keep_git.is_true,
                              unpack=unpack.is_true if flags.is_used("unpack") else None)
    if cmd == "from":
        stage_name = ""
        if len(args) == 3 and args[1].lower() == "as":
            stage_name = args[2].lower()
            if not _VALID_STAGE_NAME.match(stage_name):
                raise DockerfileError(f'invalid name for build stage: "{args[2]}", name can\'t start with a '
                                      "number or contain symbols")
        elif len(args) != 1:
            raise DockerfileError("FROM requires either one or three arguments")
        platform = flags.add_string("platform")
        flags.parse()
        return FromInstruction(**base, base_name=args[0], stage_name=stage_name, platform=platform.value,
                               comment=_get_comment(node.prev_comment, stage_name))
    if cmd == "onbuild":
        if not args:
            raise _at_least_one("ONBUILD")
        flags.parse()
        trigger = args[0].strip().upper()
        if trigger == "ONBUILD":
            raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
        for h in node.heredocs:
            expression += "\n" + h.content + h.name
        return OnbuildInstruction(**base, expression=expression)
    if cmd == "workdir":
        if len(args) != 1:
            raise _exactly_one("WORKDIR")
        flags.parse()
        return WorkdirInstruction(**base, path=args[0])
    if cmd == "run":
        if not node.flags:  # the common case: every flag at its default
            return RunInstruction(**base, cmd_line=handle_json_args(args, is_json), prepend_shell=not is_json,
                                  files=_files(node))
        mount = flags.add_strings("mount")
        network = flags.add_string("network", "default")
        security = flags.add_string("security", "sandbox")
        device = flags.add_strings("device")
        flags.parse()
        if network.value not in ("default", "none", "host"):
            raise DockerfileError(f'unsupported network mode "{network.value}"')
        if security.value not in ("sandbox", "insecure"):
            raise DockerfileError(f'unsupported security mode "{security.value}"')
        mounts = [parse_mount(v) for v in mount.values]
        return RunInstruction(**base, cmd_line=handle_json_args(args, is_json), prepend_shell=not is_json,
                              files=_files(node), mounts=mounts, raw_mounts=list(mount.values),
                              network=network.value, security=security.value,
                              devices=[parse_device(v) for v in device.values], flags_used=list(flags.used))
    if cmd in ("cmd", "entrypoint"):
        flags.parse()
        klass = CmdInstruction if cmd == "cmd" else EntrypointInstruction
        return klass(**base, cmd_line=handle_json_args(args, is_json), prepend_shell=not is_json,
                     files=_files(node))
    if cmd == "healthcheck":
        return _parse_healthcheck(node, args, flags, base)
    if cmd == "expose":
        if not args:
            raise _at_least_one("EXPOSE")
        flags.parse()
        return ExposeInstruction(**base, ports=sorted(args))
    if cmd == "user":
        if len(args) != 1:
            raise _exactly_one("USER")
        flags.parse()
        return UserInstruction(**base, user=args[0])
    if cmd == "volume":
        if not args:
            raise _at_least_one("VOLUME")
        flags.parse()
        vols = []
        for v in args:
            v = v.strip()
            if v == "":
                raise DockerfileError("VOLUME specified can not be an empty string")
            vols.append(v)
        return VolumeInstruction(**base, volumes=vols)
    if cmd == "stopsignal":
        if len(args) != 1:
            raise _exactly_one("STOPSIGNAL")
        flags.parse()
        return StopSignalInstruction(**base, signal=args[0])
    if cmd == "arg":
        if not args:
            raise _at_least_one("ARG")
        flags.parse()
        specs = []
        for a in args:
            key, eq, val = a.partition("=")
            spec = ArgSpec(key, val if eq else None)
            spec.comment = _get_comment(node.prev_comment, spec.key)
            specs.append(spec)
        return ArgInstruction(**base, args=specs)
    if cmd == "shell":
        flags.parse()
        shell = handle_json_args(args, is_json)
        if not shell:
            raise _at_least_one("SHELL")
        if not is_json:
            raise _not_json("SHELL")
        return ShellInstruction(**base, shell=shell)
    _unknown(node.value)
    raise AssertionError("unreachable")


def _unknown(word: str) -> None:
    message = wrap_suggestion(f"unknown instruction: {word}", word, INSTRUCTIONS, match_case=True)
    raise DockerfileError(message)


def _parse_healthcheck(node: Node, args: list[str], flags: BFlags, base: _Base) -> Instruction:
    if not args:
        raise _at_least_one("HEALTHCHECK")
    typ = args[0].upper()
    rest = args[1:]
    if typ == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        flags.parse()
        return HealthcheckInstruction(**base, test=["NONE"])
    interval = flags.add_string("interval")
    timeout = flags.add_string("timeout")
    start_period = flags.add_string("start-period")
    start_interval = flags.add_string("start-interval")
    retries = flags.add_string("retries")
    flags.parse()
    if typ != "CMD":
        raise DockerfileError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    cmd_slice = handle_json_args(rest, node.is_json)
    if not cmd_slice:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = [typ if node.is_json else "CMD-SHELL", *cmd_slice]
    n_retries = 0
    if retries.value:
        try:
            n_retries = int(retries.value, 10)
        except ValueError:
            raise DockerfileError(f'strconv.ParseInt: parsing "{retries.value}": invalid syntax') from None
        if n_retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({n_retries})")
    return HealthcheckInstruction(
        **base, test=test,
        interval=_parse_opt_interval("interval", interval.value),
        timeout=_parse_opt_interval("timeout", timeout.value),
        start_period=_parse_opt_interval("start-period", start_period.value),
        start_interval=_parse_opt_interval("start-interval", start_interval.value),
        retries=n_retries)
