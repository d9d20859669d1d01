"""``docker commit``: a container's writable layer as a new image on top of its image."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dockyard.archive.diff import write_overlay_diff
from dockyard.containers import lifecycle
from dockyard.containers.store import ContainerStore, Record
from dockyard.errors import DockyardError
from dockyard.image import ImageRecord
from dockyard.imageops import Store
from dockyard.imageops.commit import commit_image, normalize_tag, store_layer
from dockyard.imageops.images import load_config
from dockyard.imageops.importer import apply_changes
from dockyard.oci.config import History

# The config keys a commit takes from the container (the rest of the run config is the image's).
_RUN_KEYS = ("Hostname", "Domainname", "User", "Env", "Cmd", "WorkingDir", "Entrypoint", "Volumes", "OnBuild",
             "Labels", "StopSignal", "ExposedPorts", "Healthcheck")


@contextlib.contextmanager
def _paused(root: Path, rec: Record, pause: bool) -> Iterator[None]:
    """The container frozen while its layer is read (``--pause``, Docker's default), when it runs and
    this host has a freezer; else as it is."""
    frozen = False
    if pause and rec.state["State"]["Running"] and not rec.state["State"]["Paused"]:
        try:
            lifecycle.pause(root, rec.id, True)
            frozen = True
        except DockyardError:
            pass  # no freezer here: the layer is read while it runs, as ``--pause=false``
    try:
        yield
    finally:
        if frozen:
            with contextlib.suppress(DockyardError):
                lifecycle.pause(root, rec.id, False)


def commit(root: Path, ref: str, repository: str = "", *, message: str = "", author: str = "",
           changes: Sequence[str] = (), pause: bool = True) -> ImageRecord:
    """A new image: the container's image plus its writable layer, with its run config (``changes``
    applied as ``docker commit -c``) and a history entry; tagged ``repository`` when given."""
    rec = ContainerStore(root).find(ref)
    names = [normalize_tag(repository)] if repository else []
    store = Store(root)
    try:
        base, _raw = load_config(store, rec.config["Image"])
        run = dict(base.config)
        for key in _RUN_KEYS:
            if key in rec.config["Config"]:
                run[key] = rec.config["Config"][key]
        for key in ("Labels", "Volumes", "OnBuild", "ExposedPorts"):
            if not run.get(key):
                run.pop(key, None)
        run = apply_changes(run, changes)
        with store.lease() as lease, tempfile.TemporaryFile(dir=store.root) as tmp:
            upper = rec.path / "rootfs" / "upper"
            upper.mkdir(parents=True, exist_ok=True)  # a container never started has written nothing
            with _paused(root, rec, pause):
                write_overlay_diff(upper, tmp.fileno())
            tmp.seek(0)
            layer = store_layer(store, tmp, lease=lease)
            config = base.copy()
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            config.created = now
            config.author = author
            config.config = run
            config.diff_ids = [*base.diff_ids, layer.diff_id]
            created_by = " ".join(rec.config["Config"].get("Cmd") or [])  # as Docker: the Cmd alone
            config.history = [*base.history, History(created=now, created_by=created_by, author=author,
                                                      comment=message)]
            config.extra = {k: v for k, v in base.extra.items() if k not in ("container", "container_config")}
            config.extra["container"] = rec.id
            return commit_image(store, config.to_json(), names=names, parent=rec.config["Image"])
    finally:
        store.close()

