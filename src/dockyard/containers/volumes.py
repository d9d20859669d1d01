"""Named and anonymous volumes: ``<store>/volumes/<name>/`` holds ``volume.json`` and ``_data``.

A volume is a host directory that outlives the containers mounting it (``-v NAME:/path``, ``-v /path``
and the image's ``VOLUME`` entries); it is in use while a container's config names it. An empty volume
takes the content of the image at its mount point on the first start (Docker's copy-up, see
:func:`copy_up`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.containers.store import ContainerStore, _write_json
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.imageops.filters import Filters
from dockyard.record import record

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
VOLUME_FILTERS = ("dangling", "driver", "label", "name")


@record(slots=True)
class VolumeMount:
    """One ``-v`` that names a volume (``name`` empty: a new anonymous one) or comes from ``VOLUME``."""

    name: str
    target: str
    readonly: bool = False
    copy: bool = True  # copy the image's content into the volume when it is empty (no ``nocopy``)


def parse_volume_flag(value: str) -> VolumeMount | None:
    """``-v NAME:/path[:ro|rw|nocopy]`` or ``-v /path``; None for a bind (``/host:/path``), which
    :func:`dockyard.dockerfile.mounts.parse_volume` reads."""
    parts = value.split(":")
    if len(parts) == 1:
        if not value.startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{value}': invalid mount config for type "
                                  f"\"volume\": invalid mount path: '{value}' mount path must be absolute")
        return VolumeMount("", value.rstrip("/") or "/")
    if parts[0].startswith("/") or len(parts) > 3 or "" in parts:
        return None  # a bind, or an error that parse_volume words
    name, target = parts[0], parts[1]
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    if not modes <= {"ro", "rw", "nocopy", "z", "Z"} or {"ro", "rw"} <= modes:
        raise InvalidArgument(f"invalid mode: {parts[2]}")
    check_name(name)
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{value}': invalid mount config for type "
                              f"\"volume\": invalid mount path: '{target}' mount path must be absolute")
    return VolumeMount(name, target, readonly="ro" in modes, copy="nocopy" not in modes)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                              'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                              "directory, use absolute path")
    return name


def _created_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class VolumeStore:
    """The volumes of one store root: ``root/volumes``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dir = self.root / "volumes"

    def _meta(self, name: str) -> Path:
        return self.dir / name / "volume.json"

    def mountpoint(self, name: str) -> Path:
        return self.dir / name / "_data"

    def create(self, name: str = "", labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None, driver: str = "local") -> dict[str, Any]:
        """``docker volume create``: a new volume (a random 64-hex name when ``name`` is empty); creating
        one that exists returns it unchanged, as Docker does."""
        if driver != "local":
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" "
                           "not found")
        if options:
            raise InvalidArgument(f"create {name}: the local driver of dockyard takes no options "
                                  f"({', '.join(sorted(options))})")
        name = check_name(name) if name else secrets.token_hex(32)
        with ContainerStore(self.root)._flock(self.dir / ".lock"):
            if self._meta(name).exists():
                return self.get(name)
            self.mountpoint(name).mkdir(parents=True, exist_ok=True)
            self.mountpoint(name).chmod(0o755)  # Docker's: whatever the umask
            # As Docker: ``volume create`` gives empty maps, a volume made for a container none.
            info = {"CreatedAt": _created_at(), "Driver": "local",
                    "Labels": dict(labels) if labels is not None else None,
                    "Mountpoint": str(self.mountpoint(name)), "Name": name,
                    "Options": {} if options is not None else None, "Scope": "local"}
            _write_json(self._meta(name), info)
        return info

    def get(self, name: str) -> dict[str, Any]:
        try:
            with open(self._meta(name), encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            raise NotFound(f"get {name}: no such volume") from None
        assert isinstance(info, dict)
        return info

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if (p / "volume.json").exists())

    def users(self) -> dict[str, list[str]]:
        """Volume name -> ids of the containers whose config mounts it (running or not)."""
        out: dict[str, list[str]] = {}
        for rec in ContainerStore(self.root).all():
            for mount in rec.config.get("Mounts") or []:
                if mount.get("Type") == "volume":
                    out.setdefault(mount["Name"], []).append(rec.id)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        """``docker volume rm``: refused while a container uses it; ``force`` ignores a missing one."""
        try:
            self.get(name)
        except NotFound:
            if force:
                return
            raise
        users = self.users().get(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._delete(name)

    def _delete(self, name: str) -> None:
        self._meta(name).unlink(missing_ok=True)  # first: a directory without it is not a volume
        shutil.rmtree(self.dir / name, ignore_errors=True)

    def size(self, name: str) -> int:
        from dockyard.snapshot import tree_size

        return tree_size(self.mountpoint(name))

    def matching(self, filters: Filters) -> list[dict[str, Any]]:
        """The volumes ``docker volume ls --filter`` shows: dangling, driver, label, name (substring)."""
        filters.validate(VOLUME_FILTERS)
        users = self.users()
        dangling = filters.get_bool("dangling") if "dangling" in filters else None
        out = []
        for name in self.names():
            info = self.get(name)
            if dangling is not None and (name not in users) != dangling:
                continue
            if "driver" in filters and info["Driver"] not in filters["driver"]:
                continue
            if "name" in filters and not any(v in name for v in filters["name"]):
                continue
            if not filters.match_labels(info.get("Labels") or {}):
                continue
            out.append(info)
        return out

    def prune(self, filters: Filters) -> tuple[list[str], int]:
        """``docker volume prune`` (20.10: every unused volume, named or not); names and bytes freed."""
        filters.validate(("label", "label!"))
        users = self.users()
        gone, freed = [], 0
        for name in self.names():
            info = self.get(name)
            labels = info.get("Labels") or {}
            if name in users or not filters.match_labels(labels):
                continue
            if any(_has_label(labels, spec) for spec in filters.get("label!", [])):
                continue
            freed += self.size(name)
            self._delete(name)
            gone.append(name)
        return gone, freed

    def remove_anonymous(self, mounts: Iterable[dict[str, Any]]) -> None:
        """Remove the anonymous volumes among a container's mounts (``rm -v``, ``--rm``) that no other
        container uses."""
        users = self.users()
        for mount in mounts:
            if mount.get("Type") == "volume" and mount.get("Anonymous") and not users.get(mount["Name"]):
                self._delete(mount["Name"])


def _has_label(labels: Mapping[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def container_mounts(root: Path, asked: Sequence[VolumeMount], image_volumes: Iterable[str],
                     taken: Iterable[str]) -> list[dict[str, Any]]:
    """The inspect ``Mounts`` entries of a new container's volumes (created now): the ``-v`` ones, then
    an anonymous one for each image ``VOLUME`` no ``-v``/``--mount`` (``taken``) covers."""
    store = VolumeStore(root)
    wanted = list(asked)
    covered = {m.target.rstrip("/") or "/" for m in wanted} | {t.rstrip("/") or "/" for t in taken}
    for target in sorted(image_volumes):
        clean = target.rstrip("/") or "/"
        if clean not in covered:
            wanted.append(VolumeMount("", clean))
            covered.add(clean)
    seen: set[str] = set()
    out = []
    for m in wanted:
        if m.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
        info = store.create(m.name)
        out.append({"Type": "volume", "Name": info["Name"], "Source": info["Mountpoint"],
                    "Destination": m.target, "Driver": "local", "Mode": "z" if m.name else "",
                    "RW": not m.readonly, "Propagation": "", "Anonymous": not m.name, "CopyData": m.copy})
    return out


def inspect_mounts(mounts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A container's mounts as ``docker inspect`` shows them (without dockyard's bookkeeping keys)."""
    return [{k: v for k, v in m.items() if k not in ("Anonymous", "CopyData")} for m in mounts]


def copy_up(image_dir: str, volume_dir: Path) -> None:
    """Docker's first-use copy: the image's directory ``image_dir`` (a path already resolved inside a
    view of the container's filesystem) into the empty volume, owners, modes and times kept. Nothing
    is copied into a volume that holds anything, or from a path that is not a directory."""
    try:
        if any(os.scandir(volume_dir)):
            return
        st = os.lstat(image_dir)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    shutil.copytree(image_dir, volume_dir, symlinks=True, dirs_exist_ok=True, copy_function=_copy_file)
    for dirpath, dirnames, filenames in os.walk(image_dir):
        rel = os.path.relpath(dirpath, image_dir)
        for name in [*dirnames, *filenames, "."] if rel == "." else [*dirnames, *filenames]:
            src = os.path.join(dirpath, name)
            dst = os.path.normpath(os.path.join(volume_dir, rel, name))
            s = os.lstat(src)
            os.chown(dst, s.st_uid, s.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(s.st_mode):
                os.chmod(dst, stat.S_IMODE(s.st_mode))
    os.utime(volume_dir, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_file(src: str, dst: str) -> str:
    shutil.copy2(src, dst, follow_symlinks=False)
    return dst
