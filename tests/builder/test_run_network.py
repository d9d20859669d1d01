"""RUN steps' networks: private by default (outbound access, the host's loopback services and abstract
unix sockets out of reach), the host's with ``--network=host`` (build flag or ``RUN --network``), and
one private namespace shared by all RUN steps of a build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.builder.conftest import Builds
from tests.netprobe import build_probe, host_services, need_pasta, probe_script


@pytest.fixture()
def probe(tmp_path: Path) -> bytes:
    need_pasta()
    (tmp_path / "probe-build").mkdir()
    return build_probe(tmp_path / "probe-build").read_bytes()


def verdicts(builds: Builds, tag: str) -> list[str]:
    return (builds.rootfs(tag) / "verdicts").read_text().splitlines()


def test_default_network_is_private_with_outbound_access(builds: Builds, probe: bytes) -> None:
    with host_services() as services:
        script = probe_script(services)
        df = (f"FROM busybox:local\nCOPY --chmod=755 probe /probe\nRUN ({script}) > /verdicts\n"
              f"RUN --network=host ({script}) > /verdicts-host\n")
        ctx = builds.context(df, {"probe": probe})
        builds.build(ctx, tags=["net:private"])
        assert verdicts(builds, "net:private") == ["failed: Connection refused", "failed: Connection refused",
                                                   "connected"]
        assert (builds.rootfs("net:private") / "verdicts-host").read_text().splitlines() == ["connected"] * 3
        # The build's --network=host applies to every RUN step.
        builds.build(ctx, tags=["net:host"], network="host", no_cache=True)
        assert verdicts(builds, "net:host") == ["connected"] * 3


def test_run_steps_of_a_build_share_one_namespace(builds: Builds) -> None:
    need_pasta()
    df = ("FROM busybox:local\nRUN stat -L -c %i /proc/self/ns/net > /a\n"
          "RUN stat -L -c %i /proc/self/ns/net > /b; ls /sys/class/net > /ifaces\n")
    builds.build(builds.context(df), tags=["net:shared"])
    fs = builds.rootfs("net:shared")
    assert (fs / "a").read_text() == (fs / "b").read_text() != f"{os.stat('/proc/self/ns/net').st_ino}\n"
    assert "lo" in (fs / "ifaces").read_text().split()
