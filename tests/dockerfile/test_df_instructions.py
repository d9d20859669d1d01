"""Typed instructions: every instruction and flag of the Dockerfile reference, and their errors."""

from __future__ import annotations

import pytest

from dockyard.dockerfile import (
    AddInstruction,
    CmdInstruction,
    CopyInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    Instruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopSignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
    parse,
    parse_instruction,
    parse_mount,
    parse_port_spec,
)
from dockyard.dockerfile.instructions import validate_chmod
from dockyard.errors import DockerfileError


def one(text: str) -> Instruction:
    return parse_instruction(parse(text).children[0])


def error(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as err:
        one(text)
    return err.value


def test_from() -> None:
    instr = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build")
    assert isinstance(instr, FromInstruction)
    assert (instr.base_name, instr.stage_name, instr.platform) == ("golang:1.22", "build", "$BUILDPLATFORM")
    assert "one or three arguments" in error("FROM a b").detail
    assert "invalid name for build stage" in error("FROM a AS 1st").detail


def test_run_forms_and_flags() -> None:
    shell = one("RUN --network=none --security=insecure echo $HOME")
    assert isinstance(shell, RunInstruction)
    assert (shell.cmd_line, shell.prepend_shell, shell.network, shell.security) == (
        ["echo $HOME"], True, "none", "insecure")
    exec_form = one('RUN ["/bin/sh", "-c", "true"]')
    assert isinstance(exec_form, RunInstruction)
    assert (exec_form.cmd_line, exec_form.prepend_shell) == (["/bin/sh", "-c", "true"], False)
    assert 'unsupported network mode "bridge"' in error("RUN --network=bridge x").detail
    assert "unsupported security mode" in error("RUN --security=root x").detail
    dev = one("RUN --device=vendor.com/gpu=all,required x")
    assert isinstance(dev, RunInstruction) and dev.devices[0].required


def test_mount_every_type_and_key() -> None:
    bind = parse_mount("type=bind,from=builder,source=/src,target=/dst,rw")
    assert (bind.type, bind.from_, bind.source, bind.target, bind.readonly) == (
        "bind", "builder", "/src", "/dst", False)
    assert parse_mount("target=/x").readonly  # bind defaults to read-only
    cache = parse_mount("type=cache,id=go,target=/root/.cache,sharing=locked,mode=0755,uid=1000,gid=1000,ro")
    assert (cache.cache_id, cache.cache_sharing, cache.mode, cache.uid, cache.gid, cache.readonly) == (
        "go", "locked", 0o755, 1000, 1000, True)
    assert not parse_mount("type=cache,target=/c").readonly
    tmpfs = parse_mount("type=tmpfs,target=/t,size=64m")
    assert (tmpfs.size_limit, tmpfs.readonly) == (64 << 20, False)
    secret = parse_mount("type=secret,id=npmrc,dst=/root/.npmrc,required=true,env=TOKEN", lambda s: s)
    assert (secret.cache_id, secret.target, secret.required, secret.env) == (
        "npmrc", "/root/.npmrc", True, "TOKEN")
    ssh = parse_mount("type=ssh,required")
    assert ssh.type == "ssh" and ssh.required


@pytest.mark.parametrize(("value", "message"), [
    ("type=volume,target=/x", 'unsupported mount type "volume"'),
    ("type=bind,target=/x,size=1g", "unexpected key 'size' for mount type 'bind'"),
    ("type=bind,target=/x,sharing=shared", "invalid cache sharing set for bind mount"),
    ("type=cache,target=/x,sharing=everyone", 'unsupported sharing value "everyone"'),
    ("type=bind,target=/x,mode=0644", 'mode not allowed for "bind" type mounts'),
    ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
    ("type=cache,target=/x,mode=999", "invalid value 999 for mode"),
    ("type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ("type=bind,from=$STAGE-x,target=/x", "doesn't support variable expansion"),
    ("type=cache,targt=/x", "unexpected key 'targt' in 'targt=/x' (did you mean target?)"),
])
def test_mount_errors(value: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse_mount(value)
    assert message in err.value.detail


def test_secret_mount_rules_at_build_time() -> None:
    ident = str
    with pytest.raises(DockerfileError, match="secret mount should not have a from"):
        parse_mount("type=secret,id=a,from=x", ident)
    with pytest.raises(DockerfileError, match="both source and id can't be set"):
        parse_mount("type=secret,id=a,src=b", ident)
    with pytest.raises(DockerfileError, match="one of source, target required"):
        parse_mount("type=secret", ident)


def test_run_mount_expanded_later() -> None:
    run = one("RUN --mount=type=cache,target=$DIR,id=$ID make")
    assert isinstance(run, RunInstruction)
    assert run.mounts[0].target == ""  # variables are resolved by the stage scope
    expanded = run.expand(lambda w: w.replace("$DIR", "/c").replace("$ID", "k"))
    assert isinstance(expanded, RunInstruction)
    assert (expanded.mounts[0].target, expanded.mounts[0].cache_id) == ("/c", "k")


def test_copy_all_flags() -> None:
    instr = one("COPY --from=build --chown=app:app --chmod=0640 --link --parents --exclude=*.tmp "
                "--exclude=.git a/ b/ /dst/")
    assert isinstance(instr, CopyInstruction)
    assert (instr.from_, instr.chown, instr.chmod, instr.link, instr.parents) == (
        "build", "app:app", "0640", True, True)
    assert (instr.sources, instr.dest, instr.excludes) == (["a/", "b/"], "/dst/", ["*.tmp", ".git"])
    json_form = one('COPY ["a b", "/c d/"]')
    assert isinstance(json_form, CopyInstruction) and json_form.sources == ["a b"]


def test_add_defaults() -> None:
    instr = one("ADD https://example.com/x.tgz /opt/")
    assert isinstance(instr, AddInstruction)
    assert (instr.unpack, instr.keep_git_dir, instr.checksum, instr.link) == (None, False, "", False)
    assert "invalid checksum digest format" in error("ADD --checksum=abc http://x /y").detail


@pytest.mark.parametrize("value", ["755", "0644", "u+x", "go-w", "a=rX,u+w", "u=rwx,g=rx,o=", "g=u"])
def test_chmod_accepts(value: str) -> None:
    validate_chmod(value)
    instr = one(f"COPY --chmod={value} a /b")
    assert isinstance(instr, CopyInstruction) and instr.chmod == value


@pytest.mark.parametrize("value", ["999", "rwx", "u+q", "12345", "x+r"])
def test_chmod_rejects(value: str) -> None:
    assert "invalid chmod parameter" in error(f"COPY --chmod={value} a /b").detail


def test_cmd_entrypoint_shell() -> None:
    cmd = one("CMD echo hi")
    assert isinstance(cmd, CmdInstruction) and (cmd.cmd_line, cmd.prepend_shell) == (["echo hi"], True)
    ep = one("ENTRYPOINT []")
    assert isinstance(ep, EntrypointInstruction) and ep.cmd_line == [] and not ep.prepend_shell
    sh = one('SHELL ["powershell", "-command"]')
    assert isinstance(sh, ShellInstruction) and sh.shell == ["powershell", "-command"]
    assert error("SHELL /bin/bash -c").detail == "SHELL requires the arguments to be in JSON form"
    assert error("SHELL []").detail == "SHELL requires at least one argument"


def test_env_label() -> None:
    env = one('ENV A=1 B="two words"')
    assert isinstance(env, EnvInstruction)
    assert [(p.key, p.value) for p in env.env] == [("A", "1"), ("B", '"two words"')]
    legacy = one("ENV PATH /usr/bin:/bin")
    assert isinstance(legacy, EnvInstruction) and legacy.env[0].no_delim
    label = one('LABEL org.opencontainers.image.title="x" version=1')
    assert isinstance(label, LabelInstruction) and len(label.labels) == 2


def test_expose_ranges_and_protocols() -> None:
    instr = one("EXPOSE 80 443/tcp 53/udp 8000-8002/sctp")
    assert isinstance(instr, ExposeInstruction)
    specs = [parse_port_spec(p) for p in instr.ports]
    keys = [k for s in specs for k in s.exposed_keys()]
    assert sorted(keys) == sorted(["80/tcp", "443/tcp", "53/udp", "8000/sctp", "8001/sctp", "8002/sctp"])
    for bad in ("80/icmp", "x", "90-80", "70000", "1:2"):
        with pytest.raises(DockerfileError):
            parse_port_spec(bad)


def test_healthcheck_all_flags() -> None:
    hc = one("HEALTHCHECK --interval=30s --timeout=1m30s --start-period=2.5s --start-interval=500ms "
             "--retries=3 CMD curl -f http://localhost/ || exit 1")
    assert isinstance(hc, HealthcheckInstruction)
    assert hc.test == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        30 * 10**9, 90 * 10**9, 2_500_000_000, 500_000_000, 3)
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, HealthcheckInstruction) and none.test == ["NONE"]
    exec_form = one('HEALTHCHECK CMD ["/bin/check", "-q"]')
    assert isinstance(exec_form, HealthcheckInstruction) and exec_form.test == ["CMD", "/bin/check", "-q"]
    assert error("HEALTHCHECK NONE x").detail == "HEALTHCHECK NONE takes no arguments"
    assert error("HEALTHCHECK CONNECT x").detail == 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'
    assert error("HEALTHCHECK CMD").detail == "Missing command after HEALTHCHECK CMD"
    assert error("HEALTHCHECK --retries=-1 CMD x").detail == "--retries cannot be negative (-1)"
    assert "invalid duration" in error("HEALTHCHECK --timeout=soon CMD x").detail


def test_healthcheck_durations_are_go_durations() -> None:
    hc = one("HEALTHCHECK --interval=1h2m3.5s --timeout=1.5ms --start-period=1500us CMD x")
    assert isinstance(hc, HealthcheckInstruction)
    assert (hc.interval, hc.timeout, hc.start_period) == (3723_500_000_000, 1_500_000, 1_500_000)
    assert error("HEALTHCHECK --interval=1 CMD x").detail == 'time: missing unit in duration "1"'
    assert error("HEALTHCHECK --interval=1X CMD x").detail == 'time: unknown unit "X" in duration "1X"'
    assert error("HEALTHCHECK --interval=.s CMD x").detail == 'time: invalid duration ".s"'
    assert error("HEALTHCHECK --interval=10us CMD x").detail == 'Interval "interval" cannot be less than 1ms'


def test_simple_instructions() -> None:
    user = one("USER app:app")
    assert isinstance(user, UserInstruction) and user.user == "app:app"
    wd = one("WORKDIR /srv/app")
    assert isinstance(wd, WorkdirInstruction) and wd.path == "/srv/app"
    vol = one('VOLUME ["/data", "/logs"]')
    assert isinstance(vol, VolumeInstruction) and vol.volumes == ["/data", "/logs"]
    sig = one("STOPSIGNAL SIGQUIT")
    assert isinstance(sig, StopSignalInstruction) and sig.signal == "SIGQUIT"
    mt = one("MAINTAINER Jane Doe <jane@example.com>")
    assert isinstance(mt, MaintainerInstruction) and mt.maintainer == "Jane Doe <jane@example.com>"
    assert error('VOLUME [""]').detail == "VOLUME specified can not be an empty string"
    assert error("USER").detail == "USER requires exactly one argument"
    spaced = one("USER a b")  # the rest of the line is one argument, as BuildKit reads it
    assert isinstance(spaced, UserInstruction) and spaced.user == "a b"


def test_onbuild() -> None:
    ob = one("ONBUILD COPY . /app")
    assert isinstance(ob, OnbuildInstruction) and ob.expression == "COPY . /app"
    hd = parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n").children[1]
    ob2 = parse_instruction(hd)
    assert isinstance(ob2, OnbuildInstruction) and ob2.expression == "RUN <<EOF\necho hi\nEOF"


def test_did_you_mean_and_places() -> None:
    err = error("RUNN echo")
    assert err.detail == "unknown instruction: RUNN (did you mean RUN?)"
    assert (err.file, err.line, err.column) == ("Dockerfile", 1, 1)
    assert error("cpy a b").detail == "unknown instruction: cpy (did you mean copy?)"
    flag = error("COPY --chwon=1 a b")
    assert flag.detail == "unknown flag: --chwon (did you mean --chown?)"
    assert flag.column == 6
    res = parse("FROM a\n\n    HEALTHCHEK CMD true\n", filename="app.Dockerfile")
    with pytest.raises(DockerfileError) as placed:
        parse_instruction(res.children[1], "app.Dockerfile")
    assert str(placed.value) == (
        "app.Dockerfile:3:5: unknown instruction: HEALTHCHEK (did you mean HEALTHCHECK?)")


@pytest.mark.parametrize(("text", "message"), [
    ("COPY --link=maybe a b", "expecting boolean value for flag link, not: maybe"),
    ("COPY --from a b", "missing a value on flag: from"),
    ("COPY --link= a b", "missing a value on flag: link"),
    ("COPY --from=a --from=b a b", "duplicate flag specified: from"),
    ("WORKDIR --x=1 /a", "unknown flag: --x"),
])
def test_flag_errors(text: str, message: str) -> None:
    assert message in error(text).detail


def test_stop_signals() -> None:
    from dockyard.dockerfile.instructions import parse_signal
    names = ("9", "KILL", "SIGKILL", "sigterm", "SIGRTMIN+3", "RTMAX-1", "SIGWINCH")
    assert [parse_signal(s) for s in names] == [9, 9, 9, 15, 37, 63, 28]
    for bad in ("0", "65", "SIGNOPE", "RTMIN+40", "RTMINx", ""):
        with pytest.raises(DockerfileError, match="Invalid signal"):
            parse_signal(bad)
