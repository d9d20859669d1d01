"""Paths and users inside an image's root: Docker's USER rules, PATH lookup, in-root joins."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from dockyard import fs
from dockyard.errors import ExecutionError
from dockyard.record import field, record

TYPE_CHECKING = False  # no pathlib at run time (see zygote.py)
if TYPE_CHECKING:
    from pathlib import Path

_MAX_ID = 2**31 - 1


def start_error(message: str, exit_code: int = 125) -> ExecutionError:
    """An :class:`ExecutionError` carrying Docker's exit code (126 cannot run, 127 not found)."""
    err = ExecutionError(message)
    err.exit_code = exit_code
    return err


def bad_cwd(cwd: str, exc: OSError) -> ExecutionError:
    """Docker's 126 for a working directory that cannot be made or entered."""
    return start_error(f'cannot change to working directory "{cwd}": {(exc.strerror or "").lower()}', 126)


def secure_join(root: str | os.PathLike[str], path: str) -> str:
    """:func:`dockyard.fs.secure_join` for a container: a symlink loop is Docker's start error (125)."""
    try:
        return fs.secure_join(root, path)
    except fs.SymlinkLoop as exc:
        raise start_error(f"{exc} in the container") from None


@record(frozen=True, slots=True)
class ExecUser:
    """A resolved user: ids, supplementary groups and home directory."""

    uid: int
    gid: int
    groups: tuple[int, ...] = field(default=())
    home: str = "/"

    def all_groups(self, extra: Sequence[int] = (), *, primary: bool = True) -> list[int]:
        """The process's supplementary groups: the primary gid first (as containerd does for ``docker
        run``; BuildKit's RUN leaves it out: ``primary=False``), then the rest."""
        return list(dict.fromkeys([*([self.gid] if primary else []), *self.groups, *extra]))


def _read_table(root: str | os.PathLike[str], name: str) -> list[list[str]]:
    try:
        with open(secure_join(root, name), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _as_id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > _MAX_ID:
        raise start_error(f"uids and gids must be in range 0-{_MAX_ID}")
    return value


def resolve_user(root: str | os.PathLike[str] | Path, user: str) -> ExecUser:
    """Resolve Docker's ``USER`` value against the image's /etc/passwd and /etc/group.

    ``name`` or ``uid`` picks the passwd entry (a uid without an entry is fine, gid 0); supplementary
    groups are those listing the user by name, added only when no group is given. ``:group`` is a name
    from /etc/group or a gid. Unknown names raise Docker's messages.
    """
    spec = user or "0"
    user_part, _, group_part = spec.partition(":")
    uid_num = _as_id(user_part)
    name = ""
    uid, gid, home = 0, 0, "/"
    found = False
    for row in _read_table(root, "/etc/passwd"):
        if len(row) < 4:
            continue
        row_uid, row_gid = _as_id(row[2]), _as_id(row[3])
        if row_uid is None or row_gid is None:
            continue
        if (uid_num is None and row[0] == user_part) or (uid_num is not None and row_uid == uid_num):
            name, uid, gid = row[0], row_uid, row_gid
            home = row[5] if len(row) > 5 and row[5] else "/"
            found = True
            break
    if not found:
        if uid_num is None:
            raise start_error(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = uid_num
    groups: list[int] = []
    if group_part or name:
        gid_num = _as_id(group_part) if group_part else None
        matched: int | None = None
        for row in _read_table(root, "/etc/group"):
            if len(row) < 3:
                continue
            row_gid = _as_id(row[2])
            if row_gid is None:
                continue
            if group_part:
                if (gid_num is None and row[0] == group_part) or row_gid == gid_num:
                    matched = row_gid
                    break
            elif name in (row[3].split(",") if len(row) > 3 else []):
                groups.append(row_gid)
        if group_part:
            if matched is None and gid_num is None:
                raise start_error(f"unable to find group {group_part}: no matching entries in group file")
            gid = matched if matched is not None else int(group_part)
    return ExecUser(uid=uid, gid=gid, groups=tuple(dict.fromkeys(groups)), home=home)


def lookup_path(root: str | os.PathLike[str], program: str, path_var: str) -> str:
    """The container path of ``program`` (searched in ``path_var`` unless it has a slash).

    Raises Docker's ``exec: "x": executable file not found in $PATH`` (127) and friends.
    """
    if "/" in program:
        full = secure_join(root, program if program.startswith("/") else "/" + program)
        try:
            st = os.stat(full)
        except OSError:
            raise start_error(f'exec: "{program}": stat {program}: no such file or directory', 127)
        if stat.S_ISDIR(st.st_mode):
            raise start_error(f'exec: "{program}": is a directory', 126)
        return program
    for directory in path_var.split(":"):
        candidate = os.path.join(directory or ".", program)
        full = secure_join(root, candidate if candidate.startswith("/") else "/" + candidate)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise start_error(f'exec: "{program}": executable file not found in $PATH', 127)
