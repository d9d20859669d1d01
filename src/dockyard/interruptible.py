"""Waits on futures that Ctrl-C can interrupt.

The kernel may deliver a process's SIGINT to any of its threads. Python then only sets a flag, which
its main thread checks when it runs bytecode: a main thread blocked on a lock without a timeout never
does, and the build hangs with Ctrl-C lost. Waiting in short slices lets the handler run (and raise
``KeyboardInterrupt``) within one slice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, wait
from typing import TypeVar

T = TypeVar("T")

SLICE = 0.1  # seconds: how late a Ctrl-C delivered to another thread may be noticed


def wait_futures(futures: Iterable[Future[T]],
                 return_when: str = ALL_COMPLETED) -> tuple[set[Future[T]], set[Future[T]]]:
    """:func:`concurrent.futures.wait` without a timeout, interruptible whichever thread gets the signal."""
    fs = list(futures)
    while True:
        done, pending = wait(fs, timeout=SLICE, return_when=return_when)
        if not pending:
            return done, pending
        if return_when == FIRST_COMPLETED and done:
            return done, pending
        failed = any(not f.cancelled() and f.exception() is not None for f in done)
        if return_when == FIRST_EXCEPTION and failed:
            return done, pending


def in_background(fn: Callable[[], T], name: str) -> Future[T]:
    """Run ``fn`` in a daemon thread: its future. Unlike a pool's worker, the thread does not hold
    up the exit of a process that Ctrl-C ends while it still works (what it writes must be safe to
    cut short)."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # the waiter gets it, as from a pool's future
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def result(future: Future[T]) -> T:
    """``future.result()``, interruptible whichever thread gets the signal."""
    wait_futures([future])
    return future.result()
