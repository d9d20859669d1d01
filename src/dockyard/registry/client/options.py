"""Where a registry lives: API host names, mirrors, and which hosts may be spoken to over plain HTTP."""

from __future__ import annotations

import ipaddress

from dockyard.record import field, record

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})


def canonical_host(domain: str) -> str:
    """The registry name a reference uses: Docker Hub's aliases become ``docker.io``."""
    host = domain.lower().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def api_host(domain: str) -> str:
    """The host that serves the registry API for ``domain`` (Docker Hub's is ``registry-1.docker.io``)."""
    host = canonical_host(domain)
    return DOCKER_HUB_API if host == DOCKER_HUB else host


def _split_host(host: str) -> str:
    """The bare host name or address of ``host[:port]`` (IPv6 in brackets kept apart)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


def is_loopback(host: str) -> bool:
    name = _split_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@record(frozen=True, slots=True)
class RegistryOptions:
    """How to reach registries.

    ``mirrors`` maps a registry name (``docker.io``, ``host:port``) to mirror base URLs tried in order
    before the origin when pulling. ``insecure`` lists ``host[:port]`` names or CIDR ranges that may be
    reached over plain HTTP (and HTTPS without verification); loopback hosts always may.
    ``localhost_plain_http``: a loopback host is asked over plain HTTP before HTTPS, as BuildKit's
    registry resolver does for builds (containerd's ``MatchLocalhost``: plain HTTP unless configured);
    Docker's engine, for pull and push, tries HTTPS first.
    """

    mirrors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    insecure: tuple[str, ...] = ()
    timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 4
    backoff: float = 0.5
    max_connections: int = 16
    chunk_size: int = 0
    localhost_plain_http: bool = False

    def mirrors_for(self, domain: str) -> tuple[str, ...]:
        return self.mirrors.get(canonical_host(domain), ())

    def is_insecure(self, host: str) -> bool:
        """True if ``host`` (``name[:port]``) may use plain HTTP."""
        if is_loopback(host):
            return True
        name = _split_host(host)
        for entry in self.insecure:
            entry = entry.strip().lower().removeprefix("http://").removeprefix("https://").rstrip("/")
            if entry in (host.lower(), name.lower()):
                return True
            if "/" in entry:
                try:
                    if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False
