"""``buildx`` builders and flags: ``create``/``use``/``ls``/``rm``, ``--builder``, ``--load`` (what a
builder does with a result), and ``imagetools inspect --format`` over buildx's template fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.client.peers import PLAIN, make_image, upload_image, upload_index

pytestmark = pytest.mark.slow  # a dozen CLI runs each


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    config = tmp_path / "config.toml"
    config.write_text("")
    root = Path("/dev/shm") / f"dytest-bx-{uuid.uuid4().hex[:8]}"
    yield {**os.environ, "DOCKYARD_ROOT": str(root), "DOCKER_CONFIG": str(tmp_path / "docker"),
           "DOCKYARD_CONFIG": str(config), "DOCKYARD_DAEMON_JSON": ""}
    subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
    subprocess.run(["rm", "-rf", str(root)], check=False)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, text=True, capture_output=True,
                          timeout=300)


def ok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = run(env, *args)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


def tags(env: dict[str, str]) -> list[str]:
    return sorted(ok(env, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())


@pytest.fixture
def ctx(tmp_path: Path) -> str:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (d / "a").write_text("a\n")
    return str(d)


def test_builders_and_what_load_means(env: dict[str, str], ctx: str) -> None:
    unknown = run(env, "buildx", "build", "--builder", "nope", "-t", "app:0", ctx)
    assert (unknown.returncode, unknown.stderr) == (1, 'ERROR: no builder "nope" found\n')
    # The default builder (docker driver) loads the result; --load changes nothing there.
    ok(env, "buildx", "build", "-q", "-t", "app:default", ctx)
    assert tags(env) == ["app:default"]
    made = ok(env, "buildx", "create", "--name", "ci", "--use")
    assert made.stdout == "ci\n"
    listed = ok(env, "buildx", "ls").stdout.splitlines()
    assert [line.split()[:2] for line in listed if not line.startswith(" ")][1:] == [
        ["dockyard", "docker"], ["ci", "*"]]
    # A created builder (docker-container driver) keeps the result in the build cache only...
    cached = ok(env, "buildx", "build", "-q", "-t", "app:cache-only", ctx)
    assert cached.stderr.startswith("WARNING: No output specified with docker-container driver. Build "
                                    "result will only remain in the build cache.")
    assert tags(env) == ["app:default"]
    # ...until --load, or --builder names the default one.
    ok(env, "buildx", "build", "-q", "--load", "-t", "app:loaded", ctx)
    ok(env, "buildx", "--builder", "default", "build", "-q", "-t", "app:by-default", ctx)
    assert tags(env) == ["app:by-default", "app:default", "app:loaded"]
    several = run(env, "buildx", "build", "--load", "--platform", "linux/amd64,linux/arm64", ctx)
    assert (several.returncode, several.stderr) == (
        1, "ERROR: docker exporter does not currently support exporting manifest lists\n")
    assert (run(env, "buildx", "use", "nope").stderr, run(env, "buildx", "inspect", "nope").returncode) == (
        'ERROR: no builder "nope" found\n', 1)
    assert "Driver:        docker-container" in ok(env, "buildx", "inspect").stdout
    ok(env, "buildx", "rm", "ci")
    assert run(env, "buildx", "build", "--builder", "ci", ctx).returncode == 1
    # Back on the default builder: loaded again.
    ok(env, "buildx", "build", "-q", "-t", "app:after", ctx)
    assert "app:after" in tags(env)


@pytest.mark.registry
def test_imagetools_inspect_format(env: dict[str, str]) -> None:
    amd = make_image([{"a": b"amd"}])
    arm = make_image([{"a": b"arm"}], arch="arm64", variant="v8", oci=True)
    repo = f"dytest/imagetools-{uuid.uuid4().hex[:8]}"
    index = upload_index(PLAIN, repo, "multi", [(amd, "linux/amd64"), (arm, "linux/arm64/v8")])
    upload_image(PLAIN, repo, "single", amd)
    multi, single = f"{PLAIN}/{repo}:multi", f"{PLAIN}/{repo}:single"

    manifest = ok(env, "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", multi).stdout
    doc = json.loads(manifest)
    # buildx's shape: the index with its own digest and size after mediaType; indented by two.
    assert list(doc) == ["schemaVersion", "mediaType", "digest", "size", "manifests"]
    import hashlib

    assert (doc["digest"], doc["size"]) == ("sha256:" + hashlib.sha256(index).hexdigest(), len(index))
    assert doc["manifests"] == json.loads(index)["manifests"]
    assert manifest.startswith('{\n  "schemaVersion": 2,\n  "mediaType": ') and not manifest.endswith("\n")
    images = json.loads(ok(env, "buildx", "imagetools", "inspect", "--format", "{{json .Image}}",
                           multi).stdout)
    assert sorted(images) == ["linux/amd64", "linux/arm64/v8"]
    assert list(images["linux/arm64/v8"]) == ["created", "architecture", "os", "variant", "config", "rootfs",
                                              "history"]
    assert images["linux/amd64"]["rootfs"] == json.loads(amd.config)["rootfs"]
    one = ok(env, "buildx", "imagetools", "inspect", "--format",
             "{{.Name}} {{.Image.Architecture}} {{.Manifest.MediaType}} {{json .Manifest}}", single).stdout
    name, arch, media_type, rest = one.split(" ", 3)
    assert (name, arch, media_type) == (single, "amd64", amd.media_type)
    assert json.loads(rest) == {"mediaType": amd.media_type, "digest": amd.digest, "size": len(amd.manifest)}
    # As buildx, a template that starts with {{.Manifest prints the plain listing.
    listing = ok(env, "buildx", "imagetools", "inspect", "--format", "{{.Manifest}}", multi).stdout
    assert listing.startswith(f"Name:      {multi}\nMediaType: application/vnd.oci.image.index.v1+json\n")
    bad = run(env, "buildx", "imagetools", "inspect", "--format", "{{nope .Image}}", single)
    assert bad.returncode == 1 and 'function "nope" not defined' in bad.stderr
