"""``print``, ``println`` and ``printf`` with Go's fmt verbs."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.gotemplate import Template, go_sprintf


@pytest.mark.parametrize(("template", "data", "expected"), [
    ('{{printf "%s|%v|%q" .A .A .A}}', {"A": ["x", "y"]}, '[x y]|[x y]|%!q([]string=[x y])'),
    ('{{printf "%x %X %o %b %c %t %5.2f %e %g" 255 255 8 5 65 true 3.14159 1234.5 0.5}}', None,
     "ff FF 10 101 A true  3.14 1.234500e+03 0.5"),
    ('{{printf "%03d|%-4d|%+d|%x" 7 7 7 "hi"}}', None, "007|7   |+7|6869"),
    ('{{printf "%q" "a\\tb"}}', None, '"a\\tb"'),
    ("{{print 1 2 \"a\" \"b\" 3}}", None, "1 2ab3"),  # a space only between two non-strings
    ("{{println 1 \"a\"}}", None, "1 a\n"),
    ("{{print .Missing}}", {}, "<nil>"),
])
def test_printing(template: str, data: Any, expected: str) -> None:
    assert Template(template).execute(data) == expected


def test_go_sprintf_directly() -> None:
    assert go_sprintf("%d%%", 50) == "50%"
    assert go_sprintf("%s", 1) == "%!s(int=1)"
