"""``attach`` and ``start -a [-i]``: the terminal (or pipes) of the CLI joined to a running container's
standard streams through its monitor, with Docker's detach keys (Ctrl-P Ctrl-Q) and exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dockyard.cli.container_cmds import fail, store_root
from dockyard.errors import DockyardError, ExecutionError
from dockyard.fdio import write_all
from dockyard.record import record

CONTEXT = {"help_option_names": ["--help"]}
DETACH = b"\x10\x11"  # ctrl-p ctrl-q


def _keys(text: str) -> bytes:
    """``--detach-keys`` (``ctrl-p,ctrl-q``, ``a``...) as bytes."""
    out = bytearray()
    for part in text.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            out.append((ord(part[5].lower()) - ord("a") + 1) & 0x1F)
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise click.UsageError(f"Invalid detach keys ({text}) provided")
    return bytes(out)


@record(slots=True)
class Outcome:
    """How a session ended: the user typed the detach keys, or the process ended (``ended``: its exit
    code and start error, as its monitor sent them; None when the monitor went without saying)."""

    detached: bool
    ended: tuple[int, str] | None


def session(sock: socket.socket, *, send_stdin: bool, tty: bool, detach: bytes = DETACH) -> Outcome:
    """Pump until the container's streams end or the user types the detach keys."""
    from dockyard.cli.terminal import raw_mode, terminal_size
    from dockyard.containers.attach import DATA, EOF, EXIT, RESIZE, frame, read_exit, read_frame

    detached = threading.Event()

    def resize(_signum: int = 0, _frame: FrameType | None = None) -> None:
        size = terminal_size(0, 1)
        if size is not None:
            with contextlib.suppress(OSError):
                sock.sendall(frame(RESIZE, struct.pack(">HH", *size)))

    def feed() -> None:
        seen = b""
        while True:
            try:
                data = os.read(0, 4096)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    sock.sendall(frame(EOF))
                return
            if tty and detach:
                data, seen = seen + data, b""
                at = data.find(detach)
                if at >= 0:
                    with contextlib.suppress(OSError):
                        if at:
                            sock.sendall(frame(DATA, data[:at]))
                    detached.set()
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    return
                keep = next((k for k in range(len(detach) - 1, 0, -1) if data.endswith(detach[:k])), 0)
                data, seen = (data[:-keep], data[-keep:]) if keep else (data, b"")
            with contextlib.suppress(OSError):
                if data:
                    sock.sendall(frame(DATA, data))

    raw = raw_mode(0) if tty and send_stdin and os.isatty(0) else contextlib.nullcontext()
    previous = signal.signal(signal.SIGWINCH, resize) if tty else None
    ended = None
    gone: dict[bytes, bool] = {}
    try:
        with raw:
            if tty:
                resize()
            if send_stdin:
                threading.Thread(target=feed, daemon=True).start()
            while True:
                try:
                    got = read_frame(sock)
                except OSError:
                    got = None
                if got is None:
                    break
                kind, payload = got
                if kind == EXIT:
                    ended = read_exit(payload)
                elif not gone.get(kind):
                    try:
                        write_all(2 if kind == b"\x02" else 1, payload)
                    except OSError:  # our reader went (``| head``): what follows is dropped, not fatal
                        gone[kind] = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        sock.close()
    return Outcome(detached.is_set(), ended)


def _exit_code(root: Path, cid: str, pid: int) -> int:
    """The exit code of the run that had ``pid``, once it has ended (read from the state: for a monitor
    that went without sending it)."""
    from dockyard.containers.store import ContainerStore

    cs = ContainerStore(root)
    while True:
        try:
            st = cs.load(cid).state["State"]
        except DockyardError as exc:  # removed (``--rm``) by the time we looked
            fail(f"{exc}: its exit code is lost", 125)
        if not st["Running"] or int(st["Pid"]) != pid:
            return int(st["ExitCode"])
        time.sleep(0.05)


class SignalProxy:
    """Signals sent to the CLI go to the container's process (``--sig-proxy``); those that come before
    it runs wait for it (a Ctrl-C typed while it starts is not lost)."""

    def __init__(self, root: Path) -> None:
        from dockyard.cli.run_cmd import FORWARDED

        self.root = root
        self.cid = ""
        self.pending: list[int] = []
        for sig in FORWARDED:
            signal.signal(sig, self._forward)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        if not self.cid:
            self.pending.append(signum)
            return
        self._send(signum)

    def _send(self, signum: int) -> None:
        from dockyard.containers import lifecycle

        with contextlib.suppress(DockyardError):
            lifecycle.kill(self.root, self.cid, str(signum))

    def running(self, cid: str) -> None:
        """The process of ``cid`` runs: signals go to it from now on, the ones that waited first."""
        self.cid = cid
        while self.pending:
            self._send(self.pending.pop(0))


def _check_tty(rec: Any, send_stdin: bool) -> None:
    if rec.config["Config"].get("Tty") and send_stdin and not os.isatty(0):
        fail("the input device is not a TTY", prefix="")


@click.command("attach", context_settings=CONTEXT)
@click.argument("container")
@click.option("--detach-keys", default="ctrl-p,ctrl-q", help="Override the key sequence for detaching a "
                                                            "container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy", type=bool, default=True, help="Proxy all received signals to the process "
                                                           "(default true)")
@click.pass_context
def attach_cmd(ctx: click.Context, container: str, detach_keys: str, no_stdin: bool, sig_proxy: bool) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from dockyard.containers.attach import connect
    from dockyard.containers.store import ContainerStore

    root = store_root(ctx)
    try:
        rec = ContainerStore(root).find(container)
    except DockyardError as exc:
        fail(str(exc))
        return
    st = rec.state["State"]
    if not st["Running"]:
        fail("You cannot attach to a stopped container, start it first", prefix="")
    if st["Paused"]:
        fail("You cannot attach to a paused container, unpause it first", prefix="")
    tty = bool(rec.config["Config"].get("Tty"))
    send_stdin = not no_stdin and bool(rec.config["Config"].get("OpenStdin"))
    _check_tty(rec, send_stdin)
    keys = _keys(detach_keys)
    try:
        sock = connect(rec.id, timeout=5.0)
    except ExecutionError as exc:
        fail(str(exc))
        return
    if sig_proxy and not tty:
        SignalProxy(root).running(rec.id)
    outcome = session(sock, send_stdin=send_stdin, tty=tty, detach=keys)
    if outcome.detached:
        return
    sys.exit(outcome.ended[0] if outcome.ended else _exit_code(root, rec.id, int(st["Pid"])))


def start_attached(root: Path, ref: str, interactive: bool, *, proxy: SignalProxy | None = None,
                   prefix: str = "Error: ", error_code: int = 1) -> None:
    """``start -a [-i]``, and ``run`` in the foreground through the monitor: attach first (the monitor
    waits for it), start, stream, exit with the process's code. Signals go to the process unless it
    has a terminal; ``proxy`` (``run``'s, set up before the container was made) forwards them anyway.
    Errors are printed after ``prefix`` and exit ``error_code`` (a start error: its own code)."""
    from dockyard.containers import lifecycle
    from dockyard.containers.attach import connect
    from dockyard.containers.store import ContainerStore

    cs = ContainerStore(root)
    try:
        rec = cs.find(ref)
    except DockyardError as exc:
        fail(str(exc), error_code, prefix)
        return
    tty = bool(rec.config["Config"].get("Tty"))
    send_stdin = interactive and bool(rec.config["Config"].get("OpenStdin"))
    _check_tty(rec, send_stdin)
    connected: list[Any] = []

    def join() -> None:
        with contextlib.suppress(ExecutionError):
            connected.append(connect(rec.id, timeout=30.0))

    joiner = threading.Thread(target=join, daemon=True)
    joiner.start()
    try:
        started = lifecycle.start(root, rec.id, attach_wait=True)
    except ExecutionError as exc:
        fail(str(exc), exc.exit_code, prefix)
        return
    except DockyardError as exc:
        fail(str(exc), error_code, prefix)
        return
    joiner.join()
    if not connected:
        fail("cannot attach: the container's monitor does not answer", error_code, prefix)
    if proxy is None and not tty:
        proxy = SignalProxy(root)
    if proxy is not None:
        proxy.running(rec.id)
    pid = int(started.state["State"]["Pid"])
    outcome = session(connected[0], send_stdin=send_stdin, tty=tty)
    if outcome.detached:
        return
    if outcome.ended is not None:
        code, error = outcome.ended
        if error:
            fail(error, code, prefix)
        sys.exit(code)
    sys.exit(_exit_code(root, rec.id, pid) if pid else lifecycle.wait(root, rec.id))
