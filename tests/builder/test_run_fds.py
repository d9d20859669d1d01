"""A RUN step's process sees descriptors 0, 1 and 2 only, never the build's control channel."""

from __future__ import annotations

from tests.builder.conftest import Builds


def test_a_run_step_sees_only_stdio(builds: Builds) -> None:
    # Writing garbage to a leaked fd 3 once failed the build with 'internal error: JSONDecodeError'.
    ctx = builds.context("FROM busybox:local\n"
                         "RUN sh -c 'ls /proc/$$/fd; echo garbage >&3' > /fds 2>/dev/null || true\n")
    builds.build(ctx, tags=["fds:1"])
    assert (builds.rootfs("fds:1") / "fds").read_text().split() == ["0", "1", "2"]
