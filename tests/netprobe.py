"""What the network tests share: a static connect probe to run inside containers, and host listeners
(a TCP server on 127.0.0.1, an abstract unix socket, a TCP server on a non-loopback address)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# ``probe unix NAME`` / ``probe tcp IPV4 PORT``: prints "connected" (exit 0) or "failed: why" (exit 1);
# ``probe udp-echo PORT`` sends each datagram it gets on PORT back to its sender, until "quit".
# Static, so it runs on any image; busybox's nc cannot reach a unix socket.
PROBE_C = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    int fd, rc;
    if (argc == 3 && strcmp(argv[1], "unix") == 0) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t n = strlen(argv[2]);
        memcpy(a.sun_path + 1, argv[2], n);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        rc = connect(fd, (struct sockaddr *)&a, sizeof(sa_family_t) + 1 + n);
    } else if (argc == 4 && strcmp(argv[1], "tcp") == 0) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        struct timeval tv = {.tv_sec = 5};
        if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return 2;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else if (argc == 3 && strcmp(argv[1], "udp-echo") == 0) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))}, from;
        socklen_t len = sizeof from;
        char buf[512];
        ssize_t n;
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); return 1; }
        puts("listening");
        fflush(stdout);
        for (;;) {
            n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
            if (n == 4 && memcmp(buf, "quit", 4) == 0) return 0;
            if (n < 0 || sendto(fd, buf, n, 0, (struct sockaddr *)&from, len) != n) return 1;
        }
    } else {
        fprintf(stderr, "usage: probe unix NAME | probe tcp IPV4 PORT | probe udp-echo PORT\n");
        return 2;
    }
    if (rc == 0) { puts("connected"); return 0; }
    printf("failed: %s\n", strerror(errno));
    return 1;
}
"""


def need_pasta() -> None:
    """Skip unless pasta (Debian passt, installed by scripts/peers-up.sh) is there."""
    if shutil.which("pasta") is None:
        pytest.skip("pasta is not installed (apt-get install passt)")


def build_probe(directory: Path) -> Path:
    """The probe compiled into ``directory`` (skips without a C compiler and static libc)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the network probe")
    src, out = directory / "probe.c", directory / "probe"
    src.write_text(PROBE_C)
    done = subprocess.run([cc, "-static", "-O", "-o", str(out), str(src)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot build a static probe: {done.stderr.strip()[-200:]}")
    return out


def primary_ipv4() -> str:
    """This machine's first non-loopback IPv4 address (skips when it has none)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        return line.split()[3].split("/")[0]
    pytest.skip("no non-loopback IPv4 address on this machine")


@dataclass
class HostServices:
    loopback_port: int  # TCP on 127.0.0.1
    abstract_name: str  # an abstract unix socket (no leading NUL)
    outside_ip: str  # a non-loopback address of this machine, with a TCP server on outside_port
    outside_port: int


@contextmanager
def host_services() -> Iterator[HostServices]:
    """Listeners on the host, accepting (and closing) connections until the block ends."""
    loop = socket.create_server(("127.0.0.1", 0))
    outside_ip = primary_ipv4()
    outside = socket.create_server((outside_ip, 0))
    name = f"dockyard-test-{socket.gethostname()}-{id(loop):x}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + name)
    abstract.listen()
    stop = threading.Event()

    def serve(sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in (loop, outside, abstract)]
    for t in threads:
        t.start()
    try:
        yield HostServices(loop.getsockname()[1], name, outside_ip, outside.getsockname()[1])
    finally:
        stop.set()
        for t in threads:
            t.join()
        for s in (loop, outside, abstract):
            s.close()


def probe_script(services: HostServices, probe: str = "/probe") -> str:
    """A shell script printing one verdict line each: loopback, abstract, outside."""
    return (f"{probe} tcp 127.0.0.1 {services.loopback_port}; {probe} unix {services.abstract_name};"
            f" {probe} tcp {services.outside_ip} {services.outside_port}; true")
