"""The OCI distribution-spec v1.1.1 checks, replayed against ``dockyard registry serve``.

Several configurations are needed to reach every spec, because some specs run only when others are
skipped: (A) all workflows, the suite creates its own content, automatic cross-mount on; (B) pull and
discovery with content that exists already (``OCI_TAG_NAME``/``OCI_MANIFEST_DIGEST``/``OCI_BLOB_DIGEST``/
``OCI_TAG_LIST``); (C) push with automatic cross-mount off, and push against a registry that refuses
cross-repository mounts. Every one of the 79 specs must pass in one of them and fail in neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.registry.server import RegistryServer
from tests.registry import s3kit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import replay  # noqa: E402


def _run_a(url: str) -> list[replay.Result]:
    return replay.Replay(url, name="conformance/a", env={"OCI_AUTOMATIC_CROSSMOUNT": "1"}).run()


def _run_b(url: str) -> list[replay.Result]:
    probe = replay.Replay(url, name="conformance/b")
    manifest = probe.fx["manifest[0]"]
    config = probe.fx["config[0]"]
    env = {"OCI_TEST_PULL": "1", "OCI_TEST_CONTENT_DISCOVERY": "1", "OCI_TAG_NAME": "tagtest0",
           "OCI_MANIFEST_DIGEST": "sha256:" + hashlib.sha256(manifest).hexdigest(),
           "OCI_BLOB_DIGEST": "sha256:" + hashlib.sha256(config).hexdigest(),
           "OCI_TAG_LIST": "test0,test1,test2,test3"}
    run = replay.Replay(url, name="conformance/b", env=env)
    run.prepare()
    return run.run()


def _run_c(url: str) -> list[replay.Result]:
    env = {"OCI_TEST_PUSH": "1", "OCI_AUTOMATIC_CROSSMOUNT": "0"}
    return replay.Replay(url, name="conformance/c", env=env).run()


@contextlib.contextmanager
def serve(storage: Path | str, *flags: str) -> Iterator[str]:
    """``dockyard registry serve`` as a user runs it, on a free loopback port; yields its URL."""
    env = {**os.environ, **s3kit.ENV} if str(storage).startswith("s3://") else None
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "registry", "serve", "--addr", "127.0.0.1:0",
                             "--storage", str(storage), "--no-access-log", *flags],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, line
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@pytest.mark.slow
@pytest.mark.parametrize("driver", ["filesystem", pytest.param("s3", marks=pytest.mark.seaweedfs),
                                    pytest.param("s3-blob-cache", marks=pytest.mark.seaweedfs)])
def test_all_79_checks_pass(tmp_path: Path, driver: str) -> None:
    def storage(label: str) -> Path | str:
        return s3kit.s3_url(f"conformance-{label}") if driver.startswith("s3") else tmp_path / label

    def cache(label: str) -> list[str]:
        return ["--blob-cache", str(tmp_path / f"cache-{label}")] if driver == "s3-blob-cache" else []

    with serve(storage("a"), *cache("a")) as a:
        results_a = _run_a(a)
    with serve(storage("b"), "--no-auto-mount", *cache("b")) as b:
        results_b = _run_b(b)
        results_c = _run_c(b)
    with serve(storage("d"), "--no-cross-mount", *cache("d")) as d:
        # Mount refused: the spec's fallback to an upload session (202), check 044.
        results_c += replay.Replay(d, name="conformance/d", env={"OCI_TEST_PUSH": "1"}).run()
    failed = [f"{r.id} {r.name}: {r.reason}" for r in results_a + results_b + results_c
              if r.outcome == "failed"]
    assert not failed, "\n".join(failed)
    passed = {r.id for r in results_a + results_b + results_c if r.outcome == "passed"}
    all_ids = {c["id"] for c in json.loads(replay.CHECKS.read_text())["checks"]}
    assert len(all_ids) == 79
    assert passed == all_ids, f"never ran: {sorted(all_ids - passed)}"
    print(f"\nA: {replay.summary(results_a)}; B: {replay.summary(results_b)}; "
          f"C: {replay.summary(results_c)}; "
          f"{len(passed)} of {len(all_ids)} specs passed, 0 failed")


def test_harness_catches_a_broken_registry(tmp_path: Path) -> None:
    """The harness must be able to fail: a registry without tag pagination loses specs 060/061."""
    with RegistryServer(storage=tmp_path / "c") as server:
        assert server.registry is not None
        server.registry._page = staticmethod(lambda request, items, url: (items, {}))  # type: ignore[method-assign]
        results = replay.Replay(server.url, name="conformance/c").run()
    failed = {r.id for r in results if r.outcome == "failed"}
    assert {"060", "061"} <= failed


@pytest.mark.slow
def test_cli_prints_the_summary(tmp_path: Path) -> None:
    with RegistryServer(storage=tmp_path / "d") as server:
        proc = subprocess.run([sys.executable, str(HERE / "replay.py"), server.url],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("74 passed, 0 failed, 5 skipped")


@pytest.mark.registry
def test_report_against_distribution() -> None:
    """A report, not a gate: where Debian's docker-registry (distribution 2.8) falls short."""
    results = replay.Replay("http://127.0.0.1:5000", name="conformance/distribution").run()
    lines = [f"{r.id} [{r.workflow}] {r.name}" for r in results if r.outcome == "failed"]
    print("\ndistribution 2.8: " + replay.summary(results) + "\n  " + "\n  ".join(lines))
    assert results
