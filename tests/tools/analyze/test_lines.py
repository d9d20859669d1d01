"""Each layer's Dockerfile line, from the history dockyard's builder writes (and the classic builder's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.builder.engine import build
from dockyard.builder.options import BuildOptions
from dockyard.client import Client
from dockyard.errors import InvalidArgument
from dockyard.oci.config import History
from dockyard.tools.analyze.lines import history_lines, keyword
from dockyard.tools.report import build_report

# The same COPY twice, in two stages: only the history's order tells which line made which layer.
DOCKERFILE = """\
FROM scratch AS base
COPY a /a
ENV X=1
FROM base
COPY b /b
LABEL x=y
COPY a /a
WORKDIR /w
COPY b /b
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


def _build(client: Client, ctx: Path, dockerfile: str, tag: str) -> None:
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "a").write_bytes(b"a" * 5000)
    (ctx / "b").write_bytes(b"b" * 7000)
    build(client.store, BuildOptions(context_dir=str(ctx), tags=[tag]))


def test_layers_of_a_real_build_map_to_their_lines(client: Client, tmp_path: Path) -> None:
    _build(client, tmp_path / "ctx", DOCKERFILE, "lines:1")
    config = client.image_config("lines:1")
    assert config.history is not None
    aligned = history_lines(config.history, DOCKERFILE, layer_count=len(config.diff_ids))
    # WORKDIR /w makes a layer too (the directory); ENV and LABEL only history entries
    assert aligned.layers == [2, 5, 7, 8, 9] and aligned.note == ""
    assert aligned.entries == [2, 3, 5, 6, 7, 8, 9]
    report = build_report(client, "lines:1", DOCKERFILE)
    assert report.layer_lines == [2, 5, 7, 8, 9]
    # the second copies of /a and /b replace the first ones: blamed on lines 7 and 9, not 2 and 5
    assert report.analysis.waste is not None
    assert {lw.line: lw.removable for lw in report.analysis.waste.layers} == {7: 5000, 9: 7000}
    assert {e.line: e.removable for e in report.lines if e.removable} == {7: 5000, 9: 7000}


def test_target_stage_and_a_dockerfile_that_does_not_match(client: Client, tmp_path: Path) -> None:
    _build(client, tmp_path / "ctx", DOCKERFILE, "lines:1")
    _build(client, tmp_path / "ctx2", DOCKERFILE + "FROM scratch\nCOPY a /z\n", "lines:2")
    history = client.image_config("lines:1").history or []
    base_only = history_lines(history[:2], DOCKERFILE, target="base")
    assert base_only.layers == [2] and base_only.note == ""
    with pytest.raises(InvalidArgument, match="target stage 'nope'"):
        history_lines(history, DOCKERFILE, target="nope")
    # the image of the last stage read against a Dockerfile whose last stage is another one
    other = history_lines(client.image_config("lines:2").history or [], DOCKERFILE)
    assert other.layers == [None]
    assert "history entry 1 (COPY a /z) does not match line 9 (COPY b /b)" in other.note
    report = build_report(client, "lines:2", DOCKERFILE)
    assert report.notes[0].startswith("history entry 1 (COPY a /z) does not match")


def test_history_keywords() -> None:
    assert keyword("RUN /bin/sh -c apt-get update # buildkit") == "RUN"
    assert keyword("COPY dir /x # buildkit") == "COPY"
    assert keyword("/bin/sh -c #(nop) COPY file:0123 in / ") == "COPY"
    assert keyword("/bin/sh -c #(nop)  CMD [\"sh\"]") == "CMD"
    assert keyword("|2 A=1 B=2 /bin/sh -c make") == "RUN"
    assert keyword("/bin/sh -c make") == "RUN"
    assert keyword("WORKDIR /w") == "WORKDIR"
    # a RUN entry with other words than the RUN line
    run = [History(created_by="RUN |1 V=2 /bin/sh -c make  all # buildkit")]
    assert history_lines(run, "FROM scratch\nARG V\nRUN make \\\n all\n").layers == [3]
    assert history_lines(run, "FROM scratch\nRUN make test\n").layers == [None]
    entries = [History(created_by="COPY a /a # buildkit"), History(created_by="ENV X=1", empty_layer=True)]
    assert history_lines(entries, "FROM scratch\nCOPY a /a\nENV X=1\n").layers == [2]
    # the layer count disagrees with the history: nothing is mapped, and the note says why
    odd = history_lines(entries, "FROM scratch\nCOPY a /a\nENV X=1\n", layer_count=2)
    assert odd.layers == [None, None] and "1 layer entries for 2 layers" in odd.note
