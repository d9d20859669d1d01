"""The lexer's errors, as Go's text/template words them (``template: :LINE: message``)."""

from __future__ import annotations

import pytest

from dockyard.gotemplate import TemplateError
from dockyard.gotemplate.lexer import Lexer


@pytest.mark.parametrize(("template", "message"), [
    ("{{", "template: :1: unclosed action"),
    ("{{\"abc}}", "template: :1: unterminated quoted string"),
    ("{{`abc}}", "template: :1: unterminated raw quoted string"),
    ("{{/* x }}", "template: :1: unclosed comment"),
    ("{{#}}", "template: :1: unrecognized character in action: U+0023 '#'"),
    ("{{'\n'}}", "template: :1: unterminated character constant"),
    ("\n\n{{", "template: :3: unclosed action"),
])
def test_lexer_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Lexer(template).run()
    assert str(info.value) == message


def test_tokens_and_trim_markers() -> None:
    toks = [(t.kind, t.val) for t in Lexer("a  {{- .X | printf \"%d\" 1 -}}  b").run() if t.kind != "space"]
    assert toks[0] == ("text", "a")
    assert ("field", ".X") in toks and ("string", "%d") in toks and ("number", "1") in toks
    assert toks[-2] == ("text", "b")
