"""The registry layer (L3): an OCI distribution client (``registry.client``) and server
(``registry.server``)."""
