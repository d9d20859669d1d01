"""Where the conformance data lives (``tests/data``), and small loaders for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import CONFORMANCE

BUILDKIT = CONFORMANCE / "buildkit"
DOCKERIGNORE = CONFORMANCE / "dockerignore"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
