"""text/template's predefined functions: comparison, index/slice/len, escapers, call."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.gotemplate import Template

CASES: list[tuple[str, Any, str]] = [
    ("{{index . \"a\" 1}}", {"a": ["x", "y"]}, "y"),
    ("{{index .M \"nope\"}}|", {"M": {"k": "v"}}, "|"),
    ("{{slice . 1 3}}", "abcd", "bc"),
    ("{{slice . 1}}", [1, 2, 3], "[2 3]"),
    ("{{len .}}", "héllo", "6"),
    ("{{lt 1 2}} {{le 2 2}} {{gt 3 2}} {{ge 1 2}} {{eq \"a\" \"a\"}} {{ne .X nil}}", {"X": None},
     "true true true false true false"),
    ("{{eq 3 1 2 3}}", None, "true"),
    ('{{html "<a&b>"}} {{urlquery "a b&c"}} {{js "it\'s"}}', None, "&lt;a&amp;b&gt; a+b%26c it\\'s"),
    ("{{and 1 0 2}} {{or 0 \"\" 3}}", None, "0 3"),
]


@pytest.mark.parametrize(("template", "data", "expected"), CASES)
def test_builtins(template: str, data: Any, expected: str) -> None:
    assert Template(template).execute(data) == expected


@pytest.mark.parametrize(("template", "data", "message"), [
    ("{{index . 5}}", [1], "error calling index: index out of range: 5"),
    ("{{index . \"a\"}}", [1], "error calling index: cannot index slice/array with type string"),
    ("{{slice . 3 1}}", "abcd", "error calling slice: invalid slice index: 3 > 1"),
    ("{{slice . 1 5}}", "abcd", "error calling slice: index out of range: 5"),
    ("{{slice . -1}}", "abcd", "error calling slice: index out of range: -1"),
    ("{{slice . 1 2 1}}", [1, 2, 3], "error calling slice: invalid slice index: 2 > 1"),
    ("{{lt true false}}", None, "error calling lt: invalid type for comparison"),
    ("{{call .F}}", {"F": 1}, "error calling call: non-function of type int"),
])
def test_builtin_errors(template: str, data: Any, message: str) -> None:
    with pytest.raises(Exception) as info:
        Template(template).execute(data)
    assert str(info.value).endswith(": " + message)
