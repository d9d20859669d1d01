"""The image configuration document (OCI image config / Docker image JSON).

``ImageConfig`` keeps every field docker and BuildKit write, plus unknown ones untouched, so a loaded
config re-renders without loss; the image ID is the digest of the exact bytes stored, never of a
re-rendering.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard.errors import CorruptData
from dockyard.oci.canonical import dumps, loads_object
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.platform import Platform
from dockyard.record import field, record

# Keys of the "config" object, in the casing Docker writes.
RUN_CONFIG_KEYS = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
    "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
)


@record(slots=True)
class History:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            created=str(data.get("created", "") or ""),
            created_by=str(data.get("created_by", "") or ""),
            author=str(data.get("author", "") or ""),
            comment=str(data.get("comment", "") or ""),
            empty_layer=bool(data.get("empty_layer", False)),
        )


@record(slots=True)
class ImageConfig:
    """An image's configuration. ``config`` is the run config (``Env``, ``Cmd``...) as a plain dict."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""
    created: str = ""
    author: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    diff_ids: list[Digest] = field(default_factory=list)
    history: list[History] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["architecture"] = self.architecture
        out["os"] = self.os
        if self.variant:
            out["variant"] = self.variant
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        out["config"] = self.config
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        out["history"] = [h.to_dict() for h in self.history]
        return out

    def to_json(self) -> bytes:
        return dumps(self.to_dict())

    def copy(self) -> ImageConfig:
        return copy.deepcopy(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "image config") -> ImageConfig:
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict):
            raise CorruptData(f"{where}: missing rootfs")
        raw_ids = rootfs.get("diff_ids") or []
        if not isinstance(raw_ids, list):
            raise CorruptData(f"{where}: rootfs.diff_ids is not a list")
        try:
            diff_ids = [Digest(str(d)) for d in raw_ids]
        except InvalidDigest as exc:
            raise CorruptData(f"{where}: rootfs.diff_ids: {exc}") from None
        run_config = doc.get("config") or {}
        if not isinstance(run_config, dict):
            raise CorruptData(f"{where}: config is not an object")
        history = doc.get("history") or []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise CorruptData(f"{where}: history is not a list of objects")
        known = {"architecture", "os", "variant", "created", "author", "config", "rootfs", "history"}
        return cls(
            architecture=str(doc.get("architecture", "") or ""),
            os=str(doc.get("os", "") or ""),
            variant=str(doc.get("variant", "") or ""),
            created=str(doc.get("created", "") or ""),
            author=str(doc.get("author", "") or ""),
            config=run_config,
            diff_ids=diff_ids,
            history=[History.from_dict(h) for h in history],
            extra={k: v for k, v in doc.items() if k not in known},
        )

    @classmethod
    def from_json(cls, data: bytes, where: str = "image config") -> ImageConfig:
        return cls.from_dict(loads_object(data, where), where)
