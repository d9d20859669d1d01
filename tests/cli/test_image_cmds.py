"""The image and system commands through click's runner and, for exit codes, a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dockyard.cli.main import cli
from dockyard.client import Client
from tests.content.storekit import client, make_image, make_tar, root

__all__ = ["client", "root"]

DIGEST = "sha256:" + "d" * 64


def run(root: Path, *args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, ["--root", str(root), *args], input=input, catch_exceptions=True)
    return result


def dockyard(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DOCKYARD_DEBUG": ""})


def test_images_table_quiet_format_and_digests(client: Client, root: Path) -> None:
    a = make_image(client, [make_tar({"a": b"a"})], names=["busybox", "busybox:1.36"],
                   repo_digests=[f"busybox@{DIGEST}"])
    d = make_image(client, [], extra="dangling", created="2023-01-01T00:00:00Z")
    out = run(root, "images").output.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert out[0].startswith("REPOSITORY   TAG       IMAGE ID       CREATED")
    assert [line.split()[:3] for line in out[1:]] == [
        ["busybox", "1.36", a.id.hex[:12]], ["busybox", "latest", a.id.hex[:12]],
        ["<none>", "<none>", d.id.hex[:12]]]
    assert run(root, "images", "-q").output.split() == [a.id.hex[:12]] * 2 + [d.id.hex[:12]]
    assert run(root, "images", "--format", "{{.Repository}}:{{.Tag}}").output.split() == [
        "busybox:1.36", "busybox:latest", "<none>:<none>"]
    digests = run(root, "images", "--digests", "--no-trunc").output.splitlines()
    assert digests[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert DIGEST in digests[1] and str(a.id) in digests[1]
    line = json.loads(run(root, "images", "--format", "json").output.splitlines()[0])
    assert set(line) >= {"ID", "Repository", "Tag", "Digest", "CreatedSince", "CreatedAt", "Size"}
    table = run(root, "images", "--format", "table {{.ID}}\t{{.Tag}}").output.splitlines()
    assert table[0].split() == ["IMAGE", "ID", "TAG"]


def test_images_filters(client: Client, root: Path) -> None:
    make_image(client, [], names=["old"], created="2020-01-01T00:00:00Z", labels={"tier": "db"})
    make_image(client, [], names=["mid"], created="2021-01-01T00:00:00Z")
    make_image(client, [], names=["example.com/x/new"], created="2022-01-01T00:00:00Z", extra="n")
    make_image(client, [], extra="dangling")
    fmt = ("--format", "{{.Repository}}")
    assert run(root, "images", "-f", "label=tier=db", *fmt).output.split() == ["old"]
    assert run(root, "images", "-f", "label=tier", *fmt).output.split() == ["old"]
    assert run(root, "images", "-f", "before=mid", *fmt).output.split() == ["old"]
    assert run(root, "images", "-f", "since=mid", *fmt).output.split() == ["<none>", "example.com/x/new"]
    assert run(root, "images", "-f", "dangling=true", *fmt).output.split() == ["<none>"]
    parent = make_image(client, [], extra="parent")
    make_image(client, [], names=["kid"], parent=str(parent.id), extra="kid")
    assert run(root, "images", "-f", "dangling=true", *fmt).output.split() == ["<none>"]  # heads only
    assert run(root, "images", "-a", "-f", "dangling=true", *fmt).output.split() == ["<none>"]
    assert run(root, "images", "-a", *fmt).output.split().count("<none>") == 2
    assert run(root, "images", "-f", "reference=*/*/*", *fmt).output.split() == ["example.com/x/new"]
    assert run(root, "images", "mid", *fmt).output.split() == ["mid"]
    bad = run(root, "images", "-f", "color=red")
    assert bad.exit_code != 0 and "invalid filter 'color'" in str(bad.exception)


def test_inspect_history_tag_rmi(client: Client, root: Path) -> None:
    a = make_image(client, [make_tar({"a": b"a"})], names=["img"], history=["/bin/sh -c " + "x" * 60])
    doc = json.loads(run(root, "image", "inspect", "img").output)
    assert isinstance(doc, list) and doc[0]["Id"] == str(a.id)
    assert run(root, "image", "inspect", "-f", "{{.Id}} {{.Config.Cmd}}", "img").output == f"{a.id} [sh]\n"
    hist = run(root, "history", "img").output.splitlines()
    assert hist[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert hist[1].startswith(a.id.hex[:12]) and "   /bin/sh -c " + "x" * 33 + "…   " in hist[1]
    assert run(root, "history", "-q", "img").output.split() == [a.id.hex[:12]]
    assert "x" * 60 in run(root, "history", "--no-trunc", "img").output
    assert run(root, "tag", "img", "other:v1").exit_code == 0
    assert run(root, "image", "rm", "other:v1").output == "Untagged: other:v1\n"
    out = run(root, "rmi", "img").output.splitlines()
    assert out[:2] == ["Untagged: img:latest", f"Deleted: {a.id}"]


def test_prune_and_system_commands(client: Client, root: Path) -> None:
    dangling = make_image(client, [make_tar({"x": b"x" * 5000})], extra="d")
    make_image(client, [make_tar({"y": b"y"})], names=["kept"])
    assert run(root, "image", "prune", input="n\n").output.endswith("[y/N] ")
    assert client.resolve(dangling.id.hex) == dangling.id
    out = run(root, "image", "prune", "-f").output
    assert out.startswith(f"Deleted Images:\ndeleted: {dangling.id}\n")
    assert out.endswith("Total reclaimed space: 5kB\n")
    df = run(root, "system", "df").output.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "0"]
    assert "Images space usage:" in run(root, "system", "df", "-v").output
    assert run(root, "system", "check").output.endswith("images: ok\n")
    out = run(root, "system", "prune", "-a", "-f").output
    assert "untagged: kept:latest" in out and "Total reclaimed space:" in out
    assert client.images(all=True) == []


@pytest.mark.slow
def test_errors_and_exit_codes_in_a_real_process(client: Client, root: Path) -> None:
    a = make_image(client, [make_tar({"a": b"a"})], names=["one", "two"])
    p = dockyard(root, "rmi", "nosuch")
    assert p.returncode == 1 and p.stderr == "Error: No such image: nosuch\n"
    p = dockyard(root, "rmi", a.id.hex[:12])
    assert p.returncode == 1
    assert p.stderr == (f"Error: conflict: unable to delete {a.id.hex[:12]} (must be forced) - image is "
                        "referenced in multiple repositories\n")
    p = dockyard(root, "image", "inspect", "nosuch")
    assert p.returncode == 1 and p.stdout == "[]\n" and "No such image: nosuch" in p.stderr
    p = dockyard(root, "tag", "one", "Bad Name")
    assert p.returncode == 1 and p.stderr.startswith("Error: invalid reference format")
    client.store.content.path(a.diff_ids[0]).write_bytes(b"broken")
    p = dockyard(root, "system", "check")
    assert p.returncode == 1 and "content hashes to" in p.stdout
    p = dockyard(root, "system", "check", "--repair")
    # Built locally: nothing to fetch the layer from, so the image is kept and said to be broken.
    assert p.returncode == 1 and "repaired: moved corrupt blob" in p.stdout
    names = "docker.io/library/one:latest, docker.io/library/two:latest"
    assert f"not repaired: image {a.id} ({names})" in p.stdout
    assert dockyard(root, "rmi", "one", "two").returncode == 0
    p = dockyard(root, "system", "check", "--repair")
    assert p.returncode == 0 and "nothing uses it" in p.stdout
    assert dockyard(root, "system", "check").returncode == 0


@pytest.mark.parametrize("module", ["httpx", "rich", "aiohttp"])
def test_images_does_not_import_heavy_modules(root: Path, module: str) -> None:
    code = ("import sys; from dockyard.cli.main import main\n"
            "try:\n    main(['--root', sys.argv[1], 'images'])\nexcept SystemExit:\n    pass\n"
            f"print({module!r} in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().endswith("False"), p.stdout + p.stderr


@pytest.mark.parametrize("fmt", [
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    "table {{.ID}}\\t{{ .Tag }}",
    "{{.Repository}}:{{.Tag}}",
    "id={{.ID}} size={{.Size}}",
])
def test_fast_rendering_matches_the_template_engine(client: Client, fmt: str) -> None:
    from dockyard.cli.format import IMAGE_HEADERS, format_rows
    from dockyard.cli.listing import _fast_rows, image_rows

    make_image(client, [], names=["a", "b:1", "localhost:5000/c/d:e"])
    make_image(client, [], extra="dangling")
    rows = image_rows(client.images(), digests=True, no_trunc=False)
    fast = _fast_rows(fmt, rows, IMAGE_HEADERS)
    assert fast is not None
    assert fast == format_rows(fmt, rows, headers=IMAGE_HEADERS)
    assert _fast_rows("{{.Nope}}", rows, IMAGE_HEADERS) is None
    assert _fast_rows("{{json .ID}}", rows, IMAGE_HEADERS) is None


def test_history_raw_values_and_image_group_borrows_commands(client: Client, root: Path) -> None:
    make_image(client, [make_tar({"a": b"z" * 1500})], names=["img"], created="2024-01-02T03:04:05Z")
    out = run(root, "history", "-H=false", "--format", "{{.CreatedSince}} {{.Size}}", "img").output
    assert out == "2024-01-02T03:04:05Z 1500\n"
    assert run(root, "image", "history", "--format", "{{.Size}}", "img").output == "1.5kB\n"
    listed = run(root, "image", "--help").output
    for name in ("history", "inspect", "ls", "prune", "rm", "tag", "load", "save", "import"):
        assert f"  {name} " in listed, name
    assert run(root, "image", "save", "--help").exit_code == 0


@pytest.mark.parametrize("text", [
    "A\tB\tC\nlong value here\tx\t\n\t\t\n",
    "IMAGE\tCREATED\tSIZE\tCOMMENT\nabc\t2 years ago\t10.2kB\t\n<missing>\t3 days ago\t0B\tImported\n",
    "ONE\nrow\n",
    "a\tb\n" * 3,
])
def test_uniform_tabwriter_matches_the_general_one(text: str) -> None:
    from dockyard.cli.format import tabwrite
    from dockyard.cli.listing import _tabwrite_uniform

    assert _tabwrite_uniform(text) == tabwrite(text)
