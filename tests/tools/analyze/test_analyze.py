"""analyze: dive's wasted bytes and efficiency on small images with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.errors import InvalidArgument, NotFound
from dockyard.tools.analyze import analyze_image, evaluate, parse_bytes, to_json
from tests.tools.analyze.kit import make_image


@pytest.fixture
def client(tmp_path: Path) -> Client:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c  # type: ignore[misc]


def test_overwrite_delete_and_directory_delete(client: Client) -> None:
    layers = [
        [("etc", None), ("etc/conf", b"a" * 100), ("big", b"b" * 1000), ("d", None), ("d/x", b"x" * 50),
         ("d/y", b"y" * 70), ("keep", b"k" * 10)],
        [("etc/conf", b"c" * 300), ("etc/.wh.missing-is-ignored", b"")],
        [(".wh.big", b""), (".wh.d", b""), ("etc/conf", b"z" * 5)],
    ]
    make_image(client, "t:1", layers, ["FROM scratch", "RUN edit", "RUN clean"])
    a = analyze_image(client, "t:1")
    assert [r.size for r in a.layers] == [1230, 300, 5]
    assert [r.command for r in a.layers] == ["FROM scratch", "RUN edit", "RUN clean"]
    assert [(r.added, r.modified, r.removed) for r in a.layers] == [(5, 0, 0), (0, 1, 1), (0, 1, 2)]
    # /etc/conf: 100 + 300 + 5 in three layers; /big: 1000 then a whiteout (0);
    # /d deleted as a directory: one node, so not waste (as in dive) but counted in both sums.
    by_path = {w.path: (w.count, w.size) for w in a.wasted_files}
    assert by_path == {"/etc/conf": (3, 405), "/big": (2, 1000)}
    assert a.wasted == 1405
    assert [w.path for w in a.wasted_files][:2] == ["/big", "/etc/conf"]
    # minimum: conf 5 + big 0 + x 50 + y 70 + keep 10 + d 120 (whiteout of a dir) = 255
    # discovered: conf 405 + big 1000 + x 50 + y 70 + keep 10 + d 120 = 1655
    assert a.efficiency == pytest.approx(255 / 1655)
    assert a.size == 1535 and a.user_size == 305
    assert a.user_wasted_percent == pytest.approx(1405 / 305)
    doc = to_json(a)
    assert doc["image"]["inefficientBytes"] == 1405
    assert doc["layer"][1]["sizeBytes"] == 300


def test_opaque_dir_adds_no_waste_like_dive(client: Client) -> None:
    layers = [[("app", None), ("app/a", b"1" * 40), ("app/b", b"2" * 60)],
              [("app", None), ("app/.wh..wh..opq", b""), ("app/c", b"3" * 5)]]
    make_image(client, "o:1", layers)
    a = analyze_image(client, "o:1")
    assert a.wasted == 0 and a.efficiency == 1.0
    assert (a.layers[1].added, a.layers[1].removed) == (1, 2)


def test_single_layer_and_empty(client: Client) -> None:
    make_image(client, "one:1", [[("f", b"abc")]])
    a = analyze_image(client, "one:1")
    assert (a.size, a.wasted, a.efficiency, a.user_wasted_percent) == (3, 0, 1.0, 0.0)
    make_image(client, "dup:1", [[("f", b"abc")], []], compression="none")
    b = analyze_image(client, "dup:1")
    assert b.user_size == 0 and b.wasted == 0
    with pytest.raises(NotFound):
        analyze_image(client, "nope:1")


def test_ci_rules_and_bytes() -> None:
    assert parse_bytes("20MB") == 20_000_000
    assert parse_bytes("1.5KiB") == 1536
    assert parse_bytes("512") == 512
    with pytest.raises(InvalidArgument):
        parse_bytes("lots")


def test_ci_evaluate(client: Client) -> None:
    make_image(client, "w:1", [[("base", b"b" * 100)], [("f", b"x" * 100)], [("f", b"y" * 100)]])
    a = analyze_image(client, "w:1")
    assert a.wasted == 200 and a.user_wasted_percent == 1.0
    report = evaluate(a)
    assert [(r.name, r.status) for r in report.results] == [
        ("highestUserWastedPercent", "FAIL"), ("highestWastedBytes", "SKIP"), ("lowestEfficiency", "FAIL")]
    assert not report.passed
    ok = evaluate(a, {"lowestEfficiency": "0.5", "highestUserWastedPercent": "disabled",
                      "highestWastedBytes": "200B"})
    assert ok.passed and ok.count("SKIP") == 1
    bad = evaluate(a, {"highestWastedBytes": "199", "lowestEfficiency": "disabled",
                       "highestUserWastedPercent": "disabled"})
    assert not bad.passed and "wasted-bytes=200 > threshold=199" in bad.results[1].message
    with pytest.raises(InvalidArgument):
        evaluate(a, {"lowestEfficiency": "2"})
    assert not math.isnan(a.efficiency)
