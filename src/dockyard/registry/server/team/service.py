"""``Team``: the team features of one registry storage, opened by the server and by the CLI alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..storage import Storage
from . import audit
from .accounts import Directory
from .kv import KV, open_kv
from .replication import Replicator
from .retention import Plan, Retention
from .webhooks import Dispatcher


class Team:
    """Accounts, policies, audit and webhooks over a registry's storage."""

    def __init__(self, storage: Storage, clock: Callable[[], float] = time.time,
                 webhook_backoff: float = 1.0, webhook_attempts: int = 5,
                 replication_backoff: float = 2.0) -> None:
        self.storage = storage
        self.clock = clock
        self.kv: KV = open_kv(storage)
        self.directory = Directory(self.kv, clock)
        self.webhooks = Dispatcher(self.kv, webhook_backoff, webhook_attempts, clock=clock)
        self.retention = Retention(storage, self.kv)
        self.replication = Replicator(storage, self.kv, clock, backoff=replication_backoff)

    def audit(self, who: str | None, action: str, repository: str = "", source: str = "",
              **details: Any) -> None:
        audit.record(self.kv, who, action, repository, source, when=self.clock(), **details)

    def retention_plan(self, project_name: str) -> Plan:
        return self.retention.plan(self.directory.need_project(project_name), self.clock())

    def retention_run(self, project_name: str, who: str = "retention") -> Plan:
        """Apply the project's rules; each deletion goes to the audit log."""
        plan = self.retention_plan(project_name)
        self.retention.apply(plan)
        for repo, tag, digest in plan.tags:
            self.audit(who, "delete", repo, tag=tag, digest=digest, reason="retention")
        for repo, digest, why in plan.manifests:
            self.audit(who, "delete", repo, digest=digest, reason=f"retention: {why}")
        return plan
