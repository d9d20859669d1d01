"""The host's terminal during ``run -t``: raw mode while the container owns it, restored on every exit."""

from __future__ import annotations

import contextlib
import os
import termios
import tty
from collections.abc import Iterator


def terminal_size(*fds: int) -> tuple[int, int] | None:
    """(rows, columns) of the first of ``fds`` that is a terminal."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return None


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put terminal ``fd`` in raw mode (keys go to the container as typed: no local echo, Ctrl-C and
    Ctrl-D are bytes for its terminal) and restore its settings and blocking mode however the block ends."""
    saved = termios.tcgetattr(fd)
    blocking = os.get_blocking(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        os.set_blocking(fd, blocking)
