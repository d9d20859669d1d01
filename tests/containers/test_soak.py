"""Soak: 50 detached containers with restart policies (the ``always`` ones with a health check), monitors
killed at random; then every record
must tell the truth (no container claims to run without its monitor and process, none runs unowned,
restart counts within their policies) and everything goes away with ``rm -f``."""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockyard.containers import lifecycle
from dockyard.containers.store import ContainerStore, monitor_alive
from dockyard.imageops.run import RunOptions
from tests.containers.conftest import until

COUNT = 50
POLICIES = (("no", "echo run; exit 0"), ("on-failure:2", "echo run; sleep 0.21; exit 1"),
            ("always", "echo run; sleep 0.51"))


@pytest.mark.slow
def test_fifty_containers_with_restarts_and_killed_monitors(root: Path) -> None:
    rng = random.Random(14)
    plan = [POLICIES[i % len(POLICIES)] for i in range(COUNT)]

    def start(i: int) -> str:
        policy, script = plan[i]
        opts = RunOptions("busybox:local", command=["sh", "-c", script], network="none")
        check = {"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000} if policy == "always" else None
        rec = lifecycle.create(root, opts, name=f"soak{i}", restart=policy, healthcheck=check)
        lifecycle.start(root, rec.id)
        return rec.id

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(start, range(COUNT)))
    cs = ContainerStore(root)
    victims = rng.sample(range(COUNT), 12)
    killed: set[str] = set()
    deadline = time.monotonic() + 20
    for i in victims:  # kill monitors at random moments: mid-run, mid-backoff, after the end
        time.sleep(rng.uniform(0, 0.3))
        state = cs.load(ids[i]).state
        if state["Monitor"] and monitor_alive(state):
            os.kill(int(state["Monitor"]["Pid"]), 9)
            killed.add(ids[i])
    assert time.monotonic() < deadline + 60

    def settled() -> bool:
        return all(not monitor_alive(cs.load(cid).state)
                   for i, cid in enumerate(ids) if plan[i][0] != "always")

    assert until(settled, 120)
    for i, cid in enumerate(ids):
        if plan[i][0] == "always" and cid not in killed:
            st = cs.load(cid).state["State"]
            assert st["Status"] in ("running", "restarting")
            assert st["Health"]["Status"] in ("starting", "healthy", "unhealthy"), st  # set at each start
            lifecycle.stop(root, cid, timeout=0)
    assert until(lambda: not any(monitor_alive(cs.load(cid).state) for cid in ids), 60)

    for i, cid in enumerate(ids):
        rec = cs.load(cid)
        st = rec.state["State"]
        assert not st["Running"] and not st["Restarting"] and st["Pid"] == 0, (i, st)
        assert st["Status"] == "exited", (i, st)
        policy = plan[i][0]
        restarts = int(rec.state["RestartCount"])
        runs = rec.log_path.read_text().count('"run\\n"') if rec.log_path.exists() else 0
        if cid in killed and st["ExitCode"] == 255:
            assert st["Error"] == "container monitor is gone"
        elif policy == "no":
            assert (st["ExitCode"], restarts, runs) == (0, 0, 1)
        elif policy == "on-failure:2":
            assert (st["ExitCode"], restarts, runs) == (1, 2, 3)
        else:
            assert st["ExitCode"] in (0, 137, 143) and runs >= 1
            assert cid in killed or st["Health"]["Status"] == "unhealthy"  # stopped: as Docker 20.10
        assert runs <= restarts + 1
    # nothing of theirs still runs: no process is left in any container's pid namespace
    out = os.popen("ps -eo args").read()
    assert "sleep 0.51" not in out and "sleep 0.21" not in out
    for cid in ids:
        lifecycle.remove(root, cid, force=True)
    assert ContainerStore(root).all() == []
