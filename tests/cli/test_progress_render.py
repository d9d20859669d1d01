"""dockyard.cli.progress_render: plain output exactly as BuildKit/docker print it, tty as a smoke test."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading

import pytest

from dockyard.cli import progress_render as pr
from dockyard.errors import InvalidArgument
from dockyard.progress import Event, VertexCompleted, VertexLog, VertexStarted, VertexStatus

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds


def build_events(r: pr.Renderer, clock: Clock) -> None:
    """A build with a status, a cached step, two interleaved steps with split output, and a failure."""
    r(VertexStarted("d1", "[internal] load build definition from Dockerfile"))
    clock.tick(0.01)
    r(VertexStatus("d1", "transferring dockerfile:", current=105, done=True))
    r(VertexCompleted("d1", "[internal] load build definition from Dockerfile", "done"))
    r(VertexCompleted("d2", "[1/3] FROM docker.io/library/busybox:local", "cached"))
    r(VertexLog("d9", b"a step never started is not shown\n"))
    r(VertexStarted("d3", "[2/3] RUN echo hi && echo there"))
    clock.tick(0.234)
    r(VertexLog("d3", b"hi\nthe"))
    r(VertexStarted("d4", "[3/3] COPY . /app"))
    clock.tick(0.1)
    r(VertexLog("d3", b"re\n", 2))
    r(VertexCompleted("d3", "[2/3] RUN echo hi && echo there", "done"))
    clock.tick(0.5)
    r(VertexLog("d4", b"copying\n"))
    error = 'failed to compute cache key: "/x" not found'
    r(VertexCompleted("d4", "[3/3] COPY . /app", "error", error))


PLAIN_BUILD = """\
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 105B done
#1 DONE 0.0s

#2 [1/3] FROM docker.io/library/busybox:local
#2 CACHED

#3 [2/3] RUN echo hi && echo there
#3 0.234 hi
#3 0.234 the
#3 ...

#4 [3/3] COPY . /app
#4 ...

#3 [2/3] RUN echo hi && echo there
#3 0.234 there
#3 DONE 0.3s

#4 [3/3] COPY . /app
#4 0.600 copying
#4 ERROR: failed to compute cache key: "/x" not found
------
 > [3/3] COPY . /app:
0.600 copying
------
"""


def test_plain_build_matches_buildkit() -> None:
    out, clock = io.StringIO(), Clock()
    r = pr.make_renderer("plain", out, clock=clock)
    build_events(r, clock)
    r.close()
    assert out.getvalue() == PLAIN_BUILD


def test_plain_log_timestamps_and_partial_lines() -> None:
    out, clock = io.StringIO(), Clock()
    with pr.make_renderer("plain", out, clock=clock) as r:
        r(VertexStarted("a", "[1/1] RUN long"))
        clock.tick(9.9994)
        r(VertexLog("a", b"one\ntw"))
        r(VertexLog("a", b"o\n"))
        clock.tick(10)
        r(VertexLog("a", b"three\n\nfive\n"))
        clock.tick(100)
        r(VertexLog("a", b"six"))
        r(VertexCompleted("a", "[1/1] RUN long", "done"))
        r(VertexCompleted("a", "[1/1] RUN long", "done"))  # repeated: BuildKit prints the step again
    assert out.getvalue() == (
        "#1 [1/1] RUN long\n#1 9.999 one\n#1 9.999 two\n#1 20.00 three\n#1 20.00 \n#1 20.00 five\n"
        "#1 120.0 six\n#1 DONE 120.0s\n\n#1 [1/1] RUN long\n#1 DONE 120.0s\n")


def test_plain_cancel_and_status_sizes() -> None:
    out, clock = io.StringIO(), Clock()
    with pr.make_renderer("plain", out, clock=clock) as r:
        r(VertexStarted("c", "[internal] load build context"))
        clock.tick(0.3)
        r(VertexStatus("c", "transferring context:", current=1000))
        clock.tick(0.3)
        r(VertexStatus("c", "transferring context:", current=2_340_000, done=True))
        r(VertexCompleted("c", "[internal] load build context", "done"))
        r(VertexStarted("p", "[1/2] FROM x"))
        r(VertexStatus("p", "sha256:abc", current=1_500_000, total=2_110_000, done=True))
        r(VertexCompleted("p", "[1/2] FROM x", "canceled"))
    assert out.getvalue() == (
        "#1 [internal] load build context\n#1 transferring context: 2.34MB 0.3s done\n#1 DONE 0.6s\n\n"
        "#2 [1/2] FROM x\n#2 sha256:abc 1.50MB / 2.11MB done\n#2 CANCELED\n")


PULL_EVENTS = [
    Event("", "local: Pulling from peers/busybox"),
    Event("a3093b34fd36", "Pulling fs layer", "started", total=1000),
    Event("sha256:b3093b34fd36" + "a" * 52, "Pulling fs layer", "started", total=2000),
    Event("a3093b34fd36", "Downloading", "running", current=500, total=1000),
    Event("a3093b34fd36", "Downloading", "running", current=1000, total=1000),
    Event("a3093b34fd36", "Verifying Checksum", "running", current=1000, total=1000),
    Event("a3093b34fd36", "Download complete", "running", current=1000, total=1000),
    Event("a3093b34fd36", "Download complete", "running", current=1000, total=1000),
    Event("b3093b34fd36", "Downloading", "running", current=1500, total=2_621_000),
    Event("a3093b34fd36", "Extracting", "running", current=0, total=1000),
    Event("a3093b34fd36", "Extracting", "running", current=1000, total=1000),
    Event("a3093b34fd36", "Pull complete", "done", current=1000, total=1000),
    Event("b3093b34fd36", "Already exists", "cached", current=2000, total=2000),
    Event("", "Digest: sha256:2d0650eaff36f010b0a251195a19c8ac7c460348c6fcc24b99ed8ef1bc732558"),
    Event("", "Status: Downloaded newer image for 127.0.0.1:5000/peers/busybox:local"),
]


def test_plain_pull_matches_docker_without_a_terminal() -> None:
    out = io.StringIO()
    with pr.make_renderer("plain", out) as r:
        for e in PULL_EVENTS:
            r(e)
    assert out.getvalue() == (
        "local: Pulling from peers/busybox\n"
        "a3093b34fd36: Pulling fs layer\n"
        "b3093b34fd36: Pulling fs layer\n"
        "a3093b34fd36: Verifying Checksum\n"
        "a3093b34fd36: Download complete\n"
        "a3093b34fd36: Pull complete\n"
        "b3093b34fd36: Already exists\n"
        "Digest: sha256:2d0650eaff36f010b0a251195a19c8ac7c460348c6fcc24b99ed8ef1bc732558\n"
        "Status: Downloaded newer image for 127.0.0.1:5000/peers/busybox:local\n")


def test_plain_push_lines() -> None:
    out = io.StringIO()
    with pr.make_renderer("plain", out) as r:
        r(Event("", "The push refers to repository [127.0.0.1:5000/peers/app]"))
        r(Event("5f70bf18a086", "Preparing", "started"))
        r(Event("5f70bf18a086", "Pushing", "running", current=10, total=100))
        r(Event("5f70bf18a086", "Pushed", "done", current=100, total=100))
        r(Event("e2319ca76111", "Mounted from peers/busybox", "done"))
        r(Event("", "local: digest: sha256:abc size: 527"))
        r.close()
        r(Event("", "after close is ignored"))
    assert out.getvalue() == (
        "The push refers to repository [127.0.0.1:5000/peers/app]\n5f70bf18a086: Preparing\n"
        "5f70bf18a086: Pushed\ne2319ca76111: Mounted from peers/busybox\n"
        "local: digest: sha256:abc size: 527\n")


def test_layer_line_interrupts_a_build_step() -> None:
    out, clock = io.StringIO(), Clock()
    with pr.make_renderer("plain", out, clock=clock) as r:
        r(VertexStarted("s", "[1/1] FROM reg/app"))
        r(Event("e2319ca76111", "Pull complete", "done"))
    assert out.getvalue() == "#1 [1/1] FROM reg/app\n#1 ...\ne2319ca76111: Pull complete\n"


def test_quiet_prints_only_a_failed_steps_summary() -> None:
    out, clock = io.StringIO(), Clock()
    r = pr.make_renderer("quiet", out)
    for e in PULL_EVENTS:
        r(e)
    r(VertexStarted("ok", "[1/1] RUN fine"))
    r(VertexLog("ok", b"quiet\n"))
    r(VertexCompleted("ok", "[1/1] RUN fine", "done"))
    assert out.getvalue() == ""
    build_events(r, clock)
    r.close()
    # Nothing else shows a failed step's output in this mode: its summary does, once.
    assert out.getvalue() == "------\n > [3/3] COPY . /app:\ncopying\n------\n"


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(pr.make_renderer("auto", io.StringIO()), pr.PlainRenderer)
    monkeypatch.setenv("TERM", "xterm")
    r = pr.make_renderer("auto", FakeTty(), width=100)
    try:
        assert isinstance(r, pr.TtyRenderer)
    finally:
        r.close()
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(pr.make_renderer("auto", FakeTty()), pr.PlainRenderer)
    with pytest.raises(InvalidArgument, match="invalid progress mode 'fancy'"):
        pr.make_renderer("fancy", io.StringIO())


def _final_frame(text: str) -> list[str]:
    """The last frame rich drew: lines from the last header on, without colours."""
    plain = ANSI.sub("", text).replace("\r", "")
    start = plain.rfind("[+] ")
    return plain[start:].split("\n")


def test_tty_build_smoke() -> None:
    out, clock = FakeTty(), Clock()
    r = pr.make_renderer("tty", out, clock=clock, width=100)
    assert isinstance(r, pr.TtyRenderer)
    r(VertexCompleted("d1", "[1/2] FROM busybox", "cached"))
    r(VertexStarted("d2", "[2/2] RUN make"))
    clock.tick(1.2)
    r(VertexLog("d2", b"compiling a\ncompiling b\npartial"))
    frame = ANSI.sub("", "".join(str(seg.text) for seg in r.console.render(r._renderable())))
    assert "[+] Building 1.2s (1/2)" in frame
    assert " => => # compiling b" in frame and " => => # partial" in frame
    clock.tick(0.3)
    r(VertexCompleted("d2", "[2/2] RUN make", "error", "exit code: 2"))
    clock.tick(0.1)
    r.close()
    lines = _final_frame(out.getvalue())
    assert lines[0].rstrip() == "[+] Building 1.6s (2/2) FINISHED"
    # BuildKit's align(): the name padded to width - len(" 0.0s\n") - 1, a space, then the timer.
    assert lines[1] == f"{' => CACHED [1/2] FROM busybox':<93}  0.0s"
    assert lines[2] == f"{' => ERROR [2/2] RUN make':<93}  1.5s"
    assert all(len(line) == 99 for line in lines[1:3])
    summary = ANSI.sub("", out.getvalue()).split("------")
    assert summary[1] == "\n > [2/2] RUN make:\n1.200 compiling a\n1.200 compiling b\n1.500 partial\n"
    assert "\x1b[31m" in out.getvalue()  # the failed step is red


def test_tty_pull_smoke() -> None:
    out = FakeTty()
    with pr.make_renderer("tty", out, width=120) as r:
        for e in PULL_EVENTS[:9]:
            r(e)
        assert isinstance(r, pr.TtyRenderer)
        frame = ANSI.sub("", "".join(str(seg.text) for seg in r.console.render(r._renderable())))
        assert frame.splitlines() == [
            "a3093b34fd36: Download complete",
            "b3093b34fd36: Downloading [>" + " " * 50 + "]    1.5kB/2.621MB"]
        for e in PULL_EVENTS[9:]:
            r(e)
    text = ANSI.sub("", out.getvalue()).replace("\r", "")
    assert "local: Pulling from peers/busybox\n" in text
    assert "a3093b34fd36: Pull complete\nb3093b34fd36: Already exists\nDigest: sha256:" in text
    assert text.rstrip().endswith("Status: Downloaded newer image for 127.0.0.1:5000/peers/busybox:local")


@pytest.mark.parametrize(("current", "total", "width", "expected"), [
    (0, 0, 120, ""),
    (1500, 0, 120, "   1.5kB"),
    (500, 1000, 120, "[" + "=" * 25 + ">" + " " * 25 + "]     500B/1kB"),
    (1000, 1000, 120, "[" + "=" * 50 + ">]      1kB/1kB"),
    (2000, 1000, 120, "[" + "=" * 50 + ">]      2kB"),
    (12_300_000, 45_600_000, 80, "  12.3MB/45.6MB"),
])
def test_pull_progress_bar(current: int, total: int, width: int, expected: str) -> None:
    assert pr.pull_progress_bar(current, total, width) == expected


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0B"), (37, "37B"), (999, "999B"), (1000, "1.00kB"), (2_340_000, "2.34MB"), (5 * 10 ** 9, "5.00GB"),
])
def test_buildkit_bytes(n: int, expected: str) -> None:
    assert pr.buildkit_bytes(n) == expected


def test_plain_renderer_is_thread_safe() -> None:
    out = io.StringIO()
    r = pr.make_renderer("plain", out)

    def worker(k: int) -> None:
        for i in range(300):
            r(Event(f"layer{k:08d}", f"Step {i}", "running"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1200
    assert all(re.fullmatch(r"layer\d{8}: Step \d+", line) for line in lines)


def test_plain_and_quiet_do_not_import_rich() -> None:
    code = ("import io, sys; from dockyard.cli.progress_render import make_renderer; "
            "make_renderer('plain', io.StringIO()); make_renderer('quiet', io.StringIO()); "
            "print('rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tty_renderer_under_concurrent_events_does_not_deadlock() -> None:
    out = FakeTty()
    r = pr.TtyRenderer(out, width=120, refresh_per_second=200)

    def worker(k: int) -> None:
        r(VertexStarted(f"v{k}", f"[{k}/4] RUN step"))
        for i in range(200):
            r(Event(f"{k:012x}", "Downloading", "running", current=i, total=200))
            if i % 50 == 0:
                r(Event("", f"message {k} {i}"))
            r(VertexLog(f"v{k}", b"line\n"))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "renderer deadlocked"
    r.close()
    text = ANSI.sub("", out.getvalue())
    assert all(f"message {k} 150" in text for k in range(4))


def test_tty_live_view_keeps_to_the_terminal_height() -> None:
    out, clock = FakeTty(), Clock()
    r = pr.TtyRenderer(out, clock=clock, width=80, height=25)
    for i in range(30):
        r(VertexCompleted(f"s{i}", f"[{i + 1}/31] RUN step {i}", "done"))
    r(VertexStarted("last", "[31/31] RUN running"))
    r(VertexLog("last", b"out\n"))
    frame = ANSI.sub("", "".join(str(seg.text) for seg in r.console.render(r._renderable()))).splitlines()
    assert len(frame) == 24  # header + height - 2 jobs
    assert frame[0].startswith("[+] Building 0.0s (30/31)")
    assert "[31/31] RUN running" in frame[-2] and frame[-1].startswith(" => => # out")
    assert "RUN step 29" in frame[-3] and not any("RUN step 7 " in line for line in frame)
    r.close()
    final = _final_frame(out.getvalue())
    assert len([line for line in final if line.startswith(" => [")]) == 31  # the last frame shows all


def test_wrap_height_prefers_dropping_finished_jobs() -> None:
    jobs = [("a", "", True), ("b", "", False), ("c", "", True), ("d", "", False)]
    assert pr._wrap_height(jobs, 4) == jobs
    assert pr._wrap_height(jobs, 3) == [("b", "", False), ("c", "", True), ("d", "", False)]
    assert pr._wrap_height(jobs, 2) == [("b", "", False), ("d", "", False)]
    assert pr._wrap_height(jobs, 1) == [("d", "", False)]
    assert pr._wrap_height(jobs, 0) == []


@pytest.mark.parametrize(("event_id", "shown"), [
    ("sha256:" + "ab" * 32, "abababababab"),
    ("blobs/sha256/" + "cd" * 32, "cdcdcdcdcdcd"),
    ("0123456789ab" + "0" * 52 + "/layer.tar", "0123456789ab"),
    ("a3093b34fd36", "a3093b34fd36"),
    ("busybox", "busybox"),
])
def test_layer_ids_are_shown_short(event_id: str, shown: str) -> None:
    out = io.StringIO()
    with pr.make_renderer("plain", out) as r:
        r(Event(event_id, "Loading layer", "done"))
    assert out.getvalue() == f"{shown}: Loading layer\n"


def test_tty_shows_a_canceled_step_without_a_summary() -> None:
    out, clock = FakeTty(), Clock()
    r = pr.make_renderer("tty", out, clock=clock, width=100)
    r(VertexStarted("a", "[2/2] RUN sleep 60"))
    r(VertexLog("a", b"started\n"))
    clock.tick(2.0)
    r(VertexCompleted("a", "[2/2] RUN sleep 60", "canceled"))
    r.close()
    lines = _final_frame(out.getvalue())
    assert lines[1] == f"{' => CANCELED [2/2] RUN sleep 60':<93}  2.0s"
    assert "------" not in out.getvalue()  # BuildKit summarises failures, not cancellations
