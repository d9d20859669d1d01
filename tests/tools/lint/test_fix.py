"""``dockyard lint --fix``: safe rewrites, idempotent, and the fixed Dockerfile builds to the same files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client import Client
from dockyard.tools.lint import fix, lint
from tests.builder.conftest import Builds, busybox_tar

# Builds on the peers' busybox: a stand-in apt-get fills /var/lib/apt/lists as the real one would.
ORIGINAL = """\
FROM busybox:local as Builder
MAINTAINER Jane Doe <jane@example.com>
ENV GREETING hello world
RUN printf '#!/bin/sh\\n[ "$1" = update ] && mkdir -p /var/lib/apt/lists && echo i > %s\\nexit 0\\n' \\
    /var/lib/apt/lists/i > /bin/apt-get && chmod 755 /bin/apt-get
RUN apt-get update && apt-get -y install curl && echo "$GREETING" > /greeting
ADD hello.txt /srv/hello.txt
from Builder AS final
COPY --from=Builder /srv /srv
COPY --from=Builder /greeting /var/lib/apt/lists/ /out/
CMD httpd -f -p 8080
ENTRYPOINT echo "$HOME" && run
"""

FIXED = """\
FROM busybox:local AS builder
LABEL org.opencontainers.image.authors="Jane Doe <jane@example.com>"
ENV GREETING="hello world"
RUN printf '#!/bin/sh\\n[ "$1" = update ] && mkdir -p /var/lib/apt/lists && echo i > %s\\nexit 0\\n' \\
    /var/lib/apt/lists/i > /bin/apt-get && chmod 755 /bin/apt-get
RUN apt-get update && apt-get -y install --no-install-recommends curl && echo "$GREETING" > /greeting \\
    && rm -rf /var/lib/apt/lists/*
COPY hello.txt /srv/hello.txt
FROM builder AS final
COPY --from=builder /srv /srv
COPY --from=builder /greeting /var/lib/apt/lists/ /out/
CMD ["httpd", "-f", "-p", "8080"]
ENTRYPOINT echo "$HOME" && run
"""


def test_fix_rewrites_and_is_idempotent() -> None:
    result = fix(ORIGINAL)
    assert result.text == FIXED
    assert sorted({f.code for f in result.fixed}) == [
        "ConsistentInstructionCasing", "DL3009", "DL3015", "DL3020", "DL3025", "DL4000", "FromAsCasing",
        "JSONArgsRecommended", "LegacyKeyValueFormat", "MaintainerDeprecated", "StageNameCasing",
    ]
    again = fix(result.text)
    assert again.text == result.text and again.fixed == []
    left = {f.code for f in lint(result.text, advice=False)}
    assert not left & {"DL3009", "DL3015", "DL3020", "DL4000"}
    assert "DL3025" in left  # the ENTRYPOINT needs its shell: left for the author


@pytest.mark.parametrize(("text", "want"), [
    ("from busybox:local as build\nRUN true\nCOPY a /a\n",
     "FROM busybox:local AS build\nRUN true\nCOPY a /a\n"),
    ("FROM busybox:local AS build\nrun true\ncopy a /a\n",
     "from busybox:local as build\nrun true\ncopy a /a\n"),
], ids=["to-upper", "to-lower"])
def test_recasing_from_recases_its_as(text: str, want: str) -> None:
    """FROM and AS agree (no FromAsCasing) until FROM alone is re-cased: AS follows it in the same fix."""
    from dockyard.tools.lint.buildchecks import build_checks

    assert "FromAsCasing" not in {f.code for f in build_checks(text).findings}
    result = fix(text)
    assert result.text == want
    assert [f.code for f in result.fixed] == ["ConsistentInstructionCasing"]
    assert "FromAsCasing" not in {f.code for f in build_checks(result.text).findings}
    assert fix(result.text).fixed == []


def test_unsafe_forms_are_left_alone() -> None:
    text = (
        'FROM a:1\nENV A "b c"\nADD --checksum=sha256:00 f /f\nCMD ["x"]\nRUN <<EOT\napt-get install x\nEOT\n'
    )
    assert fix(text).text == text


@pytest.mark.slow
def test_fix_cli_diff_then_in_place(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(ORIGINAL)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dockyard", "lint", "--no-advice", *args, str(path)],
                              capture_output=True, text=True, timeout=60)

    proc = run("--fix", "--diff")
    assert proc.returncode == 1 and path.read_text() == ORIGINAL
    assert "\n-MAINTAINER Jane Doe <jane@example.com>\n" in proc.stdout
    assert '\n+LABEL org.opencontainers.image.authors="Jane Doe <jane@example.com>"\n' in proc.stdout
    proc = run("--fix")
    assert path.read_text() == FIXED
    assert proc.stderr.startswith("fixed 12 findings in")
    assert "DL4000" not in proc.stdout and "DL3025" in proc.stdout
    assert run("--fix", "--diff").returncode == 0


@pytest.fixture()
def builds(tmp_path: Path) -> Iterator[Builds]:
    root = Path("/dev/shm") / f"dy-fix-{os.getpid()}-{os.urandom(4).hex()}"
    client = Client(root)
    with open(busybox_tar(), "rb") as f:
        client.import_image(f, changes=['CMD ["sh"]'], names=["busybox:local"])
    yield Builds(client, tmp_path)
    client.close()
    subprocess.run(["umount", "-R", "-l", str(root)], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)


def _tree(root: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = "/" + str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = (st.st_mode, os.readlink(path))
        elif path.is_file():
            out[rel] = (st.st_mode, path.read_bytes())
        else:
            out[rel] = (st.st_mode, b"")
    return out


@pytest.mark.slow
@pytest.mark.busybox
def test_fixed_dockerfile_builds_to_the_same_files(builds: Builds) -> None:
    files = {"hello.txt": "hello\n"}
    before = builds.build(builds.context(ORIGINAL, files, "original"), tags=["before:1"])
    after = builds.build(builds.context(fix(ORIGINAL).text, files, "fixed"), tags=["after:1"])
    assert before.image_id != after.image_id
    old, new = _tree(builds.rootfs("before:1")), _tree(builds.rootfs("after:1"))
    # the one intended change: the apt lists the original left behind (the final stage builds on the
    # builder, and copies the lists directory too)
    assert old.pop("/out/i") == old.pop("/var/lib/apt/lists/i") == (0o100644, b"i\n")
    assert old == new
    assert new["/out/greeting"] == (0o100644, b"hello world\n") and new["/srv/hello.txt"][1] == b"hello\n"
    cmd = builds.client.image_config("after:1").config["Cmd"]
    assert cmd == ["httpd", "-f", "-p", "8080"]
