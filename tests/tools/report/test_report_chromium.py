"""The HTML report opened in headless Chromium (WebDriver: Debian's chromium and chromium-driver,
selenium from PyPI): the charts drawn with the expected bars, the findings on their lines, no script,
no horizontal scrolling on a phone; full-page screenshots kept as test artefacts (the paths are printed;
copied to build/artefacts/ when that directory exists)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.client import Client
from dockyard.tools.report import Report, build_report, render_html
from dockyard.tools.scan import VulnDB
from tests.peers import require
from tests.tools.report.conftest import DOCKERFILE

pytestmark = [pytest.mark.chromium, pytest.mark.slow]
ARTEFACTS = Path(__file__).resolve().parents[3] / "build" / "artefacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require("chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    # the Debian driver by path: selenium must not look for (download) one
    service = Service(shutil.which("chromedriver") or "chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: Any, path: Path) -> None:
    """The whole page, beyond the window (Chrome DevTools' captureScreenshot)."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {path}")
    if ARTEFACTS.is_dir():
        shutil.copy(path, ARTEFACTS / path.name)
        print(f"screenshot: {ARTEFACTS / path.name}")


def _open(driver: Any, report: Report, page: Path) -> None:
    page.write_text(render_html(report), encoding="utf-8")
    driver.get(page.as_uri())


def test_charts_and_findings_in_chromium(browser: Any, client: Client, image: str, db: VulnDB,
                                         tmp_path: Path) -> None:
    report = build_report(client, image, DOCKERFILE, vulndb=db)
    browser.set_window_size(1200, 900)
    _open(browser, report, tmp_path / "report.html")
    # bars per chart as the browser drew them (each with a width on the screen)
    drawn = browser.execute_script("""
        const out = {};
        document.querySelectorAll('svg[data-chart]').forEach(s => {
            const bars = [...s.querySelectorAll('rect.bar')];
            out[s.dataset.chart] = bars.map(r => r.getBoundingClientRect().width);
        });
        return out;""")
    severities = report.severity_counts()
    assert {k: len(v) for k, v in drawn.items()} == {
        "layers": 3, "waste": len(report.waste_by_directory()), "severity": len(severities)}
    assert all(w > 0 for widths in drawn.values() for w in widths)
    layer_widths = drawn["layers"]  # proportional to the layer sizes
    sizes = [r.size for r in report.analysis.layers]
    assert layer_widths.index(max(layer_widths)) == sizes.index(max(sizes))
    # the findings: under their Dockerfile lines, and in the tables
    found = browser.execute_script("""
        const lines = {};
        document.querySelectorAll('ol.src > li').forEach(li => {
            lines[li.id] = [...li.querySelectorAll('li.finding code')].map(c => c.textContent);
        });
        return {lines: lines, vulns: document.querySelectorAll('li.vuln').length,
                lintRows: document.querySelectorAll('#lint tr').length - 1,
                scripts: document.scripts.length};""")
    assert set(found["lines"]["L5"]) >= {"DL3025", "JSONArgsRecommended"}
    assert found["lintRows"] == len(report.lint) and found["scripts"] == 0
    assert found["vulns"] == len([v for v in report.vulnerabilities if v.line]) >= 3
    _screenshot(browser, tmp_path / "report-desktop.png")
    # a layer's bar links to its Dockerfile line
    from selenium.webdriver.common.by import By

    browser.find_elements(By.CSS_SELECTOR, 'svg[data-chart="layers"] a rect.bar')[2].click()
    assert browser.execute_script("return location.hash") == "#L4"


def test_readable_on_a_phone(browser: Any, client: Client, image: str, db: VulnDB, tmp_path: Path) -> None:
    report = build_report(client, image, DOCKERFILE, vulndb=db)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        _open(browser, report, tmp_path / "report.html")
        sizes = browser.execute_script("""
            const svg = document.querySelector('svg[data-chart="layers"]').getBoundingClientRect();
            const text = document.querySelector('svg[data-chart="layers"] text').getBoundingClientRect();
            return {page: document.documentElement.scrollWidth, view: window.innerWidth,
                    chart: svg.width, label: text.height};""")
        assert sizes["view"] == 390 and sizes["page"] <= sizes["view"]  # nothing sticks out sideways
        assert sizes["chart"] <= 390 and sizes["label"] >= 10  # the chart shrank, its labels still legible
        _screenshot(browser, tmp_path / "report-phone.png")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
