"""The context's checksums computed in a child process while the build engine is imported.

A build's first CPU work is loading the engine (~50 ms) and then hashing what its COPY steps read
from the context (~45 ms for the reference build's 2,500 files): on one interpreter they follow
each other. ``start`` forks before the rest of the engine is loaded (with the modules the child
needs loaded first, and only while the process has no other thread: a lock another thread held
would stay held in the child); the child reads the Dockerfile and the ``.dockerignore`` as the
build does, computes ``LocalContext.checksum`` of each COPY's sources in
the stages the target needs (the same patterns ``LocalContext.warm`` is given, with the store's
hash cache, whose new rows it writes), and sends each on a pipe as it is done. The engine ``take``s
them in place of computing them on a thread of its own; a pattern the child did not send (it
failed, was killed, or the Dockerfile names sources the child could not foresee) is computed as
before. Only where a second CPU can run the child beside the build.
"""

from __future__ import annotations

import marshal
import os
import signal
import threading

# What the child runs on, loaded before it is forked (the engine loads them too).
from dockyard.builder.context import MAX_EXPLAINED_FILES, HashCache, LocalContext
from dockyard.builder.definition import context_patterns, load_definition
from dockyard.dockerfile import needed_stages
from dockyard.fdio import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from dockyard.builder.options import BuildOptions

__all__ = ["Prehashed", "discard", "start", "take"]

_lock = threading.Lock()
_started: dict[tuple[str, str], Prehashed] = {}
_LENGTH = 4  # bytes of a record's length prefix


class Prehashed:
    """The child of one ``start``: the checksums it sent, read as they are asked for."""

    def __init__(self, pid: int, fd: int) -> None:
        self._pid = pid
        self._fd: int | None = fd
        self._lock = threading.Lock()
        self._sums: dict[tuple[str, ...], str] = {}
        self._digests: dict[tuple[str, ...], dict[str, str] | int] = {}

    def checksum(self, patterns: list[str]) -> str | None:
        """The child's checksum of ``patterns`` (waiting for it), or None if it sends none."""
        key = tuple(patterns)
        with self._lock:
            while key not in self._sums and self._fd is not None:
                record = self._read_record()
                if record is None:
                    self._end()
                else:
                    self._sums[record[0]] = record[1]
                    if record[2] is not None:
                        self._digests[record[0]] = record[2]
            return self._sums.get(key)

    def digests(self, patterns: list[str]) -> dict[str, str] | int | None:
        """What ``LocalContext.file_digests(patterns)`` answers, or the number of files if there were
        more than a cache record keeps, if the child sent it with the checksum (ask ``checksum``
        first)."""
        with self._lock:
            return self._digests.get(tuple(patterns))

    def close(self) -> None:
        """Stop the child if it still works, and reap it."""
        with self._lock:
            if self._fd is not None:
                try:
                    os.kill(self._pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._end()

    def _read_record(self) -> tuple[tuple[str, ...], str, dict[str, str] | int | None] | None:
        head = self._read(_LENGTH)
        if head is None:
            return None
        body = self._read(int.from_bytes(head, "big"))
        if body is None:
            return None
        try:
            patterns, checksum, digests = marshal.loads(body)
        except (EOFError, ValueError, TypeError):
            return None
        if (type(patterns) is not tuple or not all(type(p) is str for p in patterns)
                or type(checksum) is not str):
            return None
        if type(digests) is dict:
            if not all(type(k) is str and type(v) is str for k, v in digests.items()):
                digests = None
        elif type(digests) is not int:
            digests = None
        return patterns, checksum, digests

    def _read(self, size: int) -> bytes | None:
        assert self._fd is not None
        data = bytearray()
        while len(data) < size:
            chunk = os.read(self._fd, size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _end(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass


def _key(context_dir: str, dockerfile: str) -> tuple[str, str]:
    return os.path.realpath(context_dir), dockerfile


def start(store_root: Path, options: BuildOptions) -> None:
    """Fork the child for a build of ``options`` on the store at ``store_root`` (when worth it)."""
    if (len(os.sched_getaffinity(0)) < 2 or threading.active_count() > 1
            or not os.path.isdir(options.context_dir)):
        return
    key = _key(options.context_dir, options.dockerfile)
    with _lock:
        if key in _started:
            return
        try:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _child(write_end, store_root, options)
        os.close(write_end)
        _started[key] = Prehashed(pid, read_end)


def take(context_dir: str, dockerfile: str) -> Prehashed | None:
    """The child started for this context and Dockerfile, if any (once)."""
    with _lock:
        return _started.pop(_key(context_dir, dockerfile), None)


def discard(options: BuildOptions) -> None:
    """Stop and reap a child the build did not take (it failed before it got there)."""
    found = take(options.context_dir, options.dockerfile)
    if found is not None:
        found.close()


def _child(fd: int, store_root: Path, options: BuildOptions) -> None:
    # Ctrl-C reaches the child with the build (one process group); a build that ends first kills it
    # (``Prehashed.close``); a build killed outright leaves it to finish its walk and find the pipe
    # closed at its next checksum.
    status = 1
    try:
        _send_checksums(fd, store_root, options)
        status = 0
    except BaseException:  # the build computes what the child did not send
        pass
    finally:
        os._exit(status)  # nothing of the parent's (atexit, buffered output, connections) runs here


def _send_checksums(fd: int, store_root: Path, options: BuildOptions) -> None:
    definition = load_definition(options)
    plan = definition.plan
    target = plan.stage(options.target) if options.target else plan.stages[-1]
    cache = HashCache(store_root / "build" / "context-hashes.db")
    context = LocalContext(options.context_dir, definition.ignore, cache)
    sent: set[tuple[str, ...]] = set()
    try:
        for stage in needed_stages(plan, target):
            for instr in stage.instructions:
                patterns = context_patterns(instr)
                if patterns is None or tuple(patterns) in sent:
                    continue
                sent.add(tuple(patterns))
                try:
                    checksum, digests = context.walk_sum(patterns, True, flush=False, collect=True)
                except Exception:  # the build meets the same error and reports it
                    continue
                # With the file digests a cache record keeps to explain a later miss (the walk saw
                # them); only their number if there are more than a record keeps.
                shown = len(digests) if digests is not None and len(digests) > MAX_EXPLAINED_FILES \
                    else digests
                body = marshal.dumps((tuple(patterns), checksum, shown))
                write_all(fd, len(body).to_bytes(_LENGTH, "big") + body)
    finally:
        cache.close()  # the digests it learnt, for the next build
