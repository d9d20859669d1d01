"""Platforms (``os/arch[/variant]``), parsed and normalised as containerd's platforms package does."""

from __future__ import annotations

import platform as _host
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.record import field, record

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"),
    "i386": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
}


@record(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=str(data.get("variant", "") or ""),
            os_version=str(data.get("os.version", "") or ""),
            os_features=tuple(data.get("os.features") or ()),
        )

    def normalized(self) -> Platform:
        arch, variant = _ARCH_ALIASES.get(self.architecture.lower(), (self.architecture.lower(), ""))
        variant = (self.variant or variant).lower()
        if arch == "arm64" and variant == "v8":
            variant = ""
        if arch == "arm" and not variant:
            variant = "v7"
        if arch == "amd64" and variant == "v1":
            variant = ""
        return Platform(self.os.lower(), arch, variant, self.os_version, self.os_features)

    def matches(self, other: Platform) -> bool:
        """True if an image for ``other`` serves a request for ``self`` (variant must agree if given)."""
        a, b = self.normalized(), other.normalized()
        if a.os != b.os or a.architecture != b.architecture:
            return False
        return not a.variant or a.variant == b.variant


def parse(spec: str) -> Platform:
    """Parse ``linux/amd64``, ``linux/arm64/v8``, ``arm64`` (os defaults to linux)."""
    parts = spec.strip().split("/")
    if not spec.strip() or len(parts) > 3 or any(not p for p in parts):
        raise InvalidArgument(f'"{spec}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            return Platform(parts[0], host().architecture, host().variant)
        return Platform("linux", parts[0]).normalized()
    variant = parts[2] if len(parts) == 3 else ""
    return Platform(parts[0], parts[1], variant).normalized()


def host() -> Platform:
    """The platform this machine runs natively."""
    return Platform("linux", _host.machine()).normalized()
