"""The web UI in a real browser (Debian's chromium, headless, driven by selenium through chromedriver).

skopeo pushes busybox as a maintainer; an SBOM is attached as an OCI artifact with a ``subject``; the
browser signs in, finds the image, sees its layers and the SBOM referrer, deletes a tag as maintainer
and is refused as guest. The screenshots go to docs/images/ (the README's "Registry for a team")."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.registry.server import RegistryServer
from tests.conftest import PEERS

sys.path.insert(0, str(Path(__file__).parent))
from teamkit import PASSWORDS, client, seed

DOCS_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "images"
SPDX = "application/spdx+json"

pytestmark = [pytest.mark.chromium, pytest.mark.skopeo, pytest.mark.registry, pytest.mark.slow]


def peers_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {PEERS}/env.sh >/dev/null && env -0"], capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver") or "chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _attach_sbom(srv: RegistryServer, repo: str, subject_tag: str) -> str:
    """An SPDX document pushed as an OCI artifact whose subject is the tagged image; its digest."""
    with client(srv, repo, "ann") as ann:
        head = ann.get(f"/v2/{repo}/manifests/{subject_tag}",
                       headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                                          "application/vnd.oci.image.manifest.v1+json"})
        subject = {"mediaType": head.headers["Content-Type"], "digest": head.headers["Docker-Content-Digest"],
                   "size": len(head.content)}
        blobs = {}
        for data in (b"{}", json.dumps({"spdxVersion": "SPDX-2.3", "name": "busybox"}).encode()):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            assert ann.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest},
                            content=data).status_code == 201
            blobs[data] = {"digest": digest, "size": len(data)}
        sbom = next(d for d in blobs if d != b"{}")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": SPDX,
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", **blobs[b"{}"]},
                    "layers": [{"mediaType": SPDX, **blobs[sbom]}], "subject": subject}
        body = json.dumps(manifest).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        r = ann.put(f"/v2/{repo}/manifests/{digest}", content=body,
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 201, r.text
        return digest


def _sign_in(browser: Any, url: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/ui/login")
    browser.find_element(By.ID, "username").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(PASSWORDS[user])
    browser.find_element(By.ID, "sign-in").click()
    assert browser.find_element(By.CSS_SELECTOR, "header span").text == user


def test_browse_see_layers_and_sbom_delete_as_maintainer_refused_as_guest(tmp_path: Path,
                                                                          browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # The README's screenshots are refreshed only when asked (DOCKYARD_SCREENSHOTS=1): a test run leaves
    # the checkout as it found it.
    images = DOCS_IMAGES if os.environ.get("DOCKYARD_SCREENSHOTS") == "1" else tmp_path / "images"
    images.mkdir(parents=True, exist_ok=True)
    env = peers_env()
    # A fixed "now" (push times on the pages): the screenshots change only when the pages do.
    with RegistryServer(storage=tmp_path / "storage", team=True, ui=True,
                        clock=lambda: 1767261600.0) as srv:
        seed(srv)
        source = f"docker://{env['PEERS_REGISTRY']}/peers/busybox:local"
        for tag in ("1.36", "nightly"):
            proc = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                                   "--dest-creds", f"ann:{PASSWORDS['ann']}", source,
                                   f"docker://{srv.address}/team/busybox:{tag}"],
                                  capture_output=True, text=True, env=env, timeout=300)
            assert proc.returncode == 0, proc.stderr
        sbom = _attach_sbom(srv, "team/busybox", "1.36")

        # Signed out, a private project shows nothing; signed in as maintainer, the repository is listed.
        browser.get(srv.url + "/")
        assert "team/busybox" not in browser.page_source
        _sign_in(browser, srv.url, "ann")
        browser.get(srv.url + "/?q=busy")
        browser.save_screenshot(str(images / "registry-ui-repositories.png"))
        browser.find_element(By.LINK_TEXT, "team/busybox").click()
        rows = browser.find_elements(By.CSS_SELECTOR, "#tags tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, "td").text for r in rows] == ["1.36", "nightly"]
        assert "linux/amd64" in rows[0].text
        browser.save_screenshot(str(images / "registry-ui-tags.png"))
        # Keyboard: the first Tab lands on "Skip to content"; on a phone the table fits the screen.
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "Skip to content"
        browser.execute_script("document.activeElement.blur()")
        browser.set_window_size(390, 844)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        browser.save_screenshot(str(images / "registry-ui-phone.png"))
        browser.set_window_size(1280, 900)

        browser.find_element(By.LINK_TEXT, "1.36").click()
        layers = browser.find_elements(By.CSS_SELECTOR, "#layers tbody tr")
        assert len(layers) == 1 and "Imported from -" in layers[0].text
        assert re.search(r"\b\d+(\.\d)? (KB|MB)\b", layers[0].text)  # its size
        referrers = browser.find_element(By.ID, "referrers").text
        assert SPDX in referrers and sbom.split(":")[1][:12] in referrers
        browser.save_screenshot(str(images / "registry-ui-image.png"))

        # Delete a tag as maintainer (the page asks first).
        browser.back()
        browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Delete tag nightly"]').click()
        WebDriverWait(browser, 10).until(expected_conditions.alert_is_present()).accept()
        assert "Deleted tag nightly." in browser.find_element(By.CSS_SELECTOR, ".flash").text
        assert [r.find_element(By.CSS_SELECTOR, "td").text
                for r in browser.find_elements(By.CSS_SELECTOR, "#tags tbody tr")] == ["1.36"]

        # A guest sees no delete button, and a delete posted anyway is refused.
        browser.find_element(By.CSS_SELECTOR, "header form button").click()  # sign out
        # The sign-out is a form post: wait for its page, or the next navigation races it (and the login
        # page of a session not yet ended sends the browser on, signed in).
        WebDriverWait(browser, 30).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, 'header a[href="/ui/login"]'))
        _sign_in(browser, srv.url, "gus")
        browser.get(srv.url + "/ui/repo/team/busybox")
        assert not browser.find_elements(By.CSS_SELECTOR, "button.danger")
        browser.execute_script(
            "var f = document.createElement('form'); f.method = 'post';"
            "f.action = '/ui/repo/team/busybox/-/delete';"
            "f.innerHTML = '<input name=tag value=1.36><input name=csrf value=' +"
            " document.querySelector('input[name=csrf]').value + '>';"
            "document.body.appendChild(f); f.submit();")
        flash = browser.find_element(By.CSS_SELECTOR, ".flash.error").text
        assert flash == "gus may not delete in team/busybox."
        browser.save_screenshot(str(images / "registry-ui-guest-refused.png"))
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        with client(srv, "team/busybox", "gus", "pull") as gus:
            assert gus.get("/v2/team/busybox/tags/list").json()["tags"] == ["1.36"]
        assert srv.team is not None
        actions = [(e["who"], e["action"], e.get("tag")) for e in srv.team.kv.entries("audit")
                   if e["action"] == "delete"]
        assert actions == [("ann", "delete", "nightly")]
