"""Registry credentials: Docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``) and
``docker-credential-*`` helpers, so logins made by docker work here and the other way round."""

from dockyard.registry.auth.credentials import Credentials, CredentialsProvider

__all__ = ["Credentials", "CredentialsProvider"]
