"""Fixtures for rootless tests: a non-root user with subordinate ids, and a venv that user can run.

The user and the venv are made by ``userkit`` (the venv once per machine under /var/tmp; its ``.pth``,
naming this tree's ``src``, is rewritten each session).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rootless import userkit

SRC = userkit.SRC
VENV = Path("/var/tmp/dockyard-rootless-venv")
USER = "dyrootless"
NO_RANGE_USER = "dyrootless-noids"
SUBIDS = "200000-265535"
XDG_ENV = "DYTEST_ROOTLESS_XDG_DATA_HOME"  # this session's XDG data directory for the test user

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _root_required() -> None:
    try:
        userkit.require_root()
    except userkit.Unavailable as exc:
        pytest.skip(str(exc))


def _venv() -> Path:
    try:
        return userkit.make_venv(VENV)
    except userkit.Unavailable as exc:
        pytest.skip(str(exc))


def _argv(user: pwd.struct_passwd, python: Path, args: tuple[str, ...], env: dict[str, str] | None = None,
          path: str = "/usr/local/bin:/usr/bin:/bin") -> list[str]:
    """The command line that runs ``dockyard ARGS`` as ``user``, with its XDG store."""
    return userkit.argv(user, python, args, env, path, os.environ.get(XDG_ENV))


def _runner(user: pwd.struct_passwd, python: Path) -> Runner:
    def run(*args: str, cwd: str | os.PathLike[str] = "/", env: dict[str, str] | None = None,
            path: str = "/usr/local/bin:/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
        return subprocess.run(_argv(user, python, args, env, path), cwd=cwd, capture_output=True, text=True,
                              timeout=300)
    return run


@pytest.fixture(scope="session")
def rootless_python() -> Path:
    _root_required()
    return _venv()


@pytest.fixture(scope="session")
def rootless_user(rootless_python: Path) -> pwd.struct_passwd:
    user = userkit.make_user(USER, SUBIDS)
    # Each session gets an XDG data directory of its own, so nothing an earlier session left (or is
    # still tidying) can reach this one's store; earlier sessions' directories are removed.
    share = Path(user.pw_dir) / ".local" / "share"
    for old in [share / "dockyard", *share.glob("pytest-*")]:
        shutil.rmtree(old, ignore_errors=True)
    data_home = share / f"pytest-{os.getpid()}-{os.urandom(3).hex()}"
    data_home.mkdir(parents=True)
    shutil.chown(share, user.pw_uid, user.pw_gid)
    shutil.chown(data_home, user.pw_uid, user.pw_gid)
    os.environ[XDG_ENV] = str(data_home)  # read by _runner for the user's commands
    return user


@pytest.fixture(scope="session")
def rootless(rootless_user: pwd.struct_passwd, rootless_python: Path) -> Runner:
    """Runs ``dockyard ARGS`` as the rootless test user (with its XDG store)."""
    userkit.devices_for_users()
    return _runner(rootless_user, rootless_python)


@pytest.fixture(scope="session")
def rootless_argv(rootless_user: pwd.struct_passwd, rootless_python: Path) -> Callable[..., list[str]]:
    """The command line of ``dockyard ARGS`` as the rootless test user, to start in the background."""
    userkit.devices_for_users()
    return lambda *args: _argv(rootless_user, rootless_python, args)


@pytest.fixture(scope="session")
def no_range(rootless_python: Path) -> Runner:
    """Runs ``dockyard ARGS`` as a user with no subordinate id range."""
    return _runner(userkit.make_user(NO_RANGE_USER, None), rootless_python)


@pytest.fixture(autouse=True)
def _one_worker(request: pytest.FixtureRequest) -> None:
    """The rootless tests share one machine-wide user and store: under ``--dist loadgroup`` they must all
    run on one worker (pytest 9 with pytest-xdist 3.8 silently stopped grouping, and two workers then
    wiped each other's store)."""
    grouped = request.node.nodeid.endswith("@rootless")
    if request.config.getoption("dist", "no") == "loadgroup" and not grouped:
        pytest.fail(f"{request.node.nodeid} is not in the 'rootless' xdist group: groups are not honoured")
