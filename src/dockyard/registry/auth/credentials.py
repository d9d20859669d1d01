"""A username and secret for one registry."""

from __future__ import annotations

from collections.abc import Callable

from dockyard.record import record


@record(frozen=True, slots=True)
class Credentials:
    """``identity_token`` is an OAuth2 refresh token (docker stores it as ``identitytoken``)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return f"Credentials(username={self.username!r}, password=***)"


# Given a registry name (``docker.io``, ``host:port``), the credentials to use, or None for anonymous.
CredentialsProvider = Callable[[str], "Credentials | None"]
