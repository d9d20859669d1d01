"""Where the shared conformance data lives, and small loaders for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
BUILDKIT = CONFORMANCE / "buildkit"
DOCKERIGNORE = CONFORMANCE / "dockerignore"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
