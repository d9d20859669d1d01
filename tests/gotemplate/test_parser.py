"""The parser's errors (names, nesting, pipelines) and the function names it accepts."""

from __future__ import annotations

import pytest

from dockyard.gotemplate import BUILTINS, Func, TemplateError
from dockyard.gotemplate.parser import Parser


@pytest.mark.parametrize(("template", "message"), [
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{else}}", "unexpected {{else}}"),
    ("{{range .}}{{end}}{{end}}", "unexpected {{end}}"),
    ("{{.A | 1}}", "non executable command in pipeline stage 2"),
    ("{{}}", "missing value for command"),
    ("{{if}}{{end}}", "missing value for if"),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{(.A}}", "unclosed left paren"),
    ("{{.A)}}", "unexpected right paren U+0029 ')'"),
    ("{{template \"x\"}}", "{{template}} is not supported"),
    ("{{'ab'}}", "malformed character constant: 'ab'"),
    ("\n\n{{nope}}", 'function "nope" not defined'),
    ("{{upper .}}", 'function "upper" not defined'),
])
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Parser(template, BUILTINS).parse()
    text = str(info.value)
    assert text.startswith("template: :")
    assert text.endswith(": " + message)
    assert (":3:" in text) == template.startswith("\n\n")


def test_added_function_names_parse() -> None:
    names = {**BUILTINS, "upper": Func(str.upper, arity=1)}
    assert Parser("{{upper .}}", names).parse()
