"""cosign's key-based format: key pairs, the simple-signing payload and ECDSA P-256 signatures.

    private_pem, public_pem = generate_key_pair(password)
    key = load_private_key(private_pem, password, where="cosign.key")
    pub = load_public_key(public_pem, where="cosign.pub")
    data = simple_signing_payload("127.0.0.1:5000/app", "sha256:...")
    sig = sign(key, data)                  # base64 of an ASN.1 DER ECDSA signature over SHA-256(data)
    verify_signature(pub, data, sig) -> bool

The private key file is what ``cosign generate-key-pair`` writes: a PEM block (``ENCRYPTED SIGSTORE
PRIVATE KEY``; the older ``ENCRYPTED COSIGN PRIVATE KEY`` is read too) holding JSON with an scrypt key
derivation (N=32768, r=8, p=1, 32-byte salt) and the PKCS#8 DER key sealed by NaCl secretbox
(XSalsa20-Poly1305, 24-byte nonce). Byte fields are standard base64, as Go's JSON writes ``[]byte``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.errors import InvalidArgument

__all__ = ["PRIVATE_PEM_TYPES", "SIGNATURE_ANNOTATION", "SIMPLE_SIGNING", "generate_key_pair",
           "load_private_key", "load_public_key", "sign", "simple_signing_payload", "verify_signature"]

PRIVATE_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
PAYLOAD_TYPE = "cosign container image signature"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
SALT_SIZE, NONCE_SIZE = 32, 24


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # 128 * r * n bytes of work memory (32 MiB at cosign's parameters): past hashlib's default limit.
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n + (1 << 20))


def _pem(kind: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode()


def _unpem(data: bytes, kinds: tuple[str, ...], where: str) -> bytes:
    text = data.decode("ascii", "replace")
    for kind in kinds:
        begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
        start = text.find(begin)
        if start >= 0 and (stop := text.find(end, start)) > 0:
            try:
                return base64.b64decode("".join(text[start + len(begin):stop].split()), validate=True)
            except ValueError:
                raise InvalidArgument(f"{where}: the {kind} block is not valid base64") from None
    raise InvalidArgument(f"{where}: no {' or '.join(kinds)} PEM block")


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    """The key as cosign stores it: PKCS#8 DER sealed under an scrypt-derived key, in PEM."""
    from nacl.secret import SecretBox

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt, nonce = os.urandom(SALT_SIZE), os.urandom(NONCE_SIZE)
    box = SecretBox(_scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    sealed = box.encrypt(der, nonce).ciphertext  # Poly1305 tag then ciphertext, as Go's secretbox.Seal
    doc = {"kdf": {"name": "scrypt", "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    return _pem(PRIVATE_PEM_TYPES[0], json.dumps(doc, separators=(",", ":")).encode())


def generate_key_pair(password: bytes) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key pair: (encrypted private key PEM, public key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return encrypt_private_key(key, password), public


def _field(doc: dict[str, Any], path: str, where: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise InvalidArgument(f"{where}: encrypted key has no {path}")
        value = value[part]
    return value


def load_private_key(data: bytes, password: bytes, where: str) -> ec.EllipticCurvePrivateKey:
    """Decrypt a cosign private key file; a wrong password is a one-line error naming the file."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        doc = json.loads(_unpem(data, PRIVATE_PEM_TYPES, where))
    except ValueError:
        raise InvalidArgument(f"{where}: the encrypted key is not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{where}: the encrypted key is not a JSON object")
    kdf, cipher = _field(doc, "kdf.name", where), _field(doc, "cipher.name", where)
    if kdf != "scrypt" or cipher != "nacl/secretbox":
        raise InvalidArgument(f"{where}: unsupported key encryption {kdf}/{cipher} "
                              "(want scrypt and nacl/secretbox)")
    try:
        params = {k: int(_field(doc, f"kdf.params.{k}", where)) for k in ("N", "r", "p")}
        salt = base64.b64decode(_field(doc, "kdf.salt", where))
        nonce = base64.b64decode(_field(doc, "cipher.nonce", where))
        sealed = base64.b64decode(_field(doc, "ciphertext", where))
    except (TypeError, ValueError):
        raise InvalidArgument(f"{where}: malformed encrypted key fields") from None
    if not (1 < params["N"] <= 1 << 20 and 0 < params["r"] <= 32 and 0 < params["p"] <= 16):
        raise InvalidArgument(f"{where}: scrypt parameters out of range: {params}")
    try:
        secret = _scrypt(password, salt, params["N"], params["r"], params["p"])
        der = SecretBox(secret).decrypt(sealed, nonce)
    except CryptoError:
        raise InvalidArgument(f"{where}: decryption failed: wrong password (COSIGN_PASSWORD)?") from None
    except ValueError as exc:
        raise InvalidArgument(f"{where}: bad key parameters: {exc}") from None
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise InvalidArgument(f"{where}: the decrypted key is not a PKCS#8 private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidArgument(f"{where}: not an ECDSA P-256 key")
    return key


def load_public_key(data: bytes, where: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidArgument(f"{where}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidArgument(f"{where}: not an ECDSA public key")
    return key


def simple_signing_payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The payload cosign signs for an image: its repository and manifest digest."""
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": manifest_digest},
                        "type": PAYLOAD_TYPE},
           "optional": None}
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def verify_signature(key: ec.EllipticCurvePublicKey, payload: bytes, signature_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_digest(payload: bytes) -> str:
    """The manifest digest a simple-signing payload names ("" when it is not one)."""
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        if critical.get("type") != PAYLOAD_TYPE:
            return ""
        return str(critical["image"]["docker-manifest-digest"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
