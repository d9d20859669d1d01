"""The in-memory image model (layer L1): what a local image is, independent of where it is stored.

A local image is its config blob (whose digest is the image ID) plus its layers by diff ID. Each
layer may be kept as one or more blobs (as received, e.g. gzip from a pull, or an uncompressed tar
from a local build); ``LayerBlob`` remembers each so a layer compressed once is reused.

    ImageRecord     one image row: id, created, size, platform, labels, diff_ids, manifest, parent
    LayerBlob       diff_id <-> blob digest, media type, blob size, uncompressed size
    chain_ids(diff_ids) -> list[Digest]      the snapshot keys of a layer stack, bottom first

``dockyard images`` builds ``ImageRecord`` s and nothing else from here: it is a record (no
dataclass), ``LayerBlob`` (``dockyard.image.layer``) is imported on first use, and so is hashlib.
"""

from __future__ import annotations

from dockyard.oci.digest import Digest
from dockyard.record import field, record

# Not ``typing.TYPE_CHECKING``: the listing path imports no typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from dockyard.image.layer import LayerBlob as LayerBlob

__all__ = ["ImageRecord", "LayerBlob", "chain_id", "chain_ids"]


def __getattr__(name: str) -> object:
    if name == "LayerBlob":
        from dockyard.image.layer import LayerBlob

        return LayerBlob
    raise AttributeError(f"module 'dockyard.image' has no attribute {name!r}")


@record(slots=True)
class ImageRecord:
    """What the metadata store keeps about one image (enough to list it without the config blob).

    ``size`` is the sum of the uncompressed layer sizes, as docker reports it; ``created`` is the
    config's RFC 3339 timestamp (may be empty); ``added`` is when it entered this store (epoch s).
    """

    id: Digest
    created: str = ""
    size: int = 0
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    diff_ids: list[Digest] = field(default_factory=list)
    manifest_digest: str = ""
    parent: str = ""
    added: float = 0.0

    @property
    def short_id(self) -> str:
        return self.id.short


#: The diff ID of a layer without entries (a tar of two zero blocks: a RUN, COPY or WORKDIR that changed
#: nothing). Stacking it changes no file, so it needs no snapshot of its own.
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def chain_id(parent: str | None, diff_id: str) -> Digest:
    """ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)); the first is its DiffID (OCI image spec)."""
    if not parent:
        return Digest(diff_id)
    import hashlib

    return Digest("sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest())


def chain_ids(diff_ids: Sequence[str]) -> list[Digest]:
    """The chain IDs of a layer stack, bottom layer first."""
    out: list[Digest] = []
    parent: Digest | None = None
    for diff_id in diff_ids:
        parent = chain_id(parent, diff_id)
        out.append(parent)
    return out
