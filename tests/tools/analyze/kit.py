"""Build small multi-layer images in a fresh store from in-memory file lists (analyze and scan tests)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence

from dockyard.client import Client

# A layer: (path, content) for files, (path, None) for a directory; names may be whiteouts; a third
# item, when given, is the owner's uid. Files under a bin/ or sbin/ directory are executable (0755).
Layer = Sequence[tuple[str, bytes | None] | tuple[str, bytes | None, int]]


def layer_tar(files: Layer) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, *owner in files:
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            info.uid = info.gid = owner[0] if owner else 0
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o755 if "bin/" in path else 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(client: Client, name: str, layers: Sequence[Layer], commands: Sequence[str] = (),
               compression: str = "gzip", empty_after: Sequence[str] = ()) -> str:
    """Store the layers and commit an image named ``name``; return its ID. ``empty_after``: history
    entries of config-only steps (``empty_layer``) after the layers' ones."""
    diff_ids = [str(client.store_layer(layer_tar(files), compression=compression).diff_id)
                for files in layers]
    cmds = list(commands) or [f"/bin/sh -c step {i}" for i in range(len(layers))]
    config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": c} for c in cmds]
              + [{"created": "2026-01-01T00:00:00Z", "created_by": c, "empty_layer": True}
                 for c in empty_after]}
    return str(client.commit_image(json.dumps(config).encode(), names=[name]).id)
