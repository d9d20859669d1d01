"""Imports httpx (and httpcore) without two optional modules it would load and dockyard never uses.

httpcore imports ``trio`` whenever it is installed (to support trio event loops), and httpx imports
its own command-line tool (``httpx._main``: click, rich, pygments) for the ``httpx`` script. On a
machine where trio is present the pair costs ~0.4 s of every CLI command that talks to a registry.
Both are optional to httpx (it catches their ImportError), so they are hidden while it loads and
importable again afterwards."""

from __future__ import annotations

import sys

__all__ = ["httpx"]

_UNUSED = ("trio", "httpx._main")


def _load() -> None:
    if "httpcore" in sys.modules:
        return
    hidden = [name for name in _UNUSED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import httpcore  # noqa: F401  (httpx loads it only when its first client is made)
        import httpx  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


_load()

import httpx  # noqa: E402  (already loaded above; re-exported for lazy importers)
