"""What loading the registry client costs: bare sockets, not httpx or http.client."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import dockyard.registry.client
from dockyard.registry.client import RegistryClient
RegistryClient().session("127.0.0.1:5000").http
heavy = ("httpx", "httpcore", "h11", "anyio", "http.cookiejar", "dataclasses", "http.client", "email")
print(sorted(m for m in heavy if m in sys.modules))
"""


NAMES = """
import socket, sys, threading
from dockyard.registry.client import httpclient

# A bare socket server: http.server looks its own name up (getfqdn), which loads the codec itself.
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
port = listener.getsockname()[1]

def serve():
    while True:
        conn, _ = listener.accept()
        with conn:
            if conn.recv(65536).startswith(b"GET"):
                conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")

threading.Thread(target=serve, daemon=True).start()
with httpclient.Client(verify=None, timeout=5, connect_timeout=5) as client:
    assert client.get(f"http://localhost:{port}/").content == b"ok"
    try:
        client.get(f"https://localhost:{port}/")  # a TLS hello to a plain server: refused, as a probe is
    except httpclient.TransportError:
        pass
print("encodings.idna" in sys.modules)
"""


def test_dialling_a_host_by_name_loads_no_idna_codec() -> None:
    # str host names go through the IDNA codec in getaddrinfo and ssl: stringprep, unicodedata and a
    # Unicode regex, ~4 ms of every command that talks to a registry.
    out = subprocess.run([sys.executable, "-c", NAMES], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_the_registry_client_loads_no_httpx_nor_http_client() -> None:
    # httpx with httpcore, h11 (dataclasses), anyio and http.cookiejar cost ~270M instructions at
    # start-up, ~40 % of the serial time of a build whose steps all come from a registry cache;
    # http.client with its email parser ~10 ms more.
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]"]
