"""Parity probes for issue 10's build items, against Docker 20.10's BuildKit (which agrees with today's
BuildKit on each of them): the config of ``FROM scratch``, several sources onto a destination without a
trailing slash, and ARG names that are themselves expanded.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from tests.builder.test_docker_parity import engine_store
from tests.builder.test_docker_parity_more import check, write

pytestmark = [pytest.mark.docker, pytest.mark.slow]
__all__ = ["engine_store"]  # the module fixture, shared with test_docker_parity


@pytest.fixture(scope="module", autouse=True)
def _remove_store(engine_store: Client) -> Iterator[None]:
    yield
    with contextlib.suppress(OSError):
        engine_store.close()
    shutil.rmtree(engine_store.root, ignore_errors=True)


def test_from_scratch_working_dir(engine_store: Client, tmp_path: Path) -> None:
    """BuildKit's empty image has ``WorkingDir: "/"``; ``check`` compares the whole run config."""
    ctx = write(tmp_path / "c", {"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "a\n"})
    check(engine_store, tmp_path, ctx, "scratch-workdir")


def test_several_sources_onto_a_file_destination(engine_store: Client, tmp_path: Path) -> None:
    """Each source is copied onto the destination in turn (the last file wins; onto a directory made by
    an earlier source, a file goes into it), for a list of sources and for a wildcard matching several."""
    ctx = write(tmp_path / "c", {
        "Dockerfile": "FROM busybox:local\nCOPY a?/f /out\nCOPY x.txt y.txt /two\nCOPY a1 x.txt /mix\n"
                      "WORKDIR /w\nCOPY x.txt y.txt rel\n",
        "a1/f": "one\n", "a2/f": "two\n", "x.txt": "x\n", "y.txt": "y\n"})
    check(engine_store, tmp_path, ctx, "several-sources")


def test_arg_name_is_expanded(engine_store: Client, tmp_path: Path) -> None:
    """``ARG ${src}=x.txt`` declares ARG ``a`` when ENV ``src`` is ``a`` (ArgCommand.Expand). This follows
    Docker 20.10: today's BuildKit skips ArgCommand.Expand in dispatch and would declare ``${src}``."""
    ctx = write(tmp_path / "c", {
        "Dockerfile": "FROM busybox:local\nENV src a\nARG ${src}=x.txt\nCOPY $a /out\n",
        "x.txt": "x\n", "y.txt": "y\n"})
    check(engine_store, tmp_path, ctx, "arg-name-expanded")
