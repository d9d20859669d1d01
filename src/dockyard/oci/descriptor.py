"""Descriptors: the currency every store and registry exchanges (media type, digest, size)."""

from __future__ import annotations

import base64
from typing import Any

from dockyard.errors import CorruptData
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.platform import Platform
from dockyard.record import field, record


@record(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: Platform | None = field(default=None, compare=False)
    urls: tuple[str, ...] = field(default=(), compare=False)
    artifact_type: str = field(default="", compare=False)
    data: bytes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode()
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise CorruptData(f"{where}: expected an object")
        try:
            digest = Digest(str(data["digest"]))
            size = data["size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise CorruptData(f"{where}: invalid size {size!r}")
            raw_platform = data.get("platform")
            raw_data = data.get("data")
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=digest,
                size=size,
                annotations={str(k): str(v) for k, v in (data.get("annotations") or {}).items()},
                platform=Platform.from_dict(raw_platform) if isinstance(raw_platform, dict) else None,
                urls=tuple(str(u) for u in data.get("urls") or ()),
                artifact_type=str(data.get("artifactType", "") or ""),
                data=base64.b64decode(raw_data) if isinstance(raw_data, str) else None,
            )
        except KeyError as exc:
            raise CorruptData(f"{where}: missing field {exc.args[0]!r}") from None
        except InvalidDigest as exc:
            raise CorruptData(f"{where}: {exc}") from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise CorruptData(f"{where}: {exc}") from None
