"""One exception tree for the whole library.

The library raises these and never prints or exits; the CLI maps them to one line on stderr and an
exit code. Every message is a complete sentence fragment naming what went wrong and where.
"""

from __future__ import annotations

import errno
import os

# Not ``typing.TYPE_CHECKING``: the listing path imports no typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DockyardError):
    """A user-supplied value (flag, reference, filter) is malformed."""


class InvalidReference(InvalidArgument):
    """An image reference does not parse."""


class NotFound(DockyardError):
    """An image, blob, tag or other named object does not exist."""


class Conflict(DockyardError):
    """The operation conflicts with the current state (e.g. an image in use by a tag)."""


class CorruptData(DockyardError):
    """Content failed verification: wrong digest, bad size, malformed archive or JSON."""


class DigestMismatch(CorruptData):
    """Bytes did not hash to the digest that was promised."""

    def __init__(self, expected: str, actual: str, where: str = "") -> None:
        place = f" ({where})" if where else ""
        super().__init__(f"digest mismatch{place}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class UnsafePath(CorruptData):
    """An archive entry or path would escape the directory it must stay in."""


class StoreError(DockyardError):
    """The local store is unusable (locked, wrong version, unwritable)."""


class NoSpace(StoreError):
    """The filesystem holding the store is full (or over quota)."""


#: errno values that mean "the disk is full" (a quota counts: the user can do nothing else about it).
NO_SPACE_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT))


def disk_full(path: str | os.PathLike[str], margin: int = 1 << 20) -> bool:
    """Whether the filesystem holding ``path`` has less than ``margin`` bytes left for us.

    SQLite reports a full disk as "disk I/O error" when it cannot grow its ``-shm``/``-wal`` files;
    this tells that case from a real I/O error.
    """
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def no_space(path: str | os.PathLike[str], what: str = "write") -> NoSpace:
    """The error for a write under ``path`` that found the disk full (docker's wording)."""
    return NoSpace(f"{what} {os.fspath(path)}: no space left on device")


class writing:  # lower case: used as a function, ``with writing(path):``
    """Turn a full disk met inside the block into ``NoSpace`` naming ``path``; other errors pass.

    A class, not ``contextlib.contextmanager``: ``dockyard images`` imports this module, not contextlib.
    """

    __slots__ = ("_path", "_what")

    def __init__(self, path: str | os.PathLike[str], what: str = "write") -> None:
        self._path = path
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            raise no_space(self._path, self._what) from None


class DockerfileError(DockyardError):
    """A Dockerfile could not be parsed or is invalid; carries its place."""

    def __init__(self, message: str, *, file: str = "Dockerfile", line: int = 0, column: int = 0) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.detail = message
        super().__init__(self._format(message))

    def _format(self, message: str) -> str:
        if self.line <= 0:
            return f"{self.file}: {message}"
        if self.column > 0:
            return f"{self.file}:{self.line}:{self.column}: {message}"
        return f"{self.file}:{self.line}: {message}"


class BuildError(DockyardError):
    """A build step failed."""


class ExecutionError(DockyardError):
    """A process could not be started in a container (not: it exited non-zero)."""

    exit_code = 125


class RegistryError(DockyardError):
    """A registry answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthenticationError(RegistryError):
    """Credentials were missing or refused."""


class Interrupted(DockyardError):
    """The user interrupted the operation."""

    exit_code = 130
