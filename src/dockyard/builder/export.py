"""``--output``: besides the image in the store, write it as a docker/OCI tar, or its filesystem as
a tar or into a local directory (as ``docker build --output`` does)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from typing import TYPE_CHECKING

from dockyard.archive import write_tree
from dockyard.builder.state import StageState
from dockyard.errors import BuildError
from dockyard.imageops.save import SaveItem, save, save_to_file
from dockyard.oci.digest import Digest

if TYPE_CHECKING:
    from dockyard.builder.engine import Builder


def export_outputs(builder: Builder, state: StageState, image_id: str) -> None:
    for out in builder.options.outputs:
        if out.type in ("docker", "oci"):
            items = [SaveItem(Digest(image_id), list(builder.options.tags))]
            if out.dest in ("", "-"):
                save(builder.store, items, sys.stdout.fileno(), fmt=out.type)  # type: ignore[arg-type]
            else:
                save_to_file(builder.store, items, out.dest, fmt=out.type)  # type: ignore[arg-type]
        elif out.type in ("local", "tar"):
            with contextlib.ExitStack() as stack:
                root = stack.enter_context(builder.workspace.mounted(builder.lowerdirs(state)))
                if out.type == "tar":
                    if out.dest in ("", "-"):
                        write_tree(root, sys.stdout.fileno())
                    else:
                        with open(out.dest, "wb") as f:
                            write_tree(root, f.fileno())
                else:
                    if not out.dest:
                        raise BuildError("output type=local needs dest=<directory>")
                    os.makedirs(out.dest, exist_ok=True)
                    shutil.copytree(root, out.dest, symlinks=True, dirs_exist_ok=True)
        else:
            raise BuildError(f"unsupported output type {out.type!r} (use docker, oci, tar or local)")
