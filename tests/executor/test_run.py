"""The container both backends give: filesystem, identity, isolation, mounts, exit codes."""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import struct
import tempfile
import termios
from pathlib import Path

import pytest

from dockyard.errors import ExecutionError, NotFound
from dockyard.executor import Mount, ProcessSpec, RootfsSpec
from dockyard.executor.base import Executor, RunHandle
from dockyard.executor.spec import DEFAULT_PATH

# A background thread of the executor failing (e.g. closing a descriptor twice) fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

def sh(ex: Executor, rootfs: RootfsSpec | Path, script: str, **kw: object) -> tuple[int, str, str]:
    out: list[bytes] = []
    err: list[bytes] = []
    spec = ProcessSpec(args=["/bin/sh", "-c", script], **kw)  # type: ignore[arg-type]
    code = ex.run(spec, rootfs, stdout=out.append, stderr=err.append, timeout=30)
    return code, b"".join(out).decode(), b"".join(err).decode()


def upper_tree(upper: Path) -> dict[str, str]:
    """Every entry of an upper dir: path -> kind (whiteouts as 'whiteout')."""
    tree: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            rel = str(full.relative_to(upper))
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                tree[rel] = "whiteout"
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = "dir"
            else:
                tree[rel] = "file"
    return tree


def test_output_streams_and_exit_code(executor: Executor, overlay: RootfsSpec) -> None:
    code, out, err = sh(executor, overlay, "echo to-out; echo to-err >&2; exit 42")
    assert (code, out, err) == (42, "to-out\n", "to-err\n")


def test_upperdir_holds_exactly_the_changes(executor: Executor, overlay: RootfsSpec) -> None:
    code, _, err = sh(executor, overlay,
                      "echo new > /new.txt && echo changed >> /etc/passwd && rm /etc/group && rm -r /root"
                      " && mkdir -p /var/lib/x && echo x > /tmp/t && rm /tmp/t")
    assert code == 0, err
    assert upper_tree(overlay.upperdir) == {
        "new.txt": "file", "etc": "dir", "etc/passwd": "file", "etc/group": "whiteout",
        "root": "whiteout", "var": "dir", "var/lib": "dir", "var/lib/x": "dir", "tmp": "dir",
    }
    assert (overlay.upperdir / "etc" / "passwd").read_text().endswith("changed\n")


def test_a_run_that_changes_nothing_leaves_an_empty_upperdir(executor: Executor, overlay: RootfsSpec) -> None:
    # /etc/hosts, /etc/resolv.conf, /etc/hostname are missing in busybox: their mount points must not
    # leak into the layer.
    code, out, _ = sh(executor, overlay,
                      "cat /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null; ls /proc/1")
    assert code == 0 and "status" in out
    assert upper_tree(overlay.upperdir) == {}


def test_layers_stack_base_first(executor: Executor, overlay: RootfsSpec, scratch_base: Path) -> None:
    top = scratch_base / "top-layer"
    (top / "etc").mkdir(parents=True, exist_ok=True)
    (top / "etc" / "motd").write_text("from the top layer\n")
    rootfs = RootfsSpec([*overlay.lowerdirs, top], overlay.upperdir, overlay.workdir)
    assert sh(executor, rootfs, "cat /etc/motd; ls /bin/busybox")[1] == "from the top layer\n/bin/busybox\n"


def test_proc_dev_sys(executor: Executor, overlay: RootfsSpec) -> None:
    code, out, err = sh(executor, overlay,
                        "ls /dev; ls /proc/self/status; echo x > /dev/null; head -c 4 /dev/zero | wc -c;"
                        " touch /sys/x 2>/dev/null || echo sys-ro; echo 1 > /dev/shm/ok && echo shm-ok;"
                        " echo $$")
    assert code == 0, err
    lines = out.split()
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin",
                "stdout", "stderr", "mqueue"):
        assert dev in lines
    assert "/proc/self/status" in lines and "4" in lines and "sys-ro" in lines and "shm-ok" in lines
    assert lines[-1] == "1"  # the process is pid 1 of its own pid namespace


def test_hostname_and_etc_files(executor: Executor, overlay: RootfsSpec) -> None:
    code, out, _ = sh(executor, overlay, "hostname; cat /etc/hostname; grep -c localhost /etc/hosts;"
                      " grep -c nameserver /etc/resolv.conf || true", hostname="buildbox",
                      hosts=[("registry.test", "10.1.2.3")])
    assert code == 0
    assert out.split("\n")[:3] == ["buildbox", "buildbox", "2"]
    host_has_ns = "nameserver" in Path("/etc/resolv.conf").read_text()
    assert (out.split("\n")[3] != "0") == host_has_ns
    hosts = sh(executor, overlay, "cat /etc/hosts", hosts=[("registry.test", "10.1.2.3")])[1]
    assert "10.1.2.3\tregistry.test" in hosts


@pytest.mark.parametrize(("user", "expected"), [
    ("", "uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
    ("app", "uid=1000(app) gid=1000(app) groups=1000(app),50(staff),29(audio)"),
    ("1000", "uid=1000(app) gid=1000(app) groups=1000(app),50(staff),29(audio)"),
    ("1000:50", "uid=1000(app) gid=50(staff) groups=50(staff)"),
    ("app:staff", "uid=1000(app) gid=50(staff) groups=50(staff)"),
    ("4242:4343", "uid=4242 gid=4343 groups=4343"),
])
def test_user(executor: Executor, overlay: RootfsSpec, user: str, expected: str) -> None:
    code, out, _ = sh(executor, overlay, "id", user=user)
    # busybox id lists the primary group first; compare as sets after the first two fields.
    head, _, groups = out.strip().rpartition(" groups=")
    exp_head, _, exp_groups = expected.rpartition(" groups=")
    assert code == 0 and head == exp_head
    assert set(groups.split(",")) == set(exp_groups.split(","))


def test_unknown_user_and_group(executor: Executor, overlay: RootfsSpec) -> None:
    with pytest.raises(ExecutionError,
                       match=r"^unable to find user nosuch: no matching entries in passwd file$"):
        sh(executor, overlay, "id", user="nosuch")
    with pytest.raises(ExecutionError,
                       match=r"^unable to find group nogrp: no matching entries in group file$"):
        sh(executor, overlay, "id", user="app:nogrp")


def test_workdir_env_home_path(executor: Executor, overlay: RootfsSpec) -> None:
    code, out, _ = sh(executor, overlay, 'pwd; echo "$FOO|$HOME|$PATH"', cwd="/srv/app/data",
                      env=["FOO=bar baz"], user="app")
    assert code == 0
    assert out == f"/srv/app/data\nbar baz|/home/app|{DEFAULT_PATH}\n"
    assert (overlay.upperdir / "srv" / "app" / "data").is_dir()
    assert sh(executor, overlay, 'echo "$PATH|$HOME"', env=["PATH=/bin", "HOME=/x"])[1] == "/bin|/x\n"


def test_start_failures_map_to_docker_codes(executor: Executor, overlay: RootfsSpec) -> None:
    with pytest.raises(ExecutionError) as info:
        executor.run(ProcessSpec(args=["nosuchcmd"]), overlay)
    assert info.value.exit_code == 127
    assert str(info.value) == 'exec: "nosuchcmd": executable file not found in $PATH'
    with pytest.raises(ExecutionError) as info:
        executor.run(ProcessSpec(args=["/no/such"]), overlay)
    assert info.value.exit_code == 127
    with pytest.raises(ExecutionError) as info:
        executor.run(ProcessSpec(args=["true"], cwd="/etc/passwd"), overlay)
    assert info.value.exit_code == 126 and "/etc/passwd" in str(info.value)


def test_capabilities_and_no_new_privs(executor: Executor, overlay: RootfsSpec) -> None:
    _, out, _ = sh(executor, overlay, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status")
    fields = dict(line.split(":\t") for line in out.strip().split("\n"))
    assert fields["CapBnd"] == fields["CapEff"] == fields["CapPrm"] == "00000000a80425fb"
    assert fields["CapInh"] == fields["CapAmb"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"
    _, out, _ = sh(executor, overlay, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status", user="app")
    fields = dict(line.split(":\t") for line in out.strip().split("\n"))
    assert fields["CapEff"] == fields["CapPrm"] == "0000000000000000"
    assert fields["CapBnd"] == "00000000a80425fb"


def test_network_none_has_only_loopback(executor: Executor, overlay: RootfsSpec) -> None:
    code, out, _ = sh(executor, overlay, "ls /sys/class/net; cat /sys/class/net/lo/flags", network="none")
    assert code == 0
    lines = out.split()
    assert lines[0] == "lo" and "eth0" not in lines
    assert int(lines[-1], 16) & 1  # IFF_UP


def test_host_network_sees_host_interfaces(executor: Executor, overlay: RootfsSpec) -> None:
    _, out, _ = sh(executor, overlay, "ls /sys/class/net")
    assert sorted(out.split()) == sorted(os.listdir("/sys/class/net"))


def test_bind_mounts(executor: Executor, overlay: RootfsSpec, tmp_path: Path) -> None:
    src = tmp_path / "ctx"
    src.mkdir()
    (src / "f").write_text("context\n")
    mounts = [Mount("/ro", source=str(src), readonly=True),
              Mount("/rw", source=str(src), discard_writes=True)]
    code, out, err = sh(executor, overlay,
                        "cat /ro/f; touch /ro/g 2>/dev/null || echo ro-refused;"
                        " echo more >> /rw/f; cat /rw/f",
                        mounts=mounts)
    assert code == 0, err
    assert out == "context\nro-refused\ncontext\nmore\n"
    assert (src / "f").read_text() == "context\n" and not (src / "g").exists()
    assert upper_tree(overlay.upperdir) == {}


def test_bind_mount_of_a_file_discarding_writes(executor: Executor, overlay: RootfsSpec,
                                                tmp_path: Path) -> None:
    # The container copies the file (shutil, imported there only for this case) and binds the copy.
    src = tmp_path / "file"
    src.write_text("context\n")
    code, out, err = sh(executor, overlay, "echo more >> /rw; cat /rw",
                        mounts=[Mount("/rw", source=str(src), discard_writes=True)])
    assert code == 0, err
    assert out == "context\nmore\n"
    assert src.read_text() == "context\n"


def test_cache_mount_persists_across_runs(executor: Executor, overlay: RootfsSpec, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    mount = [Mount("/root/.cache", source=str(cache))]
    assert sh(executor, overlay, "echo 1 >> /root/.cache/count", mounts=mount)[0] == 0
    second = sh(executor, overlay, "echo 2 >> /root/.cache/count; cat /root/.cache/count", mounts=mount)
    assert second[1] == "1\n2\n"
    assert (cache / "count").read_text() == "1\n2\n"
    assert upper_tree(overlay.upperdir) == {}


def test_tmpfs_and_secret_mounts(executor: Executor, overlay: RootfsSpec) -> None:
    mounts = [Mount("/scratch", type="tmpfs", size=1 << 20),
              Mount("/run/secrets/token", type="secret", data=b"s3cret", uid=1000, gid=1000)]
    code, out, err = sh(executor, overlay,
                        "echo x > /scratch/x && cat /scratch/x; cat /run/secrets/token; echo;"
                        " stat -c '%a %u' /run/secrets/token;"
                        " grep -c ' /scratch .* - tmpfs ' /proc/self/mountinfo",
                        mounts=mounts)
    assert code == 0, err
    assert out == "x\ns3cret\n400 1000\n1\n"
    assert upper_tree(overlay.upperdir) == {}


def test_stdin(executor: Executor, overlay: RootfsSpec) -> None:
    r, w = os.pipe()
    os.write(w, b"hello stdin\n")
    os.close(w)
    out: list[bytes] = []
    try:
        code = executor.run(ProcessSpec(args=["cat"]), overlay, stdin=r, stdout=out.append)
    finally:
        os.close(r)
    assert code == 0 and b"".join(out) == b"hello stdin\n"


def test_plain_directory_rootfs(executor: Executor, scratch_base: Path, busybox_lower: Path) -> None:
    root = scratch_base / f"plain-{type(executor).__name__}"
    if not root.exists():
        os.system(f"cp -a {busybox_lower} {root}")
    code, out, _ = sh(executor, root, "echo hi > /hello; cat /hello")
    assert (code, out) == (0, "hi\n") and (root / "hello").read_text() == "hi\n"


def test_signals_are_forwarded(executor: Executor, overlay: RootfsSpec) -> None:
    handles: list[RunHandle] = []
    out: list[bytes] = []

    def on_output(data: bytes) -> None:
        out.append(data)
        if b"ready" in data:
            handles[0].signal(signal.SIGTERM)

    spec = ProcessSpec(args=["sh", "-c", 'trap "echo got-term; exit 7" TERM; echo ready;'
                             " while true; do sleep 0.05; done"])
    code = executor.run(spec, overlay, stdout=on_output, on_start=handles.append, timeout=20)
    assert code == 7 and b"".join(out) == b"ready\ngot-term\n"


def test_tty(ns_executor: Executor, overlay: RootfsSpec) -> None:
    host_master, host_slave = os.openpty()
    fcntl.ioctl(host_slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
    out: list[bytes] = []
    try:
        code = ns_executor.run(
            ProcessSpec(args=["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; stty size;"
                                          " cut -d' ' -f7 /proc/self/stat"], tty=True),
            overlay, stdin=host_slave, stdout=out.append, timeout=20)
    finally:
        os.close(host_master)
        os.close(host_slave)
    lines = b"".join(out).decode().split()
    assert code == 0
    assert lines[:3] == ["is-a-tty", "33", "77"]
    assert int(lines[3]) != 0  # a controlling terminal


def test_tty_input(ns_executor: Executor, overlay: RootfsSpec) -> None:
    r, w = os.pipe()
    os.write(w, b"typed\n")
    os.close(w)
    out: list[bytes] = []
    try:
        code = ns_executor.run(ProcessSpec(args=["sh", "-c", "read x; echo got:$x"], tty=True), overlay,
                               stdin=r, stdout=out.append, timeout=20)
    finally:
        os.close(r)
    assert code == 0 and b"got:typed" in b"".join(out)


def test_file_descriptors_are_handed_over(executor: Executor, overlay: RootfsSpec, tmp_path: Path) -> None:
    # `dockyard run` in the foreground: the process writes straight to the caller's descriptors.
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        code = executor.run(ProcessSpec(args=["sh", "-c", "echo o; echo e >&2; ls -l /dev/null"]), overlay,
                            stdout=out.fileno(), stderr=err.fileno())
    assert code == 0
    lines = (tmp_path / "out").read_text().split("\n")
    assert lines[0] == "o" and lines[1].startswith("crw-rw-rw-")
    assert (tmp_path / "err").read_text() == "e\n"


def test_kernel_interfaces_are_protected(executor: Executor, overlay: RootfsSpec) -> None:
    # As Docker: /proc/sys and /proc/sysrq-trigger read-only, /proc/kcore and friends masked.
    code, out, _ = sh(executor, overlay,
                      "echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null || echo sys-ro;"
                      " echo h > /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro;"
                      " test -s /proc/kcore && echo kcore-visible; wc -c < /proc/timer_list;"
                      " grep -c Cap /proc/self/status")
    assert code == 0
    assert out.split() == ["sys-ro", "sysrq-ro", "0", "5"]


@pytest.mark.registry
def test_host_network_reaches_host_services(executor: Executor, overlay: RootfsSpec) -> None:
    # The local registry (scripts/peers/start-registry.sh) listens on the host's 127.0.0.1:5000.
    # busybox's static wget crashes even on the host; nc speaks enough HTTP.
    script = "printf 'GET /v2/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 5000 | head -1"
    assert sh(executor, overlay, script)[1].startswith("HTTP/1.0 200")
    assert sh(executor, overlay, script, network="none")[1] == ""


def test_bad_rootfs_is_named(executor: Executor, overlay: RootfsSpec, scratch_base: Path) -> None:
    missing = RootfsSpec([scratch_base / "no-such-layer"], overlay.upperdir, overlay.workdir)
    with pytest.raises(NotFound, match=r"rootfs lower directory does not exist: .*no-such-layer"):
        executor.run(ProcessSpec(args=["true"]), missing)
    # upper and work on different filesystems: overlayfs refuses, and the message says which mount.
    other = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        split = RootfsSpec(overlay.lowerdirs, overlay.upperdir, other)
        with pytest.raises(ExecutionError, match="cannot mount the overlay rootfs of 1 layers"):
            executor.run(ProcessSpec(args=["true"]), split)
    finally:
        os.rmdir(other)


def test_mount_points_through_symlinks_and_whiteouts(executor: Executor, overlay: RootfsSpec,
                                                     scratch_base: Path) -> None:
    # An Ubuntu-style /etc/resolv.conf symlink, and a layer that deleted /etc/group (a whiteout).
    layer = scratch_base / f"symlink-layer-{type(executor).__name__}"
    (layer / "etc").mkdir(parents=True, exist_ok=True)
    if not (layer / "etc" / "resolv.conf").is_symlink():
        (layer / "etc" / "resolv.conf").symlink_to("../run/systemd/resolve/stub-resolv.conf")
        os.mknod(layer / "etc" / "group", 0o600 | stat.S_IFCHR, 0)
    rootfs = RootfsSpec([*overlay.lowerdirs, layer], overlay.upperdir, overlay.workdir)
    code, out, err = sh(executor, rootfs, "readlink /etc/resolv.conf; cat /etc/resolv.conf | wc -c;"
                        " test -e /etc/group || echo group-gone")
    assert code == 0, err
    lines = out.split()
    assert lines[0] == "../run/systemd/resolve/stub-resolv.conf"
    assert int(lines[1]) == len(Path("/etc/resolv.conf").read_bytes())
    assert lines[2] == "group-gone"
    assert upper_tree(overlay.upperdir) == {}


def test_ssh_agent_socket_mount(executor: Executor, overlay: RootfsSpec, tmp_path: Path) -> None:
    # RUN --mount=type=ssh: the agent's socket bound into the container, reachable there.
    import socket as socketlib

    path = tmp_path / "agent.sock"
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        code, out, _ = sh(executor, overlay, "test -S /run/buildkit/ssh_agent.0 && echo socket",
                          mounts=[Mount("/run/buildkit/ssh_agent.0", source=str(path))],
                          env=["SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"])
    assert (code, out) == (0, "socket\n")
    assert upper_tree(overlay.upperdir) == {}


def test_host_is_out_of_sight(executor: Executor, overlay: RootfsSpec, scratch_base: Path) -> None:
    # No host mount point in the container's mount table (overlay options do name the layers, as with
    # Docker), no host file reachable, only our own processes, and no CAP_SYS_ADMIN to change that.
    script = (f"ls {scratch_base} 2>/dev/null || echo no-host-path;"
              f" cut -d' ' -f2 /proc/mounts | grep -c {scratch_base};"
              " mkdir -p /mnt/x; mount -t tmpfs none /mnt/x 2>/dev/null || echo mount-refused;"
              " ls /proc | grep -c '^[0-9]'")
    out = sh(executor, overlay, script)[1].split()
    assert out[:3] == ["no-host-path", "0", "mount-refused"]
    assert int(out[3]) < 10  # sh, ls and grep; the host has hundreds


def test_steps_chain_upper_into_lower(executor: Executor, overlay: RootfsSpec, scratch_base: Path) -> None:
    # A build: each step's upper directory becomes a lower layer of the next step, right away.
    lowers = list(overlay.lowerdirs)
    upper, work = overlay.upperdir, overlay.workdir
    for step in range(3):
        rootfs = RootfsSpec(lowers, upper, work)
        assert sh(executor, rootfs, f"cat /steps 2>/dev/null; echo {step} >> /steps")[0] == 0
        lowers.append(upper)
        nxt = Path(tempfile.mkdtemp(dir=scratch_base))
        upper, work = nxt / "upper", nxt / "work"
        upper.mkdir()
        work.mkdir()
    assert sh(executor, RootfsSpec(lowers, upper, work), "cat /steps")[1] == "0\n1\n2\n"


def test_extra_groups(executor: Executor, overlay: RootfsSpec) -> None:
    # docker run --group-add: added to the user's groups.
    out = sh(executor, overlay, "id -G", user="app", extra_groups=[4242])[1]
    assert sorted(int(g) for g in out.split()) == [29, 50, 1000, 4242]


def test_the_first_process_sees_only_stdio(executor: Executor, overlay: RootfsSpec) -> None:
    # The run socket and duplicate stdio descriptors once leaked in (fd 3 let a RUN step corrupt the
    # build's control channel). ls runs as another process, so its own directory fd is not listed.
    code, out, err = sh(executor, overlay, "ls /proc/$$/fd; echo garbage >&3")
    assert code != 0 and "Bad file descriptor" in err
    assert out.split() == ["0", "1", "2"]


def test_a_run_waits_for_an_earlier_mount_only_when_it_stacks_that_run_s_upper(
        ns_executor: Executor, overlay: RootfsSpec, scratch_base: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The previous run's mount namespace is dropped on a thread (its teardown can take milliseconds
    # under load). The next run waits for it when the earlier upper directory is one of its layers
    # (never a layer of two live overlays), and only then: after a step that changed nothing, the
    # next step stacks other directories and starts at once.
    import threading
    import time

    from dockyard.executor import namespace

    gate = threading.Event()
    real_close = os.close

    def slow_close(fd: int) -> None:
        if threading.current_thread().name == "dockyard-ns-closer":
            gate.wait(10)
        real_close(fd)

    monkeypatch.setattr(namespace.os, "close", slow_close)

    def fresh() -> tuple[Path, Path]:
        d = Path(tempfile.mkdtemp(dir=scratch_base))
        (d / "upper").mkdir()
        (d / "work").mkdir()
        return d / "upper", d / "work"

    try:
        assert sh(ns_executor, overlay, "true")[0] == 0  # its namespace's close now hangs on the gate
        start = time.monotonic()
        assert sh(ns_executor, RootfsSpec(list(overlay.lowerdirs), *fresh()), "true")[0] == 0
        assert time.monotonic() - start < 5  # did not wait for the close
        stacked = RootfsSpec([*overlay.lowerdirs, overlay.upperdir], *fresh())
        done = threading.Event()
        runner = threading.Thread(target=lambda: (sh(ns_executor, stacked, "true"), done.set()))
        runner.start()
        assert not done.wait(0.5)  # stacks the first run's upper: waits for its mounts to go
        gate.set()
        assert done.wait(10)
        runner.join()
    finally:
        gate.set()


def test_the_host_resolv_conf_is_read_again_only_when_it_changed(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.executor import rootfs

    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.1\n")
    opened: list[str] = []

    def counting_open(path: str, *args: object, **kwargs: object) -> object:
        opened.append(path)
        return open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(rootfs, "_RESOLV_CONF", str(conf))
    monkeypatch.setattr(rootfs, "_resolv_cache", None)
    monkeypatch.setattr(rootfs, "open", counting_open, raising=False)
    assert rootfs.host_resolv_conf() == rootfs.host_resolv_conf() == "nameserver 192.0.2.1\n"
    assert len(opened) == 1
    conf.write_text("nameserver 192.0.2.22\n")  # another size (and time)
    assert rootfs.host_resolv_conf() == "nameserver 192.0.2.22\n"
    replaced = tmp_path / "new"
    replaced.write_text("nameserver 192.0.2.33\n")
    os.replace(replaced, conf)  # another inode: what an editor or resolvconf does
    assert rootfs.host_resolv_conf() == "nameserver 192.0.2.33\n"
    conf.unlink()
    assert rootfs.host_resolv_conf() == ""
