"""Docker's ``--mount`` flag: one reader for its CSV ``key=value`` syntax, and ``-v SRC:DST[:MODE]``.

``RUN --mount`` takes BuildKit's keys (:func:`parse_mount`), ``run --mount`` the docker CLI's
(:func:`parse_run_mount`); both give a :class:`MountSpec`, as does the short ``-v`` form
(:func:`parse_volume`). Parsing only: what the host has at a source is checked by the caller.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from dockyard import goformat
from dockyard.dockerfile.suggest import wrap_suggestion
from dockyard.errors import DockerfileError, InvalidArgument
from dockyard.record import record


@record
class MountSpec:
    """One mount: ``RUN --mount`` (bind|cache|tmpfs|secret|ssh), or ``run --mount``/``-v`` (bind|tmpfs)."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size_limit: int = 0
    cache_id: str = ""
    cache_sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class DeviceSpec:
    """One ``RUN --device`` (a CDI device name)."""

    name: str
    required: bool = False


MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
               "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")


def parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``; ValueError for anything else."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


def ram_in_bytes(value: str) -> int:
    """go-units' ``RAMInBytes`` (``64m``, ``1.5GiB``: binary multiples); ValueError when malformed."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpP])?[iI]?[bB]?", value.strip())
    if m is None:
        raise ValueError(value)
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    mult = units[(m.group(2) or "").lower()]
    return int(float(m.group(1)) * mult)


_ERR_QUOTE = 'extraneous or missing " in quoted-field'
_ERR_BARE_QUOTE = 'bare " in non-quoted-field'


class _Lines:
    """Go's ``csv.Reader.readLine``: lines up to and with their ``\n``, ``\r\n`` read as ``\n``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0
        self.count = 0  # lines read so far, the one at end of input included (csv's numLine)

    def next(self) -> bytes | None:
        self.count += 1
        if self.offset >= len(self.data):
            return None
        end = self.data.find(b"\n", self.offset)
        end = len(self.data) if end < 0 else end + 1
        line = self.data[self.offset:end]
        self.offset = end
        if not line.endswith(b"\n") and line.endswith(b"\r"):
            line = line[:-1]  # a trailing \r before the end of input is dropped
        return line[:-2] + b"\n" if line.endswith(b"\r\n") else line


def _parse_error(start: int, line: int, column: int, what: str) -> ValueError:
    where = f"parse error on line {line}"
    if start != line:
        where = f"record on line {start}; {where}"
    return ValueError(f"{where}, column {column}: {what}")


def _go_csv_record(value: str) -> list[str]:
    """The first record of ``value`` as Go's ``encoding/csv`` reads it (errors with Go's texts)."""
    lines = _Lines(value.encode("utf-8", "surrogateescape"))
    line = lines.next()
    while line in (b"\n", b""):  # empty lines before the record are skipped
        line = lines.next()
    if line is None:
        raise ValueError("EOF")
    start = row = lines.count
    col = 1  # 1-based byte column of the start of ``line``
    fields: list[bytes] = []
    while True:
        if not line.startswith(b'"'):
            comma = line.find(b",")
            field = line[:comma] if comma >= 0 else line.removesuffix(b"\n")
            if (quote := field.find(b'"')) >= 0:
                raise _parse_error(start, lines.count, col + quote, _ERR_BARE_QUOTE)
            fields.append(field)
            if comma < 0:
                break
            line, col = line[comma + 1:], col + comma + 1
            continue
        line, col = line[1:], col + 1
        buf = bytearray()
        while True:
            quote = line.find(b'"')
            if quote >= 0:
                buf += line[:quote]
                line, col = line[quote + 1:], col + quote + 1
                if line.startswith(b'"'):  # "" is one quote
                    buf += b'"'
                    line, col = line[1:], col + 1
                    continue
                if line.startswith(b","):
                    line, col = line[1:], col + 1
                    break
                if line in (b"", b"\n"):
                    fields.append(bytes(buf))
                    return [f.decode("utf-8", "surrogateescape") for f in fields]
                raise _parse_error(start, lines.count, col - 1, _ERR_QUOTE)
            if not line:
                raise _parse_error(start, row, col, _ERR_QUOTE)
            buf += line  # a quoted field goes on over the line break
            col += len(line)
            line = lines.next() or b""
            if line:
                row, col = row + 1, 1
        fields.append(bytes(buf))
    return [f.decode("utf-8", "surrogateescape") for f in fields]


def csv_fields(value: str, error: Callable[[str], Exception]) -> list[str]:
    """The fields of a flag value, as the Go flag readers split it (``encoding/csv``, first record).

    ``error`` turns Go's message (``EOF``, ``parse error on line 1, column 3: ...``) into the caller's
    exception.
    """
    if '"' not in value and "\n" not in value and "\r" not in value and value:
        return value.split(",")  # the common case, with the same result
    try:
        return _go_csv_record(value)
    except ValueError as exc:
        raise error(str(exc)) from None


def _buildkit_csv_error(message: str) -> DockerfileError:
    return DockerfileError(f"failed to parse csv mounts: {message}")


def parse_mount(value: str, expand: Callable[[str], str] | None = None) -> MountSpec:
    """Read one ``RUN --mount`` value (BuildKit's keys). Without ``expand``, values holding
    variables are only checked later (the build engine calls again with the stage's expander)."""
    m = MountSpec()
    ro_auto = True
    for fld in csv_fields(value, _buildkit_csv_error):
        key, eq, val = fld.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                m.readonly, ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m.readonly, ro_auto = False, False
            elif key == "required":
                if m.type not in ("secret", "ssh"):
                    raise DockerfileError(f"unexpected key '{key}' for mount type '{m.type}'")
                m.required = True
            else:
                raise DockerfileError(f"invalid field '{fld}' must be a key=value pair")
            continue
        if expand is not None:
            val = expand(val)
        elif "$" in val:
            if key == "from" and val.find("$") != len(val) - 1:
                raise DockerfileError(
                    f"'{fld}' doesn't support variable expansion, define alias stage instead")
            continue
        if key == "type":
            if val.lower() not in MOUNT_TYPES:
                raise DockerfileError(wrap_suggestion(f'unsupported mount type "{val}"', val, MOUNT_TYPES))
            m.type = val.lower()
        elif key == "from":
            m.from_ = val
        elif key in ("source", "src"):
            m.source = val
        elif key in ("target", "dst", "destination"):
            m.target = val
        elif key in ("readonly", "ro", "readwrite", "rw"):
            try:
                b = parse_bool(val)
            except ValueError:
                raise DockerfileError(f"invalid value for {key}: {val}") from None
            m.readonly = b if key in ("readonly", "ro") else not b
            ro_auto = False
        elif key == "required":
            if m.type not in ("secret", "ssh"):
                raise DockerfileError(f"unexpected key '{key}' for mount type '{m.type}'")
            try:
                m.required = parse_bool(val)
            except ValueError:
                raise DockerfileError(f"invalid value for {key}: {val}") from None
        elif key == "size":
            if m.type != "tmpfs":
                raise DockerfileError(f"unexpected key '{key}' for mount type '{m.type}'")
            try:
                m.size_limit = ram_in_bytes(val)
            except ValueError:
                raise DockerfileError(f"invalid value for {key}: {val}") from None
        elif key == "id":
            m.cache_id = val
        elif key == "sharing":
            if m.type != "cache":
                raise DockerfileError(f"invalid cache sharing set for {m.type} mount")
            if val.lower() not in ("shared", "private", "locked"):
                raise DockerfileError(f'unsupported sharing value "{val}"')
            m.cache_sharing = val.lower()
        elif key in ("mode", "uid", "gid"):
            try:
                num = int(val, 8 if key == "mode" else 10)
                if num < 0 or num > 0xFFFFFFFF or val.startswith(("+", "-")):
                    raise ValueError(val)
            except ValueError:
                raise DockerfileError(f"invalid value {val} for {key}") from None
            setattr(m, key, num)
        elif key == "env":
            m.env = val
        else:
            raise DockerfileError(wrap_suggestion(f"unexpected key '{key}' in '{fld}'", key, _MOUNT_KEYS))
    if m.type not in ("secret", "ssh", "cache"):
        for attr in ("mode", "uid", "gid"):
            if getattr(m, attr) is not None:
                raise DockerfileError(f'{attr} not allowed for "{m.type}" type mounts')
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    if m.cache_sharing and m.type != "cache":
        raise DockerfileError(f"invalid cache sharing set for {m.type} mount")
    if m.type == "secret" and expand is not None:
        if m.from_:
            raise DockerfileError("secret mount should not have a from")
        if not m.source and not m.target and not m.cache_id and m.env is None:
            raise DockerfileError("invalid secret mount. one of source, target required")
        if m.source and m.cache_id:
            raise DockerfileError("both source and id can't be set")
    return m


def parse_device(value: str) -> DeviceSpec:
    """Read one ``RUN --device`` value: ``name[,required[=bool]]`` or ``name=<name>,...``."""
    fields = csv_fields(value, _buildkit_csv_error)
    name = ""
    required = False
    for i, fld in enumerate(fields):
        key, eq, val = fld.partition("=")
        if key == "name" and eq:
            if name:
                raise DockerfileError(f"device name already set to {name}")
            name = val
        elif key == "required":
            if eq:
                try:
                    required = parse_bool(val)
                except ValueError:
                    raise DockerfileError(f"invalid value for required: {val}") from None
            else:
                required = True
        elif i == 0:
            name = fld
        else:
            raise DockerfileError(f"invalid device field: {fld}")
    if not name:
        raise DockerfileError("device name must be set")
    return DeviceSpec(name, required)


# ---------------------------------------------------------------------------------------------
# docker run --mount / -v


RUN_MOUNT_TYPES = ("bind", "volume", "tmpfs", "image", "npipe", "cluster")


def parse_run_mount(value: str) -> MountSpec:
    """Read one ``docker run --mount`` value (the docker CLI's keys; type defaults to ``volume``).

    Keys the docker CLI knows but dockyard cannot honour (volume drivers, propagation) are refused with
    a message that says so, not dropped.
    """
    def bad(message: str) -> InvalidArgument:
        return InvalidArgument(f'invalid argument {goformat.quote(value)} for "--mount" flag: {message}')

    m = MountSpec(type="volume", readonly=False)
    for fld in csv_fields(value, bad):
        key, eq, val = fld.partition("=")
        if not eq:
            if key in ("readonly", "ro"):
                m.readonly = True
            elif key in ("volume-nocopy", "bind-nonrecursive"):
                raise bad(f"'{key}' is not supported by dockyard")
            else:
                raise bad(f"invalid field '{fld}' must be a key=value pair")
        elif key == "type":
            m.type = val.lower()
        elif key in ("source", "src"):
            # The docker CLI makes "." and "./x" absolute; other relative sources are volume names.
            m.source = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            m.target = val
        elif key in ("readonly", "ro"):
            try:
                m.readonly = parse_bool(val)
            except ValueError:
                raise bad(f"invalid value for {key}: {val}") from None
        elif key == "consistency":
            pass  # a hint for Docker Desktop's file sharing; Linux ignores it, as Docker does
        elif key == "tmpfs-size":
            try:
                m.size_limit = ram_in_bytes(val)
            except ValueError:
                raise bad(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            try:
                m.mode = int(val, 8)
                if m.mode < 0 or m.mode > 0xFFFFFFFF or val.startswith(("+", "-")):
                    raise ValueError(val)
            except ValueError:
                raise bad(f"invalid value for {key}: {val}") from None
        elif key.startswith(("volume-", "bind-")):
            raise bad(f"'{key}' is not supported by dockyard")
        else:
            raise bad(f"unexpected key '{key}' in '{fld}'")
    if not m.type:
        raise bad("type is required")
    if not m.target:
        raise bad("target is required")
    if (m.size_limit or m.mode is not None) and m.type != "tmpfs":
        raise bad(f"cannot mix 'tmpfs-*' options with mount type '{m.type}'")
    if m.type not in RUN_MOUNT_TYPES:
        raise InvalidArgument(f'invalid mount config for type "{m.type}": mount type unknown')
    return m


def parse_volume(value: str) -> MountSpec:
    """Read one ``docker run -v SRC:DST[:ro|rw]`` (host paths only: no daemon keeps named volumes)."""
    parts = value.split(":")
    bad_spec = f"invalid volume specification: '{value}'"
    if len(parts) > 3:
        raise InvalidArgument(f"invalid spec: {value}: too many colons")
    if "" in parts:
        raise InvalidArgument(f"invalid spec: {value}: empty section between colons")
    if len(parts) == 1:
        raise InvalidArgument(f"{bad_spec}: anonymous volumes are not supported, give SRC:DST")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw", "z", "Z"):
        raise InvalidArgument(f"invalid mode: {mode}")
    if not source.startswith("/"):
        raise InvalidArgument(f"{bad_spec}: named volumes are not supported, use an absolute host path")
    if not target.startswith("/"):
        raise InvalidArgument(f'{bad_spec}: invalid mount config for type "bind": '
                              f"invalid mount path: '{target}' mount path must be absolute")
    return MountSpec(type="bind", source=source, target=target, readonly=mode == "ro")
