"""``analyze --interactive``: the textual app shows each layer's changes and its removable bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.analyze import analyze_image
from tests.tools.analyze.kit import make_image

textual = pytest.importorskip("textual", reason="textual is in the test extra")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


def _labels(node: object) -> list[str]:
    out = [str(node.label)]  # type: ignore[attr-defined]
    for child in node.children:  # type: ignore[attr-defined]
        out += _labels(child)
    return out


@pytest.mark.slow
def test_layers_and_their_file_trees(client: Client) -> None:
    from textual.widgets import DataTable, Static, Tree

    from dockyard.cli.analyze_tui import AnalyzeApp

    blob = b"x" * 5000
    make_image(client, "tui:1", [[("srv", None), ("srv/a.bin", blob), ("srv/old", b"o" * 300)],
                                 [("srv", None, 1000), ("srv/a.bin", blob, 1000), ("srv/.wh.old", b""),
                                  ("srv/new", b"n" * 10)]],
               ["COPY srv /srv # buildkit", "RUN /bin/sh -c chown -R 1000 /srv && rm /srv/old # buildkit"])
    app = AnalyzeApp(analyze_image(client, "tui:1"))

    async def drive() -> tuple[list[str], list[str], str, int]:
        async with app.run_test() as pilot:
            first = _labels(app.query_one("#files", Tree).root)
            app.query_one("#layers", DataTable).focus()
            await pilot.press("down")
            await pilot.pause()
            second = _labels(app.query_one("#files", Tree).root)
            detail = str(app.query_one("#detail", Static).render())
            rows = app.query_one("#layers", DataTable).row_count
        return first, second, detail, rows

    first, second, detail, rows = asyncio.run(drive())
    assert rows == 2
    assert first[0].startswith("/ (2 files") and any("+ a.bin" in label for label in first)
    assert any("~ a.bin" in label for label in second) and any("- old" in label for label in second)
    assert any("+ new" in label for label in second)
    assert "makes 5.3 kB of lower layers removable" in detail and "COPY --chown" in detail


@pytest.mark.slow
def test_names_and_history_are_shown_as_they_are(client: Client) -> None:
    """Names and history entries with square brackets are text, not markup (dive shows them as they are)."""
    from textual.widgets import DataTable, Static, Tree

    from dockyard.cli.analyze_tui import AnalyzeApp

    make_image(client, "markup:1", [[("srv", None), ("srv/[bold]x[", b"a"), ("srv/[i]", b"b")]],
               ["COPY [red]x[/] /srv # buildkit"])
    app = AnalyzeApp(analyze_image(client, "markup:1"))

    async def drive() -> tuple[list[str], str, str]:
        async with app.run_test() as pilot:
            await pilot.pause()
            labels = _labels(app.query_one("#files", Tree).root)
            detail = str(app.query_one("#detail", Static).render())
            table = app.query_one("#layers", DataTable)
            command = str(table._get_row_renderables(0).cells[3])  # what the table draws
        return labels, detail, command

    labels, detail, command = asyncio.run(drive())
    assert any("+ [bold]x[ 1 B" in label for label in labels)
    assert any("+ [i] 1 B" in label for label in labels)
    assert "COPY [red]x[/] /srv" in detail and "[red]x[/]" in command
