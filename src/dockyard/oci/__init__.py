"""OCI and Docker image-spec primitives (layer L0): digests, media types, descriptors, platforms,
manifests and indexes, image configs, canonical JSON and image references.

Everything here is pure data and parsing: no I/O.
"""
