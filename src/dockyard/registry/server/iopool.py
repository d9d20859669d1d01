"""The worker pool the registry's file I/O runs in, so the event loop only ever waits on sockets."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class IoPool:
    """Runs blocking calls (reads, writes, hashing, renames) on a few threads."""

    def __init__(self, workers: int = 8) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry-io")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on a worker; the caller resumes only once it has returned."""
        future = asyncio.get_running_loop().run_in_executor(self._executor,
                                                           functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # A thread cannot be stopped: wait for it, so cleanup never races a write still running.
            await asyncio.wait([future])
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=True)
