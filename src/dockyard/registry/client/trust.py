"""The verifying TLS context of registry clients, with its trust store loaded at the first handshake.

Loading the CA bundle costs ~40 ms: paid by every command that talks to a plain-HTTP registry (a local
or insecure one) although no TLS is ever spoken, if the context loaded it when made. This context
verifies as a default one does (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` if set, else certifi's bundle;
hostname checks; ``SSLKEYLOGFILE``) but loads the trust store only when a TLS connection is first made."""

from __future__ import annotations

import os
import ssl
import sys
import threading
from typing import Any


class _TrustOnFirstUse(ssl.SSLContext):
    _lock = threading.Lock()
    _trusted = False

    def _trust(self) -> None:
        if self._trusted:
            return
        with self._lock:
            if not self._trusted:
                # The sources httpx's create_ssl_context(verify=True, trust_env=True) reads.
                if os.environ.get("SSL_CERT_FILE"):
                    self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
                elif os.environ.get("SSL_CERT_DIR"):
                    self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
                else:
                    import certifi

                    self.load_verify_locations(cafile=certifi.where())
                self._trusted = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._trust()
        return super().wrap_bio(*args, **kwargs)


def verifying_context() -> ssl.SSLContext:
    """A client context that requires a valid certificate for the host name, as ``verify=True``."""
    context = _TrustOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    if sys.version_info >= (3, 13):  # what ssl.create_default_context adds there
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:  # as ssl.create_default_context
        context.keylog_filename = keylog
    return context
