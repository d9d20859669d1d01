"""Fixtures for rootless tests: a non-root user with subordinate ids, and a venv that user can run.

The ``python3`` on PATH lives under /root, out of a normal user's reach, so the venv is made from
/usr/bin/python3 (same minor version) with this interpreter's site-packages copied in and this tree's
``src`` on its path. Made once per machine under /var/tmp; the ``.pth`` is rewritten each session.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
VENV = Path("/var/tmp/dockyard-rootless-venv")
USER = "dyrootless"
NO_RANGE_USER = "dyrootless-noids"
SUBIDS = "200000-265535"
XDG_ENV = "DYTEST_ROOTLESS_XDG_DATA_HOME"  # this session's XDG data directory for the test user

Runner = Callable[..., subprocess.CompletedProcess[str]]


def _root_required() -> None:
    if os.geteuid() != 0:
        pytest.skip("making a test user needs root")
    if not Path("/usr/bin/python3").exists() or shutil.which("useradd") is None:
        pytest.skip("needs /usr/bin/python3 and useradd")


def _venv() -> Path:
    python = VENV / "bin" / "python"
    site = Path(sysconfig.get_paths()["purelib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    target = VENV / "lib" / version / "site-packages"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(VENV)], check=True)
        subprocess.run(["cp", "-a", f"{site}/.", str(target)], check=True)
        for leftover in target.glob("__editable__*dockyard*"):
            leftover.unlink()
        (target / "a1_coverage.pth").unlink(missing_ok=True)
    (target / "dockyard-src.pth").write_text(f"{SRC}\n")
    subprocess.run(["chmod", "-R", "a+rX", str(VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import dockyard, click; print(dockyard.__file__)"],
                           capture_output=True, text=True)
    if check.returncode != 0 or not check.stdout.startswith(str(SRC)):
        pytest.skip(f"/usr/bin/python3 cannot run this tree's dependencies: {check.stderr.strip()[-200:]}")
    return python


def _user(name: str, subids: str | None) -> pwd.struct_passwd:
    try:
        pwd.getpwnam(name)
    except KeyError:
        # -K SUB_*_COUNT=0: no automatic range, so the test decides which one (or none) the user gets.
        subprocess.run(["useradd", "-m", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    if subids is not None:
        for path in ("/etc/subuid", "/etc/subgid"):
            if not any(line.startswith(f"{name}:") for line in Path(path).read_text().splitlines()):
                subprocess.run(["usermod", "--add-subuids", subids, "--add-subgids", subids, name],
                               check=True)
                break
    return pwd.getpwnam(name)


def _argv(user: pwd.struct_passwd, python: Path, args: tuple[str, ...], env: dict[str, str] | None = None,
          path: str = "/usr/local/bin:/usr/bin:/bin") -> list[str]:
    """The command line that runs ``dockyard ARGS`` as ``user``, with its XDG store."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    xdg = [f"XDG_DATA_HOME={os.environ[XDG_ENV]}"] if XDG_ENV in os.environ else []
    return ["runuser", "-u", user.pw_name, "--", "env", "-i", f"HOME={user.pw_dir}", f"PATH={path}",
            f"USER={user.pw_name}", *xdg, *extra, str(python), "-m", "dockyard", *args]


def _runner(user: pwd.struct_passwd, python: Path) -> Runner:
    def run(*args: str, cwd: str | os.PathLike[str] = "/", env: dict[str, str] | None = None,
            path: str = "/usr/local/bin:/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
        return subprocess.run(_argv(user, python, args, env, path), cwd=cwd, capture_output=True, text=True,
                              timeout=300)
    return run


def _devices_for_users() -> None:
    """Give /dev/net/tun and /dev/fuse the mode udev gives them on Debian (0666), which a machine
    without udev (a bare VM) lacks: a rootless private network makes its interface with the first,
    as Podman's does, and fuse-overlayfs (the fallback overlay) needs the second."""
    for device in (Path("/dev/net/tun"), Path("/dev/fuse")):
        if device.exists() and device.stat().st_mode & 0o666 != 0o666:
            device.chmod(0o666)


@pytest.fixture(scope="session")
def rootless_python() -> Path:
    _root_required()
    return _venv()


@pytest.fixture(scope="session")
def rootless_user(rootless_python: Path) -> pwd.struct_passwd:
    user = _user(USER, SUBIDS)
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
    _devices_for_users()
    return _runner(rootless_user, rootless_python)


@pytest.fixture(scope="session")
def rootless_argv(rootless_user: pwd.struct_passwd, rootless_python: Path) -> Callable[..., list[str]]:
    """The command line of ``dockyard ARGS`` as the rootless test user, to start in the background."""
    _devices_for_users()
    return lambda *args: _argv(rootless_user, rootless_python, args)


@pytest.fixture(scope="session")
def no_range(rootless_python: Path) -> Runner:
    """Runs ``dockyard ARGS`` as a user with no subordinate id range."""
    return _runner(_user(NO_RANGE_USER, None), rootless_python)


@pytest.fixture(autouse=True)
def _one_worker(request: pytest.FixtureRequest) -> None:
    """The rootless tests share one machine-wide user and store: under ``--dist loadgroup`` they must all
    run on one worker (pytest 9 with pytest-xdist 3.8 silently stopped grouping, and two workers then
    wiped each other's store)."""
    grouped = request.node.nodeid.endswith("@rootless")
    if request.config.getoption("dist", "no") == "loadgroup" and not grouped:
        pytest.fail(f"{request.node.nodeid} is not in the 'rootless' xdist group: groups are not honoured")
