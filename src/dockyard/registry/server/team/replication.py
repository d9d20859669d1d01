"""Push-based replication: rules that copy pushed (or, on a schedule, all) matching tags to another registry.

A rule names a target registry (``host[:port]``, ``docker.io``, ...; an optional ``/namespace`` is put
in front of each repository there), a repository glob, a tag glob, and a trigger: ``push`` (each push
that matches is copied right after it lands) or ``schedule`` (every ``interval`` seconds, every matching
tag). A copy sends what the target lacks (blobs checked by HEAD, an index's manifests first) through
dockyard's registry client, which handles the target's auth and retries requests; a copy that still
fails is tried again ``attempts`` times with a doubling ``backoff``. Every copy goes to the
``replication`` log and the rule's last status.
"""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.record import asdict, field, record
from dockyard.registry.auth.credentials import Credentials
from dockyard.registry.client.client import RegistryClient
from dockyard.registry.client.options import RegistryOptions
from dockyard.registry.client.repository import Repository

from ..storage import Storage
from .audit import iso
from .kv import KV, Record

RULES = "replication"
STATUS = "replication_status"
LOG = "replication"
TRIGGERS = ("push", "schedule")


@record
class Rule:
    id: str
    target: str  # host[:port][/namespace]
    repositories: str = "*"
    tags: str = "*"
    trigger: str = "push"
    interval: float = 3600
    username: str = ""
    password: str = ""
    insecure: bool = False
    enabled: bool = True
    created: float = 0.0

    @property
    def host(self) -> str:
        return self.target.split("/", 1)[0]

    def destination(self, repo: str) -> str:
        namespace = self.target.partition("/")[2].strip("/")
        return f"{namespace}/{repo}" if namespace else repo

    def matches(self, repo: str, tag: str | None) -> bool:
        return self.enabled and fnmatch.fnmatchcase(repo, self.repositories) and (
            tag is not None and fnmatch.fnmatchcase(tag, self.tags))


@record
class Outcome:
    """One copy: which rule, what, where to, and how it went."""

    rule: str
    repository: str
    tag: str
    target: str
    ok: bool = False
    digest: str = ""
    attempts: int = 0
    error: str = ""
    blobs_sent: int = 0
    manifests_sent: int = field(default=0)


class Replicator:
    def __init__(self, storage: Storage, kv: KV, clock: Callable[[], float] = time.time,
                 attempts: int = 3, backoff: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.storage = storage
        self.kv = kv
        self.clock = clock
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep

    # -- rules ---------------------------------------------------------------------------------------

    def add(self, target: str, repositories: str = "*", tags: str = "*", trigger: str = "push",
            interval: float = 3600, username: str = "", password: str = "", insecure: bool = False) -> Rule:
        if not target or "://" in target or target.startswith("/"):
            raise InvalidArgument(f"replication target {target!r}: expected HOST[:PORT][/NAMESPACE]")
        if trigger not in TRIGGERS:
            raise InvalidArgument(f"replication trigger {trigger!r}: expected push or schedule")
        if trigger == "schedule" and interval < 60:
            raise InvalidArgument(f"replication interval {interval:g}s: at least 60 seconds")
        rule = Rule(uuid.uuid4().hex[:10], target, repositories, tags, trigger, interval, username, password,
                    insecure, True, self.clock())
        self.kv.put(RULES, rule.id, asdict(rule))
        return rule

    def rules(self) -> list[Rule]:
        return [Rule(**rec) for rec in self.kv.items(RULES).values()]

    def rule(self, rule_id: str) -> Rule:
        rec = self.kv.get(RULES, rule_id)
        if rec is None:
            raise NotFound(f"no replication rule {rule_id}")
        return Rule(**rec)

    def remove(self, rule_id: str) -> None:
        if not self.kv.delete(RULES, rule_id):
            raise NotFound(f"no replication rule {rule_id}")
        self.kv.delete(STATUS, rule_id)

    def status(self, rule_id: str) -> Record | None:
        return self.kv.get(STATUS, rule_id)

    def due(self) -> list[Rule]:
        """Scheduled rules whose interval has passed since their last run."""
        now = self.clock()
        found = []
        for rule in self.rules():
            if rule.enabled and rule.trigger == "schedule":
                last = (self.status(rule.id) or {}).get("run_at", 0)
                if now - float(last) >= rule.interval:
                    found.append(rule)
        return found

    # -- copying -------------------------------------------------------------------------------------

    def _client(self, rule: Rule) -> RegistryClient:
        creds = Credentials(rule.username, rule.password) if rule.username else None
        options = RegistryOptions(insecure=(rule.host,) if rule.insecure else (), retries=2, backoff=0.2)
        return RegistryClient(options, credentials=(lambda _name: creds) if creds else None)

    def _copy(self, remote: Repository, repo: str, digest: str, reference: str, outcome: Outcome) -> None:
        media_type = self.storage.manifest_media_type(repo, digest)
        if media_type is None:
            raise NotFound(f"{repo} has no manifest {digest}")
        body = self.storage.blob_read(digest)
        manifest = json.loads(body)
        if media_type in mt.INDEXES:
            for child in manifest.get("manifests", []):
                self._copy(remote, repo, str(child["digest"]), str(child["digest"]), outcome)
        else:
            for desc in [manifest["config"], *manifest.get("layers", [])]:
                if desc.get("urls"):
                    continue  # foreign layers live elsewhere
                blob = str(desc["digest"])

                def open_blob(d: str = blob) -> Any:
                    return self.storage.blob_open(d)

                result = remote.upload_blob(Descriptor(str(desc.get("mediaType", "")), Digest(blob),
                                                       int(desc["size"])), open_blob)
                outcome.blobs_sent += result == "uploaded"
        remote.put_manifest(reference, body, media_type)
        outcome.manifests_sent += 1

    def replicate(self, rule: Rule, repo: str, tag: str) -> Outcome:
        """Copy ``repo:tag`` by the rule now (with its retries); logs and returns the outcome."""
        outcome = Outcome(rule.id, repo, tag, f"{rule.host}/{rule.destination(repo)}")
        for attempt in range(1, self.attempts + 1):
            outcome.attempts = attempt
            digest = self.storage.tag_get(repo, tag)
            if digest is None:
                outcome.error = f"{repo}:{tag} is no longer there"
                break
            outcome.digest = digest
            try:
                with self._client(rule) as client:
                    remote = client.repository(rule.host, rule.destination(repo))
                    self._copy(remote, repo, digest, tag, outcome)
                outcome.ok, outcome.error = True, ""
                break
            except (DockyardError, OSError, ValueError, KeyError) as exc:
                outcome.error = str(exc) or type(exc).__name__
                if attempt < self.attempts:
                    self.sleep(self.backoff * 2 ** (attempt - 1))
        self.kv.append(LOG, {"time": iso(self.clock()), **asdict(outcome)})
        return outcome

    def run(self, rule: Rule) -> list[Outcome]:
        """Copy every matching tag (a scheduled round, or ``registry replication run``)."""
        outcomes = []
        for repo in self.storage.repositories():
            if not fnmatch.fnmatchcase(repo, rule.repositories):
                continue
            for tag in sorted(self.storage.tags(repo)):
                if rule.matches(repo, tag):
                    outcomes.append(self.replicate(rule, repo, tag))
        failed = [o for o in outcomes if not o.ok]
        self.kv.put(STATUS, rule.id, {"run_at": self.clock(), "copied": len(outcomes) - len(failed),
                                      "failed": len(failed),
                                      "last_error": failed[-1].error if failed else ""})
        return outcomes

    def on_push(self, repo: str, tag: str) -> list[Outcome]:
        """Copy a fresh push by every push-triggered rule it matches."""
        outcomes = []
        for rule in self.rules():
            if rule.trigger == "push" and rule.matches(repo, tag):
                outcome = self.replicate(rule, repo, tag)
                outcomes.append(outcome)
                self.kv.put(STATUS, rule.id, {"run_at": self.clock(), "copied": int(outcome.ok),
                                              "failed": int(not outcome.ok), "last_error": outcome.error})
        return outcomes
