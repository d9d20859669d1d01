"""The state a stage carries from step to step: image config, layers, cache key, scope."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.dockerfile import StageEnv
from dockyard.oci.config import History, ImageConfig
from dockyard.oci.digest import Digest
from dockyard.record import field, record


def derive_key(parent: str, definition: Any) -> str:
    """A step's cache key: its parent's key and its own definition, canonically encoded."""
    body = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(f"{parent}\n{body}".encode()).hexdigest()


def timestamp(epoch: int | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds as BuildKit writes it (or the fixed SOURCE_DATE_EPOCH)."""
    if epoch is not None:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"


@record
class StageState:
    """One stage in progress. ``lowerdirs`` (top first) is filled lazily: a cache hit needs no files."""

    config: ImageConfig
    key: str
    env: StageEnv
    lowerdirs: list[Path] | None = None
    chain: Digest | None = None
    epoch: int | None = None
    run_config_from_base: set[str] = field(default_factory=set)
    # The stage's ARG names in declaration order, valueless ones too (a RUN's history lists them).
    declared_args: list[str] = field(default_factory=list)
    # "name@image ID" of the image the stage is built on ("" for scratch or a stage): what a
    # cache-miss explanation compares when the base moved.
    base: str = ""
    platform: str = ""  # what the stage runs as (its FROM --platform, else the target's)

    @property
    def run(self) -> dict[str, Any]:
        return self.config.config

    def add_history(self, created_by: str, *, empty: bool) -> None:
        self.config.history.append(History(created=timestamp(self.epoch), created_by=created_by,
                                           comment="buildkit.dockerfile.v0", empty_layer=empty))
        self.config.created = self.config.history[-1].created

    def set_env(self, key: str, value: str) -> None:
        """Set ``key`` in the image Env, in place when present (as Docker keeps the order)."""
        env = list(self.run.get("Env") or [])
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.run["Env"] = env

    def env_list(self) -> list[str]:
        return list(self.run.get("Env") or [])

    @property
    def workdir(self) -> str:
        return str(self.run.get("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self.run.get("User") or "")

    @property
    def shell(self) -> list[str]:
        shell = self.run.get("Shell")
        return list(shell) if shell else ["/bin/sh", "-c"]
