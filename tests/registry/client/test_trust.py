"""TLS trust of the registry client: a registry that is not insecure is verified against the trust
store (httpx's: certifi, or ``SSL_CERT_FILE``), and the store is loaded only when TLS is first spoken."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.errors import RegistryError
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.registry.client import RegistryClient, RegistryOptions
from dockyard.registry.client.trust import verifying_context
from dockyard.registry.server import RegistryServer
from tests.netprobe import primary_ipv4


def _certificate(tmp_path: Path, ip: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _blob() -> tuple[Descriptor, bytes]:
    data = b"trusted bytes"
    return Descriptor(mt.OCI_LAYER, Digest.from_bytes(data), len(data)), data


def test_a_registry_that_is_not_insecure_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ip = primary_ipv4()  # not loopback: only HTTPS, verified
    cert, key = _certificate(tmp_path, ip)
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
    cert, key = _certificate(tmp_path, "127.0.0.1")
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
