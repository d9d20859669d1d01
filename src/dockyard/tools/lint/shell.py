"""A small POSIX shell splitter: enough of ``sh`` to see the commands a RUN line runs.

``parse_script(text)`` splits a script into simple commands (name, unquoted arguments, leading
``VAR=value`` assignments) and records which commands sit in a pipeline. Quotes, backslashes,
``$(...)``, backticks and ``${...}`` stay inside their word (the commands of ``$(...)`` and backticks
are found too); ``&&``, ``||``, ``;``, ``&``, ``|``,
newlines, parentheses and braces separate commands; redirections are dropped with their target;
reserved words (``if``, ``then``, ``do``...) are skipped so the commands inside compound statements
are found. It never fails: unbalanced quotes simply run to the end of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from dockyard.record import field, record

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac", "time"}
)
_SKIP_COMMAND = frozenset({"for", "case", "select", "function"})
_OPERATORS = ("&&", "||", ";;", "|&", "|", ";", "&", "(", ")", "\n")
_REDIRECT = re.compile(r"^(\d*|&)(>>|>\||>&|<&|<<-|<<<|<<|<>|>|<)")


@record
class Word:
    """One shell word: ``text`` with quotes and escapes removed, ``raw`` as written."""

    text: str
    raw: str


@record
class Command:
    """A simple command: ``name`` and ``args`` unquoted, ``assignments`` as ``(name, value)``."""

    name: str
    args: list[str]
    assignments: list[tuple[str, str]] = field(default_factory=list)
    raw_args: list[str] = field(default_factory=list)
    in_pipeline: bool = False

    def has_flag(self, *names: str) -> bool:
        """True if any of ``names`` is given: ``"y"`` matches ``-y`` and ``-qy``, ``"yes"`` ``--yes``."""
        return any(_flag_matches(arg, name) for arg in self._options() for name in names)

    def flag_count(self, name: str) -> int:
        """How often a short (one letter) or long flag is given, counting ``-qq`` as two."""
        count = 0
        for arg in self._options():
            if len(name) == 1 and arg.startswith("-") and not arg.startswith("--"):
                count += arg[1:].split("=", 1)[0].count(name)
            elif arg == f"--{name}" or arg.startswith(f"--{name}="):
                count += 1
        return count

    def flag_value(self, *names: str) -> str | None:
        """The value of the first of ``names`` given as ``-o value``, ``--opt value`` or ``--opt=value``."""
        opts = self.args
        for i, arg in enumerate(opts):
            for name in names:
                flag = f"-{name}" if len(name) == 1 else f"--{name}"
                if arg == flag and i + 1 < len(opts):
                    return opts[i + 1]
                if arg.startswith(flag + "=") or (
                    len(name) == 1 and arg.startswith(flag) and len(arg) > 2 and not arg.startswith("--")
                ):
                    return arg[len(flag) + (1 if arg[len(flag)] == "=" else 0) :]
        return None

    def positionals(self, with_value: Iterable[str] = (), stop_at_dashdash: bool = False) -> list[str]:
        """Arguments that are not flags; flags in ``with_value`` (``-t``, ``--target``) eat the next word."""
        takes = set(with_value)
        out: list[str] = []
        skip = False
        for arg in self.args:
            if skip:
                skip = False
                continue
            if arg == "--" and stop_at_dashdash:
                break
            if arg.startswith("-") and arg != "-":
                if "=" not in arg and arg in takes:
                    skip = True
                continue
            out.append(arg)
        return out

    def _options(self) -> list[str]:
        out = []
        for arg in self.args:
            if arg == "--":
                break
            if arg.startswith("-") and arg != "-":
                out.append(arg)
        return out


def _flag_matches(arg: str, name: str) -> bool:
    if len(name) == 1:
        return arg.startswith("-") and not arg.startswith("--") and name in arg[1:].split("=", 1)[0]
    return arg == f"--{name}" or arg.startswith(f"--{name}=")


@record
class Script:
    """The commands of a script in order; ``has_pipe`` if any ``|`` joins two commands."""

    commands: list[Command]
    has_pipe: bool = False

    def find(self, *names: str) -> list[Command]:
        """Commands whose name (or basename, for ``/usr/bin/apt-get``) is one of ``names``."""
        return [c for c in self.commands if c.name in names or c.name.rsplit("/", 1)[-1] in names]

    def uses(self, *names: str) -> bool:
        """True if any command is called one of ``names``."""
        return bool(self.find(*names))


def _read_until_close(text: str, i: int, opener: str, closer: str) -> int:
    """Index just past the ``closer`` matching an ``opener`` already consumed before ``i``."""
    depth = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and opener == "(":
            j = text.find("'", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == '"':
            i = _skip_double(text, i + 1)
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_double(text: str, i: int, substitutions: list[str] | None = None) -> int:
    """Index just past the ``"`` that closes a double-quoted string starting at ``i``."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if text.startswith("$(", i):
            end = _read_until_close(text, i + 2, "(", ")")
            if substitutions is not None and not text.startswith("$((", i):
                substitutions.append(text[i + 2 : end - 1])
            i = end
            continue
        if c == "`":
            j = _backtick_end(text, i + 1)
            if substitutions is not None:
                substitutions.append(_backtick_body(text[i + 1 : j]))
            i = min(n, j + 1)
            continue
        i += 1
    return n


def _backtick_end(text: str, i: int) -> int:
    """Index of the backtick closing one opened just before ``i`` (``len(text)`` if none)."""
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "`":
            return i
        i += 1
    return n


def _backtick_body(body: str) -> str:
    """The command inside backticks: a backslash before a backslash, backtick or dollar goes."""
    return re.sub(r"\\([\\`$])", r"\1", body)


def tokenize(text: str, substitutions: list[str] | None = None) -> list[Word | str]:
    """Split ``text`` into :class:`Word` objects and operator strings (``"&&"``, ``"|"``, ``"\\n"``...).

    The bodies of ``$(...)`` and backtick substitutions (bare or in double quotes) are appended to
    ``substitutions`` when given.
    """
    tokens: list[Word | str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(op)
            i += len(op)
            continue
        start = i
        out: list[str] = []
        while i < n:
            c = text[i]
            if c in " \t\r\n;&|()":
                break
            if c == "\\":
                if i + 1 < n and text[i + 1] == "\n":
                    i += 2
                    continue
                if i + 1 < n:
                    out.append(text[i + 1])
                i += 2
                continue
            if c == "'":
                j = text.find("'", i + 1)
                j = n if j < 0 else j
                out.append(text[i + 1 : j])
                i = j + 1
                continue
            if c == '"':
                end = _skip_double(text, i + 1, substitutions)
                inner = (
                    text[i + 1 : end - 1] if end <= n and text[end - 1 : end] == '"' else text[i + 1 : end]
                )
                out.append(re.sub(r'\\([$`"\\\n])', r"\1", inner))
                i = end
                continue
            if text.startswith("$(", i):
                end = _read_until_close(text, i + 2, "(", ")")
                out.append(text[i:end])
                if substitutions is not None and not text.startswith("$((", i):
                    substitutions.append(text[i + 2 : end - 1])
                i = end
                continue
            if text.startswith("${", i):
                end = _read_until_close(text, i + 2, "{", "}")
                out.append(text[i:end])
                i = end
                continue
            if c == "`":
                j = _backtick_end(text, i + 1)
                out.append(text[i : j + 1])
                if substitutions is not None:
                    substitutions.append(_backtick_body(text[i + 1 : j]))
                i = min(n, j + 1)
                continue
            out.append(c)
            i += 1
        tokens.append(Word("".join(out), text[start:i]))
    return tokens


def parse_script(text: str) -> Script:
    """Split ``text`` into its simple commands (see the module docstring)."""
    commands: list[Command] = []
    has_pipe = False
    words: list[Word] = []
    pipe_group: list[Command] = []

    def flush(op: str) -> None:
        nonlocal has_pipe
        cmd = _build(words)
        words.clear()
        if cmd is not None:
            commands.append(cmd)
            pipe_group.append(cmd)
        if op in ("|", "|&"):
            return
        if len(pipe_group) > 1:
            has_pipe = True
            for member in pipe_group:
                member.in_pipeline = True
        pipe_group.clear()

    nested: list[str] = []
    tokens = tokenize(text, nested)
    i = 0
    case_depth = 0  # inside ``case ... esac``
    in_pattern = False  # between ``in``/``;;`` and ``)`` of a case: ``a|b)`` is no pipe
    while i < len(tokens):
        tok = tokens[i]
        if isinstance(tok, str):
            if tok in ("|", "|&") and not in_pattern:
                # a pipe after ``{ ...; }`` or ``( ... )`` joins compound commands: no simple command
                # stands on its left, but the pipeline's status is still that of its last command
                has_pipe = True
            elif tok == ";;" and case_depth:
                in_pattern = True
            elif tok == ")" and in_pattern:
                in_pattern = False
                i += 1
                continue
            if not (in_pattern and tok in ("|", "\n")):
                flush(tok)
        else:
            if not words and tok.raw == "case":
                case_depth += 1
            elif case_depth and tok.raw == "in" and not in_pattern and words and words[0].raw == "case":
                in_pattern = True
                words.clear()
                i += 1
                continue
            elif case_depth and tok.raw == "esac" and not words:
                case_depth -= 1
                in_pattern = False
            if in_pattern:
                i += 1
                continue
            m = _REDIRECT.match(tok.raw)
            if m and not tok.raw.startswith(("'", '"')):
                # A redirection: drop it and its target word (``> file`` or ``>file``).
                if (
                    len(m.group(0)) == len(tok.raw)
                    and i + 1 < len(tokens)
                    and isinstance(tokens[i + 1], Word)
                ):
                    i += 1
            else:
                words.append(tok)
        i += 1
    flush("\n")
    # Commands inside $(...) run too (``echo $(curl x)`` uses curl); ShellCheck sees them the same way.
    for body in nested:
        inner = parse_script(body)
        commands.extend(inner.commands)
        has_pipe = has_pipe or inner.has_pipe
    return Script(commands, has_pipe)


def _build(words: Sequence[Word]) -> Command | None:
    items = list(words)
    while items and items[0].raw in _RESERVED:
        items.pop(0)
    if not items or items[0].raw in _SKIP_COMMAND:
        return None
    assignments: list[tuple[str, str]] = []
    while items and _ASSIGNMENT.match(items[0].raw):
        key, _, value = items.pop(0).text.partition("=")
        assignments.append((key, value))
    if not items:
        return Command("", [], assignments)
    return Command(items[0].text, [w.text for w in items[1:]], assignments, [w.raw for w in items[1:]])
