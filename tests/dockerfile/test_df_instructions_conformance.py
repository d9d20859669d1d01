"""BuildKit's instruction tests (instructions_parse.json): errors with upstream texts, heredocs, flags."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.dockerfile.flags import BFlags
from dockyard.dockerfile.instructions import (
    AddInstruction,
    ArgInstruction,
    CopyInstruction,
    HealthcheckInstruction,
    RunInstruction,
    _parse_opt_interval,
    handle_json_args,
    parse_instruction,
)
from dockyard.dockerfile.mounts import parse_device
from dockyard.dockerfile.parser import Node, parse
from dockyard.dockerfile.stages import parse_stages
from dockyard.errors import DockerfileError

from .conformance import BUILDKIT, load

IP = load(BUILDKIT / "instructions_parse.json")


def _node(instruction: str, values: list[str], original: str = "") -> Node:
    """Build the AST node directly, as the Go tests do."""
    root = Node(value=instruction, original=original or instruction, start_line=1, end_line=1)
    prev = root
    for v in values:
        prev.next = Node(value=v)
        prev = prev.next
    return root


@pytest.mark.parametrize("case", IP["error_cases"], ids=lambda c: c.get("name", c["dockerfile"]))
def test_error_cases(case: dict[str, Any]) -> None:
    node = parse(case["dockerfile"]).children[0]
    with pytest.raises(DockerfileError) as err:
        parse_instruction(node)
    if case["match"] == "exact":
        assert err.value.detail == case["expect_error"]
    else:
        assert case["expect_error"] in err.value.detail
    assert err.value.line == 1


@pytest.mark.parametrize("case", IP["ast_level_error_cases"]["cases"], ids=lambda c: c["expect_error"])
def test_ast_level_errors(case: dict[str, Any]) -> None:
    with pytest.raises(DockerfileError) as err:
        parse_instruction(_node(case["instruction"], case["node_values"], case.get("original_hint", "")))
    assert err.value.detail == case["expect_error"]


@pytest.mark.parametrize("case", IP["healthcheck_interval_cases"]["cases"], ids=lambda c: c["value"])
def test_healthcheck_interval(case: dict[str, Any]) -> None:
    if case.get("expect_ok"):
        _parse_opt_interval("interval", case["value"])
        text = f"HEALTHCHECK --interval={case['value']} CMD true"
        parse_instruction(parse(text).children[0])
    else:
        with pytest.raises(DockerfileError, match=case["expect_error_contains"]):
            parse_instruction(parse(f"HEALTHCHECK --interval={case['value']} CMD true").children[0])


@pytest.mark.parametrize("case", IP["copy_heredoc_cases"]["cases"], ids=lambda c: c["dockerfile"])
def test_copy_heredoc(case: dict[str, Any]) -> None:
    instr = parse_instruction(parse(case["dockerfile"]).children[0])
    assert isinstance(instr, CopyInstruction)
    exp = case["expect"]
    assert instr.dest == exp["DestPath"]
    assert (instr.sources or None) == exp["SourcePaths"]
    got = [{"Path": c.path, "Data": c.data, "Expand": c.expand} for c in instr.contents]
    assert (got or None) == exp["SourceContents"]


@pytest.mark.parametrize("case", IP["run_heredoc_cases"]["cases"], ids=lambda c: c["dockerfile"])
def test_run_heredoc(case: dict[str, Any]) -> None:
    instr = parse_instruction(parse(case["dockerfile"]).children[0])
    assert isinstance(instr, RunInstruction)
    exp = case["expect"]
    assert instr.prepend_shell == exp["PrependShell"]
    assert instr.cmd_line == exp["CmdLine"]
    got = [{"Name": f.name, "Data": f.data, "Chomp": f.chomp} for f in instr.files]
    assert (got or None) == exp["Files"]


@pytest.mark.parametrize("case", IP["run_device_cases"]["cases"], ids=lambda c: c["input"])
def test_run_device(case: dict[str, Any]) -> None:
    if "expect_error" in case:
        with pytest.raises(DockerfileError, match=case["expect_error"]):
            parse_device(case["input"])
        return
    dev = parse_device(case["input"])
    assert (dev.name, dev.required) == (case["expect"]["Name"], case["expect"]["Required"])


@pytest.mark.parametrize("case", IP["handle_json_args_cases"]["cases"],
                         ids=lambda c: f"{c['args']}-{c['json']}")
def test_handle_json_args(case: dict[str, Any]) -> None:
    assert handle_json_args(case["args"], case["json"]) == case["expect"]


@pytest.mark.parametrize("case", IP["bflags_cases"]["cases"], ids=lambda c: " ".join(c["args"]) or "none")
def test_bflags(case: dict[str, Any]) -> None:
    bf = BFlags(case["args"])
    flags = {}
    for name, (kind, default) in case["defs"].items():
        flags[name] = bf.add_bool(name, default) if kind == "bool" else bf.add_string(name, default)
    if not case["ok"]:
        with pytest.raises(DockerfileError):
            bf.parse()
        return
    bf.parse()
    exp = case.get("expect", {})
    for name, value in exp.get("values", {}).items():
        got = flags[name].is_true if isinstance(value, bool) else flags[name].value
        assert got == value
    if "used" in exp:
        assert sorted(bf.used) == sorted(exp["used"])


def test_healthcheck_cmd() -> None:
    case = IP["success_cases"][0]
    instr = parse_instruction(_node(case["node"]["instruction"], case["node"]["node_values"]))
    assert isinstance(instr, HealthcheckInstruction)
    assert instr.test == case["expect"]["Health.Test"]


def test_run_flags_used() -> None:
    case = IP["success_cases"][1]
    instr = parse_instruction(parse(case["dockerfile"]).children[0])
    assert isinstance(instr, RunInstruction)
    assert instr.flags_used == case["expect"]["FlagsUsed"]


def test_comments_detection() -> None:
    case = IP["success_cases"][2]
    plan = parse_stages(parse(case["dockerfile"]))
    exp = case["expect"]
    assert plan.stages[0].comment == exp["stages[0].DocComment"]
    assert plan.meta_args[0].args[0].key == exp["meta[0].Args[0].Key"]
    assert plan.meta_args[0].args[0].comment == exp["meta[0].Args[0].DocComment"]
    cmds = plan.stages[0].instructions
    assert isinstance(cmds[0], ArgInstruction) and isinstance(cmds[1], ArgInstruction)
    assert (cmds[0].args[0].key, cmds[0].args[0].comment) == (exp["stages[0].Commands[0].Args[0].Key"],
                                                            exp["stages[0].Commands[0].Args[0].DocComment"])
    assert (cmds[1].args[0].key, cmds[1].args[0].comment) == (exp["stages[0].Commands[1].Args[0].Key"],
                                                            exp["stages[0].Commands[1].Args[0].DocComment"])
    assert (cmds[1].args[1].key, cmds[1].args[1].comment) == (exp["stages[0].Commands[1].Args[1].Key"],
                                                            exp["stages[0].Commands[1].Args[1].DocComment"])


def test_add_flags() -> None:
    text = ("ADD --chown=1:2 --chmod=u+rwx,go-w --link --keep-git-dir --unpack=false "
            "--checksum=sha256:abc --exclude=*.md --exclude=tmp https://example.com/a.tar /dst/")
    instr = parse_instruction(parse(text).children[0])
    assert isinstance(instr, AddInstruction)
    assert (instr.chown, instr.chmod, instr.link, instr.keep_git_dir, instr.unpack) == (
        "1:2", "u+rwx,go-w", True, True, False)
    assert instr.checksum == "sha256:abc"
    assert instr.excludes == ["*.md", "tmp"]
    assert instr.sources == ["https://example.com/a.tar"] and instr.dest == "/dst/"
