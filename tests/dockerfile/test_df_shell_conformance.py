"""BuildKit's shell lexer tests (shell_lexer.json): envVarTest, wordsTest, lex_test.go tables."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.dockerfile.shell import (
    EnvList,
    ShellLex,
    convert_shell_pattern_to_regex,
    expand,
    expand_words,
    reverse_pattern,
)
from dockyard.errors import DockerfileError

from .conformance import BUILDKIT, load

SL = load(BUILDKIT / "shell_lexer.json")
LEX = ShellLex("\\")

PW = SL["process_word"]
# Windows-only lines are skipped: on Windows env names are case-insensitive, which Linux never is.
PW_CASES = [c for c in PW["cases"] if c["platform"] != "windows"]


@pytest.mark.parametrize("case", PW_CASES, ids=lambda c: f"L{c['line']}:{c['input']}")
def test_process_word(case: dict[str, Any]) -> None:
    env = PW["env"]
    if case.get("expect_error"):
        with pytest.raises(DockerfileError, match=r"^Dockerfile: failed to process"):
            LEX.process_word(case["input"], env)
    else:
        assert LEX.process_word(case["input"], env) == case["expect"]


@pytest.mark.parametrize("case", SL["process_words"]["cases"], ids=lambda c: f"L{c['line']}:{c['input']}")
def test_process_words(case: dict[str, Any]) -> None:
    env = EnvList(case["env"])
    if case.get("expect_error"):
        with pytest.raises(DockerfileError):
            LEX.process_words(case["input"], env)
    else:
        assert LEX.process_words(case["input"], env) == case["expect_words"]


@pytest.mark.parametrize("case", SL["process_word_with_matches"]["cases"],
                         ids=lambda c: f"{c['input']}|{sorted(c['env'].items())}")
def test_process_word_with_matches(case: dict[str, Any]) -> None:
    if case.get("expect_error"):
        with pytest.raises(DockerfileError):
            LEX.process_word_with_matches(case["input"], case["env"])
        return
    res = LEX.process_word_with_matches(case["input"], case["env"])
    assert res.result == case["expect"]
    assert sorted(res.matched) == case["expect_matched"]
    assert sorted(res.unmatched) == case["expect_unmatched"]


@pytest.mark.parametrize("case", SL["process_word_platform"]["cases"], ids=lambda c: str(c["env"]))
def test_platform_words(case: dict[str, Any]) -> None:
    assert LEX.process_word(case["input"], case["env"]) == case["expect"]


@pytest.mark.parametrize("case", SL["mandatory_env_vars"]["cases"],
                         ids=lambda c: f"{c['input']}|{c['env_list']}")
def test_mandatory_env_vars(case: dict[str, Any]) -> None:
    env = EnvList(case["env_list"])
    if "expect_error_contains" in case:
        with pytest.raises(DockerfileError, match=case["expect_error_contains"]):
            LEX.process_word(case["input"], env)
    else:
        assert LEX.process_word(case["input"], env) == case["expect"]


@pytest.mark.parametrize("case", SL["get_env"]["cases"], ids=lambda c: f"{c['env_list']}:{c['name']}")
def test_get_env(case: dict[str, Any]) -> None:
    assert EnvList(case["env_list"]).get(case["name"], "") == case["expect"]


HELPERS = SL["internal_helpers"]


@pytest.mark.parametrize("case", HELPERS["convert_shell_pattern_to_regex"]["valid"],
                         ids=lambda c: c["pattern"])
def test_pattern_to_regex(case: dict[str, Any]) -> None:
    assert convert_shell_pattern_to_regex(case["pattern"], True, True) == case["regex"]


@pytest.mark.parametrize("pattern", HELPERS["convert_shell_pattern_to_regex"]["invalid"])
def test_pattern_to_regex_invalid(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid escape"):
        convert_shell_pattern_to_regex(pattern, True, True)


@pytest.mark.parametrize("case", HELPERS["reverse_pattern"], ids=lambda c: c["input"])
def test_reverse_pattern(case: dict[str, Any]) -> None:
    assert reverse_pattern(case["input"]) == case["expect"]


@pytest.mark.parametrize("case", HELPERS["reverse_string"], ids=lambda c: c["input"])
def test_reverse_string_by_code_point(case: dict[str, Any]) -> None:
    assert case["input"][::-1] == case["expect"]


# ---- error texts and the other lexer modes


def test_error_texts_are_buildkits() -> None:
    cases = {
        "${}": 'failed to process "${}": syntax error: bad substitution',
        "${aaa": "failed to process \"${aaa\": unsupported modifier (\ufffd) in substitution",
        "'abc": "failed to process \"'abc\": unexpected end of statement while looking for matching "
                "single-quote",
        '"abc': 'failed to process "\\"abc": unexpected end of statement while looking for matching '
                "double-quote",
        "${X:-a": "failed to process \"${X:-a\": syntax error: missing '}'",
        "${X:?}": 'failed to process "${X:?}": X: is not allowed to be unset',
        "${X=a}": 'failed to process "${X=a}": unsupported modifier (=) in substitution',
        "${X:#a}": 'failed to process "${X:#a}": unsupported modifier (:#) in substitution',
    }
    for word, message in cases.items():
        with pytest.raises(DockerfileError) as err:
            LEX.process_word(word, {})
        assert err.value.detail == message


def test_backtick_escape_token() -> None:
    lex = ShellLex("`")
    assert lex.process_word("a`$b\\c", {"b": "x"}) == "a$b\\c"
    assert expand("c:\\dir", {}, "`") == "c:\\dir"


def test_skip_unset_and_raw_modes() -> None:
    lex = ShellLex("\\", skip_unset_env=True, raw_quotes=True, raw_escapes=True)
    assert lex.process_word("'a' \\\"$X ${Y:-z} ${Z/a/b}", {}) == "'a' \\\"$X ${Y:-z} ${Z/a/b}"


def test_shortcuts() -> None:
    assert expand("${A}-$B", {"A": "1", "B": "2"}) == "1-2"
    assert expand_words("$A 'b c'", {"A": "x  y"}) == ["x", "y", "b c"]
    assert expand_words("plain words  here", {}) == ["plain", "words", "here"]
