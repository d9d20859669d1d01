"""OCI distribution / Docker registry v2 client (layer L3): ping, auth challenges, blobs, manifests.

``RegistryClient(options, credentials=...)`` hands out ``Repository`` objects whose methods map to the
API: ``get_manifest``, ``put_manifest``, ``fetch_blob`` (verified, resumable), ``upload_blob``
(skip/mount/monolithic/chunked), ``tags``.
"""

from dockyard.registry.client.client import RegistryClient
from dockyard.registry.client.options import RegistryOptions, api_host, canonical_host
from dockyard.registry.client.repository import FetchedManifest, Repository

__all__ = ["FetchedManifest", "RegistryClient", "RegistryOptions", "Repository", "api_host", "canonical_host"]
