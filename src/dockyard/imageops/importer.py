"""``import``: a root filesystem tarball (plain, gzip, zstd, bzip2 or xz) becomes a one-layer image.

As ``docker import`` does: the layer is the uncompressed tar exactly as given (so its diff ID is the
same as docker's), the run config comes from ``--change`` lines in Dockerfile syntax, and the history
says where the layer came from (or the ``--message``). Every path in the tar is checked on the way
in; nothing is recorded unless the whole tarball was read and is sound.
"""

from __future__ import annotations

import json
import posixpath
import shlex
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from dockyard.archive.compression import open_decompressed
from dockyard.archive.reader import TarReader
from dockyard.archive.tarheader import LNKTYPE
from dockyard.errors import CorruptData, InvalidArgument
from dockyard.image import ImageRecord, LayerBlob
from dockyard.imageops import Store, commit, layout
from dockyard.oci import mediatypes as mt
from dockyard.oci import platform as platforms
from dockyard.oci.config import History, ImageConfig
from dockyard.oci.digest import Digest

#: Instructions ``--change`` accepts (docker's list for import and commit).
CHANGE_COMMANDS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR")


def _json_or_shell(rest: str, *, shell: bool) -> list[str]:
    """Exec form (a JSON array of strings) or shell form (run by ``/bin/sh -c`` when ``shell``)."""
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    if shell:
        return ["/bin/sh", "-c", text]
    return text.split()


def _pairs(keyword: str, rest: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` pairs, or the legacy ``key value with spaces`` form (one pair)."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as exc:
        raise InvalidArgument(f"{keyword}: {exc}") from None
    if not words:
        raise InvalidArgument(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip():
            raise InvalidArgument(f"{keyword} names can not be blank" if not key else
                                  f"{keyword} must have two arguments")
        return [(key, " ".join(shlex.split(value.strip())))]
    out: list[tuple[str, str]] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{keyword}: syntax error - can't find = in {word!r}. Must be of the form: "
                                  "name=value")
        out.append((key, value))
    return out


def apply_changes(run_config: dict[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """Apply ``--change`` lines to a run config (``Cmd``, ``Env``...) and return it."""
    cfg = run_config
    for line in changes:
        text = line.strip()
        if not text:
            continue
        word, _, rest = text.partition(" ")
        keyword = word.upper()
        if keyword not in CHANGE_COMMANDS:
            raise InvalidArgument(f"{word} is not a valid change command")
        rest = rest.strip()
        if not rest and keyword not in ("CMD", "ENTRYPOINT"):
            raise InvalidArgument(f"{keyword} requires at least one argument")
        if keyword == "CMD":
            cfg["Cmd"] = _json_or_shell(rest, shell=True) if rest else None
        elif keyword == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(rest, shell=True) if rest else None
            if "Cmd" in cfg and rest:
                cfg["Cmd"] = None  # as docker: a new entrypoint resets an inherited CMD
        elif keyword == "ENV":
            env: list[str] = list(cfg.get("Env") or [])
            for key, value in _pairs(keyword, rest):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            cfg["Env"] = env
        elif keyword == "LABEL":
            labels: dict[str, str] = dict(cfg.get("Labels") or {})
            labels.update(_pairs(keyword, rest))
            cfg["Labels"] = labels
        elif keyword == "EXPOSE":
            ports: dict[str, Any] = dict(cfg.get("ExposedPorts") or {})
            for port in rest.split():
                number, _, proto = port.partition("/")
                proto = (proto or "tcp").lower()
                if not number.replace("-", "").isdigit() or proto not in ("tcp", "udp", "sctp"):
                    raise InvalidArgument(f"invalid containerPort: {port}")
                ports[f"{number}/{proto}"] = {}
            cfg["ExposedPorts"] = ports
        elif keyword == "ONBUILD":
            trigger = rest.partition(" ")[0].upper()
            if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]
        elif keyword == "USER":
            cfg["User"] = rest
        elif keyword == "VOLUME":
            volumes: dict[str, Any] = dict(cfg.get("Volumes") or {})
            for path in _json_or_shell(rest, shell=False):
                if not path.strip():
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                volumes[path] = {}
            cfg["Volumes"] = volumes
        elif keyword == "WORKDIR":
            current = str(cfg.get("WorkingDir") or "/")
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(current, rest))
    return cfg


class _Recorder:
    """A readable that hands everything it reads to ``sink`` too."""

    def __init__(self, inner: BinaryIO, sink: Callable[[bytes], object]) -> None:
        self._inner = inner
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data:
            self._sink(data)
        return data


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def store_rootfs_layer(store: Store, stream: BinaryIO, source: str,
                       protect: Callable[[Digest], None] | None = None) -> LayerBlob:
    """Store a (possibly compressed) rootfs tar as an uncompressed layer, checking every path in it."""
    with store.content.writer() as w:
        try:
            plain, _ = open_decompressed(stream)
            recorder = _Recorder(plain, w.write)
            reader = TarReader(recorder)
            for entry in reader:
                layout.clean_member(entry.name, source)
                if entry.type == LNKTYPE:
                    layout.clean_member(entry.linkname, f"{source}: hard link {entry.name!r}")
            reader.drain()
        except CorruptData as exc:
            if str(exc).startswith(source):
                raise
            raise CorruptData(f"{source}: {exc}") from None
        if w.size == 0:
            raise CorruptData(f"{source}: empty input (not a tar archive)")
        info = w.commit(protect)
    layer = LayerBlob(info.digest, info.digest, mt.OCI_LAYER, info.size, info.size)
    store.meta.add_layer_blob(layer)
    return layer


def import_image(store: Store, stream: BinaryIO, *, source: str = "-", changes: Iterable[str] = (),
                 message: str = "", platform: platforms.Platform | None = None,
                 names: Iterable[str] = (), created: str = "", created_by: str = "") -> ImageRecord:
    """Import a rootfs tarball as a new image; return its record (``id`` is what docker prints)."""
    names = list(names)
    for name in names:
        commit.normalize_tag(name)  # a bad name fails before any byte is read
    run_config = apply_changes({}, changes)
    target = (platform or platforms.host()).normalized()
    when = created or _now()
    with store.lease() as lease:
        layer = store_rootfs_layer(store, stream, source, lease.add_blob)
        config = ImageConfig(
            architecture=target.architecture, os=target.os, variant=target.variant, created=when,
            config=run_config, diff_ids=[layer.diff_id],
            history=[History(created=when, created_by=created_by,
                             comment=message or f"Imported from {source}")],
            extra={"comment": message or f"Imported from {source}"},
        )
        return commit.commit_image(store, config.to_json(), names=names, add_platform=True)
