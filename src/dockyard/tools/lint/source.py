"""A lenient view of a Dockerfile for linting, built on :mod:`dockyard.dockerfile`.

The front end splits the text into instructions; each is typed with ``parse_instruction`` where it
can be. hadolint lints some things BuildKit refuses (``ONBUILD ONBUILD``, ``ONBUILD FROM``, odd
flags), so an instruction that does not type keeps ``typed=None`` and rules fall back on its words.
"""

from __future__ import annotations

import re
from functools import cached_property

from dockyard.dockerfile import Instruction, Node, RunInstruction, parse, parse_instruction
from dockyard.errors import DockerfileError
from dockyard.record import field, record
from dockyard.tools.lint.shell import Command, Script, parse_script

_POSIX_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh"})
_PRAGMA = re.compile(r"^\s*#\s*hadolint\s+(global\s+)?(ignore|shell)\s*=\s*(.*?)\s*$", re.IGNORECASE)


@record
class Mount:
    """A ``RUN --mount`` as far as the rules care: type, target and ``from``."""

    type: str
    target: str
    from_: str = ""


@record
class Instr:
    """One instruction: ``kind`` in upper case, its first ``line``, typed form when it has one."""

    kind: str
    line: int
    end_line: int
    node: Node
    typed: Instruction | None
    inner: Instr | None = None  # the trigger of an ONBUILD
    # False after ``# hadolint shell=powershell`` and the like: dockyard's advice skips such RUNs
    # (hadolint's DL rules ignore the pragma, which only switches its ShellCheck pass)
    posix_shell: bool = True
    pragma_shell: str = ""  # the shell a ``# hadolint shell=`` pragma before it names, if any
    error: str = ""  # why the front end could not type it

    @property
    def args(self) -> list[str]:
        """The words after the keyword and its flags, as the front end split them."""
        return [v for v in self.node.values() if v != ""] if self.node.next is not None else []

    @property
    def flags(self) -> list[str]:
        """The ``--flag`` words as written."""
        return list(self.node.flags)

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value``, or ``None`` when the flag is absent."""
        for f in self.node.flags:
            key, sep, value = f[2:].partition("=")
            if key.lower() == name:
                return unquote(value) if sep else ""
        return None

    @cached_property
    def mounts(self) -> list[Mount]:
        """The ``--mount`` flags of a RUN, read leniently (``type`` defaults to ``bind``)."""
        out: list[Mount] = []
        for f in self.node.flags:
            if not f.lower().startswith("--mount="):
                continue
            fields = dict(part.partition("=")[::2] for part in f[len("--mount=") :].split(","))
            target = fields.get("target") or fields.get("dst") or fields.get("destination") or ""
            out.append(
                Mount(fields.get("type", "bind"), target.rstrip("/") or target, fields.get("from", ""))
            )
        return out

    def cache_mounted(self, *paths: str) -> bool:
        """True if a ``cache`` or ``tmpfs`` mount covers one of ``paths``."""
        return any(m.type in ("cache", "tmpfs") and m.target in paths for m in self.mounts)

    @cached_property
    def shell_text(self) -> str:
        """The shell script a RUN runs (heredoc bodies included); empty for the exec form."""
        typed = self.typed
        if isinstance(typed, RunInstruction):
            if not typed.prepend_shell:
                return ""
            text = " ".join(typed.cmd_line)
            if typed.files and text.lstrip().startswith("<<"):
                return "\n".join(f.data for f in typed.files)
            return text
        if self.node.is_json:
            return ""
        return " ".join(self.args)

    @cached_property
    def script(self) -> Script:
        """The commands of a RUN (exec form: the one command it names)."""
        typed = self.typed
        if isinstance(typed, RunInstruction) and not typed.prepend_shell:
            words = typed.cmd_line
            return Script([Command(words[0], words[1:], raw_args=words[1:])] if words else [])
        if self.node.is_json:
            words = self.args
            return Script([Command(words[0], words[1:], raw_args=words[1:])] if words else [])
        return parse_script(self.shell_text)


@record
class Source:
    """A Dockerfile ready to lint: instructions, pragmas, and the lines of comments."""

    instrs: list[Instr]
    ignores: dict[int, set[str]] = field(default_factory=dict)  # instruction line -> codes
    global_ignores: set[str] = field(default_factory=set)
    ignore_pragma_lines: list[int] = field(default_factory=list)


def unquote(word: str) -> str:
    """``"a b"`` or ``'a b'`` -> ``a b``; anything else unchanged."""
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word


def _typed(node: Node, filename: str) -> tuple[Instruction | None, str]:
    """The typed instruction, or ``None`` and the front end's complaint."""
    try:
        return parse_instruction(node, filename), ""
    except DockerfileError as exc:
        return None, re.sub(r"^\S+:\d+(:\d+)?: ", "", str(exc))


def _make(node: Node, filename: str) -> Instr:
    kind = node.value.upper()
    typed, error = _typed(node, filename)
    instr = Instr(kind, node.start_line, node.end_line, node, typed, error=error)
    if kind == "ONBUILD":
        expression = re.sub(r"^\s*\S+\s*", "", node.original, count=1)
        try:
            children = parse(expression + "\n", filename).children
        except DockerfileError:
            children = []
        if children:
            inner = _make(children[0], filename)
            inner.line += node.start_line - 1
            inner.end_line += node.start_line - 1
            instr.inner = inner
    return instr


def load(text: str, filename: str = "Dockerfile") -> Source:
    """Split ``text`` into instructions and read its ``# hadolint`` pragmas."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        nodes = parse(text, filename).children
    except DockerfileError as exc:
        if "no instructions" in str(exc):
            nodes = []
        else:
            raise
    instrs = [_make(n, filename) for n in nodes]
    covered: set[int] = set()
    for n in nodes:
        covered.update(range(n.start_line, n.end_line + 1))
    src = Source(instrs)
    starts_set = {i.line for i in instrs}
    shell_switches: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if lineno in covered:
            continue
        m = _PRAGMA.match(line)
        if not m:
            continue
        is_global, kind, value = bool(m.group(1)), m.group(2).lower(), m.group(3)
        if kind == "shell":
            shell_switches.append((lineno, value.strip()))
            continue
        codes = {c.strip().upper() for c in value.split("#", 1)[0].split(",") if c.strip()}
        src.ignore_pragma_lines.append(lineno)
        if is_global:
            src.global_ignores |= codes
            continue
        # As hadolint: the pragma covers the instruction on the very next line only.
        if lineno + 1 in starts_set:
            src.ignores.setdefault(lineno + 1, set()).update(codes)
    for instr in instrs:
        shell = ""
        for lineno, name in shell_switches:
            if lineno < instr.line:
                shell = name
        posix = not shell or shell.rsplit("/", 1)[-1].lower() in _POSIX_SHELLS
        for each in (instr, instr.inner):
            if each is not None:
                each.posix_shell, each.pragma_shell = posix, shell
    return src
