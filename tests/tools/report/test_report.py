"""``dockyard report``: lint, size and vulnerability findings joined on Dockerfile lines; HTML opened
in headless Chromium (the screenshot stays under the test's tmp dir, in artefacts/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.report import build_report, render_html, to_json, to_sarif
from dockyard.tools.scan import VulnDB
from tests.tools.analyze.kit import make_image
from tests.tools.scan.fixtures import OSV, debian_layers

DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
RUN apt-get upgrade -y && rm -rf /opt/old
RUN chown -R 1000 /srv
CMD run
"""
COMMANDS = ["COPY rootfs/ / # buildkit", "RUN /bin/sh -c apt-get upgrade -y && rm -rf /opt/old # buildkit",
            "RUN /bin/sh -c chown -R 1000 /srv # buildkit"]
CMD_ENTRY = 'CMD ["/bin/sh" "-c" "run"]'  # BuildKit's history text for the shell-form CMD (no layer)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "store", fsync=False) as c:
        yield c


@pytest.fixture
def db(tmp_path: Path) -> Iterator[VulnDB]:
    src = tmp_path / "osv"
    src.mkdir()
    for rec in OSV:
        (src / f"{rec['id']}.json").write_text(json.dumps(rec))
    vdb = VulnDB(tmp_path / "vuln.db")
    vdb.import_path(src)
    yield vdb
    vdb.close()


@pytest.fixture
def image(client: Client) -> str:
    base, upgrade = debian_layers()
    blob = b"s" * 400_000
    owned: list[tuple[str, bytes | None, int]] = [("srv", None, 1000), ("srv/blob", blob, 1000)]
    layers = [[*base, ("srv", None), ("srv/blob", blob)], upgrade, owned]
    make_image(client, "report:1", layers, COMMANDS, empty_after=[CMD_ENTRY])
    return "report:1"


def test_findings_joined_on_dockerfile_lines(client: Client, image: str, db: VulnDB) -> None:
    report = build_report(client, image, DOCKERFILE, vulndb=db)
    assert report.layer_lines == [2, 3, 4]
    by_line = {e.line: e for e in report.lines}
    # lint: the shell-form CMD (hadolint's and BuildKit's names); size: the chown; vulnerabilities: where
    # each package's record last changed (dpkg's status in the upgrade, Python/npm files in the COPY)
    assert {f.code for f in by_line[5].lint} >= {"DL3025", "JSONArgsRecommended"}
    assert by_line[4].removable == 400_000 and "COPY --chown" in by_line[4].fixes[0]
    assert {v.id for v in by_line[3].vulnerabilities} >= {"DSA-0001-1"}
    assert {v.id for v in by_line[2].vulnerabilities} >= {"GHSA-aaaa-bbbb-cccc", "GHSA-minimist"}
    assert by_line[3].removable > 0  # the upgrade replaced the status file, deleted /opt/old
    doc = to_json(report)
    assert report.analysis.waste is not None
    assert doc["notes"] == [] and doc["size"]["removable"]["sizeBytes"] == report.analysis.waste.total
    sarif = to_sarif(report)
    rules = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert {"DL3025", "RemovableBytes", "DSA-0001-1"} <= rules
    no_db = build_report(client, image, DOCKERFILE)
    assert no_db.vulnerabilities == [] and "no vulnerability database" in no_db.vuln_note


def test_html_is_self_contained(client: Client, image: str, db: VulnDB) -> None:
    html = render_html(build_report(client, image, DOCKERFILE, vulndb=db))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no external asset
    assert html.count('<svg data-chart="') == 3 and "<script>" in html
    assert "DSA-0001-1" in html and "JSONArgsRecommended" in html


@pytest.mark.slow
@pytest.mark.chromium
def test_html_report_in_headless_chromium(client: Client, image: str, db: VulnDB, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(build_report(client, image, DOCKERFILE, vulndb=db)))
    artefacts = tmp_path / "artefacts"
    artefacts.mkdir()
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="1"' in dom.stdout  # the page's script ran
    bars = dict(re.findall(r'<svg data-chart="(\w+)"[^>]*data-bars="(\d+)"', dom.stdout))
    assert set(bars) == {"layers", "waste", "severity"} and int(bars["layers"]) == 3
    assert all(int(n) > 0 for n in bars.values())
    assert len(re.findall(r'<tr class="finding">', dom.stdout)) == 2  # DL3025, JSONArgsRecommended
    assert len(re.findall(r'<tr class="vuln">', dom.stdout)) >= 3
    shot = artefacts / "report.png"
    proc = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
    keep = os.environ.get("DOCKYARD_TEST_ARTEFACTS")  # CI may collect it from there
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")


@pytest.mark.slow
def test_report_command(client: Client, image: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    root = str(client.root)
    client.close()
    out = tmp_path / "r.sarif"
    proc = subprocess.run([sys.executable, "-m", "dockyard", "--root", root, "report", image, "-f",
                           str(tmp_path / "Dockerfile"), "--format", "sarif", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["runs"][0]["tool"]["driver"]["name"] == "dockyard report"
    proc = subprocess.run([sys.executable, "-m", "dockyard", "--root", root, "report", image,
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["notes"][0].startswith("no vulnerability database")
