"""The shell splitter, pragmas, config, and dockyard's DY advice (each with must/must-not cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.tools.lint import (
    LintConfig,
    config_from_mapping,
    failed,
    lint,
    load_config,
    parse_script,
    render,
)


def test_shell_splits_lists_pipes_and_quotes() -> None:
    s = parse_script(
        'A=1 apt-get install -y \'a b\' "c\\"d" && cd /x || echo $(curl -s u) | wc -l > /o; '
        "if true; then rm -rf x; fi"
    )
    names = [c.name for c in s.commands]
    assert names == ["apt-get", "cd", "echo", "wc", "true", "rm", "curl"]
    assert s.commands[0].assignments == [("A", "1")]
    assert s.commands[0].args == ["install", "-y", "a b", 'c"d']
    assert s.has_pipe and s.commands[2].in_pipeline and not s.commands[0].in_pipeline
    assert s.commands[3].args == ["-l"]  # the redirection and its target are dropped


def test_shell_flags() -> None:
    cmd = parse_script(
        "apt-get -yqq install --no-install-recommends -o Dpkg::Options=x -t bookworm pkg"
    ).commands[0]
    assert cmd.has_flag("y") and cmd.has_flag("no-install-recommends") and not cmd.has_flag("yes")
    assert cmd.flag_count("q") == 2
    assert cmd.positionals(("-o", "-t")) == ["install", "pkg"]
    assert parse_script("useradd -u 123 x").commands[0].flag_value("u") == "123"
    assert not parse_script("a || b").has_pipe and parse_script("a | b").has_pipe


def test_pragmas_and_config() -> None:
    text = "FROM debian\n# hadolint ignore=DL3003\nRUN cd /x\nRUN cd /y\n"
    assert [f.line for f in lint(text, advice=False) if f.code == "DL3003"] == [4]
    assert not [
        f for f in lint("# hadolint global ignore=DL3006\n" + text, advice=False) if f.code == "DL3006"
    ]
    cfg = LintConfig(disable_ignore_pragma=True)
    assert [f.line for f in lint(text, cfg, advice=False) if f.code == "DL3003"] == [3, 4]
    cfg = config_from_mapping(
        {"ignored": ["DL3006", "DL3059"], "override": {"error": ["DL3003"]}, "failure-threshold": "error"}
    )
    found = lint(text, cfg, advice=False)
    assert {f.code for f in found} == {"DL3003"} and all(f.severity == "error" for f in found)
    assert failed(found, "error") and not failed(found, "none")
    with pytest.raises(InvalidArgument, match="unknown key"):
        config_from_mapping({"ignore": []})


def test_config_files(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(
        '{"trustedRegistries": ["my.reg"], "label-schema": {"maintainer": "email"}}'
    )
    cfg = load_config(tmp_path / "c.json")
    assert cfg.trusted_registries == ["my.reg"] and cfg.label_schema == {"maintainer": "email"}
    (tmp_path / "c.toml").write_text('ignored = ["DL3008"]\nfailure-threshold = "warning"\n')
    assert load_config(tmp_path / "c.toml").ignored == {"DL3008"}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidArgument, match=r"bad\.json"):
        load_config(tmp_path / "bad.json")


def test_render_formats() -> None:
    found = lint("FROM debian\n", advice=False)
    assert (
        render(found, "tty") == "Dockerfile:1 DL3006 warning: Always tag the version of an image explicitly\n"
    )
    assert render(found, "gnu").startswith("hadolint:Dockerfile:1: DL3006 warning:")
    assert '"code":"DL3006"' in render(found, "json")
    assert 'source="DL3006"' in render(found, "checkstyle")
    assert '"ruleId":"DL3006"' in render(found, "sarif")


def _codes(text: str, context: Path | None = None) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in lint(text, context_dir=context) if f.code.startswith("DY")]


def test_dy101_context_copy_before_install() -> None:
    assert _codes("FROM a:1\nWORKDIR /a\nCOPY . .\nRUN bundle install\n") == [(3, "DY101")]
    manifests_first = "FROM a:1\nWORKDIR /a\nCOPY package.json .\nRUN npm ci && npm cache clean --force\n"
    assert _codes(manifests_first + "COPY . .\nRUN npm run build\n") == []


def test_dy102_dy103_dockerignore(tmp_path: Path) -> None:
    text = "FROM a:1\nWORKDIR /a\nCOPY . .\n"
    (tmp_path / ".git").mkdir()
    assert _codes(text, tmp_path) == [(3, "DY102"), (3, "DY103")]
    (tmp_path / ".dockerignore").write_text("node_modules\n")
    assert _codes(text, tmp_path) == [(3, "DY103")]
    (tmp_path / ".dockerignore").write_text(".git\n")
    assert _codes(text, tmp_path) == []
    assert _codes("FROM a:1\nCOPY app /app\n", tmp_path) == []


def test_dy201_file_deleted_in_later_layer() -> None:
    text = "FROM a:1\nRUN wget -q -O /tmp/x.tgz https://e/x.tgz\nRUN tar -xzf /tmp/x.tgz && rm /tmp/x.tgz\n"
    assert _codes(text) == [(3, "DY201")]
    assert _codes("FROM a:1\nCOPY big.bin /tmp/\nRUN rm /tmp/big.bin\n") == [(3, "DY201")]
    same = "FROM a:1\nRUN wget -q -O /tmp/x.tgz https://e/x.tgz && tar -xzf /tmp/x.tgz && rm /tmp/x.tgz\n"
    assert _codes(same) == []
    assert _codes("FROM a:1\nCOPY big.bin /tmp/\nFROM b:1\nRUN rm /tmp/big.bin\n") == []


def test_dy202_npm_cache() -> None:
    assert _codes("FROM a:1\nRUN npm ci\n") == [(2, "DY202")]
    assert _codes("FROM a:1\nRUN npm ci && npm cache clean --force\n") == []
    assert _codes("FROM a:1\nRUN --mount=type=cache,target=/root/.npm npm ci\n") == []


def test_dy203_many_runs() -> None:
    runs = "".join(f"RUN echo {i} && true\n" for i in range(4))
    assert _codes("FROM a:1\n" + runs) == [(2, "DY203")]
    assert _codes("FROM a:1\n" + runs.replace("RUN echo 2", "WORKDIR /x\nRUN echo 2")) == []


def test_unknown_instruction_is_a_finding() -> None:
    found = [f for f in lint("FROM a:1\nRUNN x\n") if f.code == "DL1000"]
    assert [(f.line, f.severity, f.message) for f in found] == [
        (2, "error", "unknown instruction: RUNN (did you mean RUN?)")
    ]
    # hadolint lints what BuildKit refuses: ONBUILD ONBUILD is DL3043, not a parse error
    assert [f.code for f in lint("FROM a:1\nONBUILD ONBUILD RUN x\n")] == ["DL3043"]


def test_shell_pragma_leaves_dl_rules_alone() -> None:
    # As hadolint: `# hadolint shell=` only switches the ShellCheck pass; DL rules still read the RUN.
    text = "FROM a:1\n# hadolint shell=powershell\nRUN Get-Item x | Out-Null\nRUN cd x\n"
    assert [(f.line, f.code) for f in lint(text)] == [(3, "DL4006"), (4, "DL3003")]


_SHELLISH = st.text(alphabet=st.sampled_from(list("ab -=|&;()$`'\"\\\n{}<>#*/0")), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_SHELLISH)
def test_shell_splitter_never_fails(text: str) -> None:
    script = parse_script(text)
    assert all(isinstance(c.name, str) and isinstance(c.args, list) for c in script.commands)


_LINES = st.lists(
    st.sampled_from(
        [
            "FROM a:1",
            "FROM b AS c",
            "RUN x | y",
            "RUN apt-get install -y z",
            "COPY --from=c . .",
            "ONBUILD RUN cd /x",
            "WORKDIR r",
            "USER root",
            "ENV A=1 B=$A",
            "LABEL k=v",
            "EXPOSE 99999",
            "# hadolint ignore=DL3059",
            "RUN \\",
            "ARG X",
            "HEALTHCHECK NONE",
            "CMD x",
            "RUN ['a'",
        ]
    ),
    max_size=12,
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(_LINES)
def test_lint_never_crashes(lines: list[str]) -> None:
    try:
        found = lint("\n".join(lines) + "\n")
    except DockyardError:
        return  # a file the front end refuses: a clean one-line error
    assert all(f.line >= 1 and f.code[:2] in ("DL", "DY") for f in found)


@pytest.mark.parametrize(("ports", "flagged"), [
    ("65535", False), ("65536", True), ("65535/udp", False), ("65536/tcp", True),
    ("8000-65535", False), ("8000-65536", True), ("0", False),
])
def test_dl3011_port_range_boundary(ports: str, flagged: bool) -> None:
    found = [f.line for f in lint(f"FROM a:1\nEXPOSE 80 {ports}\n") if f.code == "DL3011"]
    assert found == ([2] if flagged else [])


@pytest.mark.parametrize(
    ("script", "piped"),
    [
        ("{ echo a; cat b; } | tee c", True),
        ("(cd /x && make) | grep y", True),
        ('echo "built on `date | tr -s x`"', True),
        ("V=`cat a | grep b` && echo $V", True),
        ("echo $(ls | wc -l)", True),
        ("echo `echo \\`ls | wc\\``", True),
        ("case $x in a|b) echo ab;; esac", False),
        ("case $x in a|b) echo;; *) d | e;; esac", True),
        ("a || b && echo '|' \"x|y\"", False),
    ],
)
def test_pipes_in_compound_commands_and_substitutions(script: str, piped: bool) -> None:
    assert parse_script(script).has_pipe is piped
    found = [f.code for f in lint(f"FROM debian:12\nRUN {script}\n", advice=False)]
    assert ("DL4006" in found) is piped


def test_commands_inside_backticks_are_seen() -> None:
    assert [c.name for c in parse_script('X="`curl -s u | sha256sum`"; wget v').commands] == [
        "",  # the assignment
        "wget",
        "curl",
        "sha256sum",
    ]
    assert "DL4001" in {f.code for f in lint('FROM a:1\nRUN X="`curl -s u`"; wget v\n', advice=False)}
