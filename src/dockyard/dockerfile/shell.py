"""Shell-style word expansion as BuildKit's ``frontend/dockerfile/shell`` does it.

``ShellLex(escape).process_word(word, env)`` expands one word (quotes removed, no splitting);
``process_words`` also splits unquoted text and unquoted expansions on whitespace. Supported:
``$V ${V} ${V:-x} ${V-x} ${V:+x} ${V+x} ${V:?x} ${V?x} ${V#p} ${V##p} ${V%p} ${V%%p} ${V/p/r}
${V//p/r}``. Errors are :class:`~dockyard.errors.DockerfileError` with BuildKit's texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from dockyard import goformat
from dockyard.errors import DockerfileError
from dockyard.record import field, record

_EOF = ""  # the scanner's end marker: no real character is the empty string

# Go's unicode.IsSpace for Latin-1, plus the Unicode White_Space set via str.isspace above it.
_LATIN1_SPACE = frozenset(" \t\n\v\f\r\x85\xa0")


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace``."""
    if ch in _LATIN1_SPACE:
        return True
    return ord(ch) > 0xFF and ch.isspace()


_SPECIAL_PARAMS = frozenset("@*#?-$!0")




class EnvList(Mapping[str, str]):
    """An ``["K=V", ...]`` list read like BuildKit's env getter: a bare ``K`` is empty, the last one wins."""

    def __init__(self, items: Iterable[str]) -> None:
        self._d: dict[str, str] = {}
        for item in items:
            key, _, value = item.partition("=")
            self._d[key] = value

    def __getitem__(self, key: str) -> str:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


@record
class ProcessWordResult:
    """What ``process_word_with_matches`` returns: the result, its words, and the names it looked up."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class _Words:
    """Accumulates split words, as BuildKit's wordsStruct."""

    __slots__ = ("in_word", "word", "words")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.word += ch
            self.in_word = True

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        # Same as add_char for each character, a whitespace run at a time.
        parts = _WS_SPLIT.split(s)
        if parts[0]:
            self.word += parts[0]
            self.in_word = True
        for part in parts[1:]:
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
            if part:
                self.word += part
                self.in_word = True

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _ShellError(Exception):
    """Internal: an expansion failure, wrapped with the source word by the caller."""


# Each ${...} level costs a few Python frames (Go's stacks grow, Python's do not): past this depth the
# word is refused with an error rather than running into RecursionError. Real files nest a handful.
MAX_NESTING = 100


class _TooDeep(_ShellError):
    """Internal: ``${...}`` nested deeper than :data:`MAX_NESTING`."""


_PLAIN_RUNS: dict[tuple[str, str], re.Pattern[str]] = {}


def _plain_run(escape: str, stop: str) -> re.Pattern[str]:
    key = (escape, stop)
    found = _PLAIN_RUNS.get(key)
    if found is None:
        found = re.compile("[^$'\"" + re.escape(escape + stop) + "]+", re.DOTALL)
        _PLAIN_RUNS[key] = found
    return found


class _ShellWord:
    __slots__ = ("capture", "depth", "env", "escape", "matches", "nonmatches", "pos", "raw_escapes",
                 "raw_quotes", "skip_process_quotes", "skip_unset", "split", "src")

    def __init__(self, src: str, env: Mapping[str, str], lex: ShellLex, capture: bool,
                 split: bool = True) -> None:
        self.src = src
        self.split = split  # whether the top level must track split words (process_words)
        self.pos = 0
        self.env = env
        self.escape = lex.escape_token
        self.raw_quotes = lex.raw_quotes
        self.raw_escapes = lex.raw_escapes
        self.skip_unset = lex.skip_unset_env
        self.skip_process_quotes = lex.skip_process_quotes
        self.capture = capture
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()
        self.depth = 0  # ${...} levels open

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else _EOF

    def next(self) -> str:
        if self.pos < len(self.src):
            ch = self.src[self.pos]
            self.pos += 1
            return ch
        return _EOF

    def process_stop_on(self, stop: str, raw_escapes: bool | None = None) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        if raw_escapes is not None:
            self.raw_escapes = raw_escapes
        try:
            if stop:  # nested ${...}: only the text matters
                return self._process_stop_on_nosplit(stop), []
            return self._process_stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str) -> tuple[str, list[str]]:
        if not self.split:
            return self._process_stop_on_nosplit(stop), []
        result: list[str] = []
        words = _Words()
        quotes = not self.skip_process_quotes
        src = self.src
        n = len(src)
        while self.pos < n:
            ch = src[self.pos]
            if stop and ch == stop:
                self.pos += 1
                return "".join(result), words.get_words()
            if ch == "$":
                tmp = self.process_dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif quotes and ch == "'":
                tmp = self.process_single_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif quotes and ch == '"':
                tmp = self.process_double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                self.pos += 1
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise _ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def _process_stop_on_nosplit(self, stop: str) -> str:
        # _process_stop_on without word tracking: what process_word and nested ${...} need.
        result: list[str] = []
        quotes = not self.skip_process_quotes
        src = self.src
        n = len(src)
        escape = self.escape
        plain = _plain_run(escape, stop)
        while self.pos < n:
            run = plain.match(src, self.pos)
            if run is not None:  # copy ordinary characters in one go
                result.append(run.group())
                self.pos = run.end()
                if self.pos >= n:
                    break
            ch = src[self.pos]
            if stop and ch == stop:
                self.pos += 1
                return "".join(result)
            if ch == "$":
                result.append(self.process_dollar())
            elif quotes and ch == "'":
                result.append(self.process_single_quote())
            elif quotes and ch == '"':
                result.append(self.process_double_quote())
            else:
                self.pos += 1
                if ch == escape:
                    if self.raw_escapes:
                        result.append(ch)
                    if self.pos >= n:
                        break
                    ch = src[self.pos]
                    self.pos += 1
                result.append(ch)
        if stop:
            raise _ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result)

    def process_single_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        end = self.src.find("'", self.pos)
        if end < 0:
            raise _ShellError("unexpected end of statement while looking for matching single-quote")
        result.append(self.src[self.pos:end])
        self.pos = end + 1
        if self.raw_quotes:
            result.append("'")
        return "".join(result)

    def process_double_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        while True:
            p = self.peek()
            if p == _EOF:
                raise _ShellError("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                self.next()
                if self.raw_quotes:
                    result.append('"')
                return "".join(result)
            if p == "$":
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                nxt = self.peek()
                if nxt == _EOF:
                    continue  # a lone escape at the end is dropped; the loop then fails on EOF
                if nxt in ('"', "$") or nxt == self.escape:
                    if self.raw_escapes:
                        result.append(ch)
                    ch = self.next()
            result.append(ch)

    def process_name(self) -> str:
        src = self.src
        n = len(src)
        start = self.pos
        if start < n:
            ch = src[start]
            if ch.isdecimal():
                while self.pos < n and src[self.pos].isdecimal():
                    self.pos += 1
                return src[start:self.pos]
            if ch in _SPECIAL_PARAMS:
                self.pos += 1
                return ch
        while self.pos < n:
            ch = src[self.pos]
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            self.pos += 1
        return src[start:self.pos]

    def get_env(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is not None:
            if self.capture:
                self.matches.add(name)
            return value, True
        if self.capture:
            self.nonmatches.add(name)
        return "", False

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.next()
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _TooDeep(f"variable substitutions nested more than {MAX_NESTING} deep")
        try:
            return self._process_braced()
        finally:
            self.depth -= 1

    def _process_braced(self) -> str:
        # ${...} after the "${".
        p = self.peek()
        if p == _EOF:
            raise _ShellError("syntax error: missing '}'")
        if p in "{}:":
            raise _ShellError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch if ch else "\ufffd"
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._process_replace(name)
        if ch not in (":", "+", "-", "?", "#", "%"):
            raise _ShellError(f"unsupported modifier ({chs}) in substitution")
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch
        raw_escapes = ch in ("#", "%")
        if null_is_unset and raw_escapes:
            raise _ShellError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self.process_stop_on("}", raw_escapes)
        except _ShellError:
            if self.peek() == _EOF:
                raise _ShellError("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${" + name + chs + word + "}"
        unset = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise _ShellError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _ShellError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _ShellError(f"unsupported modifier ({chs}) in substitution")

    def _process_replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except _ShellError:
            if self.peek() == _EOF:
                raise _ShellError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except _ShellError:
            if self.peek() == _EOF:
                raise _ShellError("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _compile_pattern(pattern, True, False)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        m = regex.search(value)
        if m:
            value = value[:m.start()] + replacement + value[m.end():]
        return value


def convert_shell_pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> str:
    """The regular expression BuildKit builds for a ``${V#pattern}`` style glob (raises ValueError)."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            # } and / must be escaped inside ${}, but the escape is not part of the pattern
            if i < n and pattern[i] in "}/":
                continue
            out.append("\\")
            tok = pattern[i] if i < n else ""
            i += 1
            if tok not in ("*", "?", "\\"):
                raise ValueError(f"invalid escape '\\{tok}'")
        elif tok in "[]{}.+()|^$":
            out.append("\\")
        out.append(tok)
    return "".join(out)


_PATTERN_CACHE: dict[tuple[str, bool, bool], re.Pattern[str]] = {}


def _compile_pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    key = (pattern, greedy, anchored)
    compiled = _PATTERN_CACHE.get(key)
    if compiled is None:
        try:
            compiled = re.compile(convert_shell_pattern_to_regex(pattern, greedy, anchored))
        except (ValueError, re.error) as exc:
            raise _ShellError(f"invalid pattern ({pattern}) in substitution: {exc}") from None
        if len(_PATTERN_CACHE) < 1024:
            _PATTERN_CACHE[key] = compiled
    return compiled


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _compile_pattern(pattern, greedy, True).search(value)
    return value[m.end():] if m else value


def reverse_pattern(pattern: str) -> str:
    """Reverse a glob, keeping each ``\\x`` escape pair in order."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        j = last - i
        if tok == "\\" and i != last:
            out[j - 1] = tok
            out[j] = pattern[i + 1]
            i += 2
        else:
            out[j] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex cannot find the shortest rightmost match, so reverse both and trim a prefix.
    return _trim_prefix(reverse_pattern(pattern), value[::-1], greedy)[::-1]


class ShellLex:
    """BuildKit's shell lexer: expands ``$VARS``, removes quotes and escapes, splits words."""

    def __init__(self, escape_token: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset_env: bool = False, skip_process_quotes: bool = False) -> None:
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes
        # Characters that make a word need the full lexer; words without them pass through as-is.
        self._special = re.compile("[$'\"" + re.escape(escape_token) + "]")

    def _plain(self, word: str) -> bool:
        return self._special.search(word) is None

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand one word: the result is a single string, quotes and escapes removed, nothing split."""
        if self._plain(word):
            return word
        return self._process(word, env, capture=False, split=False).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand and split into words as a shell would (unquoted expansions are split too)."""
        if self._plain(word):
            return [w for w in split_ws(word) if w]
        return self._process(word, env, capture=False).words

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> ProcessWordResult:
        """Like :meth:`process_word`, also reporting which variable names were found and which not."""
        if self._plain(word):
            return ProcessWordResult(word, [w for w in split_ws(word) if w])
        return self._process(word, env, capture=True)

    def _process(self, word: str, env: Mapping[str, str], capture: bool, split: bool = True
                 ) -> ProcessWordResult:
        sw = _ShellWord(word, env, self, capture, split)
        try:
            result, words = sw.process_stop_on("")
        except _TooDeep as exc:
            shown = word if len(word) <= 80 else word[:80] + "..."
            raise DockerfileError(f"failed to process {goformat.quote(shown)}: {exc}") from None
        except _ShellError as exc:
            raise DockerfileError(f"failed to process {goformat.quote(word)}: {exc}") from None
        return ProcessWordResult(result, words, sw.matches, sw.nonmatches)


_WS_SPLIT = re.compile(r"[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def split_ws(s: str) -> list[str]:
    """Split on Go's unicode.IsSpace runs (may yield empty strings at the ends)."""
    return _WS_SPLIT.split(s)


_DEFAULT_LEX = ShellLex()


def expand(word: str, env: Mapping[str, str], escape_token: str = "\\") -> str:
    """Expand one word against ``env`` (see :meth:`ShellLex.process_word`)."""
    lex = _DEFAULT_LEX if escape_token == "\\" else ShellLex(escape_token)
    return lex.process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape_token: str = "\\") -> list[str]:
    """Expand and split (see :meth:`ShellLex.process_words`)."""
    lex = _DEFAULT_LEX if escape_token == "\\" else ShellLex(escape_token)
    return lex.process_words(word, env)
