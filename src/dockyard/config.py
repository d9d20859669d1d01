"""Process-wide settings resolved from flags and the environment (layer L5).

Store-root resolution: an explicit ``--root``, else ``$DOCKYARD_ROOT``, else ``/var/lib/dockyard`` for
root, else ``$XDG_DATA_HOME/dockyard`` (``~/.local/share/dockyard``). Other settings may be added here.
"""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_ROOT = Path("/var/lib/dockyard")


def default_root() -> Path:
    """The store directory used when neither ``--root`` nor ``DOCKYARD_ROOT`` is given."""
    if os.geteuid() == 0:
        return SYSTEM_ROOT
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "dockyard"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The store root for an explicit value, ``$DOCKYARD_ROOT`` or the default; made absolute."""
    if root is None or str(root) == "":
        env = os.environ.get("DOCKYARD_ROOT", "")
        root = env or default_root()
    return Path(root).expanduser().absolute()
