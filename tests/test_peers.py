"""The peer helper: a missing peer skips with its install command, and fails under ``CI=true``."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests import peers
from tests.conftest import REPO


@pytest.fixture
def absent(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A peer that is never there, with an install command to show."""
    monkeypatch.setitem(peers.PEERS, "absent", peers.Peer("the absent tool", "bash scripts/peers/absent.sh",
                                                            lambda: False))
    monkeypatch.setattr(peers, "_known", {})
    yield "absent"


class _Item:
    """Just enough of a pytest item for ``check_markers``."""

    def __init__(self, *names: str) -> None:
        self.marks = [SimpleNamespace(name=name) for name in names]

    def iter_markers(self) -> Iterator[Any]:
        return iter(self.marks)


def outcome(call: Callable[[], object]) -> tuple[str, str]:
    """How ``call`` ended: ("pass", ""), ("skip", message) or ("fail", message); caught here, so that a
    skip where a failure is due cannot skip this test instead of failing it."""
    try:
        call()
    except pytest.skip.Exception as exc:
        return "skip", str(exc)
    except pytest.fail.Exception as exc:
        return "fail", str(exc)
    return "pass", ""


HINT = "peer absent missing: the absent tool is not available; install: bash scripts/peers/absent.sh"


def test_missing_peer_skips_naming_it_and_its_install_command(absent: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert outcome(lambda: peers.require(absent)) == ("skip", HINT)


def test_missing_peer_fails_under_ci(absent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert outcome(lambda: peers.require(absent)) == ("fail", HINT)
    assert outcome(lambda: peers.unavailable(absent, "busybox:local is not in docker", "bash import.sh")) == (
        "fail", "peer absent missing: busybox:local is not in docker; install: bash import.sh")


def test_markers_are_checked_and_other_markers_ignored(absent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    def marked(*names: str) -> tuple[str, str]:
        return outcome(lambda: peers.check_markers(cast(pytest.Item, _Item(*names))))

    assert marked("slow", "parametrize") == ("pass", "")
    assert marked("slow", absent) == ("fail", HINT)


def test_a_present_peer_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(peers.PEERS, "here", peers.Peer("a tool that is there", "nothing", lambda: True))
    monkeypatch.setattr(peers, "_known", {})
    monkeypatch.setenv("CI", "true")
    assert outcome(lambda: peers.require("here")) == ("pass", "")
    assert outcome(lambda: peers.check_markers(cast(pytest.Item, _Item("here")))) == ("pass", "")


def test_every_peer_has_a_registered_marker() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    registered = {line.split(":")[0] for line in config["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(peers.PEERS) <= registered
