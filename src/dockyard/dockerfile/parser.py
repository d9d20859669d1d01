"""The Dockerfile parser: text to a syntax tree, exactly as BuildKit's ``frontend/dockerfile/parser``.

:func:`parse` reads directives (``# syntax``, ``# escape``, ``# check``, :mod:`.directives`), comments,
line continuations, heredocs (:mod:`.heredoc`) and the per-instruction argument shapes (exec JSON, shell
string, ``KEY=value`` pairs..., :mod:`.line_parsers`) into :class:`Node` objects (:mod:`.tree`).
:meth:`Node.dump` prints BuildKit's test dump format. The names of those modules are re-exported here.
"""

from __future__ import annotations

from dockyard.dockerfile.directives import DirectiveParser, DirectiveState, detect_syntax, parse_directive
from dockyard.dockerfile.heredoc import (
    chomp_heredoc_content,
    heredocs_from_line,
    must_parse_heredoc,
    parse_heredoc,
)
from dockyard.dockerfile.line_parsers import (
    NOT_STRING_ARRAY,
    extract_builder_flags,
    node_from_line,
    parse_json_array,
    parse_words,
)
from dockyard.dockerfile.tree import Directive, Heredoc, Node, ParseResult, ParseWarning
from dockyard.errors import DockerfileError

__all__ = [
    "MAX_LINE_BYTES", "NOT_STRING_ARRAY", "Directive", "DirectiveParser", "Heredoc", "Node", "ParseResult",
    "ParseWarning", "chomp_heredoc_content", "detect_syntax", "extract_builder_flags", "heredocs_from_line",
    "must_parse_heredoc", "parse", "parse_directive", "parse_heredoc", "parse_json_array", "parse_words",
]

MAX_LINE_BYTES = 65535


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
    d = DirectiveState()
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
            child = node_from_line(line, d.escape_token, comments)
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
