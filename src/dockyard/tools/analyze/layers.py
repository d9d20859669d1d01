"""Stream an image's stored layer blobs as tar entries, oldest layer first, without unpacking.

    layers = image_layers(client, "app:1")        # [LayerInfo(index, diff_id, command, ...)]
    with open_layer(client, layers[0]) as reader: # a dockyard.archive.TarReader
        for entry in reader: ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dockyard.archive import TarReader, open_decompressed
from dockyard.client import Client
from dockyard.errors import NotFound
from dockyard.imageops.layers import open_form, stored_forms
from dockyard.record import record


@record(frozen=True, slots=True)
class LayerInfo:
    """One layer of an image: its position, diff ID, the stored blob to read and the history command."""

    index: int
    diff_id: str
    blob: str
    command: str


@record(frozen=True, slots=True)
class ImageLayers:
    """An image's ID, names and its layers, oldest first."""

    image_id: str
    names: tuple[str, ...]
    layers: tuple[LayerInfo, ...]


def image_layers(client: Client, ref: str) -> ImageLayers:
    """The image's layers with the history command that made each (``NotFound`` for a missing image)."""
    image_id = client.resolve(ref)
    config = client.image_config(str(image_id))
    commands = [h.created_by for h in (config.history or []) if not h.empty_layer]
    store = client.store
    out: list[LayerInfo] = []
    for i, diff_id in enumerate(config.diff_ids):
        forms = stored_forms(store, str(diff_id))
        if not forms:
            raise NotFound(f"layer {diff_id} of image {image_id.short} is not in the local store")
        command = commands[i] if len(commands) == len(config.diff_ids) else ""
        out.append(LayerInfo(i, str(diff_id), str(forms[0].digest), command))
    names = tuple(store.meta.tags_for(image_id))
    return ImageLayers(str(image_id), names, tuple(out))


@contextlib.contextmanager
def open_layer(client: Client, layer: LayerInfo) -> Iterator[TarReader]:
    """A tar reader over the layer's uncompressed stream (gzip/zstd/none detected by magic bytes)."""
    with open_form(client.store, layer.blob, what=f"layer {layer.diff_id}")[0] as f:
        raw, _ = open_decompressed(f)
        yield TarReader(raw)


def clean_path(name: str) -> str:
    """A tar member name as an absolute, normalised path ('' for the root itself)."""
    parts = [p for p in name.split("/") if p and p != "."]
    return "/" + "/".join(parts) if parts else ""
