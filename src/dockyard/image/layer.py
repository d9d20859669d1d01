"""``LayerBlob``: one stored form of a layer (exported by ``dockyard.image``; apart so that listing
images, which needs none, creates no dataclass)."""

from __future__ import annotations

from dockyard.oci.digest import Digest
from dockyard.record import record


@record(frozen=True, slots=True)
class LayerBlob:
    """One stored form of a layer: its blob digest and media type; sizes in bytes (-1 if unknown).

    ``size`` is the blob's, ``uncompressed_size`` the tar's, ``content_size`` what docker reports
    as the layer's size: bytes of regular files plus symlink targets, each hard link once.
    """

    diff_id: Digest
    digest: Digest
    media_type: str
    size: int
    uncompressed_size: int = -1
    content_size: int = -1
