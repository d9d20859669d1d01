"""A robot account (``robot$team+ci``) logs in with ``docker login`` and ``dockyard login`` as CI would."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.registry.server import RegistryServer
from tests.conftest import PEERS

sys.path.insert(0, str(Path(__file__).parent))
from teamkit import seed


def peers_env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {PEERS}/env.sh >/dev/null && env -0"], capture_output=True,
                         check=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.mark.slow
@pytest.mark.docker
def test_docker_login_and_push_as_a_robot(tmp_path: Path) -> None:
    env = peers_env()
    docker, config = env["DOCKER"], str(tmp_path / "docker-config")
    with RegistryServer(storage=tmp_path / "s", team=True) as srv:
        seed(srv)
        assert srv.team is not None
        srv.team.directory.project_create("other")
        robot, secret = srv.team.directory.robot_create("team", "ci", ["pull", "push"])
        ref, outside = f"{srv.address}/team/busybox:ci", f"{srv.address}/other/busybox:ci"
        for tag in (ref, outside):
            subprocess.run([docker, "tag", "busybox:local", tag], env=env, check=True, capture_output=True)
        try:
            wrong = subprocess.run([docker, "--config", config, "login", "-u", robot.name, "--password-stdin",
                                    srv.address], input="not-the-secret", env=env, capture_output=True,
                                   text=True, timeout=60)
            assert wrong.returncode != 0
            login = subprocess.run([docker, "--config", config, "login", "-u", robot.name, "--password-stdin",
                                    srv.address], input=secret, env=env, capture_output=True, text=True,
                                   timeout=60)
            assert login.returncode == 0, login.stderr
            push = subprocess.run([docker, "--config", config, "push", ref], env=env, capture_output=True,
                                  text=True, timeout=180)
            assert push.returncode == 0, push.stderr
            refused = subprocess.run([docker, "--config", config, "push", outside], env=env,
                                     capture_output=True, text=True, timeout=180)
            assert refused.returncode != 0
        finally:
            subprocess.run([docker, "rmi", ref, outside], env=env, capture_output=True, timeout=60)
        assert srv.storage.tags("team/busybox").keys() == {"ci"}
        assert not srv.storage.repo_exists("other/busybox")


def test_dockyard_login_as_a_robot(tmp_path: Path) -> None:
    with RegistryServer(storage=tmp_path / "s", team=True) as srv:
        seed(srv)
        assert srv.team is not None
        robot, secret = srv.team.directory.robot_create("team", "ci", ["pull"])
        env = {"DOCKER_CONFIG": str(tmp_path / "cfg"), "PATH": "/usr/bin:/bin"}

        def login(password: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "dockyard", "login", "-u", robot.name,
                                   "--password-stdin", srv.address], input=password, text=True,
                                  capture_output=True, timeout=60,
                                  env={**env, "PYTHONPATH": ":".join(sys.path)})

        bad = login("not-the-secret")
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        ok = login(secret)
        assert ok.returncode == 0, ok.stderr
        saved = json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"][srv.address]["auth"]
        assert base64.b64decode(saved).decode() == f"{robot.name}:{secret}"
