"""Canonical JSON: the one byte form dockyard writes, so equal documents get equal digests."""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any) -> bytes:
    """Compact JSON with sorted keys, UTF-8, no trailing newline (what go's json.Marshal of a map gives)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loads_object(data: bytes | str, what: str = "document") -> dict[str, Any]:
    """Parse JSON that must be an object; raise ``CorruptData`` naming ``what`` otherwise."""
    from dockyard.errors import CorruptData

    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptData(f"{what}: invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CorruptData(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value
