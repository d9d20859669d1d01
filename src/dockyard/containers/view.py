"""What ``ps`` and ``inspect`` show of containers: Docker's inspect object and ``ps`` filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard.containers import health
from dockyard.containers.logs import parse_rfc3339
from dockyard.containers.store import Record
from dockyard.containers.volumes import inspect_mounts
from dockyard.errors import InvalidArgument
from dockyard.imageops.filters import Filters

PS_FILTERS = ("id", "name", "status", "exited", "label", "ancestor", "health")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def inspect(rec: Record) -> dict[str, Any]:
    """The container as ``docker container inspect`` shows it (the keys dockyard has)."""
    cfg = rec.config
    return {
        "Id": rec.id, "Created": cfg["Created"], "Path": cfg["Path"], "Args": cfg["Args"],
        "State": dict(rec.state["State"]), "Image": cfg["Image"],
        "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": str(rec.log_path),
        "Name": cfg["Name"], "RestartCount": int(rec.state.get("RestartCount", 0)),
        "Driver": cfg.get("Driver", "overlay2"), "Platform": cfg.get("Platform", "linux"),
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
        "HostConfig": dict(cfg["HostConfig"]),
        "GraphDriver": {"Data": {"UpperDir": str(rec.path / "rootfs" / "upper"),
                                 "WorkDir": str(rec.path / "rootfs" / "work")}, "Name": "overlay2"},
        "Mounts": inspect_mounts(cfg.get("Mounts") or []), "Config": dict(cfg["Config"]),
        "NetworkSettings": {"Ports": published_ports(rec)},
    }


def published_ports(rec: Record) -> dict[str, Any]:
    """The ports forwarded now: the container's bindings while it runs, none once it stopped (Docker
    releases them with its network, so ``ps``, ``port`` and ``inspect`` show none)."""
    if not rec.state["State"].get("Running"):
        return {}
    return dict(rec.config["HostConfig"]["PortBindings"])


def check_filters(filters: Filters) -> None:
    filters.validate(PS_FILTERS)
    for value in filters.get("status", []):
        if value not in STATUSES:
            raise InvalidArgument(f"Invalid filter 'status={value}'")
    for value in filters.get("health", []):
        if value not in health.STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    for value in filters.get("exited", []):
        if not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={value}'")


def matches(rec: Record, filters: Filters, image_names: Sequence[str] = ()) -> bool:
    """``docker ps --filter``: id (prefix), name (substring), status, exited, label, ancestor, health."""
    st = rec.state["State"]
    if "id" in filters and not any(rec.id.startswith(v) for v in filters.get("id", [])):
        return False
    if "name" in filters and not any(v.lstrip("/") in rec.name for v in filters.get("name", [])):
        return False
    if "status" in filters and st["Status"] not in filters.get("status", []):
        return False
    if "exited" in filters and (st["Status"] != "exited"
                                or str(st["ExitCode"]) not in filters.get("exited", [])):
        return False
    if "health" in filters and health.health_status(st) not in filters.get("health", []):
        return False
    if not filters.match_labels(rec.config["Config"].get("Labels") or {}):
        return False
    if "ancestor" in filters:
        wanted = filters.get("ancestor", [])
        own = {rec.config["Image"], rec.config["Config"]["Image"], *image_names}
        bare = rec.config["Image"].removeprefix("sha256:")
        if not any(w in own or bare.startswith(w.removeprefix("sha256:")) for w in wanted):
            return False
    return True


def started_at(rec: Record) -> float:
    return parse_rfc3339(rec.state["State"]["StartedAt"])


def finished_at(rec: Record) -> float:
    return parse_rfc3339(rec.state["State"]["FinishedAt"])
