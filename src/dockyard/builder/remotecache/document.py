"""The cache document: dockyard's cache records as one JSON blob (the config of the cache artifact).

See docs/cache-format.md. Version 1::

    {"schema": "dockyard.buildcache", "version": 1,
     "layers":  {"<diff ID>": {"digest": ..., "size": ..., "mediaType": ...}},
     "configs": {"<config digest>": "<the image config JSON, verbatim>"},
     "mounts":  {"<cache mount dir>": {"digest": ..., "size": ..., "mediaType": "<mount index type>"}},
     "records": [{"key": "<cache key>", "config": "<config digest>", "stage": "<name>",
                  "inputs": {...}}]}

A record says: the step whose cache key is ``key`` left the stage in the state of that image config
(its ``rootfs.diff_ids`` are the layers, found in ``layers``); ``inputs`` (optional) is what the
key was made of, to explain a later miss (``builder.explain.Inputs``).
"""

from __future__ import annotations

import json
from typing import Any

from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest, is_valid
from dockyard.record import field, record

MEDIA_TYPE = "application/vnd.dockyard.buildcache.v1+json"
MEDIA_TYPE_PREFIX = "application/vnd.dockyard.buildcache."
ARTIFACT_TYPE = "application/vnd.dockyard.buildcache"
SCHEMA = "dockyard.buildcache"
VERSION = 1
# The image-config label holding an inline cache document (``--cache-to type=inline``).
INLINE_KEY = "dockyard.buildcache.v1"


class UnreadableCache(Exception):
    """A cache document this dockyard cannot read (newer version, other schema, bad JSON)."""


@record
class CacheDocument:
    layers: dict[str, Descriptor] = field(default_factory=dict)    # diff ID -> blob
    configs: dict[str, bytes] = field(default_factory=dict)        # config digest -> bytes
    records: dict[str, str] = field(default_factory=dict)          # cache key -> config digest
    stages: dict[str, str] = field(default_factory=dict)           # cache key -> stage name
    inputs: dict[str, object] = field(default_factory=dict)        # cache key -> explain.Inputs data
    mounts: dict[str, Descriptor] = field(default_factory=dict)    # cache mount dir name -> its index

    def add(self, key: str, config: bytes, stage: str, inputs: object = None) -> str:
        digest = str(Digest.from_bytes(config))
        self.configs[digest] = config
        self.records[key] = digest
        self.stages[key] = stage
        if inputs is not None:
            self.inputs[key] = inputs
        return digest

    def config(self, key: str) -> bytes | None:
        digest = self.records.get(key)
        return None if digest is None else self.configs.get(digest)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "schema": SCHEMA, "version": VERSION,
            "layers": {d: {"digest": str(x.digest), "size": x.size, "mediaType": x.media_type}
                       for d, x in sorted(self.layers.items())},
            "configs": {d: c.decode() for d, c in sorted(self.configs.items())},
            "mounts": {n: {"digest": str(x.digest), "size": x.size, "mediaType": x.media_type}
                       for n, x in sorted(self.mounts.items())},
            "records": [{"key": k, "config": c, "stage": self.stages.get(k, ""),
                         **({"inputs": self.inputs[k]} if k in self.inputs else {})}
                        for k, c in self.records.items()],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def parse_document(data: bytes, where: str) -> CacheDocument:
    """Read a cache document; ``UnreadableCache`` (with a one-line reason) if it is not version 1."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise UnreadableCache(f"{where}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise UnreadableCache(f"{where}: not a dockyard build cache")
    version = doc.get("version")
    if version != VERSION:
        raise UnreadableCache(f"{where}: cache format version {version!r} is not supported "
                              f"(this dockyard reads version {VERSION})")
    out = CacheDocument()
    try:
        for diff_id, blob in dict(doc.get("layers") or {}).items():
            digest = str(blob["digest"])
            if not is_valid(diff_id) or not is_valid(digest):
                raise ValueError(f"bad digest in layer {diff_id!r}")
            out.layers[diff_id] = Descriptor(str(blob["mediaType"]), Digest(digest), int(blob["size"]))
        for digest, text in dict(doc.get("configs") or {}).items():
            raw = str(text).encode()
            if Digest.from_bytes(raw) != digest:
                raise ValueError(f"config {digest} does not match its digest")
            out.configs[digest] = raw
        for name, blob in dict(doc.get("mounts") or {}).items():
            if not is_valid(str(blob["digest"])) or "/" in name or name in ("", ".", ".."):
                raise ValueError(f"bad cache mount {name!r}")
            out.mounts[name] = Descriptor(str(blob["mediaType"]), Digest(str(blob["digest"])),
                                          int(blob["size"]))
        for rec in list(doc.get("records") or []):
            key, config = str(rec["key"]), str(rec["config"])
            if config in out.configs:
                out.records[key] = config
                out.stages[key] = str(rec.get("stage", ""))
                if "inputs" in rec:
                    out.inputs[key] = rec["inputs"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnreadableCache(f"{where}: malformed cache document ({exc})") from None
    return out
