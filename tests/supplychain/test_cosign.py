"""cosign's key-based format: key files, payload and signatures, checked by an independent reader."""

from __future__ import annotations

import base64
import json
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import InvalidArgument
from dockyard.supplychain import cosign
from tests.supplychain.cosign_spec import decrypt_cosign_key, verify_simple_signing


def test_key_pair_in_cosigns_format_decrypts_independently() -> None:
    private_pem, public_pem = cosign.generate_key_pair(b"s3cret")
    body = re.search(rb"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n(.*)-----END", private_pem, re.S)
    assert body is not None
    doc = json.loads(base64.b64decode(b"".join(body.group(1).split())))
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    key = decrypt_cosign_key(private_pem, b"s3cret")
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert key.public_key().public_numbers() == public.public_numbers()


def test_empty_password_allowed_and_wrong_password_is_one_line() -> None:
    private_pem, _ = cosign.generate_key_pair(b"")
    assert isinstance(cosign.load_private_key(private_pem, b"", "cosign.key"), ec.EllipticCurvePrivateKey)
    with pytest.raises(InvalidArgument, match=r"^cosign.key: decryption failed: wrong password"):
        cosign.load_private_key(private_pem, b"nope", "cosign.key")
    with pytest.raises(InvalidArgument, match=r"^x.key: no ENCRYPTED SIGSTORE PRIVATE KEY"):
        cosign.load_private_key(b"junk", b"", "x.key")


def test_reads_the_older_cosign_pem_type() -> None:
    private_pem, _ = cosign.generate_key_pair(b"pw")
    old = private_pem.replace(b"SIGSTORE", b"COSIGN")
    assert isinstance(cosign.load_private_key(old, b"pw", "old.key"), ec.EllipticCurvePrivateKey)


def test_signature_verifies_with_an_independent_verifier() -> None:
    private_pem, public_pem = cosign.generate_key_pair(b"pw")
    key = cosign.load_private_key(private_pem, b"pw", "k")
    digest = "sha256:" + "ab" * 32
    payload = cosign.simple_signing_payload("127.0.0.1:5000/app", digest)
    sig = cosign.sign(key, payload)
    doc = verify_simple_signing(public_pem, payload, sig, digest)
    assert doc["critical"]["identity"]["docker-reference"] == "127.0.0.1:5000/app"
    public = cosign.load_public_key(public_pem, "pub")
    assert cosign.verify_signature(public, payload, sig)
    assert not cosign.verify_signature(public, payload.replace(b"ab", b"cd"), sig)
    assert cosign.signed_digest(payload) == digest


def test_hostile_scrypt_parameters_are_refused() -> None:
    """A key file asking for 2^30 scrypt rounds (gigabytes of memory) is refused before any work."""
    private_pem, _ = cosign.generate_key_pair(b"")
    lines = private_pem.decode().splitlines()
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    doc["kdf"]["params"]["N"] = 1 << 30
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    hostile = f"{lines[0]}\n{body}\n{lines[-1]}\n".encode()
    with pytest.raises(InvalidArgument, match=r"^h.key: scrypt parameters out of range"):
        cosign.load_private_key(hostile, b"", "h.key")
