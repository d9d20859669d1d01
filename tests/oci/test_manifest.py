from __future__ import annotations

import json

import pytest

from dockyard.errors import CorruptData
from dockyard.oci import mediatypes as mt
from dockyard.oci.config import History, ImageConfig
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Index, Manifest, parse_index, parse_manifest
from dockyard.oci.platform import Platform, parse

CFG = Descriptor(mt.OCI_CONFIG, Digest.from_bytes(b"{}"), 2)
LAYER = Descriptor(mt.OCI_LAYER_GZIP, Digest.from_bytes(b"layer"), 5, annotations={"a": "b"})


def test_manifest_round_trip() -> None:
    m = Manifest(CFG, (LAYER,), subject=CFG, annotations={"k": "v"})
    again = parse_manifest(m.to_json())
    assert again == m
    assert again.layers[0].annotations == {"a": "b"}
    assert again.subject == CFG


def test_index_round_trip_with_platform() -> None:
    d = Descriptor(mt.OCI_MANIFEST, Digest.from_bytes(b"m"), 1, platform=Platform("linux", "arm64", "v8"))
    idx = parse_index(Index((d,)).to_json())
    assert idx.manifests[0].platform == Platform("linux", "arm64", "v8")
    assert parse("linux/arm64").matches(idx.manifests[0].platform)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"[]", "expected a JSON object"),
        (b"{", "invalid JSON"),
        (b'{"schemaVersion": 1, "fsLayers": []}', "schema 1 is not supported"),
        (b'{"schemaVersion": 2, "mediaType": "x", "config": {}}', "not an image manifest"),
        (json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:x", "size": 1}, "layers": []}).encode(),
         "config: invalid checksum digest"),
        (json.dumps({"schemaVersion": 2, "config": CFG.to_dict(), "layers": [{"digest": str(CFG.digest),
                                                                              "size": -1}]}).encode(),
         "invalid size"),
    ],
)
def test_bad_manifests(doc: bytes, message: str) -> None:
    with pytest.raises(CorruptData, match=message):
        parse_manifest(doc)


def test_platform_parse_and_normalise() -> None:
    assert str(parse("linux/amd64")) == "linux/amd64"
    assert str(parse("linux/aarch64")) == "linux/arm64"
    assert str(parse("linux/arm64/v8")) == "linux/arm64"
    assert str(parse("linux/arm")) == "linux/arm/v7"
    assert not parse("linux/arm/v6").matches(Platform("linux", "arm", "v7"))


def test_config_round_trip_keeps_unknown_fields() -> None:
    cfg = ImageConfig(config={"Env": ["A=1"], "Cmd": ["sh"]}, diff_ids=[LAYER.digest],
                      history=[History(created_by="RUN x"), History(created_by="ENV A=1", empty_layer=True)],
                      extra={"container": "abc"})
    again = ImageConfig.from_json(cfg.to_json())
    assert again.to_dict() == cfg.to_dict()
    assert again.extra == {"container": "abc"}
    with pytest.raises(CorruptData, match="missing rootfs"):
        ImageConfig.from_json(b"{}")
