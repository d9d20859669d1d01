"""The Dockerfile parser: text to a syntax tree, exactly as BuildKit's ``frontend/dockerfile/parser``.

:func:`parse` reads directives (``# syntax``, ``# escape``, ``# check``), comments, line continuations,
heredocs and the per-instruction argument shapes (exec JSON, shell string, ``KEY=value`` pairs...)
into :class:`Node` objects. :meth:`Node.dump` prints BuildKit's test dump format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from dockyard.dockerfile.shell import ShellLex, go_quote, is_space, split_ws
from dockyard.errors import DockerfileError

MAX_LINE_BYTES = 65535
DEFAULT_ESCAPE_TOKEN = "\\"

# Instructions that may carry heredocs, and those that may wrap one (ONBUILD RUN <<EOF).
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
HEREDOC_COMPOUND_INSTRUCTIONS = frozenset({"onbuild"})

_VALID_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$", re.DOTALL)
_RE_HEREDOC_OP = re.compile(r"^(\d*)<<(-?)$")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
# Go's \s is [\t\n\f\r ]; Python's is wider, so spell it out.
_GO_S = r"[\t\n\f\r ]"
_GO_SPACES = "\t\n\f\r "

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


@dataclass
class Heredoc:
    """A heredoc attached to an instruction: ``<<[-]NAME`` and the lines up to ``NAME``."""

    name: str
    content: str = ""
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "content": self.content, "file_descriptor": self.file_descriptor,
                "expand": self.expand, "chomp": self.chomp}


@dataclass(slots=True)
class Node:
    """One syntax tree node, shaped like BuildKit's: ``value`` then a ``next`` chain of arguments.

    An instruction node has ``value`` = the instruction word as written, ``flags`` (``--x=y`` words),
    ``next`` = its argument chain, ``attributes`` (``json`` for exec form), ``original`` (the joined
    line), ``start_line``/``end_line`` (1-based), ``heredocs`` and ``prev_comment`` (comment lines
    just above it). ONBUILD's argument is a node whose ``children`` hold the wrapped instruction.
    """

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0
    prev_comment: list[str] = field(default_factory=list)
    column: int = 1  # 1-based column where the instruction starts on its first line

    @property
    def is_json(self) -> bool:
        return self.attributes.get("json", False)

    def values(self) -> list[str]:
        """The argument values after this node (the ``next`` chain)."""
        out: list[str] = []
        n = self.next
        while n is not None:
            out.append(n.value)
            n = n.next
        return out

    def sub_node(self) -> Node | None:
        """The wrapped instruction of an ONBUILD node, if any."""
        if self.next is not None and self.next.children:
            return self.next.children[0]
        return None

    def can_contain_heredoc(self) -> bool:
        node: Node = self
        if node.value.lower() in HEREDOC_COMPOUND_INSTRUCTIONS:
            sub = node.sub_node()
            if sub is not None:
                node = sub
        if node.value.lower() not in HEREDOC_INSTRUCTIONS:
            return False
        return not node.is_json

    def dump(self) -> str:
        """BuildKit's ``Node.Dump()``: ``(cmd ["--flag"] "arg" ...)`` lines for a root node."""
        parts = [self.value.lower()]
        if self.flags:
            parts.append(" [" + " ".join(go_quote(f) for f in self.flags) + "]")
        for child in self.children:
            parts.append("(" + child.dump() + ")\n")
        n = self.next
        while n is not None:
            if n.children:
                parts.append(" " + n.dump())
            else:
                parts.append(" " + go_quote(n.value))
            n = n.next
        return "".join(parts).strip(" \t\n\v\f\r")

    def location(self) -> tuple[int, int]:
        return self.start_line, self.end_line

    def to_json(self) -> dict[str, Any]:
        """The instruction as a JSON object: cmd, sub_cmd, json, original, lines, flags, value, heredocs."""
        sub = self.sub_node()
        target = sub if sub is not None else self
        return {
            "cmd": self.value.lower(),
            "sub_cmd": sub.value.lower() if sub is not None else "",
            "json": target.is_json,
            "original": self.original,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "flags": list(target.flags) if sub is not None else list(self.flags),
            "value": target.values(),
            "heredocs": [h.to_json() for h in self.heredocs],
        }


@dataclass
class ParseWarning:
    """A parser warning (e.g. an empty continuation line), with where it was found."""

    short: str
    detail: list[str]
    url: str
    line: int


@dataclass
class Directive:
    """A parser directive line: ``# name=value``."""

    name: str
    value: str
    line: int


@dataclass
class ParseResult:
    """The syntax tree (``ast.children`` are the instructions), directives, warnings, escape token."""

    ast: Node
    warnings: list[ParseWarning]
    escape_token: str
    directives: list[Directive]
    filename: str = "Dockerfile"

    @property
    def children(self) -> list[Node]:
        return self.ast.children

    def dump(self) -> str:
        """The BuildKit test dump of the whole file (what the ``result`` files hold, minus a newline)."""
        return self.ast.dump()


class DirectiveParser:
    """Reads parser directives from the top of a file until the first line that is not one."""

    def __init__(self, comment: str = "#", line: int = 0) -> None:
        self.seen: set[str] = set()
        self.done = False
        self.line = line
        # BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, with the value trimmed in code:
        # the lazy group is quadratic in Python's backtracking engine on a long run of spaces.
        self._re = re.compile("^" + re.escape(comment) + _GO_S + r"*([a-zA-Z][a-zA-Z0-9]*)" + _GO_S
                              + "*=(.*)", re.DOTALL)

    def parse_line(self, line: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        m = self._re.match(line)
        if m is None:
            self.done = True
            return None
        rest = m.group(2)
        value = rest.strip(_GO_SPACES)
        if value == "":
            if rest == "":
                self.done = True
                return None
            value = rest[-1]  # the regex gives back one space for the value when there is nothing else
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return None
        if key in self.seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        return Directive(key, value, self.line)

    def parse_all(self, text: str) -> list[Directive]:
        out: list[Directive] = []
        for line in text.splitlines():
            if self.done:
                break
            d = self.parse_line(line)
            if d is not None:
                out.append(d)
        return out


def _discard_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def parse_directive(key: str, text: str | bytes) -> tuple[str, str, int] | None:
    """BuildKit's ``ParseDirective``: find directive ``key`` at the top of a Dockerfile.

    Returns ``(value, cmdline, line)`` (value = cmdline up to the first space) or None. ``#!`` on the
    first line is skipped; ``//key=`` and a JSON object are also accepted for ``syntax``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _discard_bom(text)
    line = 0
    first, _, rest = text.partition("\n")
    if first.startswith("#!"):
        text = rest
        line = 1
    comments = ["#", "//"] if key == "syntax" else ["#"]
    for comment in comments:
        parser = DirectiveParser(comment, line)
        try:
            directives = parser.parse_all(text)
        except DockerfileError:
            directives = []
        for d in directives:
            if d.name == key:
                return d.value.split(" ", 1)[0], d.value, d.line
    if key == "syntax":
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if isinstance(obj, dict) and isinstance(obj.get(key), str):
            return obj[key], obj[key], line
    return None


def detect_syntax(text: str | bytes) -> tuple[str, str, int] | None:
    """The ``# syntax=`` frontend reference, if the file names one (see :func:`parse_directive`)."""
    return parse_directive("syntax", text)


# ---------------------------------------------------------------------------------------------
# Heredocs


_NAME_LEX = ShellLex("\\", skip_unset_env=True)
_NAME_LEX_RAW = ShellLex("\\", skip_unset_env=True, raw_quotes=True)
_RE_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def _heredoc_from_parts(fd: str, chomp: bool, rest: str) -> Heredoc | None:
    if not rest:
        return None
    if _RE_PLAIN_NAME.fullmatch(rest):  # the common case: <<EOF
        return Heredoc(name=rest, expand=True, chomp=chomp, file_descriptor=int(fd) if fd else 0)
    # Lex the word with and without quotes: if they differ, part of it was quoted, so the
    # content must not be expanded.
    words = _NAME_LEX.process_words(rest, {})
    if len(words) != 1:
        return None
    words_raw = _NAME_LEX_RAW.process_words(rest, {})
    if len(words_raw) != len(words):
        raise DockerfileError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word = words[0]
    raw = words_raw[0]
    expand = (word.count("'") + word.count('"')) == (raw.count("'") + raw.count('"'))
    return Heredoc(name=word, expand=expand, chomp=chomp, file_descriptor=int(fd) if fd else 0)


def parse_heredoc(word: str) -> Heredoc | None:
    """BuildKit's ``ParseHeredoc``: ``<<[-]NAME`` (NAME may be quoted) or None if not a heredoc word."""
    m = _RE_HEREDOC.match(word)
    if m is None:
        return None
    return _heredoc_from_parts(m.group(1), m.group(2) == "-", m.group(3))


def must_parse_heredoc(word: str) -> Heredoc | None:
    """:func:`parse_heredoc`, with a malformed heredoc word treated as no heredoc."""
    try:
        return parse_heredoc(word)
    except DockerfileError:
        return None


_HEREDOC_LINE_LEX = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)


def heredocs_from_line(line: str) -> list[Heredoc]:
    """Every heredoc opener on an instruction line, in order (``<< EOF`` with a space included)."""
    if "'" in line or '"' in line or "\\" in line or "$" in line:
        try:
            words = _HEREDOC_LINE_LEX.process_words(line, {})
        except DockerfileError:
            return []
    else:
        words = [w for w in split_ws(line) if w]  # nothing for the lexer to do but split
    docs: list[Heredoc] = []
    i = 0
    while i < len(words):
        word = words[i]
        op = _RE_HEREDOC_OP.match(word)
        if op is not None and i + 1 < len(words):
            # "<< EOF" / "<<- EOF": the name is the next word.
            doc = _heredoc_from_parts(op.group(1), op.group(2) == "-", words[i + 1])
            i += 2
        else:
            doc = parse_heredoc(word)
            i += 1
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc_content(src: str) -> str:
    """Strip leading tabs from every line (``<<-`` heredocs)."""
    return _RE_LEADING_TABS.sub("", src)


# ---------------------------------------------------------------------------------------------
# Argument shapes (BuildKit's line_parsers.go)


class _Directives:
    __slots__ = ("escape_token", "line_continuation", "parser")

    def __init__(self) -> None:
        self.parser = DirectiveParser()
        self.escape_token = DEFAULT_ESCAPE_TOKEN
        self.line_continuation = "\\"

    def set_escape_token(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise DockerfileError(f"invalid escape token '{s}' does not match ` or \\")
        self.escape_token = s
        self.line_continuation = s


def _chain(values: list[str]) -> Node | None:
    root: Node | None = None
    prev: Node | None = None
    for v in values:
        node = Node(value=v)
        if prev is None:
            root = node
        else:
            prev.next = node
        prev = node
    return root


_WORD_RES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}


def _word_res(esc: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    found = _WORD_RES.get(esc)
    if found is None:
        e = re.escape(esc)
        sp = r"\t\n\v\f\r \x85\xa0"
        # Possessive quantifiers: each alternative starts with a different character, so there is
        # nothing to backtrack into, and without them a bad quote makes fullmatch exponential.
        word = rf"""(?:[^{sp}"'{e}]|{e}.|"(?:[^"{e}]|{e}.)*+"|'[^']*+')++"""
        found = (re.compile(rf"[{sp}]*+(?:{word}[{sp}]*+)*+", re.DOTALL), re.compile(word, re.DOTALL))
        _WORD_RES[esc] = found
    return found


def parse_words(rest: str, escape_token: str = "\\") -> list[str]:
    """Split on whitespace keeping quotes and escapes (used for ENV/LABEL/ARG)."""
    if "'" not in rest and '"' not in rest and escape_token not in rest:
        return [w for w in _RE_WS_ANY.split(rest) if w]
    whole_re, word_re = _word_res(escape_token)
    if whole_re.fullmatch(rest):
        # Well-formed quotes and escapes: a regex gives the same words as the loop below.
        return word_re.findall(rest)
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while True:
        if pos == n:
            if phase != in_spaces and (blank_ok or word):
                words.append("".join(word))
            break
        ch = rest[pos]
        pos += 1
        if phase == in_spaces:
            if is_space(ch):
                continue
            phase = in_word
        if phase == in_word:
            if is_space(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape_token:
                if pos == n:
                    continue  # an escape token at the end of the line is dropped
                # Unquoted: keep the escape and the next character, even a quote.
                word.append(ch)
                ch = rest[pos]
                pos += 1
            word.append(ch)
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape_token and quote != "'":
            if pos == n:
                phase = in_word
                continue
            word.append(ch)
            ch = rest[pos]
            pos += 1
        word.append(ch)
    return words


_RE_WS_ANY = re.compile(r"[\t\n\v\f\r \x85\xa0]+")


def _parse_name_val(rest: str, key: str, d: _Directives) -> Node | None:
    words = parse_words(rest, d.escape_token)
    if not words:
        return None
    if "=" not in words[0]:
        # Old form: KEY name value...
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{key} must have two arguments")
        return _chain([parts[0], parts[1], ""])
    values: list[str] = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        k, _, v = word.partition("=")
        values += [k, v, "="]
    return _chain(values)


def parse_json_array(rest: str) -> list[str] | None:
    """An exec-form JSON array of strings, or None if ``rest`` is not JSON (then it is shell form).

    Raises DockerfileError if it is a JSON array with a member that is not a string.
    """
    rest = rest.lstrip(" \t\n\v\f\r\x85\xa0")
    if not rest.startswith("["):
        return None
    try:
        value, _ = _JSON_DECODER.raw_decode(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, str):
            raise DockerfileError(NOT_STRING_ARRAY)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # Go's JSON has no NaN/Infinity


_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_maybe_json(rest: str) -> tuple[Node | None, dict[str, bool]]:
    if rest == "":
        return None, {}
    arr = parse_json_array(rest)
    if arr is not None:
        return _chain(arr), {"json": True}
    return Node(value=rest), {}


def _parse_strings_ws(rest: str) -> Node | None:
    if rest == "":
        return None
    return _chain(_RE_WHITESPACE.split(rest))


def _parse_maybe_json_to_list(rest: str) -> tuple[Node | None, dict[str, bool]]:
    arr = parse_json_array(rest)
    if arr is not None:
        return _chain(arr), {"json": True}
    return _parse_strings_ws(rest), {}


def _parse_health_config(rest: str) -> tuple[Node | None, dict[str, bool]]:
    sep = 0
    n = len(rest)
    while sep < n and not is_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < n and is_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return None, {}
    cmd, attrs = _parse_maybe_json(rest[nxt:])
    return Node(value=rest[:sep], next=cmd), attrs


def _parse_args(cmd: str, rest: str, d: _Directives) -> tuple[Node | None, dict[str, bool]]:
    if cmd in ("run", "cmd", "entrypoint", "shell"):
        return _parse_maybe_json(rest)
    if cmd in ("add", "copy", "volume"):
        return _parse_maybe_json_to_list(rest)
    if cmd in ("from", "expose"):
        return _parse_strings_ws(rest), {}
    if cmd in ("env", "label"):
        return _parse_name_val(rest, cmd.upper(), d), {}
    if cmd == "arg":
        return _chain(parse_words(rest, d.escape_token)), {}
    if cmd in ("maintainer", "stopsignal", "user", "workdir"):
        return (Node(value=rest) if rest else None), {}
    if cmd == "healthcheck":
        return _parse_health_config(rest)
    if cmd == "onbuild":
        if rest == "":
            return None, {}
        child = _node_from_line(rest, d, [])
        return Node(children=[child]), {}
    return Node(), {}  # unknown instructions are reported later, by the instruction layer


def extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """Split leading ``--flag[=value]`` words off an instruction's arguments (``--`` ends them)."""
    if not line.startswith("--"):
        return line, []
    if "'" not in line and '"' not in line and "\\" not in line:
        return _extract_plain_flags(line)
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos != n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == in_word:
            if is_space(ch):
                phase = in_spaces
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


_RE_SPACES = re.compile(r"[\t\n\v\f\r \x85\xa0]+")
_RE_NONSPACE = re.compile(r"[^\t\n\v\f\r \x85\xa0]+")


def _extract_plain_flags(line: str) -> tuple[str, list[str]]:
    # extract_builder_flags for lines without quotes or backslashes: whole words at a time.
    words: list[str] = []
    pos = 0
    n = len(line)
    while True:
        m = _RE_SPACES.match(line, pos)
        if m is not None:
            pos = m.end()
        if pos >= n:
            return "", words
        if not line.startswith("--", pos) or pos + 2 > n:
            return line[pos:], words
        w = _RE_NONSPACE.match(line, pos)
        assert w is not None
        word = w.group()
        pos = w.end()
        if word == "--":
            return line[pos:], words
        words.append(word)


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(line.strip(" \t\n\v\f\r\x85\xa0"), maxsplit=1)
    flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, flags = extract_builder_flags(parts[1])
    return parts[0], flags, args.strip(" \t\n\v\f\r\x85\xa0")


def _node_from_line(line: str, d: _Directives, comments: list[str]) -> Node:
    cmd, flags, args = _split_command(line)
    nxt, attrs = _parse_args(cmd.lower(), args, d)
    return Node(value=cmd, original=line, flags=flags, next=nxt, attributes=attrs, prev_comment=comments)


# ---------------------------------------------------------------------------------------------
# The line loop


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t\n\v\f\r\x85\xa0").startswith("#")


def _too_long(line: str) -> bool:
    n = len(line)
    if n <= MAX_LINE_BYTES // 4:
        return False  # even 4-byte characters cannot reach the limit
    return n > MAX_LINE_BYTES or len(line.encode("utf-8", "replace")) > MAX_LINE_BYTES


def _strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


def parse(text: str | bytes, filename: str = "Dockerfile") -> ParseResult:
    """Parse a Dockerfile into a :class:`ParseResult`; raises DockerfileError naming file and line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    d = _Directives()
    directives: list[Directive] = []
    root = Node(start_line=-1)
    warnings: list[ParseWarning] = []
    comments: list[str] = []
    # Lines keep their "\n" (heredoc bodies are copied byte for byte); the last may lack one.
    lines = _split_keep_lf(text)
    n = len(lines)
    i = 0
    current = 0

    def fail(msg: str, line: int, column: int = 0) -> DockerfileError:
        return DockerfileError(msg, file=filename, line=line, column=column)

    def directive(raw: str) -> bool:
        try:
            found = d.parser.parse_line(raw)
            if found is not None:
                directives.append(found)
                if found.name == "escape":
                    d.set_escape_token(found.value)
        except DockerfileError as exc:
            raise fail(exc.detail, current + 1) from None
        return found is not None

    while i < n:
        raw = lines[i]
        i += 1
        if len(raw) > 16000 and _too_long(raw.rstrip("\r\n")):
            raise fail(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", current + 1)
        if current == 0:
            raw = raw.removeprefix("\ufeff")
        stripped = raw.rstrip("\r\n").lstrip(" \t\n\v\f\r\x85\xa0")
        is_comment = stripped.startswith("#")
        if is_comment:
            # BuildKit drops the first byte of the raw line, not the "#": an indented comment
            # keeps its "#" in the doc comment. Kept for identical stage/ARG descriptions.
            comment = raw[1:].strip(" \t\n\v\f\r\x85\xa0")
            if comment == "":
                comments = []
            else:
                comments.append(comment)
        if not d.parser.done and directive(stripped) and comments:
            comments.pop()  # a directive is not a doc comment
        current += 1
        line = "" if is_comment else stripped
        start = current
        column = len(raw.rstrip("\r\n")) - len(stripped) + 1
        esc = d.line_continuation
        line, end_of_line = _trim_continuation(line, esc)
        if end_of_line and line == "":
            continue
        parts = [line]
        empty_continuation = False
        while not end_of_line and i < n:
            raw = lines[i]
            i += 1
            cont = raw.rstrip("\r\n")
            if len(cont) > 16000 and _too_long(cont):
                raise fail(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", current + 1)
            if not d.parser.done:
                directive(cont)
            current += 1
            if _is_comment(cont):
                continue
            if cont.lstrip(" \t\n\v\f\r\x85\xa0") == "":
                empty_continuation = True
                continue
            cont, end_of_line = _trim_continuation(cont, esc)
            parts.append(cont)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(ParseWarning(
                short="Empty continuation line found in: " + line,
                detail=["Empty continuation lines will become errors in a future release"],
                url="https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
                line=current))
        try:
            child = _node_from_line(line, d, comments)
        except DockerfileError as exc:
            raise fail(exc.detail, start) from None
        if "<<" in line and child.can_contain_heredoc():
            try:
                docs = heredocs_from_line(line)
            except DockerfileError as exc:
                raise fail(exc.detail, start) from None
            for doc in docs:
                body: list[str] = []
                terminated = False
                while i < n:
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = _strip_newline(raw)
                    if _too_long(candidate):
                        raise fail(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}",
                                   current)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise fail("unterminated heredoc", start)
                doc.content = "".join(body)
                child.heredocs.append(doc)
        child.start_line = start
        child.end_line = current
        child.column = column
        if root.start_line < 0:
            root.start_line = start
        root.end_line = current
        root.children.append(child)
        comments = []
    if root.start_line < 0:
        raise fail("file with no instructions", current)
    return ParseResult(ast=root, warnings=warnings, escape_token=d.escape_token, directives=directives,
                       filename=filename)


def _split_keep_lf(text: str) -> list[str]:
    # splitlines() also breaks on a lone "\r" (and more); Dockerfiles only break on "\n".
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def _trim_continuation(line: str, esc: str) -> tuple[str, bool]:
    # The escape token followed only by spaces/tabs at the end of the line continues it, unless
    # it is itself escaped (BuildKit's `(^|[^\\])\\[ \t]*$`).
    stripped = line.rstrip(" \t")
    if stripped.endswith(esc) and (len(stripped) == 1 or stripped[-2] != esc):
        return stripped[:-1], False
    return line, True
