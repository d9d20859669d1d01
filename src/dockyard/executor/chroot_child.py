"""The chroot executor's child: ``python -I -S -c`` runs :func:`main` with the request (JSON) and a
report descriptor; it chroots, becomes the image's user and execs, or reports why not (as JSON) and
exits with Docker's code. Imports the stdlib and a few executor modules only."""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import Any, NoReturn

from dockyard.errors import ExecutionError
from dockyard.executor import mount as m
from dockyard.executor.spec import ProcessSpec
from dockyard.executor.user import bad_cwd, lookup_path, resolve_user, start_error


def _exec(req: dict[str, Any]) -> NoReturn:
    spec = ProcessSpec.from_json(req["spec"])
    env: dict[str, str] = req["env"]
    m.drop_bounding_set(m.DEFAULT_CAP_MASK)  # reads /proc: before the chroot hides it
    os.chroot(req["root"])
    os.chdir("/")
    user = resolve_user("/", spec.user)
    env.setdefault("HOME", user.home)
    try:
        os.makedirs(spec.cwd, 0o755, exist_ok=True)
        os.chdir(spec.cwd)
    except OSError as exc:
        raise bad_cwd(spec.cwd, exc)
    os.setgroups(user.all_groups(spec.extra_groups, primary=spec.primary_group_in_groups))
    os.setgid(user.gid)
    os.setuid(user.uid)
    if user.uid == 0:
        m.capset(m.DEFAULT_CAP_MASK, m.DEFAULT_CAP_MASK, 0)
    m.prctl(m.PR_SET_NO_NEW_PRIVS, 1)
    program = lookup_path("/", spec.args[0], env["PATH"])
    try:
        os.execve(program, list(spec.args), env)
    except OSError as exc:
        code = 127 if exc.errno == errno.ENOENT else 126
        raise start_error(f'exec: "{spec.args[0]}": {(exc.strerror or "").lower()}', code)


def main() -> None:
    """Entry point: ``argv[1]`` the request, ``argv[2]`` the report descriptor."""
    report = int(sys.argv[2])
    code, message = 125, ""
    try:
        _exec(json.loads(sys.argv[1]))
    except ExecutionError as exc:
        code, message = exc.exit_code, exc.message
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        message = f"container setup failed: {exc.strerror}{where}"
    except BaseException as exc:
        message = f"container setup failed: {type(exc).__name__}: {exc}"
    os.write(report, json.dumps({"error": message, "code": code}).encode())
    os._exit(code)
