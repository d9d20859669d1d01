"""``dockyard registry serve --team`` with users, projects and robots made by the CLI; skopeo logs in as a
robot (``robot$project+name``, as with Harbor) and pushes; audit export and retention through the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_registry_cmd import start_serve
from tests.conftest import PEERS

DOCKYARD = [sys.executable, "-m", "dockyard"]
# Each test runs the CLI a dozen times as subprocesses: seconds each on a busy machine.
pytestmark = pytest.mark.slow


def cli(storage: Path, *args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*DOCKYARD, "registry", *args, "--storage", str(storage)], input=stdin,
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    s = tmp_path / "storage"
    cli(s, "user", "add", "root", "--admin", "--password-stdin", stdin="root-password\n")
    cli(s, "user", "add", "ann", "--password-stdin", stdin="ann-password\n")
    cli(s, "project", "create", "team")
    cli(s, "project", "member", "add", "team", "ann", "maintainer")
    return s


@pytest.fixture
def served(storage: Path) -> Iterator[str]:
    proc, url = start_serve(storage, "--team")
    yield url
    proc.kill()
    proc.wait(10)


def peers_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {PEERS}/env.sh >/dev/null && env -0"], capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_accounts_from_the_cli(storage: Path) -> None:
    out = cli(storage, "user", "ls").stdout
    assert re.search(r"^root\s+yes", out, re.M) and re.search(r"^ann\s+no", out, re.M)
    assert "ann=maintainer" in cli(storage, "project", "ls").stdout
    made = cli(storage, "robot", "create", "team", "ci", "--actions", "pull,push", "--expires", "30d").stdout
    assert "robot$team+ci" in made and re.search(r"^secret:\s+\S{20,}", made, re.M)
    listed = cli(storage, "robot", "ls", "team").stdout
    assert "robot$team+ci" in listed and "secret" not in listed  # the secret is shown once only
    bad = cli(storage, "project", "member", "add", "team", "nobody", "guest", ok=False)
    assert bad.returncode != 0 and "no user nobody" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli(storage, "project", "set", "team", "--quota", "lots", ok=False)
    assert "invalid size 'lots'" in bad.stderr
    cli(storage, "robot", "rm", "robot$team+ci")
    cli(storage, "project", "member", "rm", "team", "ann")
    assert "ann=" not in cli(storage, "project", "ls").stdout
    cli(storage, "user", "rm", "ann")
    assert "ann" not in cli(storage, "user", "ls").stdout


@pytest.mark.skopeo
@pytest.mark.registry
def test_skopeo_pushes_as_a_robot_and_the_audit_log_says_so(storage: Path, served: str) -> None:
    made = cli(storage, "robot", "create", "team", "ci", "--actions", "pull,push").stdout
    secret = re.search(r"^secret:\s+(\S+)", made, re.M).group(1)  # type: ignore[union-attr]
    env = peers_env()
    address = served.removeprefix("http://")
    source = f"docker://{env['PEERS_REGISTRY']}/peers/busybox:local"
    copy = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
    ok = subprocess.run([*copy, "--dest-creds", f"robot$team+ci:{secret}", source,
                         f"docker://{address}/team/busybox:1.0"], capture_output=True, text=True, env=env,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr
    # The same robot may not push outside its project.
    cli(storage, "project", "create", "other")
    refused = subprocess.run([*copy, "--dest-creds", f"robot$team+ci:{secret}", source,
                              f"docker://{address}/other/busybox:1.0"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert refused.returncode != 0
    assert "403 (Forbidden)" in refused.stderr

    def anonymous_pull() -> int:
        tok = httpx.get(f"{served}/token", params={"scope": "repository:team/busybox:pull"}).json()["token"]
        return httpx.get(f"{served}/v2/team/busybox/manifests/1.0",
                         headers={"Authorization": f"Bearer {tok}"}).status_code

    assert anonymous_pull() == 401  # private project
    cli(storage, "project", "set", "team", "--public")  # the running server sees it at once
    assert anonymous_pull() == 200
    export = cli(storage, "audit", "export", "--project", "team").stdout
    lines = [json.loads(line) for line in export.splitlines()]
    pushes = [e for e in lines if e["action"] == "push"]
    assert pushes and pushes[-1]["who"] == "robot$team+ci" and pushes[-1]["kind"] == "robot"
    assert pushes[-1]["tag"] == "1.0" and pushes[-1]["digest"].startswith("sha256:")
    assert pushes[-1]["source"] == "127.0.0.1" and pushes[-1]["repository"] == "team/busybox"


def test_retention_dry_run_and_run_from_the_cli(storage: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "registry" / "server"))
    from teamkit import push_image

    from dockyard.registry.server import RegistryServer

    with RegistryServer(storage=storage, team=True) as srv:
        tok = httpx.get(f"{srv.url}/token", params={"scope": "repository:team/app:pull,push"},
                        auth=("ann", "ann-password")).json()["token"]
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tok}"}) as ann:
            for tag in ("v1", "build-1", "build-2", "build-3"):
                assert push_image(ann, "team/app", tag, [tag.encode()]).status_code == 201
    cli(storage, "project", "set", "team", "--keep-last", "1", "--keep-tag", "v*",
        "--untagged-older-than", "7d", "--immutable", "v*", "--quota", "1GB")
    shown = json.loads(cli(storage, "project", "show", "team").stdout)
    assert shown["retention"] == {"keep_last": 1, "keep_tags": ["v*"], "untagged_older_than": 604800}
    assert shown["immutable"] == ["v*"] and shown["quota"] == 10**9
    dry = cli(storage, "retention", "run", "--dry-run", "team").stdout
    assert re.findall(r"^would delete tag (\S+) ", dry, re.M) == ["team/app:build-1", "team/app:build-2"]
    assert dry.splitlines()[-1] == "would delete: 2 tags, 2 manifests"
    done = cli(storage, "retention", "run").stdout
    assert done.splitlines()[-1] .startswith("deleted: 2 tags, 2 manifests")
    assert cli(storage, "retention", "run").stdout.splitlines()[-1] == "deleted: 0 tags, 0 manifests"
    audit = [json.loads(line) for line in cli(storage, "audit", "export").stdout.splitlines()]
    assert sum(e["who"] == "retention" for e in audit) == 4


@pytest.mark.registry
def test_replication_from_the_cli(storage: Path) -> None:
    import uuid

    sys.path.insert(0, str(Path(__file__).parents[1] / "registry" / "server"))
    from teamkit import push_image

    from dockyard.registry.server import RegistryServer

    with RegistryServer(storage=storage, team=True) as srv:
        tok = httpx.get(f"{srv.url}/token", params={"scope": "repository:team/app:pull,push"},
                        auth=("ann", "ann-password")).json()["token"]
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tok}"}) as ann:
            digest = push_image(ann, "team/app", "v2", [uuid.uuid4().bytes]).headers["Docker-Content-Digest"]
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    added = cli(storage, "replication", "add", f"127.0.0.1:5000/{ns}", "--repo", "team/*", "--tag", "v*",
                "--trigger", "schedule", "--interval", "2h").stdout
    rule = re.search(r"^rule (\w+):", added).group(1)  # type: ignore[union-attr]
    assert "never" in cli(storage, "replication", "ls").stdout
    run = cli(storage, "replication", "run", rule).stdout
    assert f"team/app:v2 -> 127.0.0.1:5000/{ns}/team/app:v2 copied" in run
    assert "1 copied, 0 failed" in cli(storage, "replication", "ls").stdout
    r = httpx.get(f"http://127.0.0.1:5000/v2/{ns}/team/app/manifests/v2",
                  headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.headers["Docker-Content-Digest"] == digest
    bad = cli(storage, "replication", "add", "http://x", ok=False)
    assert bad.returncode != 0 and "expected HOST[:PORT][/NAMESPACE]" in bad.stderr
    assert "Traceback" not in bad.stderr
