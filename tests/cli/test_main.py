"""The entry point: the command table, ``--help`` without importing commands, and the import graph
of the cheap commands (read from ``python -X importtime``, not timed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dockyard import __version__
from dockyard.cli.main import COMMANDS, cli

HEAVY = ("dockyard.builder", "dockyard.registry", "dockyard.archive", "dockyard.executor",
         "dockyard.dockerfile", "dockyard.tools", "httpx", "rich")


def imported(*args: str, root: Path | None = None) -> tuple[set[str], str]:
    """The modules ``python -X importtime -m dockyard ARGS`` loads, and its stdout."""
    env_root = ["--root", str(root)] if root else []
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "dockyard", *env_root, *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "dockyard" in names, "importtime output not understood"
    return names, p.stdout


def loaded(names: set[str], prefix: str) -> list[str]:
    return sorted(n for n in names if n == prefix or n.startswith(prefix + "."))


@pytest.mark.parametrize("args", [["--version"], ["-v"], ["--root", "/nonexistent", "-D", "--version"],
                                  ["--root=/x", "-v"]])
def test_version_imports_neither_click_nor_the_engine(args: list[str]) -> None:
    names, out = imported(*args)
    assert out == f"dockyard version {__version__}\n"
    for prefix in (*HEAVY, "click", "dockyard.client", "dockyard.cli.group"):
        assert not loaded(names, prefix), f"--version loaded {loaded(names, prefix)}"


@pytest.mark.parametrize("args", [["--version", "images"], ["--root", "--version"], ["images", "-v"]])
def test_version_flag_elsewhere_goes_through_click(args: list[str]) -> None:
    fast = subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True, text=True,
                          timeout=60)
    slow = CliRunner().invoke(cli, args, prog_name="dockyard")
    assert (fast.stdout, fast.returncode != 0) == (slow.stdout, slow.exit_code != 0)


def test_help_lists_every_command_without_importing_it() -> None:
    names, out = imported("--help")
    for name in COMMANDS:
        assert f"\n  {name} " in out, f"{name} missing from --help"
    assert "List images." in out
    commands = sorted(n for n in names if n.startswith("dockyard.cli.") and n.endswith(("_cmd", "_cmds")))
    assert not commands, f"--help imported {commands}"
    for prefix in (*HEAVY, "dockyard.client"):
        assert not loaded(names, prefix), f"--help loaded {loaded(names, prefix)}"


def test_images_imports_only_the_store(tmp_path: Path) -> None:
    names, out = imported("images", root=tmp_path)
    assert out.startswith("REPOSITORY")
    for prefix in (*HEAVY, "dockyard.gotemplate", "dockyard.imageops.pull", "dockyard.imageops.push"):
        assert not loaded(names, prefix), f"images loaded {loaded(names, prefix)}"


# What ``dockyard images`` does not load (issue 19: as fast as ``docker images``): no dataclass is
# created (dataclasses imports inspect, ast, dis), no regex compiled (re, and json that compiles
# some), no typing, pathlib, hashlib, threading, unicodedata or weakref, none of the store's other
# parts, and not the client module (the store answers).
IMAGES_UNUSED = ("click", "dataclasses", "inspect", "typing", "re", "json", "pathlib", "hashlib", "threading",
                 "unicodedata", "weakref", "dockyard.cli.group", "dockyard.cli.image_cmds",
                 "dockyard.gotemplate", "dockyard.goformat", "dockyard.progress", "dockyard.content",
                 "dockyard.snapshot", "dockyard.oci.reference", "dockyard.oci.config", "dockyard.image.layer",
                 "dockyard.metadata.records", "dockyard.imageops.reports", "dockyard.client")


def test_images_of_one_image_loads_no_dataclass_regex_typing_or_pathlib(tmp_path: Path) -> None:
    from dockyard.client import Client
    from dockyard.oci.config import ImageConfig

    with Client(tmp_path, fsync=False) as client:
        layer = client.store_layer(b"\0" * 1024)  # an empty tar
        client.commit_image(ImageConfig(created="2024-01-02T03:04:05.123456789Z", diff_ids=[layer.diff_id],
                                        config={"Labels": {"org.example.title": "x y", "n": "1"}}),
                            names=["busybox:latest", "localhost:5000/a/b:v1"])
    baseline, _ = imported("--version")  # the interpreter's own start (and -m's runpy)
    for args in (["images"], ["images", "-a", "--digests", "--no-trunc"]):
        names, out = imported(*args, root=tmp_path)
        assert out.startswith("REPOSITORY") and "busybox" in out and len(out.splitlines()) == 3
        for prefix in (*HEAVY, *IMAGES_UNUSED):
            extra = [n for n in loaded(names, prefix) if n not in baseline]
            assert not extra, f"images loaded {extra}"


def test_images_as_the_installed_command_imports_no_contextlib(tmp_path: Path) -> None:
    # The console script (not ``-m``, whose runpy imports contextlib first) starts as this does.
    script = "import sys; from dockyard.cli.main import main; sys.argv[0] = 'dockyard'; sys.exit(main())"
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", script, "--root", str(tmp_path), "images"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("REPOSITORY"), p.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "dockyard.metadata" in names, "importtime output not understood"
    assert "contextlib" not in names


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_table_summary_is_the_commands_short_help(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert COMMANDS[name][1] == command.get_short_help_str(limit=10_000), (
        f"update the summary of {name!r} in dockyard.cli.main.COMMANDS")


def test_help_output_matches_clicks_own_rendering() -> None:
    # The table-driven listing renders exactly as click would from the loaded commands.
    ours = CliRunner().invoke(cli, ["--help"], prog_name="dockyard", terminal_width=80).output

    class Loaded(click.Group):
        pass

    ctx = click.Context(cli)
    full = Loaded(name="dockyard", params=cli.params, help=cli.help,
                  context_settings=cli.context_settings,
                  commands={n: c for n in COMMANDS if (c := cli.get_command(ctx, n)) is not None})
    theirs = CliRunner().invoke(full, ["--help"], prog_name="dockyard", terminal_width=80).output
    assert ours == theirs


def test_images_answers_without_click(tmp_path: Path) -> None:
    names, out = imported("images", "-q", root=tmp_path)
    assert out == ""
    for prefix in ("click", "dockyard.cli.group", "dockyard.cli.image_cmds"):
        assert not loaded(names, prefix), f"images loaded {loaded(names, prefix)}"
    # Anything but the plain forms goes through click.
    names, _ = imported("images", "--filter", "dangling=true", root=tmp_path)
    assert loaded(names, "click")


@pytest.fixture(scope="module")
def listed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        from bench_images import fill
    finally:
        sys.path.pop(0)
    root = tmp_path_factory.mktemp("listed") / "store"
    fill(root, 6)  # untagged images, and images with two names each
    return root


def dockyard(*args: str, click_only: bool = False) -> subprocess.CompletedProcess[str]:
    """``dockyard ARGS`` in a subprocess; ``click_only``: straight through the click group."""
    entry = (["-c", "import sys; from dockyard.cli.group import run; run(sys.argv[1:], debug=False)"]
             if click_only else ["-m", "dockyard"])
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [[], ["-a"], ["-q"], ["--digests"], ["--no-trunc", "-a"],
                                  ["-q", "--all", "--no-trunc"], ["--quiet", "--digests"]])
def test_images_without_click_prints_what_click_prints(listed_store: Path, args: list[str]) -> None:
    fast = dockyard("--root", str(listed_store), "images", *args)
    slow = dockyard("--root", str(listed_store), "images", *args, click_only=True)
    assert fast.returncode == slow.returncode == 0, fast.stderr
    assert fast.stdout == slow.stdout
    assert len(fast.stdout.splitlines()) > 1


def test_images_error_without_click(tmp_path: Path) -> None:
    (tmp_path / "metadata.db").write_text("not a database")
    fast = dockyard(f"--root={tmp_path}", "images")
    slow = dockyard("--root", str(tmp_path), "images", click_only=True)
    assert fast.returncode == slow.returncode != 0
    assert fast.stderr == slow.stderr
    assert fast.stderr.startswith("Error: ") and fast.stderr.count("\n") == 1


def test_commands_end_without_teardown_but_with_what_shutdown_owes(tmp_path: Path) -> None:
    """The console script ends a click command with ``os._exit`` after what interpreter shutdown
    would do that counts: exit codes and output as before, atexit callbacks run, and the store's
    SQLite connection closed (its write-ahead log checkpointed into the database and removed)."""
    import io
    import tarfile

    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    root = tmp_path / "store"
    marker = tmp_path / "atexit-ran"
    script = ("import atexit, sys; from dockyard.cli.main import main; sys.argv[0] = 'dockyard'; "
              f"atexit.register(lambda: open({str(marker)!r}, 'w').close()); sys.exit(main())")

    def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", script, "--root", str(root), *args],
                              capture_output=True, text=True, timeout=60)

    done = dockyard("import", str(tar), "tiny:1")
    assert done.returncode == 0 and done.stdout.startswith("sha256:"), done.stderr
    assert marker.exists()
    assert not (root / "metadata.db-wal").exists(), "the store's connection was left open"
    assert "tiny" in dockyard("images").stdout
    missing = dockyard("rmi", "nosuch:1")
    assert missing.returncode == 1 and missing.stderr.startswith("Error:"), missing.stderr
    assert dockyard("nosuchcommand").returncode == 125
