"""A non-root user with subordinate ids, and a venv that user can run dockyard from (this tree's ``src``).

Shared by the rootless tests (``conftest.py``) and the rootless rows of ``bench/bench_build.py``. The
``python3`` on PATH lives under /root, out of a normal user's reach, so the venv is made from
/usr/bin/python3 (same minor version) with this interpreter's site-packages copied in and ``src`` on its
path. Made once per machine; the ``.pth`` is rewritten each time. Raises ``Unavailable`` when the machine
cannot do it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


class Unavailable(Exception):
    """The machine lacks what a rootless user needs (root, /usr/bin/python3, useradd, compatible packages)."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise Unavailable("making a test user needs root")
    if not Path("/usr/bin/python3").exists() or shutil.which("useradd") is None:
        raise Unavailable("needs /usr/bin/python3 and useradd")


def make_venv(venv: Path, src: Path = SRC) -> Path:
    """The venv's python, importing dockyard from ``src``."""
    python = venv / "bin" / "python"
    site = Path(sysconfig.get_paths()["purelib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    target = venv / "lib" / version / "site-packages"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run(["cp", "-a", f"{site}/.", str(target)], check=True)
        for leftover in target.glob("__editable__*dockyard*"):
            leftover.unlink()
        (target / "a1_coverage.pth").unlink(missing_ok=True)
    (target / "dockyard-src.pth").write_text(f"{src}\n")
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    check = subprocess.run([str(python), "-c", "import dockyard, click; print(dockyard.__file__)"],
                           capture_output=True, text=True)
    if check.returncode != 0 or not check.stdout.startswith(str(src)):
        why = check.stderr.strip()[-200:]
        raise Unavailable(f"/usr/bin/python3 cannot run this tree's dependencies: {why}")
    return python


def make_user(name: str, subids: str | None) -> pwd.struct_passwd:
    """User ``name`` (made if missing) with the subordinate id range ``subids`` ("FIRST-LAST"), or none."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        # -K SUB_*_COUNT=0: no automatic range, so the caller decides which one (or none) the user gets.
        subprocess.run(["useradd", "-m", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    if subids is not None:
        for path in ("/etc/subuid", "/etc/subgid"):
            if not any(line.startswith(f"{name}:") for line in Path(path).read_text().splitlines()):
                subprocess.run(["usermod", "--add-subuids", subids, "--add-subgids", subids, name],
                               check=True)
                break
    return pwd.getpwnam(name)


def argv(user: pwd.struct_passwd, python: Path, args: tuple[str, ...], env: dict[str, str] | None = None,
         path: str = "/usr/local/bin:/usr/bin:/bin", data_home: str | None = None) -> list[str]:
    """The command line that runs ``dockyard ARGS`` as ``user`` (store under ``data_home`` if given)."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    xdg = [f"XDG_DATA_HOME={data_home}"] if data_home else []
    return ["runuser", "-u", user.pw_name, "--", "env", "-i", f"HOME={user.pw_dir}", f"PATH={path}",
            f"USER={user.pw_name}", *xdg, *extra, str(python), "-m", "dockyard", *args]


def devices_for_users() -> None:
    """Give /dev/net/tun and /dev/fuse the mode udev gives them on Debian (0666), which a machine
    without udev (a bare VM) lacks: a rootless private network makes its interface with the first,
    as Podman's does, and fuse-overlayfs (the fallback overlay) needs the second."""
    for device in (Path("/dev/net/tun"), Path("/dev/fuse")):
        if device.exists() and device.stat().st_mode & 0o666 != 0o666:
            device.chmod(0o666)
