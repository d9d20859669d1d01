"""Test helper: a comparable snapshot of a filesystem tree (paths, types, modes, owners, content, links)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

from dockyard.archive import apply_layer, open_decompressed

Entry = tuple[str, str, int, int, int, str]


def snapshot(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, Entry]:
    """``{path: (path, type, mode, uid, gid, detail)}`` where detail is a content digest or link target."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(full, root)
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                kind, detail = "link", os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                kind, detail = "dir", ""
            elif stat.S_ISREG(st.st_mode):
                kind, detail = "file", hashlib.sha256(Path(full).read_bytes()).hexdigest()
            else:
                kind, detail = "special", str(st.st_rdev)
            out[rel] = (rel, kind, mode, st.st_uid, st.st_gid, detail)
    return out


def unpack_docker_save(tar_path: Path, dest: Path) -> dict[str, Any]:
    """Apply the layers of the (single) image in a ``docker save`` tar onto ``dest``; return its config."""
    with tarfile.open(tar_path) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        entry = manifest[0]
        config = json.load(tf.extractfile(entry["Config"]))  # type: ignore[arg-type]
        dest.mkdir(parents=True, exist_ok=True)
        for layer in entry["Layers"]:
            member = tf.extractfile(layer)
            assert member is not None
            raw, _ = open_decompressed(member)  # type: ignore[arg-type]
            apply_layer(raw, dest)
    return dict(config)


def diff(a: dict[str, Entry], b: dict[str, Entry]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    out: list[str] = []
    for path in sorted(set(a) | set(b)):
        if path not in a:
            out.append(f"only in second: {b[path]}")
        elif path not in b:
            out.append(f"only in first: {a[path]}")
        elif a[path] != b[path]:
            out.append(f"differs: {a[path]} != {b[path]}")
    return out
