"""The template lexer: text and actions into tokens, with Go's error messages."""

from __future__ import annotations

import re
from typing import NoReturn

from dockyard.gotemplate.errors import TemplateError

_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}


class Tok:
    __slots__ = ("kind", "pos", "val")

    def __init__(self, kind: str, val: str, pos: int) -> None:
        self.kind = kind
        self.val = val
        self.pos = pos

    def __repr__(self) -> str:
        return f"Tok({self.kind}, {self.val!r}, {self.pos})"


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[Tok] = []

    def fail(self, msg: str, pos: int) -> NoReturn:
        raise TemplateError(f"template: :{line_of(self.text, pos)}: {msg}")

    def run(self) -> list[Tok]:
        text = self.text
        i = 0
        trim_next = False
        while True:
            j = text.find("{{", i)
            chunk = text[i:] if j < 0 else text[i:j]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            trim_left = j >= 0 and text.startswith("{{-", j) and j + 3 < len(text) and text[j + 3] in _SPACE
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.toks.append(Tok("text", chunk, i))
            if j < 0:
                break
            k = j + (4 if trim_left else 2)
            i, trim_next = self._action(j, k)
        self.toks.append(Tok("eof", "", len(text)))
        return self.toks

    def _right_delim(self, k: int) -> tuple[int, bool] | None:
        """If a right delimiter (optionally trimmed) starts at k, return (end, trims)."""
        text = self.text
        if text.startswith("}}", k):
            return k + 2, False
        if text.startswith(" -}}", k) or text.startswith("\t-}}", k) or text.startswith("\n-}}", k) \
                or text.startswith("\r-}}", k):
            return k + 4, True
        return None

    def _action(self, start: int, k: int) -> tuple[int, bool]:
        text = self.text
        # Comments: {{/* ... */}} with only optional trim markers around them.
        m = k
        while m < len(text) and text[m] in _SPACE and k != start + 2:
            m += 1
        if text.startswith("/*", m):
            end = text.find("*/", m + 2)
            if end < 0:
                self.fail("unclosed comment", start)
            rd = self._right_delim(end + 2)
            if rd is None:
                self.fail("comment ends before closing delimiter", start)
            return rd
        self.toks.append(Tok("left", "{{", start))
        depth = 0
        n = len(text)
        while True:
            if k >= n:
                self.fail("unclosed action", start)
            rd = self._right_delim(k)
            if rd is not None and depth == 0:
                self.toks.append(Tok("right", "}}", k))
                return rd
            if rd is not None and depth > 0:
                self.fail("unclosed left paren", k)
            c = text[k]
            if c in _SPACE:
                e = k
                while e < n and text[e] in _SPACE and self._right_delim(e) is None:
                    e += 1
                if e == k:  # a space that starts " -}}"
                    e = k + 1
                self.toks.append(Tok("space", text[k:e], k))
                k = e
            elif c == "=":
                self.toks.append(Tok("assign", "=", k))
                k += 1
            elif c == ":":
                if not text.startswith(":=", k):
                    self.fail("expected :=", k)
                self.toks.append(Tok("declare", ":=", k))
                k += 2
            elif c == "|":
                self.toks.append(Tok("pipe", "|", k))
                k += 1
            elif c == ",":
                self.toks.append(Tok("comma", ",", k))
                k += 1
            elif c == "(":
                depth += 1
                self.toks.append(Tok("lparen", "(", k))
                k += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    self.fail(f"unexpected right paren {_quote_rune(c)}", k)
                self.toks.append(Tok("rparen", ")", k))
                k += 1
            elif c == '"':
                e = k + 1
                while True:
                    if e >= n or text[e] == "\n":
                        self.fail("unterminated quoted string", k)
                    if text[e] == "\\":
                        e += 2
                        continue
                    if text[e] == '"':
                        break
                    e += 1
                self.toks.append(Tok("string", _unquote(text[k:e + 1], self, k), k))
                k = e + 1
            elif c == "`":
                e = text.find("`", k + 1)
                if e < 0:
                    self.fail("unterminated raw quoted string", k)
                self.toks.append(Tok("string", text[k + 1:e].replace("\r", ""), k))
                k = e + 1
            elif c == "'":
                e = k + 1
                while e < n and text[e] not in "'\n":
                    e += 2 if text[e] == "\\" else 1
                if e >= n or text[e] == "\n":
                    self.fail("unterminated character constant", k)
                s = _unquote('"' + text[k + 1:e] + '"', self, k)
                if len(s) != 1:
                    self.fail(f"malformed character constant: {text[k:e + 1]}", k)
                self.toks.append(Tok("number", str(ord(s)), k))
                k = e + 1
            elif c == "$":
                e = k + 1
                while e < n and (text[e].isalnum() or text[e] == "_"):
                    e += 1
                self.toks.append(Tok("variable", text[k:e], k))
                k = e
            elif c == "." and not (k + 1 < n and text[k + 1].isdigit()):
                e = k + 1
                while e < n and (text[e].isalnum() or text[e] == "_"):
                    e += 1
                self.toks.append(Tok("field" if e > k + 1 else "dot", text[k:e], k))
                k = e
            elif c.isdigit() or c in "+-." :
                m2 = _NUMBER.match(text, k)
                if not m2 or (m2.end() < n and (text[m2.end()].isalnum())):
                    e = m2.end() if m2 else k + 1
                    while e < n and text[e].isalnum():
                        e += 1
                    self.fail(f"bad number syntax: {text[k:e]!r}".replace("'", '"'), k)
                self.toks.append(Tok("number", m2.group(), k))
                k = m2.end()
            elif c.isalpha() or c == "_":
                e = k
                while e < n and (text[e].isalnum() or text[e] == "_"):
                    e += 1
                word = text[k:e]
                kind = "keyword" if word in _KEYWORDS else "bool" if word in ("true", "false") \
                    else "nil" if word == "nil" else "ident"
                self.toks.append(Tok(kind, word, k))
                k = e
            else:
                self.fail(f"unrecognized character in action: {_quote_rune(c)}", k)


_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
    r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")


def _quote_rune(c: str) -> str:
    return f"U+{ord(c):04X} '{c}'"


def _unquote(lit: str, lexer: Lexer, pos: int) -> str:
    """Decode a Go interpreted string literal."""
    body = lit[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1:i + 2]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            hexs = body[i + 2:i + 2 + width]
            if len(hexs) != width or not all(h in "0123456789abcdefABCDEF" for h in hexs):
                lexer.fail(f"invalid syntax: {lit}", pos)
            out.append(chr(int(hexs, 16)))
            i += 2 + width
        elif nxt.isdigit():
            octs = body[i + 1:i + 4]
            out.append(chr(int(octs, 8)))
            i += 4
        else:
            lexer.fail(f"invalid syntax: {lit}", pos)
    return "".join(out)
