"""Fixtures of the registry-client tests (defined in ``peers``)."""

from tests.registry.client.peers import peer_registries, token_registry

__all__ = ["peer_registries", "token_registry"]
