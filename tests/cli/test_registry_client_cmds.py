"""``dockyard pull/push/login/logout`` end to end (subprocess), output as docker words it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.client.peers import (
    PLAIN,
    free_port,
    make_image,
    make_tar,
    start_peer_registries,
    upload_image,
)

pytestmark = [pytest.mark.registry, pytest.mark.registry_auth]
BASIC = "127.0.0.1:5001"


@pytest.fixture(scope="module", autouse=True)
def _registries() -> None:
    start_peer_registries()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    root = Path("/dev/shm") / f"dytest-cli-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text("")
    yield {**os.environ, "DOCKYARD_ROOT": str(root), "DOCKER_CONFIG": str(tmp_path / "docker"),
           "DOCKYARD_CONFIG": str(config), "DOCKYARD_DAEMON_JSON": ""}
    subprocess.run(["rm", "-rf", str(root)], check=False)


def run(env: dict[str, str], *args: str, stdin: str = "",
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], env=env, input=stdin, text=True,
                          capture_output=True, timeout=timeout)


def test_bad_config_file_is_named(env: dict[str, str], tmp_path: Path) -> None:
    """DOCKYARD_CONFIG naming a directory or a non-UTF-8 file: a one-line error with the place."""
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\n")
    for config, want in ((tmp_path, f"Error: config file {tmp_path} is a directory, not a file\n"),
                         (bad, f"Error: {bad}:1:1: not UTF-8 text (TOML must be UTF-8): byte 0xff\n")):
        done = run({**env, "DOCKYARD_CONFIG": str(config)}, "pull", f"{PLAIN}/dytest/none:1")
        assert (done.returncode, done.stderr) == (1, want)


@pytest.mark.slow
def test_pull_output_and_quiet(env: dict[str, str]) -> None:
    image = make_image([{"a": b"x" * 1000}, {"b": b"y" * 1000}])
    repo = f"dytest/cli-{uuid.uuid4().hex[:8]}"
    upload_image(PLAIN, repo, "latest", image)
    first = run(env, "pull", f"{PLAIN}/{repo}")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:2] == ["Using default tag: latest", f"latest: Pulling from {repo}"]
    short = [json.loads(image.manifest)["layers"][i]["digest"][7:19] for i in range(2)]
    for s in short:
        assert f"{s}: Pulling fs layer" in lines and f"{s}: Pull complete" in lines
    assert lines[-3:] == [f"Digest: {image.digest}",
                          f"Status: Downloaded newer image for {PLAIN}/{repo}:latest",
                          f"{PLAIN}/{repo}:latest"]
    again = run(env, "pull", f"{PLAIN}/{repo}:latest")
    assert again.stdout.splitlines()[-2] == f"Status: Image is up to date for {PLAIN}/{repo}:latest"
    quiet = run(env, "pull", "-q", f"{PLAIN}/{repo}@{image.digest}")
    assert quiet.stdout == f"{PLAIN}/{repo}@{image.digest}\n"
    missing = run(env, "pull", "-q", f"{PLAIN}/{repo}:nope")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip() == (f"Error: manifest for {PLAIN}/{repo}:nope not found: "
                                      "manifest unknown: manifest unknown")


@pytest.mark.slow
def test_login_push_pull_logout_with_basic_auth(env: dict[str, str]) -> None:
    repo = f"dytest/cli-{uuid.uuid4().hex[:8]}"
    upload_image(PLAIN, repo, "v1", make_image([{"f": b"data" * 500}]))
    assert run(env, "pull", "-q", f"{PLAIN}/{repo}:v1").returncode == 0
    assert run(env, "tag", f"{PLAIN}/{repo}:v1", f"{BASIC}/{repo}:v1").returncode == 0
    refused = run(env, "push", f"{BASIC}/{repo}:v1")
    assert refused.returncode == 1 and "unauthorized: authentication required" in refused.stderr
    bad = run(env, "login", "-u", "peer", "--password-stdin", BASIC, stdin="wrong\n")
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"Error: login to {BASIC} failed: unauthorized")
    good = run(env, "login", "-u", "peer", "--password-stdin", BASIC, stdin="peerpass\n")
    assert good.returncode == 0 and good.stdout.strip().endswith("Login Succeeded")
    saved = json.loads((Path(env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert BASIC in saved["auths"]
    pushed = run(env, "push", f"{BASIC}/{repo}:v1")
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{BASIC}/{repo}]"
    assert lines[-1].startswith("v1: digest: sha256:") and lines[-1].split(" size: ")[1].isdigit()
    assert any(line.endswith(": Pushed") for line in lines)
    again = run(env, "login", BASIC)  # stored credentials are tried first
    assert again.stdout.splitlines() == ["Authenticating with existing credentials...", "Login Succeeded"]
    assert run(env, "logout", BASIC).stdout.strip() == f"Removing login credentials for {BASIC}"
    assert run(env, "logout", BASIC).stdout.strip() == f"Not logged in to {BASIC}"
    both = run(env, "login", "-u", "x", "-p", "y", "--password-stdin", BASIC)
    assert both.stderr.strip() == "Error: --password and --password-stdin are mutually exclusive"


@pytest.mark.slow
def test_all_tags_push_and_pull(env: dict[str, str]) -> None:
    src = f"dytest/cli-{uuid.uuid4().hex[:8]}"
    dst = f"{PLAIN}/dytest/cli-{uuid.uuid4().hex[:8]}"
    upload_image(PLAIN, src, "v1", make_image([{"one": b"1" * 100}]))
    upload_image(PLAIN, src, "v2", make_image([{"two": b"2" * 100}]))
    pulled = run(env, "pull", "-a", f"{PLAIN}/{src}")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.splitlines()[-1] == f"{PLAIN}/{src}"
    assert "v1: Pulling from" in pulled.stdout and "v2: Pulling from" in pulled.stdout
    for tag in ("v1", "v2"):
        assert run(env, "tag", f"{PLAIN}/{src}:{tag}", f"{dst}:{tag}").returncode == 0
    pushed = run(env, "push", "--all-tags", dst)
    assert pushed.returncode == 0, pushed.stderr
    closing = [line for line in pushed.stdout.splitlines() if ": digest: " in line]
    assert [line.split(":")[0] for line in closing] == ["v1", "v2"]
    tagged = run(env, "pull", "-a", f"{dst}:v1")
    assert (tagged.returncode, tagged.stderr) == (1, "Error: tag can't be used with --all-tags/-a\n")


@pytest.mark.docker
@pytest.mark.slow
def test_logins_are_shared_with_the_docker_cli(env: dict[str, str]) -> None:
    from tests.registry.client.peers import peer
    config_dir = env["DOCKER_CONFIG"]
    path = f"dytest/cli-{uuid.uuid4().hex[:8]}"
    # docker logs in; dockyard uses that login to push
    peer(f"echo peerpass | $DOCKER --config {config_dir} login -u peer --password-stdin {BASIC} >/dev/null")
    upload_image(PLAIN, path, "v1", make_image([{"shared": b"login" * 100}]))
    assert run(env, "pull", "-q", f"{PLAIN}/{path}:v1").returncode == 0
    assert run(env, "tag", f"{PLAIN}/{path}:v1", f"{BASIC}/{path}:v1").returncode == 0
    pushed = run(env, "push", f"{BASIC}/{path}:v1")
    assert pushed.returncode == 0, pushed.stderr
    # dockyard logs in afresh; docker uses that login to pull what dockyard pushed
    assert run(env, "logout", BASIC).returncode == 0
    login = run(env, "login", "-u", "peer", "--password-stdin", BASIC, stdin="peerpass")
    assert "Login Succeeded" in login.stdout
    peer(f"$DOCKER --config {config_dir} pull -q {BASIC}/{path}:v1 >/dev/null "
         f"&& $DOCKER rmi {BASIC}/{path}:v1 >/dev/null")


def test_a_registry_that_is_down_fails_pull_push_and_build_at_once(env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    """Connection refused is final: no silent retries (a generous guard of 6 s stands for "at once";
    before, the waits alone took 7.5 s for a pull and 15 s for a push)."""
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    refused = f'Get "http://{host}/v2/": dial tcp {host}: connect: connection refused'
    pulled = run(env, "pull", f"{host}/x:1", timeout=6)
    assert pulled.returncode == 1 and pulled.stderr == f"Error: cannot reach registry {host}: {refused}\n"
    (tmp_path / "layer.tar").write_bytes(make_tar({"a": b"a"}))
    assert run(env, "import", str(tmp_path / "layer.tar"), f"{host}/x:1").returncode == 0
    pushed = run(env, "push", f"{host}/x:1", timeout=6)
    assert pushed.returncode == 1 and pushed.stderr == f"Error: cannot reach registry {host}: {refused}\n"
    (tmp_path / "Dockerfile").write_text(f"FROM {host}/base:1\nRUN true\n")
    built = run(env, "build", "--progress=plain", str(tmp_path), timeout=6)
    assert built.returncode == 1
    assert built.stderr.strip().splitlines()[-1] == (
        f"ERROR: failed to solve: {host}/base:1 is not in the local store and {host} cannot be reached "
        f"(cannot reach registry {host}: {refused})")
