"""``RegistryClient``: shared HTTP pools and one ``Session`` per registry endpoint."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from types import TracebackType

from dockyard.registry.auth.credentials import CredentialsProvider
from dockyard.registry.client import httpclient
from dockyard.registry.client.options import RegistryOptions, api_host, canonical_host
from dockyard.registry.client.repository import Repository
from dockyard.registry.client.session import Notice, Session, Sleep, _Clients


class RegistryClient:
    """Entry point of the protocol layer; thread-safe, close it (or use ``with``) when done.

    ``credentials`` maps a registry name (``docker.io``, ``host:port``) to its credentials.
    ``transport`` answers requests instead of the network (tests script registries and faults with it).
    """

    def __init__(self, options: RegistryOptions | None = None, *,
                 credentials: CredentialsProvider | None = None,
                 transport: httpclient.Transport | None = None, sleep: Sleep = time.sleep) -> None:
        self.options = options or RegistryOptions()
        self._credentials = credentials
        self._clients = _Clients(self.options, transport)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self._notices: list[Notice] = []

    def _notice(self, text: str) -> None:
        for notice in list(self._notices):
            notice(text)

    @contextlib.contextmanager
    def reporting(self, notice: Notice) -> Iterator[None]:
        """Tell ``notice`` about every wait before a retry while the block runs."""
        self._notices.append(notice)
        try:
            yield
        finally:
            self._notices.remove(notice)

    def session(self, domain: str) -> Session:
        """The session for a registry's origin (``docker.io`` -> ``registry-1.docker.io``)."""
        key = api_host(domain)
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                creds = self._credentials(canonical_host(domain)) if self._credentials else None
                found = Session(self._clients, key, options=self.options, credentials=creds,
                                sleep=self._sleep, notice=self._notice)
                self._sessions[key] = found
            return found

    def mirror_session(self, url: str) -> Session:
        """A session for a mirror given as a URL (``http://127.0.0.1:5000``); anonymous."""
        url = url.rstrip("/")
        if "://" not in url:
            url = f"https://{url}"
        with self._lock:
            found = self._sessions.get(url)
            if found is None:
                host = url.split("://", 1)[1].split("/", 1)[0]
                found = Session(self._clients, host, options=self.options, base_url=url, sleep=self._sleep,
                                notice=self._notice)
                self._sessions[url] = found
            return found

    def repository(self, domain: str, path: str) -> Repository:
        return Repository(self.session(domain), path)

    def pull_sources(self, domain: str, path: str) -> list[Repository]:
        """Where to pull ``domain/path`` from: each configured mirror in order, then the origin."""
        out = [Repository(self.mirror_session(m), path) for m in self.options.mirrors_for(domain)]
        out.append(self.repository(domain, path))
        return out

    def close(self) -> None:
        self._clients.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
