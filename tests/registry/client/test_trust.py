"""TLS trust of the registry client: a registry that is not insecure is verified against the trust
store (httpx's: certifi, or ``SSL_CERT_FILE``), and the store is loaded only when TLS is first spoken."""

from __future__ import annotations

import io
import ssl
from pathlib import Path

import httpx
import pytest

from dockyard.errors import RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.registry.client import RegistryClient, RegistryOptions
from dockyard.registry.client.trust import verifying_context
from dockyard.registry.server import RegistryServer
from tests.netprobe import primary_ipv4
from tests.registry.tlskit import self_signed


def _blob() -> tuple[Descriptor, bytes]:
    data = b"trusted bytes"
    return Descriptor(mt.OCI_LAYER, Digest.from_bytes(data), len(data)), data


def test_a_registry_that_is_not_insecure_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ip = primary_ipv4()  # not loopback: only HTTPS, verified
    cert, key = self_signed(tmp_path, ip, ca=True)
    desc, data = _blob()
    opts = RegistryOptions(retries=0, backoff=0.01)
    with RegistryServer(storage=tmp_path / "data", host=ip, port=0, tls_cert=str(cert),
                        tls_key=str(key)) as server:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        with RegistryClient(opts) as client, pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED"):
            client.repository(server.address, "tls/repo").upload_blob(desc, lambda: io.BytesIO(data))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as httpx: the store it names is trusted
        with RegistryClient(opts) as client:
            repo = client.repository(server.address, "tls/repo")
            assert repo.upload_blob(desc, lambda: io.BytesIO(data)) == "uploaded"
            assert repo.session.base_url == f"https://{server.address}"


def test_the_trust_store_is_loaded_at_the_first_handshake_only(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path, ca=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = verifying_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with RegistryServer(storage=tmp_path / "plain") as plain, httpx.Client(verify=context) as client:
        assert client.get(f"http://{plain.address}/v2/").status_code == 200
        assert context.cert_store_stats()["x509_ca"] == 0  # plain HTTP: nothing loaded
    with RegistryServer(storage=tmp_path / "tls", tls_cert=str(cert), tls_key=str(key)) as tls, \
            httpx.Client(verify=context) as client:
        assert client.get(f"https://{tls.address}/v2/").status_code == 200
        assert context.cert_store_stats()["x509_ca"] == 1  # the CA file SSL_CERT_FILE names
