"""Timeouts, cancellation, Ctrl-C and a killed caller leave no process, mount or directory behind."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dockyard.errors import ExecutionError, Interrupted
from dockyard.executor import NamespaceExecutor, ProcessSpec, RootfsSpec, cleanup_stale, namespace
from dockyard.executor import mount as m
from dockyard.executor.base import Executor, new_run_dir
from dockyard.userns import in_user_namespace

# A background thread of the executor failing (e.g. closing a descriptor twice) fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

def procs_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def mounts_with(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def wait_gone(marker: str, seconds: float = 5.0) -> list[int]:
    end = time.monotonic() + seconds
    while (left := procs_with(marker)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def assert_nothing_left(marker: str, state_dir: Path) -> None:
    assert wait_gone(marker) == []
    assert mounts_with(state_dir) == []
    # The built-in executor keeps ended runs' directories for its next runs, empty (removed on close).
    for rundir in (state_dir / "runs").iterdir():
        assert rundir.name.startswith(f"{os.getpid()}.")
        assert sorted(p.name for p in rundir.iterdir()) == ["rootfs", "scratch"]
        assert [*(rundir / "rootfs").iterdir(), *(rundir / "scratch").iterdir()] == []


def test_background_processes_die_with_the_run(executor: Executor, overlay: RootfsSpec,
                                               state_dir: Path) -> None:
    spec = ProcessSpec(args=["sh", "-c", "sleep 3001 & sleep 3001 & echo started"])
    out: list[bytes] = []
    assert executor.run(spec, overlay, stdout=out.append) == 0
    assert b"".join(out) == b"started\n"
    assert_nothing_left("sleep\x003001", state_dir)


def test_timeout_kills_the_whole_run(executor: Executor, overlay: RootfsSpec, state_dir: Path) -> None:
    spec = ProcessSpec(args=["sh", "-c", "sleep 3002 & sleep 3002"])
    with pytest.raises(ExecutionError, match=r"timed out after 0\.5 s"):
        executor.run(spec, overlay, timeout=0.5)
    assert_nothing_left("sleep\x003002", state_dir)


def test_cancel(executor: Executor, overlay: RootfsSpec, state_dir: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(Interrupted):
        executor.run(ProcessSpec(args=["sleep", "3003"]), overlay, cancel=cancel)
    assert_nothing_left("sleep\x003003", state_dir)


def test_interrupt_in_the_caller(executor: Executor, overlay: RootfsSpec, state_dir: Path) -> None:
    def interrupt(_: bytes) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.run(ProcessSpec(args=["sh", "-c", "echo go; sleep 3004"]), overlay, stdout=interrupt)
    assert_nothing_left("sleep\x003004", state_dir)


def test_concurrent_runs(ns_executor: NamespaceExecutor, overlay: RootfsSpec, scratch_base: Path,
                         busybox_lower: Path) -> None:
    # Each process says "ready", then waits on stdin until all four have said it: the runs can only
    # finish if they run at the same time (one after another, the barrier breaks).
    results: dict[int, bytes] = {}
    everyone = threading.Barrier(4, timeout=60)

    def one(i: int) -> None:
        run = scratch_base / f"conc{i}"
        for sub in ("upper", "work"):
            (run / sub).mkdir(parents=True)
        out: list[bytes] = []
        go_read, go_write = os.pipe()

        def on_output(data: bytes) -> None:
            out.append(data)
            if b"".join(out) == b"ready\n":
                everyone.wait()
                os.write(go_write, b"go\n")

        rootfs = RootfsSpec([busybox_lower], run / "upper", run / "work")
        try:
            ns_executor.run(ProcessSpec(args=["sh", "-c", f"echo ready; read go; echo {i}"]), rootfs,
                            stdout=on_output, stdin=go_read, timeout=120)
        finally:
            os.close(go_read)
            os.close(go_write)
        results[i] = b"".join(out)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"ready\n{i}\n".encode() for i in range(4)}


def test_many_layers(ns_executor: NamespaceExecutor, overlay: RootfsSpec, scratch_base: Path) -> None:
    # 100 absolute layer paths do not fit in one page of mount options; relative ones do.
    layers = []
    parent = scratch_base / "many-layers-under-a-rather-long-directory-name-like-a-real-store-has"
    parent.mkdir()
    (parent / "base").symlink_to(overlay.lowerdirs[0])  # all layers under one directory, like a store
    for i in range(100):
        layer = parent / f"{i:03d}"
        layer.mkdir(parents=True)
        (layer / f"f{i}").write_text(str(i))
        layers.append(layer)
    rootfs = RootfsSpec([parent / "base", *layers], overlay.upperdir, overlay.workdir)
    out: list[bytes] = []
    assert ns_executor.run(ProcessSpec(args=["sh", "-c", "cat /f0 /f99"]), rootfs, stdout=out.append) == 0
    assert b"".join(out) == b"099"


def test_zygote_is_small_and_restarts(ns_executor: NamespaceExecutor, overlay: RootfsSpec) -> None:
    ns_executor.run(ProcessSpec(args=["true"]), overlay)
    zygote = ns_executor._zygote
    assert zygote is not None
    with open(f"/proc/{zygote.pid}/status") as f:
        rss_kb = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
    assert rss_kb < 40_000
    zygote.kill()
    zygote.wait()
    assert ns_executor.run(ProcessSpec(args=["true"]), overlay) == 0


_CALLER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dockyard.executor import NamespaceExecutor, ProcessSpec, RootfsSpec
    lower, upper, work, state, marker = sys.argv[1:]
    def ready(data):
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
    with NamespaceExecutor(Path(state)) as ex:
        ex.run(ProcessSpec(args=["sh", "-c", f"echo go; sleep {marker} & sleep {marker}"]),
               RootfsSpec([Path(lower)], Path(upper), Path(work)), stdout=ready)
""")


def _interruptible() -> None:
    # A job started in the background by a non-interactive shell (how CI may start the tests) inherits
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler: give the caller a real ^C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "marker"), [(signal.SIGINT, "3005"), (signal.SIGKILL, "3006")])
def test_caller_interrupted_or_killed(overlay: RootfsSpec, scratch_base: Path, sig: int, marker: str) -> None:
    state = scratch_base / f"state-{marker}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CALLER, str(overlay.lowerdirs[0]), str(overlay.upperdir),
         str(overlay.workdir), str(state), marker], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        preexec_fn=_interruptible)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        end = time.monotonic() + 5
        while not procs_with(f"sleep\x00{marker}") and time.monotonic() < end:
            time.sleep(0.02)  # "go" comes before the shell starts the sleeps
        assert procs_with(f"sleep\x00{marker}")
        proc.send_signal(sig)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert wait_gone(f"sleep\x00{marker}") == []
    assert mounts_with(state) == []
    leftover = list((state / "runs").iterdir())
    if sig == signal.SIGINT:
        assert leftover == []  # Ctrl-C cleans up itself
    else:
        assert len(leftover) == 1  # SIGKILL cannot; the next start does
        assert len(list((state / "stubs").iterdir())) == 1  # the stub layers it made for its runs
        assert cleanup_stale(state) == 1
        assert list((state / "runs").iterdir()) == []
        assert list((state / "stubs").iterdir()) == []


def test_cleanup_stale_spares_live_runs(scratch_base: Path) -> None:
    state = scratch_base / "state-cleanup"
    dead = state / "runs" / "999999999.1.deadbeef"
    (dead / "rootfs").mkdir(parents=True)
    m.mount("tmpfs", dead / "rootfs", "tmpfs", 0, "size=1m")
    live = new_run_dir(state)
    try:
        assert cleanup_stale(state) == 1
        assert not dead.exists() and live.exists()
        assert mounts_with(state) == []
    finally:
        if mounts_with(dead):
            m.umount2(dead / "rootfs", m.MNT_DETACH)


def _fresh_overlay(scratch_base: Path, lower: Path) -> RootfsSpec:
    run = Path(tempfile.mkdtemp(dir=scratch_base))
    (run / "upper").mkdir()
    (run / "work").mkdir()
    return RootfsSpec([lower], run / "upper", run / "work")


def test_run_directories_are_reused_and_removed_on_close(scratch_base: Path, busybox_lower: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Each mkdir and rmdir is a directory write: a run takes the empty directory an ended run left.
    state = scratch_base / "state-reuse"
    made: list[Path] = []
    real = namespace.new_run_dir

    def new_run_dir(state_dir: Path) -> Path:
        made.append(real(state_dir))
        return made[-1]

    monkeypatch.setattr(namespace, "new_run_dir", new_run_dir)
    with NamespaceExecutor(state) as ex:
        for _ in range(3):
            assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower)) == 0
        assert len(made) == 1
        assert list((state / "runs").iterdir()) == made

        # One that is not as new (here something was left in it) is removed, not reused.
        def litter(_handle: object) -> None:
            (made[-1] / "scratch" / "litter").write_text("x")

        assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower),
                      on_start=litter) == 0
        assert not made[0].exists()
        assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower)) == 0
        assert len(made) == 2
    assert list((state / "runs").iterdir()) == []


def test_close_waits_for_the_helper_without_polling(scratch_base: Path, busybox_lower: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Popen.wait(timeout) polls with sleeps of up to 50 ms; the helper's exit is told by its pidfd.
    ex = NamespaceExecutor(scratch_base / "state-close")
    assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower)) == 0
    zygote = ex._zygote
    assert zygote is not None
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    ex.close()
    assert zygote.returncode is not None
    assert slept == []


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _interfaces(proc_net_dev: str) -> list[str]:
    return sorted(line.split(":")[0].strip() for line in proc_net_dev.splitlines()[2:])


def test_spare_makes_the_network_namespace_ahead_after_a_none_run(scratch_base: Path,
                                                                  busybox_lower: Path) -> None:
    if in_user_namespace():
        pytest.skip("a spare in a user namespace could not go back to the host's network")
    own = os.readlink("/proc/self/ns/net")
    with NamespaceExecutor(scratch_base / "state-netns") as ex:
        assert ex.run(ProcessSpec(args=["true"], network="none"),
                      _fresh_overlay(scratch_base, busybox_lower)) == 0
        assert ex._zygote is not None
        zygote = ex._zygote.pid
        end = time.monotonic() + 5
        nets: list[str] = []
        while time.monotonic() < end:
            nets = []
            for child in _children(zygote):
                with contextlib.suppress(OSError):
                    nets.append(os.readlink(f"/proc/{child}/ns/net"))
            if nets and all(n != own for n in nets):
                break
            time.sleep(0.01)
        assert nets and all(n != own for n in nets)  # the spare waits in a network namespace of its own
        # A request for another network still gets it from that spare.
        out: list[bytes] = []
        assert ex.run(ProcessSpec(args=["cat", "/proc/net/dev"], network="host"),
                      _fresh_overlay(scratch_base, busybox_lower), stdout=out.append) == 0
        with open("/proc/net/dev") as f:
            assert _interfaces(b"".join(out).decode()) == _interfaces(f.read())
        out.clear()
        assert ex.run(ProcessSpec(args=["cat", "/proc/net/dev"], network="none"),
                      _fresh_overlay(scratch_base, busybox_lower), stdout=out.append) == 0
        assert _interfaces(b"".join(out).decode()) == ["lo"]


def test_a_reset_run_socket_still_gives_the_exit_status(tmp_path: Path) -> None:
    """The zygote may close its end of a run socket with a message of ours unread (a kill sent as the
    run ended, when a build is cancelled): Linux then reports ECONNRESET once, ahead of the exit
    status still queued. CI once saw a cancelled multi-platform build end with "internal error:
    ConnectionResetError" from this read."""
    import socket

    from dockyard.executor.base import Deadline

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        ours.send(b'{"signal": 9}')
        theirs.send(b'{"exit": 3}')
        theirs.close()
        with NamespaceExecutor(tmp_path / "state") as ex:  # no run: the zygote is never started
            assert ex._wait(ours, {}, {}, set(), Deadline(None, None), None) == 3
    finally:
        ours.close()


def _spare_mounts(ex: NamespaceExecutor) -> list[str]:
    """The mount points (host paths) in the mount namespace of the zygote's spare, once it has one."""
    assert ex._zygote is not None
    end = time.monotonic() + 5
    while time.monotonic() < end:
        for child in _children(ex._zygote.pid):
            with contextlib.suppress(OSError), open(f"/proc/{child}/mountinfo") as f:
                points = [line.split()[4] for line in f]
            if any(p.endswith("/stage/sys") for p in points):
                return points
        time.sleep(0.01)
    return []


def test_the_spare_mounts_proc_dev_and_sys_before_the_request(scratch_base: Path,
                                                               busybox_lower: Path) -> None:
    # /proc, /dev (its nodes, devpts, shm, mqueue) and /sys with Docker's masks and read-only binds
    # depend on no request: the spare mounts them while it waits, in its own mount namespace (the
    # host sees none of it), and a request only moves them into its root.
    state = scratch_base / "state-stage"
    with NamespaceExecutor(state) as ex:
        assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower)) == 0
        points = _spare_mounts(ex)
        stage = str(state / "stage")
        for sub in ("proc", "proc/sys", "proc/keys", "dev", "dev/pts", "dev/shm", "dev/mqueue", "sys",
                    "sys/firmware"):
            assert f"{stage}/{sub}" in points, sub
        with open("/proc/self/mountinfo") as f:
            assert not any(line.split()[4].startswith(stage) for line in f)


def test_a_staged_sys_shows_the_network_the_run_asked_for(scratch_base: Path, busybox_lower: Path) -> None:
    # The spare mounts /sys in the network namespace it waits in (its own after a network=none run,
    # else the host's): a run asking for another network gets a /sys mounted anew, masks included.
    script = "ls /sys/class/net; ls -A /sys/firmware | wc -l; touch -c /proc/sys 2>/dev/null || echo ro"
    host = sorted(os.listdir("/sys/class/net"))
    with NamespaceExecutor(scratch_base / "state-sysnet") as ex:
        for network in ("none", "host", "none", "none", "host", "host", "none"):
            out: list[bytes] = []
            assert ex.run(ProcessSpec(args=["sh", "-c", script], network=network),  # type: ignore[arg-type]
                          _fresh_overlay(scratch_base, busybox_lower), stdout=out.append) == 0
            *names, empty, ro = b"".join(out).decode().split()
            assert sorted(names) == (["lo"] if network == "none" else host), network
            assert (empty, ro) == ("0", "ro")


def test_the_spare_drops_the_bounding_set_before_the_request(scratch_base: Path,
                                                             busybox_lower: Path) -> None:
    # Dropping 27 capabilities from the bounding set is 27 prctl calls (each commits new credentials):
    # the spare does it while it waits. It limits only what the exec gains, not the set-up's own.
    with NamespaceExecutor(scratch_base / "state-bounding") as ex:
        assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower)) == 0
        assert ex._zygote is not None
        end = time.monotonic() + 5
        bounding = ""
        while time.monotonic() < end and bounding != "00000000a80425fb":
            for child in _children(ex._zygote.pid):
                with contextlib.suppress(OSError), open(f"/proc/{child}/status") as f:
                    bounding = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
            time.sleep(0.01)
        assert bounding == "00000000a80425fb"
        out: list[bytes] = []
        script = "grep -E '^Cap(Bnd|Eff)' /proc/self/status; ls /proc/self/fd"
        assert ex.run(ProcessSpec(args=["sh", "-c", script]), _fresh_overlay(scratch_base, busybox_lower),
                      stdout=out.append) == 0
        lines = b"".join(out).decode().split("\n")
        assert lines[:2] == ["CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb"]
        assert sorted(lines[2:-1]) == ["0", "1", "2", "3"]  # 3: the directory ls reads


def test_runs_on_the_same_layers_share_one_stub_layer(scratch_base: Path, busybox_lower: Path) -> None:
    # The mount points busybox lacks (/etc/hosts, /etc/resolv.conf, /etc/hostname) are looked up and
    # made once for the stack of layers, not in every run; what a run writes there or next to them
    # stays its own. A run whose upper directory has entries makes its own (its view of the layers
    # is another).
    state = scratch_base / "state-stubs"
    script = ("test ! -e /etc/mark && test \"$(cat /etc/hostname)\" = buildkitsandbox && "
              "echo x > /etc/mark && echo 1.2.3.4 h >> /etc/hosts && echo h > /etc/hostname")
    with NamespaceExecutor(state) as ex:

        def made() -> list[str]:
            return sorted(str(p.relative_to(state / "stubs")).partition("/")[2]
                          for p in (state / "stubs").rglob("*"))

        for _ in range(3):
            rootfs = _fresh_overlay(scratch_base, busybox_lower)
            assert ex.run(ProcessSpec(args=["sh", "-c", script], hostname="buildkitsandbox"), rootfs) == 0
            assert sorted(os.listdir(rootfs.upperdir)) == ["etc"]
            assert os.listdir(rootfs.upperdir / "etc") == ["mark"]
            assert made() == ["", "0", "0/etc", "0/etc/hostname", "0/etc/hosts", "0/etc/resolv.conf"]
        assert all(p.stat().st_size == 0 for p in (state / "stubs").rglob("*") if p.is_file())
        with_entries = _fresh_overlay(scratch_base, busybox_lower)
        os.mknod(with_entries.upperdir / "home", 0o600 | stat.S_IFCHR, 0)  # a whiteout
        spec = ProcessSpec(args=["sh", "-c", script + " && test ! -e /home"], hostname="buildkitsandbox")
        assert ex.run(spec, with_entries) == 0
        assert len(made()) == 6
    assert list((state / "stubs").iterdir()) == []  # closing the executor removes them


def test_the_pid_is_reported_only_to_a_caller_that_asks(scratch_base: Path, busybox_lower: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Each message wakes the caller up while the container sets itself up: a build's RUN does not
    # want the pid, a monitor does.
    seen: list[bytes] = []
    real = namespace.recv_fds

    def recv_fds(sock: object, size: int, maxfds: int) -> tuple[bytes, list[int]]:
        raw, fds = real(sock, size, maxfds)  # type: ignore[arg-type]
        seen.append(raw)
        return raw, fds

    monkeypatch.setattr(namespace, "recv_fds", recv_fds)
    pids: list[int] = []
    with NamespaceExecutor(scratch_base / "state-pid") as ex:
        assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower)) == 0
        assert not any(b'"pid"' in raw for raw in seen)
        seen.clear()
        assert ex.run(ProcessSpec(args=["true"]), _fresh_overlay(scratch_base, busybox_lower),
                      on_pid=pids.append) == 0
        assert sum(b'"pid"' in raw for raw in seen) == 1 and len(pids) == 1 and pids[0] > 1


def test_the_zygote_imports_neither_typing_nor_pathlib() -> None:
    # The zygote's start-up is on the way to a build's first RUN step: typing alone costs ~11 ms of
    # imports, pathlib (with urllib and ipaddress) ~3.5 ms.
    import dockyard

    src = str(Path(dockyard.__file__).resolve().parent.parent)
    code = (f"import sys; sys.path.insert(0, {src!r}); import dockyard.executor.zygote; "
            "print(sorted(m for m in ('typing', 'pathlib', 'urllib', 'ipaddress') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
