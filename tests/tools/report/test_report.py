"""``dockyard report``: lint, size and vulnerability findings joined on Dockerfile lines; the HTML page
(self-contained, escaped, accessible) and, in headless Chromium, its charts, findings and phone layout."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.report import build_report, render_html, to_json, to_sarif
from dockyard.tools.scan import VulnDB
from tests.tools.analyze.kit import make_image
from tests.tools.report.conftest import DOCKERFILE


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
    no_db = build_report(client, image, DOCKERFILE)
    assert no_db.vulnerabilities == [] and "no vulnerability database" in no_db.vuln_note


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def test_html_is_self_contained_and_accessible(client: Client, image: str, db: VulnDB) -> None:
    report = build_report(client, image, DOCKERFILE, vulndb=db)
    html = render_html(report)
    page = _parse(html)
    names = [t for t, _ in page.tags]
    # no script, no external asset: every link is an anchor on the page itself
    assert "script" not in names and "link" not in names and "img" not in names
    assert all(a.get("href", "#").startswith("#") for t, a in page.tags if t == "a")
    assert not re.search(r"""url\(|@import|(src|href)=["']?(https?:)?//""", html)
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in page.tags
    assert names.count("h1") == 1 and names.count("h2") == 3
    # each chart is an image with a title and a description, and has a table with the same rows
    charts = [a for t, a in page.tags if t == "svg"]
    assert [a["data-chart"] for a in charts] == ["layers", "waste", "severity"]
    assert all(a["role"] == "img" and a["aria-labelledby"] for a in charts)
    assert names.count("title") == 1 + 3 + html.count('class="bar"') and names.count("desc") == 3
    for chart in ("layers", "waste", "severity"):
        bars = re.search(f'data-chart="{chart}".*?</svg>', html, re.S)
        table = re.search(f'data-table="{chart}".*?</table>', html, re.S)
        assert bars and table and bars.group().count('class="bar"') == table.group().count("<tr>") - 1 > 0
    # the Dockerfile, every line numbered, the findings under theirs
    assert [a["id"] for t, a in page.tags if t == "li" and a.get("id", "").startswith("L")] == \
        [f"L{n}" for n in range(1, 6)]
    line5 = re.search(r'<li id="L5".*?</li></ul>', html, re.S)
    assert line5 and "DL3025" in line5.group() and "JSONArgsRecommended" in line5.group()
    assert html.count('class="finding"') == len(report.lint)
    assert html.count('class="vuln"') == len([v for v in report.vulnerabilities if v.line])


def test_html_escapes_what_the_image_and_dockerfile_say(client: Client) -> None:
    """A hostile image: markup in a directory name, a file name and its history; markup in the Dockerfile."""
    evil_dir, evil_file = "<img src=x onerror=alert(1)>", "<script>alert(2)"
    run = "echo '<script>alert(3)</script>' > /x"
    make_image(client, "evil:1", [[(evil_dir, None), (f"{evil_dir}/{evil_file}", b"z" * 3000)],
                                  [(f"{evil_dir}/.wh.{evil_file}", b"")]],
               ["COPY . / # buildkit", f"RUN /bin/sh -c {run} # buildkit"])
    dockerfile = f'FROM scratch\nCOPY . /\nRUN {run}\nLABEL x="<b onmouseover=alert(4)>"\n'
    report = build_report(client, "evil:1", dockerfile)
    assert report.layer_lines[1] == 3 and report.waste_by_directory() == [(f"/{evil_dir}", 3000)]
    page = _parse(render_html(report))
    assert {t for t, _ in page.tags} <= {"html", "head", "meta", "title", "style", "body", "header", "h1",
                                         "div", "ul", "li", "b", "p", "main", "section", "h2", "figure",
                                         "svg", "desc", "text", "rect", "a", "figcaption", "details",
                                         "summary", "table", "tr", "th", "td", "h3", "ol", "span", "code"}
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    text = "".join(page.text)
    assert evil_dir in text and run in text and "<b onmouseover=alert(4)>" in text


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
    assert [r["tool"]["driver"]["name"] for r in doc["runs"]] == ["dockyard lint", "dockyard analyze"]
    proc = subprocess.run([sys.executable, "-m", "dockyard", "--root", root, "report", image,
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["notes"][0].startswith("no vulnerability database")
    proc = subprocess.run([sys.executable, "-m", "dockyard", "--root", root, "report", image, "-f",
                           str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "nope" in proc.stderr
    (tmp_path / "bad.Dockerfile").write_text("FROM scratch\nRUNN x\n")
    proc = subprocess.run([sys.executable, "-m", "dockyard", "--root", root, "report", image, "-f",
                           str(tmp_path / "bad.Dockerfile")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
        "Error: bad.Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)"]


def test_sarif_output(client: Client, image: str, db: VulnDB) -> None:
    sarif = to_sarif(build_report(client, image, DOCKERFILE, vulndb=db), "app/Dockerfile")
    assert sarif["version"] == "2.1.0"
    runs = {run["tool"]["driver"]["name"]: run for run in sarif["runs"]}
    assert list(runs) == ["dockyard lint", "dockyard", "dockyard analyze"]
    at: dict[tuple[str, str], list[int]] = {}
    for name, run in runs.items():
        rules = run["tool"]["driver"]["rules"]
        for rule in rules:  # the metadata of every rule
            assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"]
            assert rule.get("helpUri") or rule.get("help")
        for result in run["results"]:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            for loc in result.get("locations", []):
                place = loc["physicalLocation"]
                assert place["artifactLocation"]["uri"] == "app/Dockerfile"
                at.setdefault((name, result["ruleId"]), []).append(place["region"]["startLine"])
    assert at[("dockyard lint", "DL3025")] == [5] and at[("dockyard lint", "JSONArgsRecommended")] == [5]
    assert at[("dockyard analyze", "RemovableBytes")] == [4, 3]
    assert set(at[("dockyard", "DSA-0001-1")]) == {3} and at[("dockyard", "GHSA-minimist")] == [2]
    dsa = next(r for r in runs["dockyard"]["results"] if r["ruleId"] == "DSA-0001-1")
    assert dsa["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "var/lib/dpkg/status"
    advisories = runs["dockyard"]["tool"]["driver"]["rules"]
    severities = {r["id"]: r["properties"]["security-severity"] for r in advisories}
    assert float(severities["DSA-0001-1"]) >= 7.0
    chown = runs["dockyard analyze"]["results"][0]
    assert chown["properties"]["removableBytes"] == 400_000 and "COPY --chown" in chown["message"]["text"]


def test_json_fields_are_documented(client: Client, image: str, db: VulnDB) -> None:
    doc = to_json(build_report(client, image, DOCKERFILE, vulndb=db))
    text = (Path(__file__).resolve().parents[3] / "docs" / "report.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)", text, re.M)) | set(re.findall(r"^\| `(\w+)\[\]`", text, re.M))
    assert set(doc) <= documented, f"document {sorted(set(doc) - documented)} in docs/report.md"
    for key in ("lint", "vulnerabilities", "byLine", "layers"):
        row = re.search(rf"^\| `{key}\[\]` \|(.*)$", text, re.M)
        assert row, key
        for field in doc[key][0]:
            assert f"`{field}`" in row.group(1), f"{key}[].{field} is not described in docs/report.md"


def test_layer_labels_say_where_each_layer_comes_from(client: Client, image: str) -> None:
    make_image(client, "based:1", [[("base", b"b" * 10)], [("app", b"a" * 20)]],
               ["/bin/sh -c #(nop) ADD file:0123 in / ", "COPY app /app # buildkit"])
    labels = re.findall(r"<td>(#\d[^<]*)</td>", render_html(build_report(client, "based:1",
                                                                        "FROM base\nCOPY app /app\n")))
    assert labels == ["#0 (base image): ADD file:0123 in /", "#1 (line 2): COPY app /app"]
    labels = re.findall(r"<td>(#\d[^<]*)</td>", render_html(build_report(client, "based:1")))
    assert labels == ["#0: ADD file:0123 in /", "#1: COPY app /app"]
