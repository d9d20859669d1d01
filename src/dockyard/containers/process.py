"""What ``--init`` and ``--ulimit`` add to a container's process.

``--init`` runs Docker's ``docker-init`` (tini, a static binary from the host bound read-only at
``/sbin/docker-init``) as pid 1: it forwards signals to the command and reaps orphaned processes.
``--ulimit`` limits are set on the process that starts the container's process, so that it and
everything it starts inherit them (Docker's ``HostConfig.Ulimits``).
"""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Iterable
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.imageops.run import INIT_TARGET

__all__ = ["INIT_TARGET", "apply_ulimits", "init_binary", "parse_ulimit"]

# Where Debian's tini package (and Docker's own packages) put a static init.
INIT_CANDIDATES = ("docker-init", "tini-static")
_RLIMITS = {
    "as": resource.RLIMIT_AS, "core": resource.RLIMIT_CORE, "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA, "fsize": resource.RLIMIT_FSIZE,
    "locks": 10,  # RLIMIT_LOCKS: Linux has it, Python's module does not
    "memlock": resource.RLIMIT_MEMLOCK, "msgqueue": resource.RLIMIT_MSGQUEUE, "nice": resource.RLIMIT_NICE,
    "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "rss": resource.RLIMIT_RSS,
    "rtprio": resource.RLIMIT_RTPRIO, "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING, "stack": resource.RLIMIT_STACK,
}


def init_binary() -> str:
    """The host's static init for ``--init``."""
    for name in INIT_CANDIDATES:
        found = shutil.which(name, path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/bin",
                                                          "/usr/libexec/docker")))
        if found:
            return os.path.realpath(found)
    raise InvalidArgument("--init: no docker-init or tini-static on this host (Debian: apt-get install tini)")


def parse_ulimit(text: str) -> dict[str, Any]:
    """``--ulimit name=soft[:hard]`` as Docker's Ulimit object (-1 is unlimited)."""
    name, sep, values = text.partition("=")
    if not sep or not values:
        raise InvalidArgument(f"invalid ulimit argument: {text}")
    if name not in _RLIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {text}") from None
    if soft > hard and hard != -1:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def apply_ulimits(ulimits: Iterable[dict[str, Any]]) -> None:
    """Set the limits on this process (its children inherit them); needs the right to raise them."""
    for limit in ulimits:
        soft, hard = (resource.RLIM_INFINITY if int(v) < 0 else int(v)
                      for v in (limit["Soft"], limit["Hard"]))
        try:
            resource.setrlimit(_RLIMITS[limit["Name"]], (soft, hard))
        except (ValueError, OSError) as exc:
            raise InvalidArgument(f"cannot set ulimit {limit['Name']}={limit['Soft']}:{limit['Hard']}: {exc}"
                                  ) from None
