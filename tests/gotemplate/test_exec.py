# ruff: noqa: E501  (expected messages are Go's own long lines; wrapping them hides the comparison)
"""The executor: Go's text/template semantics and execution errors, with the predefined functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dockyard.gotemplate import Context, Func, Template, TemplateError
from dockyard.record import record


@record
class _P:
    name: str


@record
class _Q:
    a: int
    b: list[str]


GO_CASES: list[tuple[str, Any, str]] = [
    ("plain text", None, "plain text"),
    ("{{.}}", None, "<nil>"),
    ("{{.Missing}}", {}, "<no value>"),
    ("{{.A.B.C}}", {"A": {}}, "<no value>"),
    ("{{.}}", [1, "a", None, True], "[1 a <nil> true]"),
    ("{{.}}", {"b": [1, 2], "a": {"x": None}}, "map[a:map[x:<nil>] b:[1 2]]"),
    ("{{.}}", False, "false"),
    ("{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}", None, "12"),
    ("{{range $i, $v := .}}{{$i}}:{{$v}} {{end}}", ["a", "b"], "0:a 1:b "),
    ("{{range $v := .}}{{$v}}{{end}}", {"b": 2, "a": 1}, "12"),
    ("{{range .}}{{.}}{{end}}", 3, "012"),
    ("{{range .}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}", [0, 1, 2], "02"),
    ("{{range .}}x{{else}}empty{{end}}", [], "empty"),
    ("{{range .}}x{{else}}empty{{end}}", None, "empty"),
    ("{{with .A}}{{.}}{{else}}none{{end}}", {"A": ""}, "none"),
    ("{{with .A}}{{.}}{{else with .B}}b={{.}}{{end}}", {"A": 0, "B": 7}, "b=7"),
    ("{{if and .A .B}}both{{else if or .A .B}}one{{else}}none{{end}}", {"A": 1, "B": 0}, "one"),
    ("{{if not .A}}no{{end}}", {"A": []}, "no"),
    ("a  {{- 1 -}}  b", None, "a1b"),
    ("a  {{-1}}", None, "a  -1"),
    ("{{- /* comment */ -}}\n  x", None, "x"),
    ("{{`raw\\n`}}", None, "raw\\n"),
    ('{{"\\u00e9\\x41\\n"}}', None, "éA\n"),
    ("{{(index . 1).Name}}", [{}, {"Name": "n"}], "n"),
    ("{{.Label \"x\"}}", Context({"Label": lambda k: f"label {k}"}), "label x"),
    ("{{.Method}}", Context({"Method": lambda: "called"}), "called"),
    ("{{.name}}", _P("n"), "n"),
    ("{{.}}", _Q(1, ["x"]), "{1 [x]}"),
    ("{{.}}", dt.datetime(2026, 11, 27, 21, 12, 15, tzinfo=dt.UTC), "2026-11-27 21:12:15 +0000 UTC"),
    ("line1\n{{.}}\nline3", 5, "line1\n5\nline3"),
    ("{{ (printf \"%s-%s\" .A .A) }}", {"A": "x"}, "x-x"),
    ("{{$}}", {"k": "v"}, "map[k:v]"),
    ("{{range $k, $v := .}}{{$k}}{{end}}{{$k := 5}}{{$k}}", {"a": 1}, "a5"),
    ("{{if .}}{{$x := 1}}{{$x}}{{end}}", True, "1"),
    ("{{true}} {{false}} {{nil | print}}", None, "true false <nil>"),
]


@pytest.mark.parametrize(("template", "data", "expected"), GO_CASES)
def test_go_template_semantics(template: str, data: Any, expected: str) -> None:
    assert Template(template).execute(data) == expected


# A function with a typed Go signature, for the executor's argument checks.
TYPED = {"rep": Func(lambda s, n: s * n, arity=2, params=("string", "int"))}

GO_ERRORS: list[tuple[str, Any, str]] = [
    ("{{.A.B}}", {"A": None}, 'template: :1:4: executing "" at <.A.B>: nil pointer evaluating interface {}.B'),
    ("{{rep .N 1}}", {"N": 5}, 'template: :1:6: executing "" at <.N>: wrong type for value; expected string; got int'),
    ("{{rep \"a\"}}", None, 'template: :1:2: executing "" at <rep>: wrong number of args for rep: want 2 got 1'),
    ('{{rep "a" "2"}}', None, 'template: :1:10: executing "" at <"2">: expected integer; found "2"'),
    ("{{rep 5 1}}", None, 'template: :1:6: executing "" at <5>: expected string; found 5'),
    ("{{rep .N 1}}", {"N": None}, 'template: :1:6: executing "" at <.N>: invalid value; expected string'),
    ("{{len .}}", Context(type_name="imageContext"), 'template: :1:2: executing "" at <len .>: error calling '
                                                     "len: len of type formatter.imageContext"),
    ("{{len 3}}", None, 'template: :1:2: executing "" at <len 3>: error calling len: len of type int'),
    ("{{eq 1 \"a\"}}", None, 'template: :1:2: executing "" at <eq 1 "a">: error calling eq: '
                             "incompatible types for comparison"),
    ("x\n {{.X.Y}}", {"X": "s"}, 'template: :2:5: executing "" at <.X.Y>: can\'t evaluate field Y in type string'),
    ("{{range .}}{{end}}", "str", 'template: :1:8: executing "" at <.>: range can\'t iterate over str'),
    ("{{range .X}}{{end}}", {"X": 5.5}, 'template: :1:8: executing "" at <.X>: range can\'t iterate over 5.5'),
    ('{{printf "%s %s" "aaaaaaaaaaaaaaaaaaaa" .X.Y}}', {"X": 1},
     'template: :1:42: executing "" at <.X.Y>: can\'t evaluate field Y in type int'),
    ("{{if .A}}{{.B.C}}{{end}}", {"A": 1, "B": None},
     'template: :1:13: executing "" at <.B.C>: nil pointer evaluating interface {}.C'),
    ("{{.A 1}}", {"A": "s"}, 'template: :1:2: executing "" at <.A>: A has arguments but cannot be invoked as '
                             "function"),
    ("{{1 2}}", None, 'template: :1:2: executing "" at <1>: can\'t give argument to non-function 1'),
    ("{{and}}", None, 'template: :1:2: executing "" at <and>: wrong number of args for and: want at least 1 got 0'),
]


@pytest.mark.parametrize(("template", "data", "message"), GO_ERRORS)
def test_execution_errors(template: str, data: Any, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(template, funcs=TYPED).execute(data)
    assert str(info.value) == message
