"""``import``: rootfs tarballs in any compression, ``--change`` lines, bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
from collections.abc import Iterator

import pytest
import zstandard

from dockyard.errors import CorruptData, InvalidArgument, UnsafePath
from dockyard.imageops import Store
from dockyard.imageops.importer import apply_changes, import_image
from dockyard.oci.config import ImageConfig
from dockyard.oci.platform import Platform


def rootfs(extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in {"bin/tool": b"#!/bin/sh\n", **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="dockyard-test-import-") as d:
        s = Store(d, fsync=False)
        yield s
        s.close()


@pytest.mark.parametrize("compress", [lambda b: b, lambda b: gzip.compress(b, 1),
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["plain", "gzip", "zstd"])
def test_diff_id_is_the_uncompressed_tar(store: Store, compress: object) -> None:
    tar = rootfs()
    rec = import_image(store, io.BytesIO(compress(tar)), names=["imp:1"])  # type: ignore[operator]
    assert rec.diff_ids == ["sha256:" + hashlib.sha256(tar).hexdigest()]
    assert store.meta.get_tag("docker.io/library/imp:1") == rec.id
    config = ImageConfig.from_json(store.content.read(rec.id))
    assert config.history[0].comment == "Imported from -"


def test_changes_message_platform(store: Store) -> None:
    rec = import_image(store, io.BytesIO(rootfs()), message="hello", platform=Platform("linux", "arm64"),
                       changes=['CMD ["sh"]', "ENV A=1 B='two words'", "ENV C 3", "EXPOSE 80 53/udp",
                                'LABEL x=y "z z"=w', "USER app", "WORKDIR /srv", "WORKDIR sub",
                                "VOLUME /data /logs", "ONBUILD RUN true", "ENTRYPOINT /bin/tool"])
    config = ImageConfig.from_json(store.content.read(rec.id))
    c = config.config
    assert (config.architecture, config.history[0].comment) == ("arm64", "hello")
    assert c["Env"] == ["A=1", "B=two words", "C=3"]
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Labels"] == {"x": "y", "z z": "w"}
    assert (c["User"], c["WorkingDir"]) == ("app", "/srv/sub")
    assert c["Volumes"] == {"/data": {}, "/logs": {}}
    assert c["OnBuild"] == ["RUN true"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/tool"]
    assert c["Cmd"] is None  # a new ENTRYPOINT resets CMD, as docker does


@pytest.mark.parametrize(("line", "message"), [
    ("FROM busybox", "FROM is not a valid change command"),
    ("RUN true", "RUN is not a valid change command"),
    ("EXPOSE http", "invalid containerPort: http"),
    ("ENV", "ENV requires at least one argument"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
])
def test_bad_changes(line: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        apply_changes({}, [line])


def test_hostile_and_corrupt_input_records_nothing(store: Store) -> None:
    with pytest.raises(UnsafePath, match=r"^rootfs.tar: member '../x' points outside"):
        import_image(store, io.BytesIO(rootfs({"../x": b"evil"})), source="rootfs.tar", names=["bad:1"])
    with pytest.raises(CorruptData, match=r"^cut.tar.gz: gzip stream truncated"):
        import_image(store, io.BytesIO(gzip.compress(rootfs())[:-20]), source="cut.tar.gz")
    with pytest.raises(CorruptData, match=r"^empty: empty input"):
        import_image(store, io.BytesIO(b""), source="empty")
    assert store.meta.images() == [] and store.meta.tags() == []
