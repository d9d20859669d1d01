"""dockyard: a daemonless, Docker-compatible container image builder and manager.

``dockyard.Client`` is the Python API (``dockyard.client.Client``), imported on first use so that
``import dockyard`` stays cheap for the command line.
"""

from __future__ import annotations

# Not ``typing.TYPE_CHECKING``: ``--version`` then imports neither typing nor re.
TYPE_CHECKING = False
__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from typing import Any

    from dockyard.client import Client


def __getattr__(name: str) -> Any:
    if name == "Client":
        from dockyard.client import Client

        return Client
    raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
