"""The build engine end to end on a real store: instructions, cache, stages, mounts, errors."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard.builder.engine import build
from dockyard.builder.options import BuildOptions
from dockyard.errors import BuildError, DockerfileError
from dockyard.imageops.layers import open_form, stored_forms
from dockyard.progress import VertexCompleted, VertexLog
from tests.builder.conftest import Builds

BASE = "FROM busybox:local\n"


def test_config_instructions(builds: Builds) -> None:
    ctx = builds.context(BASE + """
ENV A=1 B="two words"
ENV A=3
LABEL org.test.a=x "org.test.b"="y z"
EXPOSE 80 8000-8002/udp
VOLUME /data
VOLUME ["/logs"]
WORKDIR /srv
WORKDIR app
USER 1000:1000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/echo"]
ONBUILD RUN echo triggered
""")
    result = builds.build(ctx, tags=["cfg:1"])
    config = builds.client.image_config("cfg:1")
    run = config.config
    assert run["Env"][-2:] == ["A=3", "B=two words"]
    assert run["Labels"] == {"org.test.a": "x", "org.test.b": "y z"}
    assert run["ExposedPorts"] == {"80/tcp": {}, "8000/udp": {}, "8001/udp": {}, "8002/udp": {}}
    assert run["Volumes"] == {"/data": {}, "/logs": {}}
    assert run["WorkingDir"] == "/srv/app"
    assert run["User"] == "1000:1000"
    assert run["StopSignal"] == "SIGTERM"
    assert run["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
                                  "Interval": 5_000_000_000, "Retries": 2}
    assert run["Shell"] == ["/bin/sh", "-ec"]
    assert run["Entrypoint"] == ["/bin/echo"]
    assert "Cmd" not in run  # an ENTRYPOINT resets the CMD inherited from the base
    assert run["OnBuild"] == ["RUN echo triggered"]
    assert result.image_id == str(builds.client.resolve("cfg:1"))
    assert (builds.rootfs("cfg:1") / "srv" / "app").is_dir()
    created = [h.created_by for h in config.history]
    assert "ENV A=1 B=two words" in created and "WORKDIR /srv/app" in created


def test_run_copy_and_files(builds: Builds) -> None:
    ctx = builds.context(BASE + """
WORKDIR /app
COPY a.txt sub/ ./
COPY --chown=1234:5678 --chmod=0640 a.txt /owned
RUN echo "$(cat a.txt)-run" > out && rm -f /bin/vi && ln -s /app/out /app/link
""", {"a.txt": "A", "sub/b.txt": "B"})
    builds.build(ctx, tags=["files:1"])
    root = builds.rootfs("files:1")
    assert (root / "app" / "a.txt").read_text() == "A"
    assert (root / "app" / "b.txt").read_text() == "B"
    assert (root / "app" / "out").read_text() == "A-run\n"
    assert os.readlink(root / "app" / "link") == "/app/out"
    assert not (root / "bin" / "vi").exists()
    st = (root / "owned").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
    assert (root / "app" / "a.txt").stat().st_uid == 0


def test_cache_hits_and_invalidation(builds: Builds) -> None:
    ctx = builds.context(BASE + """
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /copy
""", {"a.txt": "v1"})
    first = builds.build(ctx, tags=["c:1"])
    assert first.cached == 0
    again = builds.build(ctx, tags=["c:1"])
    assert again.image_id == first.image_id
    assert again.cached == again.steps == 3
    (ctx / "a.txt").write_text("v2")
    changed = builds.build(ctx, tags=["c:1"])
    states = builds.statuses()
    assert states["[2/4] RUN echo one > /one"] == "cached"
    assert states["[3/4] COPY a.txt /a.txt"] == "done"
    assert states["[4/4] RUN cat /a.txt > /copy"] == "done"
    assert changed.image_id != first.image_id
    assert (builds.rootfs("c:1") / "copy").read_text() == "v2"
    os.utime(ctx / "a.txt", (1, 1))  # mtime alone is not a change
    assert builds.build(ctx).cached == 3
    assert builds.build(ctx, no_cache=True).cached == 0


def test_stages_target_and_skip(builds: Builds) -> None:
    ctx = builds.context("""
FROM busybox:local AS broken
RUN exit 1
FROM busybox:local AS base
RUN echo base > /base
FROM base AS final
COPY --from=base /base /copied
RUN cat /copied
""")
    builds.build(ctx, tags=["st:final"])  # "broken" is not needed: never built
    assert (builds.rootfs("st:final") / "copied").read_text() == "base\n"
    builds.build(ctx, tags=["st:base"], target="base")
    assert not (builds.rootfs("st:base") / "copied").exists()
    with pytest.raises(BuildError, match="did not complete successfully: exit code: 1"):
        builds.build(ctx, target="broken")


def test_independent_stages_run_in_parallel(builds: Builds) -> None:
    ctx = builds.context("""
FROM busybox:local AS a
RUN sleep 1 && echo a > /a
FROM busybox:local AS b
RUN sleep 1 && echo b > /b
FROM busybox:local
COPY --from=a /a /a
COPY --from=b /b /b
""")
    builds.build(ctx, tags=["par:1"])
    order = builds.timeline()
    runs = [i for i, (name, status) in enumerate(order) if "RUN sleep" in name and status == "started"]
    first_done = min(i for i, (name, status) in enumerate(order) if "RUN sleep" in name and status == "done")
    assert len(runs) == 2 and max(runs) < first_done, order


def test_failing_run_reports_command_and_code_and_its_output_once(builds: Builds) -> None:
    ctx = builds.context(BASE + "RUN echo some output && echo to stderr >&2 && exit 3\n")
    with pytest.raises(BuildError) as info:
        builds.build(ctx)
    message = str(info.value)
    # BuildKit's error: the command and its code; the output is the progress display's to show.
    assert message == ('process "/bin/sh -c echo some output && echo to stderr >&2 && exit 3" '
                       "did not complete successfully: exit code: 3")
    logs = [(e.data, e.stream) for e in builds.events if isinstance(e, VertexLog)]
    assert b"".join(d for d, s in logs if s == 1) == b"some output\n"
    assert b"".join(d for d, s in logs if s == 2) == b"to stderr\n"
    assert [(e.name, e.outcome, e.error) for e in builds.events if isinstance(e, VertexCompleted)][-1] == (
        "[2/2] RUN echo some output && echo to stderr >&2 && exit 3", "error", message)


def test_dockerfile_errors_have_a_place(builds: Builds) -> None:
    ctx = builds.context(BASE + "RUNN echo\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2.*RUNN.*did you mean RUN"):
        builds.build(ctx)


def test_secret_mount_never_in_layers(builds: Builds) -> None:
    ctx = builds.context(BASE + "RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen\n")
    builds.build(ctx, tags=["sec:1"], secrets={"tok": b"s3cr3t"})
    root = builds.rootfs("sec:1")
    assert (root / "seen").read_text() == "s3cr3t"
    assert not (root / "run" / "secrets" / "tok").exists()
    history = " ".join(h.created_by for h in builds.client.image_config("sec:1").history)
    assert "s3cr3t" not in history
    for diff_id in builds.client.image_config("sec:1").diff_ids:
        blob = stored_forms(builds.client.store, diff_id)[0]
        with open_form(builds.client.store, blob.digest)[0] as f:
            data = f.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            # The mount point directory stays, as with BuildKit; the secret file never.
            assert not any(n.endswith("secrets/tok") for n in tf.getnames())


def test_cache_mount_persists_between_builds(builds: Builds) -> None:
    df = BASE + "RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /count\n"
    ctx = builds.context(df)
    builds.build(ctx, tags=["cm:1"])
    builds.build(ctx, tags=["cm:1"], no_cache=True)
    assert (builds.rootfs("cm:1") / "count").read_text().strip() == "2"
    assert not (builds.rootfs("cm:1") / "cache" / "log").exists()


def _sharing_run(stage: str, other: str, sharing: str, sync: str) -> str:
    """A RUN that writes its name into the cache, waits until the other stage has written too,
    then reads the cache back (``/sync``: a shared cache both stages see, for the two barriers; a
    stage that waits 30 s in vain fails the build: the two must run at once)."""
    wait = "i=0; until [ -e /sync/{f} ] || [ $i -gt 600 ]; do sleep 0.05; i=$((i+1)); done; [ -e /sync/{f} ]"
    return (f"RUN --mount=type=cache,id={sync},target=/sync "
            f"--mount=type=cache,id=who,target=/c,sharing={sharing} "
            f"touch /sync/{stage}1; {wait.format(f=other + '1')} && echo {stage} > /c/who && "
            f"touch /sync/{stage}2 && {wait.format(f=other + '2')} && cat /c/who > /seen\n")


@pytest.mark.slow
@pytest.mark.parametrize("sharing", ["private", "shared"])
def test_cache_mount_sharing_between_concurrent_steps(builds: Builds, sharing: str) -> None:
    """sharing=private: a step that finds the cache in use by another gets a cache of its own (as
    BuildKit: a new mount for a second writer); shared: both write the same directory."""
    sync = f"sync-{os.urandom(4).hex()}"
    ctx = builds.context(f"FROM busybox:local AS a\n{_sharing_run('a', 'b', sharing, sync)}"
                         f"FROM busybox:local AS b\n{_sharing_run('b', 'a', sharing, sync)}"
                         "FROM busybox:local\nCOPY --from=a /seen /a\nCOPY --from=b /seen /b\n")
    builds.build(ctx, tags=[f"sharing:{sharing}"], no_cache=True)
    root = builds.rootfs(f"sharing:{sharing}")
    seen = ((root / "a").read_text().strip(), (root / "b").read_text().strip())
    if sharing == "private":
        assert seen == ("a", "b")
    else:  # both read what the last writer left
        assert seen[0] == seen[1], seen


def test_network_none_has_only_loopback(builds: Builds) -> None:
    ctx = builds.context(BASE + "RUN --network=none ls /sys/class/net > /ifaces\n")
    builds.build(ctx, tags=["net:1"])
    assert (builds.rootfs("net:1") / "ifaces").read_text().split() == ["lo"]


def test_add_unpacks_local_tar_and_dockerignore(builds: Builds) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"inside"
        info = tarfile.TarInfo("pkg/file.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    ctx = builds.context(BASE + "ADD bundle.tar.gz /opt/\nCOPY . /ctx/\n",
                         {"bundle.tar.gz": buf.getvalue(), ".dockerignore": "*.log\nsecret/\n",
                          "keep.txt": "k", "drop.log": "d", "secret/key": "x"})
    builds.build(ctx, tags=["add:1"])
    root = builds.rootfs("add:1")
    assert (root / "opt" / "pkg" / "file.txt").read_text() == "inside"
    assert (root / "ctx" / "keep.txt").exists()
    assert not (root / "ctx" / "drop.log").exists()
    assert not (root / "ctx" / "secret").exists()


def test_source_date_epoch_is_reproducible(builds: Builds, tmp_path: Path) -> None:
    ctx = builds.context(BASE + "RUN echo hi > /hi && touch /stamp\nCOPY f /f\n", {"f": "x"})
    first = builds.build(ctx, source_date_epoch=1700000000, no_cache=True)
    second = builds.build(ctx, source_date_epoch=1700000000, no_cache=True)
    assert first.image_id == second.image_id


def test_onbuild_triggers_run_in_child(builds: Builds) -> None:
    parent = builds.context(BASE + "ONBUILD RUN echo from-trigger > /trig\n", name="parent")
    builds.build(parent, tags=["onb:parent"])
    child = builds.context("FROM onb:parent\nRUN cat /trig\n", name="child")
    builds.build(child, tags=["onb:child"])
    assert (builds.rootfs("onb:child") / "trig").read_text() == "from-trigger\n"
    assert not builds.client.image_config("onb:child").config.get("OnBuild")


def test_heredocs(builds: Builds) -> None:
    ctx = builds.context(BASE + (
        "RUN <<EOF\n"
        "echo line1 > /h1\n"
        "echo line2 >> /h1\n"
        "EOF\n"
        "COPY <<EOT /h2\n"
        "hello $HOME\n"
        "EOT\n"
        "RUN cat <<X > /h3\n"
        "inline\n"
        "X\n"))
    builds.build(ctx, tags=["hd:1"])
    root = builds.rootfs("hd:1")
    assert (root / "h1").read_text() == "line1\nline2\n"
    assert (root / "h2").read_text().startswith("hello ")
    assert (root / "h3").read_text() == "inline\n"
    assert not (root / "run" / "dockyard-pipes").exists()


def test_symlink_in_image_does_not_lead_outside(builds: Builds, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ctx = builds.context(BASE + f"RUN ln -s {outside} /escape\nCOPY f /escape/f\n", {"f": "x"})
    builds.build(ctx, tags=["esc:1"])
    assert list(outside.iterdir()) == []


def test_missing_base_image_without_registry(builds: Builds) -> None:
    ctx = builds.context("FROM nosuchimage:1\nRUN true\n")
    with pytest.raises(BuildError, match="nosuchimage"):
        builds.build(ctx)


def test_two_builds_at_once_share_the_store(builds: Builds) -> None:
    ctx = builds.context(BASE + "RUN echo same > /same\n")
    errors: list[BaseException] = []

    def one(tag: str) -> None:
        try:
            build(builds.client.store, BuildOptions(context_dir=str(ctx), tags=[tag]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(f"twin:{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for tag in ("twin:0", "twin:1"):
        assert (builds.rootfs(tag) / "same").read_text() == "same\n"
    report = builds.client.check()
    assert not report.problems, report.problems


@pytest.mark.runc
def test_runc_runtime_gives_the_same_files(builds: Builds) -> None:
    from tests.builder.fstree import diff, snapshot

    df = BASE + "WORKDIR /w\nRUN echo x > f && mkdir -p d/e && ln -s f l && rm -f /bin/vi && id > /w/id\n"
    ctx = builds.context(df)
    builds.build(ctx, tags=["rt:builtin"], no_cache=True)
    builds.build(ctx, tags=["rt:runc"], no_cache=True, runtime="runc")
    a, b = snapshot(builds.rootfs("rt:builtin")), snapshot(builds.rootfs("rt:runc"))
    assert not diff(a, b)


def test_named_build_contexts(builds: Builds, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "lib.txt").write_text("from-other")
    os.chown(other / "lib.txt", 4321, 4321)
    ctx = builds.context("FROM base\nCOPY --from=extra lib.txt /lib.txt\nCOPY --from=base /bin/busybox /bb\n")
    builds.build(ctx, tags=["named:1"],
                 build_contexts={"extra": str(other), "base": "docker-image://busybox:local"})
    root = builds.rootfs("named:1")
    assert (root / "lib.txt").read_text() == "from-other"
    assert (root / "lib.txt").stat().st_uid == 0  # a local context's files belong to root
    assert (root / "bb").stat().st_size > 0


def test_copy_exclude_and_parents(builds: Builds) -> None:
    ctx = builds.context(BASE + "COPY --exclude=**/*.log --exclude=tmp/ . /all/\n"
                                "COPY --parents a/b/*.txt c/d.txt /p/\n",
                         {"a/b/x.txt": "x", "a/b/y.log": "y", "c/d.txt": "d", "tmp/t": "t", "keep.txt": "k"})
    builds.build(ctx, tags=["ex:1"])
    root = builds.rootfs("ex:1")
    assert (root / "all" / "keep.txt").exists() and (root / "all" / "a" / "b" / "x.txt").exists()
    assert not (root / "all" / "a" / "b" / "y.log").exists() and not (root / "all" / "tmp").exists()
    assert (root / "p" / "a" / "b" / "x.txt").read_text() == "x"
    assert (root / "p" / "c" / "d.txt").read_text() == "d"


def test_add_url_with_checksum(builds: Builds, tmp_path: Path) -> None:
    import hashlib
    import http.server
    import threading as _threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "tool.txt").write_text("downloaded")
    digest = "sha256:" + hashlib.sha256(b"downloaded").hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(served), **k)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    _threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/tool.txt"
    try:
        ctx = builds.context(BASE + f"ADD --checksum={digest} {url} /opt/\nADD {url} /renamed\n")
        builds.build(ctx, tags=["url:1"])
        root = builds.rootfs("url:1")
        assert (root / "opt" / "tool.txt").read_text() == "downloaded"
        assert stat.S_IMODE((root / "renamed").stat().st_mode) == 0o600
        bad = builds.context(BASE + f"ADD --checksum=sha256:{'0' * 64} {url} /x\n", name="bad")
        with pytest.raises(BuildError, match="digest mismatch"):
            builds.build(bad)
    finally:
        server.shutdown()


def test_long_stage_chain_does_not_deadlock(builds: Builds) -> None:
    stages = ["FROM busybox:local AS s0\nRUN echo 0 > /n\n"]
    for i in range(1, 8):
        stages.append(f"FROM s{i - 1} AS s{i}\nCOPY --from=s{i - 1} /n /prev\nRUN echo {i} > /n\n")
    ctx = builds.context("".join(stages))
    builds.build(ctx, tags=["chain:1"], max_parallel=2)
    assert (builds.rootfs("chain:1") / "n").read_text() == "7\n"


def test_steps_are_numbered_as_buildkit(builds: Builds) -> None:
    # BuildKit's total counts a FROM of an image and each RUN, COPY, ADD and WORKDIR; config-only
    # instructions are no step (no vertex), and WORKDIR / is counted but makes no step.
    ctx = builds.context("""
FROM busybox:local AS base
ARG A=1
ENV B=2
RUN true
LABEL x=y
FROM base AS final
ENV C=3
COPY --from=base /bin/busybox /bb
WORKDIR /
CMD ["x"]
RUN echo
WORKDIR /w
EXPOSE 80
""")
    builds.build(ctx)
    steps = [name for name, status in builds.timeline() if status != "started"]
    assert steps == [
        "[internal] load build definition from Dockerfile",
        "[base 1/2] FROM docker.io/library/busybox:local",
        "[base 2/2] RUN true",
        "[final 1/4] COPY --from=base /bin/busybox /bb",
        "[final 2/4] RUN echo",
        "[final 3/4] WORKDIR /w",
        "exporting to image",
    ]


def test_step_numbers_are_padded_to_the_width_of_the_total(builds: Builds) -> None:
    ctx = builds.context(BASE + "ENV X=1\n" + "".join(f"RUN echo {i}\n" for i in range(2, 11)))
    builds.build(ctx)
    steps = [name for name, status in builds.timeline() if status == "done"]
    assert steps[1:4] == ["[ 1/10] FROM docker.io/library/busybox:local", "[ 2/10] RUN echo 2",
                          "[ 3/10] RUN echo 3"]
    assert steps[-2] == "[10/10] RUN echo 10"


def test_a_failing_stage_cancels_the_others_and_is_the_error(builds: Builds) -> None:
    ctx = builds.context("""
FROM busybox:local AS slow
RUN sleep 30
FROM busybox:local AS bad
RUN sleep 0.5 && exit 7
FROM busybox:local
COPY --from=slow /etc/hostname /a
COPY --from=bad /etc/hostname /b
""")
    with pytest.raises(BuildError, match="exit code: 7"):
        builds.build(ctx, no_cache=True)
    outcomes = dict(builds.timeline())  # the last word on each step
    assert outcomes["[bad 2/2] RUN sleep 0.5 && exit 7"] == "error"
    assert outcomes["[slow 2/2] RUN sleep 30"] == "canceled"


def test_a_build_sweeps_stale_executor_state_once(builds: Builds, monkeypatch: pytest.MonkeyPatch) -> None:
    """What killed runs left in the executor's state is swept once per build, when its executor opens
    (its first RUN step); a build without RUN steps does not touch that state."""
    from dockyard.builder import engine
    from dockyard.executor import cleanup

    swept: list[Path] = []
    real = cleanup.cleanup_stale

    def counting(state_dir: Path, runc: str = "runc") -> int:
        swept.append(state_dir)
        return real(state_dir, runc)

    monkeypatch.setattr(cleanup, "cleanup_stale", counting)
    monkeypatch.setattr(engine, "cleanup_stale", counting, raising=False)  # a by-name import of it
    builds.build(builds.context("FROM busybox:local\nRUN echo one > /one\nRUN echo two > /two\n"),
                 no_cache=True)
    assert swept == [builds.client.store.root / "exec"]
    swept.clear()
    builds.build(builds.context("FROM busybox:local\nENV A=1\n", name="norun"))
    assert swept == []


def test_context_sources_are_hashed_ahead_for_the_stages_the_target_needs(
        builds: Builds, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.builder.context import LocalContext

    hashed: list[tuple[tuple[str, ...], str]] = []
    real = LocalContext.walk_sum

    def spy(self: LocalContext, patterns: list[str], follow: bool, *, flush: bool = True,
            collect: bool = False) -> tuple[str, dict[str, str] | None]:
        hashed.append((tuple(patterns), threading.current_thread().name))
        return real(self, patterns, follow, flush=flush, collect=collect)

    monkeypatch.setattr(LocalContext, "walk_sum", spy)
    ctx = builds.context("""
FROM busybox:local AS unused
COPY unused.txt /
FROM busybox:local AS dep
COPY dep.txt /
FROM busybox:local
ARG NAME=var.txt
RUN true
COPY a.txt b.txt /
COPY ${NAME} /
COPY --from=dep /dep.txt /
""", {"unused.txt": "u", "dep.txt": "d", "a.txt": "a", "b.txt": "b", "var.txt": "v"})
    builds.build(ctx, tags=["warm:1"])
    # What the Dockerfile names as it is was hashed before the steps reached it, in the background;
    # a source with a variable when its step planned it; a stage the target does not need, never.
    threads = dict(hashed)
    assert len(hashed) == len(threads) == 3, hashed
    assert threads[("a.txt", "b.txt")] == threads[("dep.txt",)] == "context-checksum"
    assert threads[("var.txt",)].startswith("stage")
    assert (builds.rootfs("warm:1") / "var.txt").read_text() == "v"
