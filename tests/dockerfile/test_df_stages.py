"""Stages, ARG and ENV scoping as Docker has them, platform ARGs, proxy ARGs, unused build args."""

from __future__ import annotations

import pytest

from dockyard.dockerfile import (
    ArgInstruction,
    CopyInstruction,
    EnvInstruction,
    ExposeInstruction,
    LabelInstruction,
    Platform,
    RunInstruction,
    WorkdirInstruction,
    parse,
    parse_stages,
)
from dockyard.dockerfile.stages import BuildPlan, StageEnv
from dockyard.errors import DockerfileError

AMD64 = Platform.parse("linux/amd64")
ARM = Platform.parse("linux/arm/v7")


def plan(text: str, build_args: dict[str, str] | None = None, target: Platform = ARM) -> BuildPlan:
    return parse_stages(parse(text), build_args, target_platform=target, build_platform=AMD64)


def applied(p: BuildPlan, index: int = 0, image_env: tuple[str, ...] = ()) -> tuple[StageEnv, list[object]]:
    env = p.stage_env(p.stages[index], image_env)
    return env, [env.apply(i) for i in p.stages[index].instructions]


def test_global_args_expand_from_and_platform() -> None:
    p = plan("ARG REG=docker.io\nARG TAG=1.0\nFROM --platform=$BUILDPLATFORM ${REG}/lib/app:${TAG} AS b\n",
             {"TAG": "2.0"})
    st = p.stages[0]
    assert (st.name, st.base_name, st.platform) == ("b", "docker.io/lib/app:2.0", "linux/amd64")
    assert [a.args[0].key for a in p.meta_args] == ["REG", "TAG"]
    assert p.global_args["TAG"] == "2.0"


def test_global_arg_not_visible_in_stage_until_redeclared() -> None:
    p = plan("ARG V=global\nFROM a\nRUN echo\nENV X=$V\nARG V\nENV Y=$V\n")
    _, out = applied(p)
    x, y = out[1], out[3]
    assert isinstance(x, EnvInstruction) and x.env[0].value == ""
    assert isinstance(y, EnvInstruction) and y.env[0].value == "global"


def test_build_arg_overrides_stage_default_and_global() -> None:
    p = plan("ARG V=global\nFROM a\nARG V=stage\nENV X=$V\n", {"V": "cli"})
    _, out = applied(p)
    assert isinstance(out[1], EnvInstruction) and out[1].env[0].value == "cli"
    p2 = plan("ARG V=global\nFROM a\nARG V=stage\nENV X=$V\n")
    _, out2 = applied(p2)
    assert isinstance(out2[1], EnvInstruction) and out2[1].env[0].value == "stage"


def test_arg_default_expands_earlier_args_and_env() -> None:
    p = plan("FROM a\nENV BASE=/opt\nARG DIR=$BASE/app\nWORKDIR $DIR\n")
    _, out = applied(p)
    assert isinstance(out[2], WorkdirInstruction) and out[2].path == "/opt/app"


def test_arg_and_env_last_assignment_wins() -> None:
    # BuildKit adds an ARG's value to the build environment, so whichever came last wins for
    # expansion and RUN; the image config keeps only the ENV value.
    p = plan("FROM a\nARG X=from-arg\nENV X=from-env\nLABEL x=$X\n", {"X": "cli"})
    _, out = applied(p)
    assert isinstance(out[2], LabelInstruction) and out[2].labels[0].value == "from-env"
    env, out2 = applied(plan("FROM a\nENV X=from-env\nARG X=from-arg\nLABEL x=$X\n"))
    assert isinstance(out2[2], LabelInstruction) and out2[2].labels[0].value == "from-arg"
    assert env.env == {"X": "from-env"} and env.run_env()["X"] == "from-arg"


def test_each_stage_has_its_own_scope() -> None:
    p = plan("FROM a AS one\nARG A=1\nENV E=1\nFROM b AS two\nLABEL a=${A:-unset} e=${E:-unset}\n")
    _, out = applied(p, 1)
    assert isinstance(out[0], LabelInstruction)
    assert [lb.value for lb in out[0].labels] == ["unset", "unset"]


def test_platform_args() -> None:
    text = ("FROM a\nARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\n"
            "ARG BUILDPLATFORM\nARG BUILDOS\nARG BUILDARCH\nARG BUILDVARIANT\n"
            "LABEL t=$TARGETPLATFORM/$TARGETOS/$TARGETARCH/$TARGETVARIANT b=$BUILDPLATFORM/$BUILDARCH\n")
    _, out = applied(plan(text))
    label = out[-1]
    assert isinstance(label, LabelInstruction)
    assert [lb.value for lb in label.labels] == ["linux/arm/v7/linux/arm/v7", "linux/amd64/amd64"]
    # Not declared in the stage: not visible.
    _, out2 = applied(plan("FROM a\nLABEL t=${TARGETARCH:-none}\n"))
    assert isinstance(out2[0], LabelInstruction) and out2[0].labels[0].value == "none"


def test_platform_parse() -> None:
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64"
    assert str(Platform.parse("arm")) == "linux/arm/v7"
    assert str(Platform.parse("Linux/X86_64")) == "linux/amd64"
    with pytest.raises(DockerfileError, match="failed to parse platform"):
        Platform.parse("linux/")
    with pytest.raises(DockerfileError, match="failed to parse platform"):
        plan("FROM --platform=a/b/c/d x\n")


def test_proxy_args_reach_run_but_not_history() -> None:
    p = plan("FROM a\nARG V=1\nRUN make\n", {"HTTP_PROXY": "http://proxy:3128", "no_proxy": "local"})
    env, _ = applied(p)
    assert env.run_env() == {"HTTP_PROXY": "http://proxy:3128", "no_proxy": "local", "V": "1"}
    assert env.history_args() == ["V=1"]
    assert p.unused_build_args == []  # proxy args are never reported


def test_unused_build_args_warning() -> None:
    p = plan("ARG USED_GLOBALLY\nFROM a\nARG USED_IN_STAGE\n",
             {"USED_GLOBALLY": "1", "USED_IN_STAGE": "2", "TYPO": "3", "OTHER": "4"})
    assert p.unused_build_args == ["OTHER", "TYPO"]
    assert p.unused_args_warning() == "[Warning] One or more build-args [OTHER TYPO] were not consumed"
    assert plan("FROM a\n").unused_args_warning() is None
    # ARG ${src} is named in the build, so no build arg is known to be unused before it.
    assert plan("FROM a\nENV src=a\nARG ${src}\n", {"a": "1"}).unused_args_warning() is None


def test_stage_references() -> None:
    p = plan("FROM golang AS Build\nRUN go build\nFROM build AS test\n"
             "FROM scratch\nCOPY --from=build /x /x\n")
    assert p.stages[1].base_stage == 0
    assert p.stages[2].base_stage is None
    assert p.stage("BUILD") is p.stages[0] and p.stage(2) is p.stages[2] and p.stage("1") is p.stages[1]
    with pytest.raises(DockerfileError, match='target stage "nope" could not be found'):
        p.stage("nope")


def test_image_env_and_expansion_of_every_kind() -> None:
    text = ("FROM a\nARG V=1.2\nWORKDIR $HOME/src\nCOPY --chown=$USER app-$V.tgz ${HOME}/\n"
            "EXPOSE ${PORT:-80}/tcp $EXTRA\nRUN --mount=type=cache,target=$HOME/.cache build $V\n")
    env, out = applied(plan(text), image_env=("HOME=/root", "USER=app", "EXTRA=81 82/udp"))
    wd, copy, expose, run = out[1], out[2], out[3], out[4]
    assert isinstance(wd, WorkdirInstruction) and wd.path == "/root/src"
    assert isinstance(copy, CopyInstruction)
    assert (copy.chown, copy.sources, copy.dest) == ("app", ["app-1.2.tgz"], "/root/")
    assert isinstance(expose, ExposeInstruction) and sorted(expose.ports) == ["80/tcp", "81", "82/udp"]
    assert isinstance(run, RunInstruction)
    assert run.mounts[0].target == "/root/.cache" and run.cmd_line == ["build $V"]  # the shell expands RUN
    assert env.expand_words("$EXTRA") == ["81", "82/udp"]


def test_copy_heredoc_expansion_follows_quoting() -> None:
    text = "FROM a\nARG N=world\nCOPY <<EOF <<'RAW' /\nhello $N\nEOF\nhello $N\nRAW\n"
    _, out = applied(plan(text))
    copy = out[1]
    assert isinstance(copy, CopyInstruction)
    assert [c.data for c in copy.contents] == ["hello world\n", "hello $N\n"]


def test_arg_instruction_records_values() -> None:
    _, out = applied(plan("FROM a\nARG A B=2\n", {"A": "1"}))
    arg = out[0]
    assert isinstance(arg, ArgInstruction)
    assert [(a.key, a.value) for a in arg.args] == [("A", "1"), ("B", "2")]


def test_arg_names_are_expanded() -> None:
    # Names as Docker 20.10's BuildKit (ArgCommand.Expand, in the scope before the instruction, so not
    # seeing a name of the same line; today's BuildKit no longer calls it for ARG and keeps "${src}").
    # Defaults as today's dispatchArg: one at a time, seeing the names before them (20.10 gives b="").
    # A build arg matches the expanded name.
    _, out = applied(plan("FROM a\nENV src=a\nARG ${src}=x.txt b=$a c_${b}\nCOPY $a $b /out\n", {"c_": "3"}))
    arg, copy = out[1], out[2]
    assert isinstance(arg, ArgInstruction) and isinstance(copy, CopyInstruction)
    assert [(a.key, a.value) for a in arg.args] == [("a", "x.txt"), ("b", "x.txt"), ("c_", "3")]
    assert copy.sources == ["x.txt", "x.txt"]


def test_errors_carry_place() -> None:
    with pytest.raises(DockerfileError) as err:
        plan("ARG X\nFROM ${X}\n")
    assert str(err.value) == "Dockerfile:2:1: base name (${X}) should not be blank"
    with pytest.raises(DockerfileError) as err2:
        plan("RUN echo\nFROM a\n")
    assert err2.value.line == 1 and "no build stage" in err2.value.detail
    p = plan("FROM a\n\nENV X=${Y:?required}\n")
    with pytest.raises(DockerfileError) as err3:
        applied(p)
    assert str(err3.value) == 'Dockerfile:3:1: failed to process "${Y:?required}": Y: required'
    with pytest.raises(DockerfileError, match="no FROM"):
        plan("ARG A=1\n")


def test_deep_nesting_is_an_error_with_its_place() -> None:
    deep = "x"
    for _ in range(400):
        deep = "${A:-" + deep + "}"
    with pytest.raises(DockerfileError) as err:
        applied(plan(f"FROM a\nENV B={deep}\n"))
    assert str(err.value).startswith('Dockerfile:2:1: failed to process "${A:-${A:-')
    assert str(err.value).endswith('...": variable substitutions nested more than 100 deep')
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1:1: .* nested more than 100 deep$"):
        plan(f"ARG B={deep}\nFROM a\n")
    ok = "x"
    for _ in range(100):
        ok = '${A:-"' + ok + '"}'
    _, out = applied(plan(f"FROM a\nENV B={ok}\n"))
    assert isinstance(out[0], EnvInstruction) and out[0].env[0].value == "x"


def test_stage_dependencies() -> None:
    from dockyard.dockerfile.stages import needed_stages
    p = plan("ARG SRC=deps\nFROM alpine AS deps\nFROM alpine AS unused\nFROM golang AS build\n"
             "COPY --from=$SRC /a /a\nRUN --mount=type=bind,from=unused,target=/u true\n"
             "FROM build AS final\nCOPY --from=0 /b /b\nCOPY --from=nginx:latest /c /c\n")
    build, final = p.stages[2], p.stages[3]
    assert build.deps == {0, 1}
    copy = build.instructions[0]
    assert isinstance(copy, CopyInstruction) and copy.from_ == "deps"
    assert final.deps == {2, 0}
    assert [s.name for s in needed_stages(p, final)] == ["deps", "unused", "build", "final"]
    assert [s.name for s in needed_stages(p, p.stages[0])] == ["deps"]
