"""What to run and on which filesystem: plain data, serialisable to JSON for the zygote."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from dockyard.errors import InvalidArgument, NotFound
from dockyard.record import field, record

TYPE_CHECKING = False  # neither typing nor pathlib at run time: the zygote imports this (see zygote.py)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Literal

    MountType = Literal["bind", "tmpfs", "secret"]
    Network = Literal["host", "none", "private"]
else:
    MountType = Network = str  # names for annotations only
_MODES: dict[str, Network] = {"private": "private", "default": "private", "bridge": "private", "host": "host",
                              "none": "none"}


def network_mode(name: str) -> Network:
    """A ``--network`` value as the executor's mode: ``default`` and ``bridge`` (what Docker users type)
    are the private network."""
    mode = _MODES.get(name)
    if mode is None:
        raise InvalidArgument(f"unknown network {name!r} (use one of: private, host, none)")
    return mode


NETWORKS = ("host", "none", "private")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record(frozen=True, slots=True)
class Mount:
    """One extra mount in the container.

    - ``bind``: ``source`` (host path) at ``target``; ``readonly``; ``discard_writes`` makes it writable
      with writes going to a throw-away layer (BuildKit's ``RUN --mount=type=bind,rw``). A cache mount is
      a writable bind of a persistent host directory; an SSH agent mount is a bind of the agent socket.
    - ``tmpfs``: an empty tmpfs (``size`` bytes, 0 = kernel default).
    - ``secret``: a file with ``data`` (or the contents of host file ``source``) on a tmpfs, ``mode``
      and ``uid``/``gid`` applied; it never reaches the rootfs or its upper directory.
    """

    target: str
    type: MountType = "bind"
    source: str = ""
    readonly: bool = False
    discard_writes: bool = False
    data: bytes | None = None
    mode: int = 0o400
    uid: int = 0
    gid: int = 0
    size: int = 0

    def __post_init__(self) -> None:
        if not self.target.startswith("/"):
            raise InvalidArgument(f"mount target must be an absolute path: {self.target!r}")
        if self.type not in ("bind", "tmpfs", "secret"):
            raise InvalidArgument(f"unknown mount type {self.type!r} for {self.target}")
        if self.type == "bind" and not self.source:
            raise InvalidArgument(f"bind mount at {self.target} needs a source")
        if self.type == "secret" and self.data is None and not self.source:
            raise InvalidArgument(f"secret mount at {self.target} needs data or a source file")

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (``data`` in base64)."""
        return {"target": self.target, "type": self.type, "source": self.source, "readonly": self.readonly,
                "discard_writes": self.discard_writes, "mode": self.mode, "uid": self.uid, "gid": self.gid,
                "size": self.size,
                "data": None if self.data is None else base64.b64encode(self.data).decode()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Mount:
        """The inverse of :meth:`to_json`."""
        data = raw.get("data")
        return cls(target=raw["target"], type=raw["type"], source=raw["source"], readonly=raw["readonly"],
                   discard_writes=raw["discard_writes"], mode=raw["mode"], uid=raw["uid"], gid=raw["gid"],
                   size=raw["size"], data=None if data is None else base64.b64decode(data))


@record(frozen=True, slots=True)
class PortMapping:
    """One published port (``-p``): ``host_ip:host_port`` on the host to ``container_port`` inside."""

    host_ip: str
    host_port: int
    container_port: int
    proto: Literal["tcp", "udp"] = "tcp"

    def to_json(self) -> list[Any]:
        """A JSON-safe list."""
        return [self.host_ip, self.host_port, self.container_port, self.proto]

    def __str__(self) -> str:
        host = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{host}:{self.host_port}->{self.container_port}/{self.proto}"


@record(frozen=True, slots=True)
class ProcessSpec:
    """A process to run: argv, ``KEY=value`` environment, working directory, user and isolation.

    ``user`` is Docker's ``USER`` value (``name``, ``uid``, ``name:group``, ``uid:gid``; empty = root),
    resolved in the image's own /etc/passwd and /etc/group. ``cwd`` is created when missing.
    ``network`` is ``host`` (the host's network namespace), ``none`` (a new one with only ``lo``) or
    ``private`` (a namespace of its own with outbound access through ``pasta``; the host's loopback
    services and abstract unix sockets stay out of reach); ``publish`` lists ports forwarded from the
    host into a ``private`` one.
    ``PATH`` defaults to Docker's and ``HOME`` to the user's home directory when ``env`` lacks them.
    ``tty`` gives the process a new pseudo-terminal as stdin/stdout/stderr and controlling terminal,
    made in the container's own ``/dev/pts`` (so ``tty`` inside names it, as under Docker); the executor
    copies between it and the caller's ``stdin``/``stdout``. ``console_size`` is its first (rows, columns),
    as OCI's ``process.consoleSize``; unset, it is taken from ``stdin`` when that is a terminal.
    ``seccomp`` is the process's syscall filter: ``"default"`` (Docker's default profile), a profile in
    Docker's JSON format (its text), or None for none (``--security-opt seccomp=unconfined``).
    ``cgroups`` are host cgroup directories the process joins before it execs (so that everything it
    starts is counted there: ``stats``, ``top``).
    """

    args: Sequence[str]
    env: Sequence[str] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = "dockyard"
    network: Network = "host"
    mounts: Sequence[Mount] = ()
    extra_groups: Sequence[int] = ()
    hosts: Sequence[tuple[str, str]] = field(default=())
    tty: bool = False
    primary_group_in_groups: bool = True
    console_size: tuple[int, int] | None = None
    seccomp: str | None = "default"
    publish: Sequence[PortMapping] = ()
    cgroups: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not self.args:
            raise InvalidArgument("no command given to run")
        if not self.cwd.startswith("/"):
            raise InvalidArgument(f"working directory must be an absolute path: {self.cwd!r}")
        if self.network not in NETWORKS:
            raise InvalidArgument(f"unsupported network mode {self.network!r} (use host, none or private)")
        if self.publish and self.network != "private":
            raise InvalidArgument(f"ports cannot be published with network mode {self.network!r}")
        for item in self.env:
            if "=" not in item:
                raise InvalidArgument(f"environment entry must be KEY=value: {item!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"args": list(self.args), "env": list(self.env), "cwd": self.cwd, "user": self.user,
                "hostname": self.hostname, "network": self.network,
                "mounts": [m.to_json() for m in self.mounts], "extra_groups": list(self.extra_groups),
                "hosts": [list(h) for h in self.hosts], "tty": self.tty,
                "primary_group_in_groups": self.primary_group_in_groups,
                "console_size": None if self.console_size is None else list(self.console_size),
                "seccomp": self.seccomp, "publish": [p.to_json() for p in self.publish],
                "cgroups": list(self.cgroups)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ProcessSpec:
        """The inverse of :meth:`to_json`."""
        return cls(args=raw["args"], env=raw["env"], cwd=raw["cwd"], user=raw["user"],
                   hostname=raw["hostname"], network=raw["network"],
                   mounts=[Mount.from_json(m) for m in raw["mounts"]], extra_groups=raw["extra_groups"],
                   hosts=[(h[0], h[1]) for h in raw["hosts"]], tty=raw.get("tty", False),
                   primary_group_in_groups=raw.get("primary_group_in_groups", True),
                   console_size=None if raw.get("console_size") is None else
                   (int(raw["console_size"][0]), int(raw["console_size"][1])),
                   seccomp=raw.get("seccomp", "default"),
                   publish=tuple(PortMapping(p[0], p[1], p[2], p[3]) for p in raw.get("publish", ())),
                   cgroups=tuple(raw.get("cgroups", ())))


@record(frozen=True, slots=True)
class RootfsSpec:
    """An overlay root: read-only ``lowerdirs`` in layer order (base first) under a writable ``upperdir``.

    After the run, ``upperdir`` holds exactly the changes (deletions as overlay whiteouts). ``workdir``
    is overlayfs's scratch directory on the same filesystem as ``upperdir``.
    """

    lowerdirs: Sequence[Path]
    upperdir: Path
    workdir: Path

    def __post_init__(self) -> None:
        if not self.lowerdirs:
            raise InvalidArgument("an overlay rootfs needs at least one lower directory")


if TYPE_CHECKING:
    Rootfs = RootfsSpec | Path
else:
    Rootfs = RootfsSpec  # a name for annotations only (a plain directory is a Path)


def check_rootfs(rootfs: Rootfs) -> None:
    """Raise :class:`NotFound` naming the first directory of ``rootfs`` that does not exist."""
    if isinstance(rootfs, RootfsSpec):
        named = [("lower", p) for p in rootfs.lowerdirs]
        named += [("upper", rootfs.upperdir), ("work", rootfs.workdir)]
    else:
        named = [("root", rootfs)]
    for kind, path in named:
        if not os.path.isdir(path):
            raise NotFound(f"rootfs {kind} directory does not exist: {path}")


def rootfs_to_json(rootfs: Rootfs) -> dict[str, Any]:
    """The rootfs as a JSON-safe dict: ``{"path": ...}`` or ``{"lower": [...], "upper", "work"}``."""
    if isinstance(rootfs, RootfsSpec):
        return {"lower": [str(p) for p in rootfs.lowerdirs], "upper": str(rootfs.upperdir),
                "work": str(rootfs.workdir)}
    return {"path": str(rootfs)}


def env_dict(env: Sequence[str]) -> dict[str, str]:
    """``KEY=value`` entries as a dict; a later entry wins, like Docker."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out
