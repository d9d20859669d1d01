"""The pull policy: ``[[policy]]`` rules in config.toml naming the key an image must be signed by.

    [[policy]]
    registry = "registry.example.com"   # the registry (host[:port]) the rule covers
    prefix = "team/"                     # optional: repositories whose path starts with this
    key = "cosign.pub"                   # cosign public key (relative to the config file's folder)

    rules(config_path=None) -> list[Rule]
    enforce(registry, ref, rules=None)     raises PolicyViolation naming the rule when a covering
                                           rule's key verifies no signature of the image
    refuse_all_tags(ref)                   ``pull --all-tags`` of a covered repository is refused

Every rule that covers an image must be satisfied. ``pull`` checks before it downloads anything;
``run`` and ``build`` (FROM) check through the pull they make for an image the store lacks (or, with
``build --pull``, always); an image already in the store is not checked again.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.oci.reference import Reference
from dockyard.record import record
from dockyard.registry.client import RegistryClient, canonical_host

__all__ = ["PolicyViolation", "Rule", "enforce", "refuse_all_tags", "rules"]


class PolicyViolation(DockyardError):
    """An image a policy rule covers carries no valid signature by the rule's key."""


@record(frozen=True, slots=True)
class Rule:
    number: int           # 1-based, in file order
    registry: str
    prefix: str
    key: str
    where: str            # the config file

    def covers(self, ref: Reference) -> bool:
        same = canonical_host(ref.domain) == canonical_host(self.registry)
        return same and ref.path.startswith(self.prefix)

    def describe(self) -> str:
        scope = f"{self.registry}/{self.prefix}" if self.prefix else self.registry
        return (f"policy rule {self.number} in {self.where}: images from {scope} must carry a valid "
                f"signature by {self.key}")


def rules(config_path: str | os.PathLike[str] | None = None) -> list[Rule]:
    """The ``[[policy]]`` rules of the config file (``config.config_file()`` by default)."""
    from dockyard.config import _read_text, config_file

    path = Path(config_path) if config_path is not None else config_file()
    if path is None or not path.exists():
        return []
    try:
        doc = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: {exc}") from None
    entries = doc.get("policy", [])
    if not isinstance(entries, list):
        raise InvalidArgument(f"{path}: policy must be an array of tables ([[policy]])")
    out = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}: policy rule {i}"
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{where}: expected a table")
        unknown = set(entry) - {"registry", "prefix", "key"}
        if unknown:
            raise InvalidArgument(f"{where}: unknown key {sorted(unknown)[0]!r} (registry, prefix, key)")
        registry, prefix, key = (entry.get(k, "") for k in ("registry", "prefix", "key"))
        if not all(isinstance(v, str) for v in (registry, prefix, key)) or not registry or not key:
            raise InvalidArgument(f"{where}: registry and key are required strings (prefix optional)")
        key_path = key if os.path.isabs(key) else str(path.parent / key)
        out.append(Rule(i, registry, prefix.lstrip("/"), key_path, str(path)))
    return out


def refuse_all_tags(ref: Reference, policy: list[Rule] | None = None) -> None:
    """``pull --all-tags`` of a repository a rule covers is refused: its tags include cosign's own
    signature tags, which carry no signature; each tag is pulled (and checked) on its own instead."""
    for rule in rules() if policy is None else policy:
        if rule.covers(ref):
            raise PolicyViolation(f"{ref.familiar_name()}: pull --all-tags refused by {rule.describe()}: "
                                  "pull each tag by name")


def enforce(registry: RegistryClient, ref: Reference, policy: list[Rule] | None = None) -> None:
    """Raise ``PolicyViolation`` unless every rule covering ``ref`` verifies a signature of it."""
    from dockyard.supplychain.signing import VerificationFailed, load_public_file, verify_image

    for rule in rules() if policy is None else policy:
        if not rule.covers(ref):
            continue
        key = load_public_file(rule.key)
        try:
            verify_image(registry, ref, key)
        except VerificationFailed as exc:
            raise PolicyViolation(f"{ref.familiar()} refused by {rule.describe()} ({exc})") from None
