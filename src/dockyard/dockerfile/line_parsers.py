"""Argument shapes of each instruction, as BuildKit's ``line_parsers.go``: exec JSON, shell strings,
``KEY=value`` pairs, whitespace lists, HEALTHCHECK and ONBUILD, plus the leading ``--flags``."""

from __future__ import annotations

import json
import re
from typing import Any

from dockyard import goformat
from dockyard.dockerfile.shell import is_space
from dockyard.dockerfile.tree import Node
from dockyard.errors import DockerfileError

_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


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


def _parse_name_val(rest: str, key: str, escape_token: str) -> Node | None:
    words = parse_words(rest, escape_token)
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
                f"Syntax error - can't find = in {goformat.quote(word)}. Must be of the form: name=value")
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


def _parse_args(cmd: str, rest: str, escape_token: str) -> tuple[Node | None, dict[str, bool]]:
    if cmd in ("run", "cmd", "entrypoint", "shell"):
        return _parse_maybe_json(rest)
    if cmd in ("add", "copy", "volume"):
        return _parse_maybe_json_to_list(rest)
    if cmd in ("from", "expose"):
        return _parse_strings_ws(rest), {}
    if cmd in ("env", "label"):
        return _parse_name_val(rest, cmd.upper(), escape_token), {}
    if cmd == "arg":
        return _chain(parse_words(rest, escape_token)), {}
    if cmd in ("maintainer", "stopsignal", "user", "workdir"):
        return (Node(value=rest) if rest else None), {}
    if cmd == "healthcheck":
        return _parse_health_config(rest)
    if cmd == "onbuild":
        if rest == "":
            return None, {}
        child = node_from_line(rest, escape_token, [])
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


def node_from_line(line: str, escape_token: str, comments: list[str]) -> Node:
    """One instruction line (continuations joined) as a node: the word, ``--flags`` and the arguments."""
    cmd, flags, args = _split_command(line)
    nxt, attrs = _parse_args(cmd.lower(), args, escape_token)
    return Node(value=cmd, original=line, flags=flags, next=nxt, attributes=attrs, prev_comment=comments)
