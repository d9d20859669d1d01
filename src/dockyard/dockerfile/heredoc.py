"""Heredocs (``<<EOF`` ... ``EOF``) on RUN, COPY and ADD lines, read as BuildKit's parser reads them."""

from __future__ import annotations

import re

from dockyard.dockerfile.shell import ShellLex, split_ws
from dockyard.dockerfile.tree import Heredoc
from dockyard.errors import DockerfileError

_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$", re.DOTALL)
_RE_HEREDOC_OP = re.compile(r"^(\d*)<<(-?)$")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)

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
