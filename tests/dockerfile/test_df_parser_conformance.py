"""BuildKit's parser tests: parser_testfiles.json, raw parser-testfiles/, parser_heredoc_directives.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.dockerfile.parser import (
    DirectiveParser,
    chomp_heredoc_content,
    detect_syntax,
    heredocs_from_line,
    parse,
    parse_directive,
    parse_heredoc,
    parse_json_array,
    parse_words,
)
from dockyard.errors import DockerfileError

from .conformance import BUILDKIT, load

PT = load(BUILDKIT / "parser_testfiles.json")
HD = load(BUILDKIT / "parser_heredoc_directives.json")
RAW = BUILDKIT / "parser-testfiles"


@pytest.mark.parametrize("case", PT["parse_cases"], ids=lambda c: c["name"])
def test_dump_matches(case: dict[str, Any]) -> None:
    assert parse(case["dockerfile"]).dump() + "\n" == case["expected_dump"]


RAW_DIRS = sorted((RAW / "testfiles").iterdir())


@pytest.mark.parametrize("path", RAW_DIRS, ids=lambda p: p.name)
def test_raw_testfiles_byte_for_byte(path: Path) -> None:
    # The raw files keep CRLF, tabs and missing final newlines that JSON might hide.
    expected = (path / "result").read_bytes().decode("utf-8")
    assert parse((path / "Dockerfile").read_bytes()).dump() + "\n" == expected


NEGATIVE = sorted((RAW / "testfiles-negative").iterdir())


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.name)
def test_raw_negative_files_are_rejected(path: Path) -> None:
    with pytest.raises(DockerfileError):
        parse((path / "Dockerfile").read_bytes())


@pytest.mark.parametrize("case", PT["error_cases"], ids=lambda c: c["name"])
def test_error_cases(case: dict[str, Any]) -> None:
    with pytest.raises(DockerfileError):
        parse(case["dockerfile"])


def test_line_numbers() -> None:
    case = PT["line_numbers_case"]
    res = parse(case["dockerfile"])
    exp = case["expect"]
    assert (res.ast.start_line, res.ast.end_line) == (exp["ast_start_line"], exp["ast_end_line"])
    assert len(res.children) == exp["children_count"]
    assert [[c.start_line, c.end_line] for c in res.children] == exp["children_lines"]


def test_raw_line_file_parses() -> None:
    res = parse((RAW / "testfile-line" / "Dockerfile").read_bytes())
    expected = PT["line_numbers_case"]["expect"]["children_lines"]
    assert [[c.start_line, c.end_line] for c in res.children] == expected


def test_empty_continuation_warnings() -> None:
    case = PT["empty_continuation_warning_case"]
    res = parse(case["dockerfile"])
    exp = case["expect"]
    assert len(res.warnings) == exp["warning_count"]
    for s in exp["warning0_short_contains"]:
        assert s in res.warnings[0].short
    for s in exp["warning1_short_contains"]:
        assert s in res.warnings[1].short
    assert exp["warning0_detail0_contains"] in res.warnings[0].detail[0]


def test_line_too_long() -> None:
    case = PT["line_too_long_case"]
    label = case["label"]["repeat"] * case["label"]["count"]
    with pytest.raises(DockerfileError) as err:
        parse(case["dockerfile_template"].replace("{label}", label))
    assert case["expect_error"] in str(err.value)
    assert err.value.line == 3


def test_line_at_the_limit_is_fine() -> None:
    res = parse("FROM image\nLABEL a=" + "b" * (65535 - len("LABEL a=")) + "\n")
    assert len(res.children) == 2


@pytest.mark.parametrize("case", PT["parse_words_cases"]["cases"], ids=lambda c: c["input"])
def test_parse_words(case: dict[str, Any]) -> None:
    assert parse_words(case["input"]) == case["expect"]


@pytest.mark.parametrize("case", PT["json_array_cases"]["valid"], ids=lambda c: c["input"])
def test_json_arrays(case: dict[str, Any]) -> None:
    assert parse_json_array(case["input"]) == case["expect"]


@pytest.mark.parametrize("text", PT["json_array_cases"]["invalid"])
def test_json_arrays_with_non_strings(text: str) -> None:
    with pytest.raises(DockerfileError, match="arrays must be comprised of strings only"):
        parse_json_array(text)


@pytest.mark.parametrize("case", PT["name_val_cases"], ids=lambda c: c["name"])
def test_name_val(case: dict[str, Any]) -> None:
    text = f"{case['instruction']} {case['input']}"
    if case.get("expect_error"):
        with pytest.raises(DockerfileError, match=case["error_hint"]):
            parse(text)
        return
    assert parse(text).children[0].values() == case["expect_node_values"]


# ---- heredocs and directives


def test_extract_heredocs() -> None:
    case = HD["extract_heredocs_case"]
    res = parse(case["dockerfile"])
    for exp in case["expect"]:
        node = res.children[exp["child_index"]]
        got = [{"Name": h.name, "Content": h.content, "Expand": h.expand, "Chomp": h.chomp,
                "FileDescriptor": h.file_descriptor} for h in node.heredocs]
        assert (got or None) == exp["heredocs"], exp["child_index"]


def test_json_form_has_no_heredocs() -> None:
    res = parse(HD["json_form_no_heredoc_case"]["dockerfile"])
    assert all(not c.heredocs for c in res.children[1:4])


def test_chomp() -> None:
    assert chomp_heredoc_content(HD["chomp_case"]["input"]) == HD["chomp_case"]["expect"]


@pytest.mark.parametrize("word", HD["parse_heredoc_word"]["valid"])
def test_heredoc_word_valid(word: str) -> None:
    doc = parse_heredoc(word)
    assert doc is not None and doc.name == "EOF"


@pytest.mark.parametrize("word", HD["parse_heredoc_word"]["invalid"])
def test_heredoc_word_invalid(word: str) -> None:
    with pytest.raises(DockerfileError):
        parse_heredoc(word)


@pytest.mark.parametrize("word", HD["parse_heredoc_word"]["not_heredoc"])
def test_heredoc_word_not_a_heredoc(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("case", HD["heredocs_from_line"], ids=lambda c: c["line"])
def test_heredocs_from_line(case: dict[str, Any]) -> None:
    names = [h.name for h in heredocs_from_line(case["line"])]
    assert (names or None) == case["names"]


@pytest.mark.parametrize("case", HD["directives"]["parse_all"], ids=lambda c: c["input"])
def test_directive_parse_all(case: dict[str, Any]) -> None:
    got = [{"name": d.name, "value": d.value} for d in DirectiveParser().parse_all(case["input"])]
    assert got == case["expect"]


def _directive_case(key: str, case: dict[str, Any]) -> None:
    text: str | bytes = case["input"]
    if "input_bytes_hex_prefix" in case:
        text = bytes.fromhex(case["input_bytes_hex_prefix"]) + case["input"].encode()
    got = parse_directive(key, text)
    if not case["ok"]:
        assert got is None
        return
    assert got is not None
    value, cmdline, line = got
    assert value == case.get("ref", case.get("value"))
    if "cmdline" in case:
        assert cmdline == case["cmdline"]
    if "line" in case:
        assert line == case["line"]


@pytest.mark.parametrize("case", HD["directives"]["detect_syntax"], ids=lambda c: c["input"])
def test_detect_syntax(case: dict[str, Any]) -> None:
    _directive_case("syntax", case)
    if case["ok"]:
        assert detect_syntax(case["input"]) is not None


@pytest.mark.parametrize("case", HD["directives"]["parse_directive_check"], ids=lambda c: c["input"])
def test_check_directive(case: dict[str, Any]) -> None:
    _directive_case("check", case)


# ---- placement rules and the escape directive in a whole parse


def test_escape_directive_changes_continuation() -> None:
    res = parse("# escape=`\nFROM x\nRUN a `\n  b\nCOPY c:\\d \\e\n")
    assert res.escape_token == "`"
    assert res.children[1].values() == ["a   b"]
    assert res.children[2].values() == ["c:\\d", "\\e"]


def test_directive_after_instruction_is_a_comment() -> None:
    res = parse("FROM x\n# escape=`\nRUN a \\\n  b\n")
    assert res.escape_token == "\\"
    assert res.directives == []


def test_directive_after_blank_line_is_a_comment() -> None:
    assert parse("\n# escape=`\nFROM x\n").escape_token == "\\"


def test_repeated_directive_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="only one escape parser directive can be used") as err:
        parse("# escape=\\\n# escape=`\nFROM x\n")
    assert err.value.line == 2


def test_bad_escape_token() -> None:
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM x\n")


def test_bom_is_stripped() -> None:
    res = parse(b"\xef\xbb\xbf# syntax=docker/dockerfile:1\nFROM x\n")
    assert [d.name for d in res.directives] == ["syntax"]
    assert res.children[0].value == "FROM"


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError, match="unterminated heredoc") as err:
        parse("FROM x\nRUN <<EOF\necho hi\n")
    assert err.value.line == 2


def test_heredoc_keeps_crlf_and_fd() -> None:
    res = parse("FROM x\r\nRUN 3<<EOF cat /dev/fd/3\r\nline\r\nEOF\r\n")
    doc = res.children[1].heredocs[0]
    assert (doc.name, doc.file_descriptor, doc.content) == ("EOF", 3, "line\r\n")


def test_onbuild_heredoc() -> None:
    res = parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert res.children[1].heredocs[0].content == "echo hi\n"
