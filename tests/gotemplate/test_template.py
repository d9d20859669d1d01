"""``Template``: added functions, per-run replacements, partial output and ``missing_key``."""

from __future__ import annotations

import pytest

from dockyard.gotemplate import Func, Template, TemplateError


def test_added_functions_and_per_run_replacement() -> None:
    tmpl = Template("{{shout .}}!", funcs={"shout": Func(lambda s: s.upper(), arity=1)})
    assert tmpl.execute("hi") == "HI!"
    assert tmpl.execute("hi", funcs={"shout": Func(lambda s: s, arity=1)}) == "hi!"
    assert tmpl.execute("hi") == "HI!"  # the replacement was for one run only


def test_partial_keeps_the_output_before_an_error() -> None:
    tmpl = Template("a{{.X.Y}}b")
    assert tmpl.execute({"X": 1}, partial=True) == "a"
    with pytest.raises(TemplateError, match=r"^template: :1:5: executing \"\" at <.X.Y>: can't evaluate"):
        tmpl.execute({"X": 1})


def test_missing_key() -> None:
    assert Template("{{.Nope}}").execute({}) == "<no value>"
    with pytest.raises(TemplateError, match=r'map has no entry for key "Nope"$'):
        Template("{{.Nope}}", missing_key="error").execute({})
    with pytest.raises(ValueError, match="missing_key must be"):
        Template("x", missing_key="zero")


def test_break_stops_only_the_loop() -> None:
    assert Template("{{range .}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}!").execute([1, 2, 3]) == "1!"
