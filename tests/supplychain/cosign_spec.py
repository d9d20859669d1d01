"""An independent reading of cosign's formats, for the tests: plain ``hashlib``, PyNaCl and
``cryptography`` calls following cosign's specification (never dockyard's code).

- private key: PEM ``ENCRYPTED SIGSTORE PRIVATE KEY`` holding JSON {kdf: scrypt(N, r, p, salt),
  cipher: nacl/secretbox(nonce), ciphertext}, base64 fields, plaintext a PKCS#8 DER key;
- a signature: base64 ASN.1 ECDSA P-256 over SHA-256 of the simple-signing payload, whose
  ``critical.image.docker-manifest-digest`` must name the image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.secret import SecretBox


def decrypt_cosign_key(pem: bytes, password: bytes) -> ec.EllipticCurvePrivateKey:
    m = re.search(rb"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----(.*?)-----END ENCRYPTED SIGSTORE "
                  rb"PRIVATE KEY-----", pem, re.S)
    assert m, pem[:80]
    doc = json.loads(base64.b64decode(b"".join(m.group(1).split())))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    p = doc["kdf"]["params"]
    salt = base64.b64decode(doc["kdf"]["salt"])
    secret = hashlib.scrypt(password, salt=salt, n=p["N"], r=p["r"], p=p["p"], maxmem=1 << 26, dklen=32)
    nonce = base64.b64decode(doc["cipher"]["nonce"])
    der = SecretBox(secret).decrypt(base64.b64decode(doc["ciphertext"]), nonce)
    key = serialization.load_der_private_key(der, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def verify_simple_signing(public_pem: bytes, payload: bytes, signature_b64: str,
                          digest: str) -> dict[str, Any]:
    """The payload document when the signature verifies and names ``digest``; AssertionError otherwise."""
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    try:
        key.verify(base64.b64decode(signature_b64), payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("signature does not verify") from None
    doc = json.loads(payload)
    assert doc["critical"]["type"] == "cosign container image signature"
    assert doc["critical"]["image"]["docker-manifest-digest"] == digest
    return dict(doc)
