# ruff: noqa: E501  (expected outputs are docker's own long lines; wrapping them hides the comparison)
"""dockyard.cli.format against what docker 20.10 (and Go's text/template, tabwriter, go-units) print.

Expected strings were taken from running ``docker images --format`` / ``docker image inspect --format``
on this machine, from go-units' own test tables, and from Go's tabwriter documentation.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.cli import format as fmt
from dockyard.cli.format import Context
from dockyard.errors import InvalidArgument
from dockyard.record import record
from tests.conftest import PEERS
from tests.peers import require, unavailable


# One `docker images` row, as docker 20.10 printed it for `{{json .}}`.
@record
class _ZA:
    """A struct value for templates (fields in declaration order, as Go's encoding/json writes them)."""

    z: int
    a: int


ROW = Context({
    "Containers": "N/A", "CreatedAt": "2026-11-27 21:12:15 +0000 UTC", "CreatedSince": "4 minutes ago",
    "Digest": "<none>", "ID": "e2319ca76111", "Repository": "busybox", "SharedSize": "N/A",
    "Size": "1.98MB", "Tag": "local", "UniqueSize": "N/A", "VirtualSize": "1.984MB",
}, type_name="imageContext")

# `docker image inspect` data (Go maps and slices; an empty Context is Go's struct{}{}).
INSPECT: dict[str, Any] = {
    "Os": "linux", "Size": 1984291, "RepoTags": ["busybox:local"], "RepoDigests": [],
    "Config": {
        "Labels": {"b": "2", "a": "1", "with space": "x y"},
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "X=1", "Y=2"],
        "Cmd": ["echo", "hi"], "ExposedPorts": {"80/tcp": Context(), "443/udp": Context()},
        "Entrypoint": [], "Healthcheck": None,
    },
}


def run(template: str, data: Any = ROW) -> str:
    return fmt.format_rows(template, [data], headers=fmt.IMAGE_HEADERS)


def error_of(template: str, data: Any = ROW) -> str:
    with pytest.raises(InvalidArgument) as info:
        run(template, data)
    return str(info.value)


# --------------------------------------------------------------------------------------------------
# Templates: cases checked against docker 20.10 on this machine

DOCKER_IMAGES_CASES = [
    ("{{upper .Containers}}", "N/A\n"),
    ("{{json .}}", '{"Containers":"N/A","CreatedAt":"2026-11-27 21:12:15 +0000 UTC","CreatedSince":"4 minutes '
     'ago","Digest":"\\u003cnone\\u003e","ID":"e2319ca76111","Repository":"busybox","SharedSize":"N/A",'
     '"Size":"1.98MB","Tag":"local","UniqueSize":"N/A","VirtualSize":"1.984MB"}\n'),
    ("table {{.Repository}}\\t{{.ID}}\\t{{.Size | upper}}",
     "REPOSITORY   IMAGE ID       SIZE\nbusybox      e2319ca76111   1.98MB\n"),
    ("table {{.Repository}}:{{.Tag}}", "REPOSITORY:TAG\nbusybox:local\n"),
    ('{{.Repository}} {{printf "%q %5d|%-6s|%v" .Tag 42 "ab" .Tag}}', 'busybox "local"    42|ab    |local\n'),
    ('{{range $i, $e := split .Repository "/"}}{{$i}}={{$e}};{{end}}', "0=busybox;\n"),
    ('{{len .ID}} {{index (split .Repository "/") 0}} {{ "a\\tb" }}|{{- "  x  " -}}|',
     "12 busybox a\tb|  x  |\n"),
    ('{{printf "%d" .ID}} {{printf "%s"}} {{printf "%s" 1 2}}',
     "%!d(string=e2319ca76111) %!s(MISSING) %!s(int=1)%!(EXTRA int=2)\n"),
    ('{{.ID | printf "%s-%s" "a"}}', "a-e2319ca76111\n"),
    ("{{with $x := .Tag}}{{$x}}{{end}}", "local\n"),
    ('{{pad .Tag 2 3}}|{{truncate .ID 4}}|{{title "hello world-foo"}}|{{join (split "a,b" ",") "+"}}',
     "  local   |e231|Hello World-Foo|a+b\n"),
    ('{{eq .Tag "local" "x"}} {{ne 1 2}} {{lt 1 2}} {{and 1 0}} {{or 0 "" "z"}} {{not 0}}',
     "true true true 0 z true\n"),
    ('{{print 1 2 "a" "b" 3}}|{{println 1 "a"}}|', "1 2ab3|1 a\n|\n"),
    ("{{printf \"%v %T\" 1.5 1.5}} {{printf \"%v\" 1e6}} {{printf \"%v\" 123456.0}} {{ 3.0 }} {{ 1e21 }} "
     "{{0x1F}} {{ 'a' }}", "1.5 float64 1e+06 123456 3 1e+21 31 97\n"),
    (fmt.DEFAULT_IMAGE_TABLE, "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE\n"
                              "busybox      local     e2319ca76111   4 minutes ago   1.98MB\n"),
    ("json", '{"Containers":"N/A","CreatedAt":"2026-11-27 21:12:15 +0000 UTC","CreatedSince":"4 minutes '
     'ago","Digest":"\\u003cnone\\u003e","ID":"e2319ca76111","Repository":"busybox","SharedSize":"N/A",'
     '"Size":"1.98MB","Tag":"local","UniqueSize":"N/A","VirtualSize":"1.984MB"}\n'),
]


@pytest.mark.parametrize(("template", "expected"), DOCKER_IMAGES_CASES)
def test_images_templates_match_docker(template: str, expected: str) -> None:
    assert run(template) == expected


DOCKER_PARSE_ERRORS = [
    ("{{.Foo}}", 'template parsing error: template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo '
                 "in type *formatter.imageContext"),
    ("{{foo}}", 'template parsing error: template: :1: function "foo" not defined'),
    ("{{.ID", "template parsing error: template: :1: unclosed action"),
    ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
    ("{{if .ID}}x", "template parsing error: template: :1: unexpected EOF"),
]


@pytest.mark.parametrize(("template", "expected"), DOCKER_PARSE_ERRORS)
def test_template_errors_read_like_docker(template: str, expected: str) -> None:
    assert error_of(template) == expected


INSPECT_CASES = [
    ("{{.Config.Labels}}|{{.Config.Env}}|{{.Config.Cmd}}|{{.Config.ExposedPorts}}|{{.Config.Entrypoint}}|"
     "{{.RepoDigests}}",
     "map[a:1 b:2 with space:x y]|[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin X=1 Y=2]|"
     "[echo hi]|map[443/udp:{} 80/tcp:{}]|[]|[]"),
    ('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}|{{index .Config.Labels "a"}}|'
     '{{index .Config.Labels "zz"}}|{{.Config.Labels.zz}}|{{json .Config.ExposedPorts}}|{{len .Config.Labels}}',
     'a=1;b=2;with space=x y;|1||<no value>|{"443/udp":{},"80/tcp":{}}|3'),
    ("{{.Config.Entrypoint | len}}|{{if .Config.Entrypoint}}E{{else}}noE{{end}}|"
     "{{with .Config.Labels}}{{.a}}{{end}}|{{$.Os}}", "0|noE|1|linux"),
    ('{{range .Config.Env}}{{if eq . "Y=2"}}{{break}}{{end}}{{.}},{{end}}',
     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,X=1,"),
    ('{{.Size}} {{printf "%.2f" 1.0}} {{printf "%5.1f|%-8v|%08.3f" 3.14159 "ab" 3.14159}}',
     "1984291 1.00   3.1|ab      |0003.142"),
    ('{{if eq .Os "linux"}}L{{else if eq .Os "x"}}X{{else}}O{{end}}', "L"),
    ("{{range .RepoTags}}[{{.}}]{{else}}none{{end}} {{range .RepoDigests}}x{{else}}none{{end}}",
     "[busybox:local] none"),
    ("{{json .Config.Labels}}|{{json .RepoTags}}|{{json .Size}}",
     '{"a":"1","b":"2","with space":"x y"}|["busybox:local"]|1984291'),
]


@pytest.mark.parametrize(("template", "expected"), INSPECT_CASES)
def test_inspect_templates_match_docker(template: str, expected: str) -> None:
    assert fmt.render(template, INSPECT) == expected


def test_index_out_of_range_matches_docker() -> None:
    with pytest.raises(InvalidArgument) as info:
        fmt.render("{{index .Config.Env 5}}", INSPECT)
    assert str(info.value) == ('template parsing error: template: :1:2: executing "" at <index .Config.Env 5>: '
                               "error calling index: index out of range: 5")


def test_missing_key_error_option_matches_docker_inspect() -> None:
    with pytest.raises(InvalidArgument) as info:
        fmt.render("{{.Config.Nope.X}}", INSPECT, missing_key="error")
    assert str(info.value) == ('template parsing error: template: :1:9: executing "" at <.Config.Nope.X>: '
                               'map has no entry for key "Nope"')


# --------------------------------------------------------------------------------------------------
# Templates: docker's template functions and error prefix


# docker's functions (templates.basicFunctions) through the engine; Go's own semantics: tests/gotemplate.
GO_CASES: list[tuple[str, Any, str]] = [
    ("{{json .}}", {"b": "<&>", "a": [1, None, 2.5, True], "c": {}}, '{"a":[1,null,2.5,true],"b":"<&>","c":{}}'),
    ("{{json .}}", "é\u2028", '"é\\u2028"'),
    ("{{json 1.0}} {{json 1e21}} {{json 0.000001}} {{json 1e-7}} {{json -2.5}} {{json 123456789.0}}", None,
     "1 1e+21 0.000001 1e-7 -2.5 123456789"),
    ("{{json .}}", {"k": [{"b": 1.5, "a": None}]}, '{"k":[{"a":null,"b":1.5}]}'),
    ('{{split "a/b/c" "/"}} {{split "ab" ""}} {{join .L ", "}}', {"L": ["x", "y"]}, "[a b c] [a b] x, y"),
    ('{{lower "ÀB"}} {{upper "ab"}} {{title "it\'s a_b c"}}', None, "àb AB It's A_b C"),
    ('{{pad "" 1 1}}|{{truncate "abc" 5}}|{{truncate "abc" 3}}|{{truncate "abcd" 3}}', None, "|abc|abc|abc"),
    ("{{json .}}", _ZA(1, 2), '{"z":1,"a":2}'),
    ("{{ .A | printf \"%s\" | upper }}", {"A": "x"}, "X"),
    ("{{print .Missing}}|{{json .Missing}}", {}, "<nil>|null"),
]


@pytest.mark.parametrize(("template", "data", "expected"), GO_CASES)
def test_go_template_semantics(template: str, data: Any, expected: str) -> None:
    assert fmt.render(template, data) == expected


GO_ERRORS: list[tuple[str, Any, str]] = [
    ("{{upper .N}}", {"N": 5},
     'template: :1:8: executing "" at <.N>: wrong type for value; expected string; got int'),
    ("{{upper 1 2}}", None, 'template: :1:2: executing "" at <upper>: wrong number of args for upper: '
                            "want 1 got 2"),
    ("{{pad .Tag 1}}", {"Tag": "x"}, 'template: :1:2: executing "" at <pad>: wrong number of args for pad: '
                                     "want 3 got 2"),
    ('{{truncate .Tag "2"}}', {"Tag": "x"}, 'template: :1:16: executing "" at <"2">: expected integer; found "2"'),
    ("{{upper 5}}", None, 'template: :1:8: executing "" at <5>: expected string; found 5'),
    ("{{upper .N}}", {"N": None}, 'template: :1:8: executing "" at <.N>: invalid value; expected string'),
    ("{{.N | upper}}", {"N": 1}, 'template: :1:7: executing "" at <upper>: wrong type for value; expected '
                                 "string; got int"),
    ("{{json .}}", float("nan"), 'template: :1:2: executing "" at <json .>: error calling json: json: '
                                 "unsupported value: NaN"),
    ("{{join .L \",\"}}", {"L": [1]},
     'template: :1:7: executing "" at <.L>: wrong type for value; expected []string; got '
     "[]interface {}"),
    ("{{range $i, $x := split .Repository \"/\"}}{{end}}", {"Repository": 1},
     'template: :1:24: executing "" at <.Repository>: wrong type for value; expected string; got int'),
]


@pytest.mark.parametrize(("template", "data", "message"), GO_ERRORS)
def test_execution_errors(template: str, data: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        fmt.render(template, data)
    assert str(info.value) == "template parsing error: " + message


PARSE_ERRORS = [  # the engine's own parse errors are in tests/gotemplate; here: docker's prefix on them
    ("{{", "unclosed action"),
    ("{{$x}}", 'undefined variable "$x"'),
    ("\n\n{{nope}}", 'function "nope" not defined'),
]


@pytest.mark.parametrize(("template", "message"), PARSE_ERRORS)
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        fmt.parse_template(template)
    text = str(info.value)
    assert text.startswith("template parsing error: template: :")
    assert text.endswith(": " + message)
    if template.startswith("\n\n"):
        assert ":3:" in text


def test_table_header_uses_header_functions_and_derived_names() -> None:
    rows = [Context({"Repository": "a", "CreatedAt": "now", "Size": "1B"}, type_name="imageContext")]
    out = fmt.format_rows("table {{upper .Repository}}\\t{{json .CreatedAt}}\\t{{truncate .Size 1}}", rows,
                          headers=fmt.IMAGE_HEADERS)
    assert out == "REPOSITORY   CREATED AT   SIZE\nA            \"now\"        1\n"
    assert fmt.header_for("CreatedAt") == "CREATED AT"
    assert fmt.header_for("ID") == "ID"
    assert fmt.header_for("LastUsedSince") == "LAST USED SINCE"
    assert fmt.header_for("RepoDigests") == "REPO DIGESTS"


def test_table_header_errors_are_ignored_like_docker() -> None:
    rows = [Context({"Repository": "a/b"}), Context({"Repository": "c"})]
    out = fmt.format_rows('table {{range $i, $x := split .Repository "/"}}{{$x}}{{end}}', rows)
    assert out == "\nab\nc\n"
    out = fmt.format_rows("table {{.Repository}}:{{upper .Missing}}", [], headers={"Repository": "REPO"})
    assert out == "REPO:MISSING\n"


def test_raw_format() -> None:
    out = fmt.format_rows("raw", [ROW, ROW], headers=fmt.IMAGE_HEADERS, raw=fmt.IMAGE_RAW)
    block = ("repository: busybox\ntag: local\nimage_id: e2319ca76111\ncreated_at: 2026-11-27 21:12:15 +0000 UTC\n"
             "virtual_size: 1.98MB\n\n")
    assert out == block * 2
    assert fmt.format_rows("raw", [ROW]) == "raw\n"  # a command without a raw format prints the text


def test_table_without_rows_prints_header_only() -> None:
    assert fmt.format_rows("", [], headers=fmt.IMAGE_HEADERS, default=fmt.DEFAULT_IMAGE_TABLE) == \
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert fmt.format_rows("{{.ID}}", []) == ""


def test_non_table_format_is_one_line_per_row() -> None:
    rows = [Context({"ID": str(i)}) for i in range(3)]
    assert fmt.format_rows("{{.ID}}", rows) == "0\n1\n2\n"
    assert fmt.format_rows("  {{.ID}}\\n  ", rows[:1]) == "0\n\n"


# --------------------------------------------------------------------------------------------------
# tabwriter


def test_tabwriter_docker_images_alignment() -> None:
    text = ("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n"
            "busybox\tlocal\te2319ca76111\t3 minutes ago\t1.98MB\n"
            "127.0.0.1:5000/peers/busybox\tlocal\te2319ca76111\t3 minutes ago\t1.98MB\n")
    assert fmt.tabwrite(text) == (
        "REPOSITORY                     TAG       IMAGE ID       CREATED         SIZE\n"
        "busybox                        local     e2319ca76111   3 minutes ago   1.98MB\n"
        "127.0.0.1:5000/peers/busybox   local     e2319ca76111   3 minutes ago   1.98MB\n")


def test_tabwriter_docker_df_and_history_alignment() -> None:
    df = ("TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE\nImages\t1\t0\t1.984MB\t1.984MB (100%)\n"
          "Containers\t0\t0\t0B\t0B\nLocal Volumes\t0\t0\t0B\t0B\nBuild Cache\t0\t0\t0B\t0B\n")
    assert fmt.tabwrite(df) == (
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"
        "Images          1         0         1.984MB   1.984MB (100%)\n"
        "Containers      0         0         0B        0B\n"
        "Local Volumes   0         0         0B        0B\n"
        "Build Cache     0         0         0B        0B\n")
    history = "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT\ne2319ca76111\t4 minutes ago\t\t1.98MB\tImported from -\n"
    assert fmt.tabwrite(history) == (
        "IMAGE          CREATED         CREATED BY   SIZE      COMMENT\n"
        "e2319ca76111   4 minutes ago                1.98MB    Imported from -\n")


def test_tabwriter_column_blocks_follow_go() -> None:
    # The example from Go's text/tabwriter documentation, with padding 1 and '.' to show the padding.
    text = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n"
    assert fmt.tabwrite(text, minwidth=0, padding=1, padchar=".") == \
        "aaaa.bbb.d\naa...b...dd\na....\naa...cccc.eee\n"


def test_tabwriter_edge_cases() -> None:
    assert fmt.tabwrite("") == ""
    assert fmt.tabwrite("no tabs\n") == "no tabs\n"
    assert fmt.tabwrite("a\tb") == "a         b"
    assert fmt.tabwrite("a\t\tc\n") == "a                   c\n"
    # Wide characters count as two columns, combining marks as none.
    assert fmt.tabwrite("日本語\tx\nab\ty\n", minwidth=0, padding=1) == "日本語 x\nab     y\n"
    assert fmt.tabwrite("e\u0301\tx\nab\ty\n", minwidth=0, padding=1) == "e\u0301  x\nab y\n"


# --------------------------------------------------------------------------------------------------
# Humanised values

SIZES = [
    (0, 3, "0B"), (999, 3, "999B"), (1000, 3, "1kB"), (1024, 3, "1.02kB"), (1984291, 3, "1.98MB"),
    (1984291, 4, "1.984MB"), (5_570_000, 3, "5.57MB"), (1_240_000_000, 3, "1.24GB"), (999_500, 3, "1e+03kB"),
    (1024, 4, "1.024kB"), (1_000_000, 4, "1MB"), (1_048_576, 4, "1.049MB"), (3.42e9, 4, "3.42GB"),
    (5.372e12, 4, "5.372TB"), (2.22e15, 4, "2.22PB"), (1e21, 4, "1ZB"), (1e24, 4, "1YB"),
    (1e27, 4, "1000YB"), (12345, 3, "12.3kB"), (100_000, 3, "100kB"),
]


@pytest.mark.parametrize(("size", "precision", "expected"), SIZES)
def test_human_size(size: float, precision: int, expected: str) -> None:
    assert fmt.human_size(size, precision) == expected


@pytest.mark.parametrize(("size", "expected"), [
    (0, "0B"), (1023, "1023B"), (1024, "1KiB"), (1536, "1.5KiB"), (1024 * 1024, "1MiB"),
    (1024 ** 3 * 2.5, "2.5GiB"), (1024 ** 4, "1TiB"),
])
def test_bytes_size(size: float, expected: str) -> None:
    assert fmt.bytes_size(size) == expected


def test_reclaimable() -> None:
    assert fmt.reclaimable(1984291, 1984291) == "1.984MB (100%)"
    assert fmt.reclaimable(0, 0) == "0B"
    assert fmt.reclaimable(500, 1500) == "500B (33%)"


S, MIN, H, DAY = 1, 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY
# go-units' own duration test table.
DURATIONS = [
    (0.45, "Less than a second"), (1 * S, "1 second"), (45 * S, "45 seconds"), (59 * S, "59 seconds"),
    (60 * S, "About a minute"), (3 * MIN, "3 minutes"), (35 * MIN + 40, "35 minutes"), (59 * MIN, "59 minutes"),
    (1 * H, "About an hour"), (H + 29 * MIN, "About an hour"), (H + 31 * MIN, "2 hours"),
    (3 * H + 29 * MIN, "3 hours"), (3 * H + 31 * MIN, "4 hours"), (24 * H, "24 hours"),
    (DAY + 12 * H, "36 hours"), (2 * DAY, "2 days"), (7 * DAY, "7 days"), (13 * DAY + 5 * H, "13 days"),
    (2 * WEEK, "2 weeks"), (2 * WEEK + 4 * DAY, "2 weeks"), (3 * WEEK, "3 weeks"), (4 * WEEK, "4 weeks"),
    (MONTH, "4 weeks"), (MONTH + 2 * WEEK, "6 weeks"), (2 * MONTH, "2 months"), (3 * MONTH + WEEK, "3 months"),
    (5 * MONTH + 2 * WEEK, "5 months"), (13 * MONTH, "13 months"), (24 * MONTH, "24 months"),
    (24 * MONTH + 2 * WEEK, "2 years"), (3 * YEAR + 2 * MONTH, "3 years"),
]


@pytest.mark.parametrize(("seconds", "expected"), DURATIONS)
def test_human_duration(seconds: float, expected: str) -> None:
    assert fmt.human_duration(seconds) == expected


def test_created_since() -> None:
    now = 1_800_000_000.0
    assert fmt.created_since(now - 240, now) == "4 minutes ago"
    assert fmt.created_since(now - 0.2, now) == "Less than a second ago"
    assert fmt.created_since(now - 2 * WEEK, now) == "2 weeks ago"
    assert fmt.created_since(dt.datetime.fromtimestamp(now - 90 * DAY, dt.UTC), now) == "3 months ago"
    created = dt.datetime.fromtimestamp(now - 61, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    assert fmt.created_since(created, now) == "About a minute ago"
    assert fmt.created_since("", now) == "N/A"
    assert fmt.created_since(0, now) == "N/A"


def test_go_time() -> None:
    utc = dt.UTC
    assert fmt.go_time(1795813935, utc) == "2026-11-27 21:12:15 +0000 UTC"
    assert fmt.go_time(1795813935.5, utc) == "2026-11-27 21:12:15.5 +0000 UTC"
    assert fmt.go_time("2026-11-27T21:12:15.553393688Z", utc) == "2026-11-27 21:12:15.553393688 +0000 UTC"
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert fmt.go_time(1795813935, plus2) == "2026-11-27 23:12:15 +0200 +0200"


def test_short_id_and_ellipsis() -> None:
    digest = "sha256:e2319ca76111fd0b7a9954ea19981a2c108b41758643c1961e569ce4493b37a4"
    assert fmt.short_id(digest) == "e2319ca76111"
    assert fmt.short_id("e2319ca76111fd0b") == "e2319ca76111"
    assert fmt.short_id("abc") == "abc"
    cmd = "/bin/sh -c #(nop)  CMD [\"sh\" \"-c\" \"echo hello world from a long command\"]"
    assert fmt.ellipsis(cmd, 45) == cmd[:44] + "…"
    assert len(fmt.ellipsis(cmd, 45)) == 45
    assert fmt.ellipsis("short", 45) == "short"
    assert fmt.ellipsis("exactly5", 8) == "exactly5"
    assert fmt.ellipsis("abc", 1) == "a"
    assert fmt.ellipsis("abc", 0) == ""
    assert fmt.ellipsis("日本語の文字", 5) == "日本…"
    assert fmt.ellipsis("日本語の文字", 12) == "日本語の文字"
    assert fmt.ellipsis("aé日本語", 5) == "aé日…"
    assert fmt.ellipsis("日本語", 2) == "日本語"  # docker's quirk: nothing fits before the ellipsis


def test_history_cells() -> None:
    created_by = "/bin/sh -c #(nop) \tCMD [\"sh\"]" + " --flag" * 10
    assert fmt.history_created_by(created_by) == "/bin/sh -c #(nop)  CMD [\"sh\"] --flag --flag …"
    assert fmt.history_created_by(created_by, trunc=False) == created_by.replace("\t", " ")
    assert fmt.history_created_by("short") == "short"
    assert fmt.rfc3339(1795813935.9) == "2026-11-27T21:12:15Z"
    assert fmt.rfc3339("2026-11-27T23:12:15.5+02:00") == "2026-11-27T21:12:15Z"


# --------------------------------------------------------------------------------------------------
# Import cost


def test_format_imports_only_the_stdlib() -> None:
    # How long the import takes is a speed goal for bench/, not a test.
    code = ("import sys; import dockyard.cli.format; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich', 'httpx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def test_big_table() -> None:
    rows = [Context({"Repository": f"repo{i}", "Tag": "latest", "ID": f"{i:012x}", "CreatedSince": "2 weeks ago",
                     "Size": "1.98MB"}) for i in range(2000)]
    out = fmt.format_rows("", rows, headers=fmt.IMAGE_HEADERS, default=fmt.DEFAULT_IMAGE_TABLE)
    assert out.count("\n") == 2001


@pytest.mark.slow
@given(st.lists(st.lists(st.text(alphabet="ab é日\u0301", max_size=12), min_size=3, max_size=3),
                min_size=1, max_size=8),
       st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=4))
@settings(max_examples=200, deadline=None)
def test_tabwriter_rectangular_tables_match_the_simple_model(rows: list[list[str]], minwidth: int,
                                                              padding: int) -> None:
    # With the same number of cells on every line there is one block per column: each column is as
    # wide as its widest cell plus padding (at least minwidth); the last cell is never padded.
    text = "".join("\t".join(r) + "\n" for r in rows)
    widths = [max(minwidth, *(fmt._cell_width(r[c]) + padding for r in rows)) for c in range(2)]
    expected = "".join(
        "".join(r[c] + " " * (widths[c] - fmt._cell_width(r[c])) for c in range(2)) + r[2] + "\n" for r in rows)
    assert fmt.tabwrite(text, minwidth=minwidth, padding=padding) == expected


@given(st.integers(min_value=0, max_value=10 ** 30))
@settings(max_examples=300, deadline=None)
def test_human_size_is_three_significant_digits_and_a_unit(size: int) -> None:
    text = fmt.human_size(size)
    number = re.fullmatch(r"([0-9.e+]+)(B|kB|MB|GB|TB|PB|EB|ZB|YB)", text)
    assert number, text
    assert len(number.group(1).replace(".", "").lstrip("0")) <= 3 or "e" in text or size >= 1e27


# --------------------------------------------------------------------------------------------------
# Differential: the real docker CLI (20.10) against format_rows on the same row

PEERS_DIR = Path(os.environ.get("PEERS_DIR", "/var/tmp/dockyard-peers"))
DOCKER = "/usr/bin/docker"
DOCKER_ENV = {**os.environ, "DOCKER_HOST": f"unix://{PEERS_DIR}/run/docker.sock"}


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], env=DOCKER_ENV, capture_output=True, text=True, check=False,
                          timeout=60)


@pytest.fixture(scope="module")
def engine() -> None:
    require("docker")
    if _docker("image", "inspect", "busybox:local").returncode != 0:
        subprocess.run(["bash", str(PEERS / "import-busybox.sh")], capture_output=True, check=False)
    if _docker("image", "inspect", "busybox:local").returncode != 0:
        unavailable("docker", "busybox:local is not in docker", "bash scripts/peers/import-busybox.sh")


DIFFERENTIAL = [
    "{{.ID}}{{/* comment */}}{{.Tag}}", "a {{- /* c */ -}} b", "{{ .ID -}}\\n\\n{{- .Tag }}",
    '{{"x" | printf "%s%s" "y"}}', '{{range $i, $c := split .ID ""}}{{if lt $i 3}}{{$c}}{{end}}{{end}}',
    '{{len (split .CreatedAt " ")}}', "{{index .Repository 0}}", "{{slice .ID 0 3}}",
    '{{printf "%-12s|%8.3s|%q" .Tag .ID .Digest}}', '{{if and (eq .Tag "local") (ne .Repository "x")}}ok{{end}}',
    "{{or .Nope 1}}", "{{.Size | len}}", '{{printf "%v %d %s" true 3 "s"}}', '{{printf "%5t|%x|%X|%o" false 255 "hi" 8}}',
    "{{print nil}}", "{{print}}", "{{println}}", "{{ html \"<a href='x'>\" }}", '{{ js "a\'b\\"c<d>" }}',
    '{{ urlquery "a b/c?d" }}', "{{with .Tag}}{{.}}{{else}}none{{end}}",
    '{{$x := .Tag}}{{range split "a b" " "}}{{$x}}-{{.}} {{end}}', "{{ 1.5e3 }} {{ -3 }} {{ 0b101 }} {{ 0o17 }} {{ 1_000 }} {{ .5 }}",
    '{{printf "%6.2f|%-8.1e|%g" 3.14159 1234.5 1e-7}}', '{{printf "%08.3f|%+d|% d" -3.14159 5 5}}',
    '{{printf "%c%c" 72 105}}', '{{printf "%%|%s" "a"}}', '{{ printf "%T %T %T %T" 1 "s" .Tag true }}',
    '{{json "<tag>&"}}', "{{json 1.0}} {{json 1e21}} {{json 0.000001}}", '{{title "hello_world foo.bar"}}',
    '{{lower "ÉCOLE"}}', '{{join (split .CreatedAt " ") "_"}}', "{{eq 1 1.0}}", '{{lt "a" "b"}}', "{{eq .Tag nil}}",
    "{{not .Tag}}", "{{and}}", "{{index .ID 100}}", '{{printf "%s" .Nope}}', "{{.Tag.Foo}}", "{{len .}}", "{{ (.Tag) }}",
    "{{if}}{{end}}", "{{range .Tag}}{{end}}", "{{printf}}", "{{pad .Tag 1}}", '{{truncate .Tag "2"}}',
    "{{ .Tag | upper | lower }}", "{{json .Tag | upper}}", "{{ .Repository | title }}", "{{'\\n'}}", '{{ "\\x41\\u00e9" }}',
    "{{.Tag | json}}", "{{json .}}", "{{.Foo}}", "{{foo}}", "{{.ID", "{{end}}", "{{if .ID}}x",
    "table", "", "table {{.ID}}", "table {{pad .Tag 2 2}}\\t{{.ID}}",
    'table {{upper .Repository}}\\t{{json .Tag}}\\t{{split .ID "a"}}',
    "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{.CreatedAt}}\\t{{.CreatedSince}}\\t{{.Size}}\\t"
    "{{.SharedSize}}\\t{{.UniqueSize}}\\t{{.VirtualSize}}\\t{{.Containers}}",
    "table {{.Repository}}\\n{{.Tag}}", "table    {{.ID}}  ", "  {{.ID}}\\t{{.Tag}}  ", "table {{.ID}}\\t",
    "table \\t{{.ID}}", 'table {{if eq .Tag "local"}}{{.ID}}{{end}}\\t{{.Size}}',
    "table {{truncate .Repository 3}}\\t{{title .Tag}}", "tablex {{.ID}}", 'table {{.ID}}\\t{{"lit"}}',
    'table {{range $i, $x := split .Repository "/"}}{{$x}}{{end}}', "raw",
]


def _ours(template: str, row: dict[str, Any]) -> str:
    try:
        return fmt.format_rows(template, [Context(row, type_name="imageContext")], headers=fmt.IMAGE_HEADERS,
                               default=fmt.DEFAULT_IMAGE_TABLE, raw=fmt.IMAGE_RAW)
    except InvalidArgument as exc:
        return f"{exc}\n"


@pytest.mark.docker
@pytest.mark.slow
def test_images_format_matches_docker(engine: None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def row() -> dict[str, Any]:
        out: dict[str, Any] = json.loads(_docker("images", "--format", "{{json .}}", "busybox:local").stdout)
        return out

    def theirs(template: str) -> str:
        ran = _docker("images", "--format", template, "busybox:local")
        return ran.stdout + ran.stderr

    first = row()
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(theirs, DIFFERENTIAL))
    mismatches = []
    for template, want in zip(DIFFERENTIAL, outputs, strict=True):
        # CreatedSince may have ticked over since the row was read: then compare with a fresh one.
        if _ours(template, first) != want and _ours(template, row()) != want:
            mismatches.append((template, want, _ours(template, first)))
    assert mismatches == []


def test_default_tables_of_other_commands() -> None:
    df = [Context({"Type": "Images", "TotalCount": "1", "Active": "0", "Size": fmt.human_size(1984291, 4),
                   "Reclaimable": fmt.reclaimable(1984291, 1984291)})]
    assert fmt.format_rows("", df, headers=fmt.DF_HEADERS, default=fmt.DEFAULT_DF_TABLE) == (
        "TYPE      TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages    1         0         1.984MB   1.984MB (100%)\n")
    history = [Context({"ID": "e2319ca76111", "CreatedSince": "4 minutes ago", "CreatedBy": "", "Size": "1.98MB",
                        "Comment": "Imported from -"})]
    assert fmt.format_rows("table", history, headers=fmt.HISTORY_HEADERS, default=fmt.DEFAULT_HISTORY_TABLE) == (
        "IMAGE          CREATED         CREATED BY   SIZE      COMMENT\n"
        "e2319ca76111   4 minutes ago                1.98MB    Imported from -\n")
    cache = [Context({"ID": "abc*", "Type": "regular", "Size": "1.2kB", "CreatedSince": "2 days ago",
                      "LastUsedSince": "", "UsageCount": "1", "Shared": "false", "Description": "mount / from exec"})]
    assert fmt.format_rows("", cache, headers=fmt.BUILD_CACHE_HEADERS, default=fmt.DEFAULT_BUILD_CACHE_TABLE) == (
        "CACHE ID   CACHE TYPE   SIZE      CREATED      LAST USED   USAGE     SHARED    DESCRIPTION\n"
        "abc*       regular      1.2kB     2 days ago               1         false     mount / from exec\n")
