"""A local OSV mirror for the update tests: built from tests/data/osv, served by http.server in a thread.

The server answers conditional requests (ETag/If-None-Match, Last-Modified/If-Modified-Since), logs
every request, can stall in the middle of a file (to kill an update there) and can omit paths.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

DATA = Path(__file__).resolve().parents[2] / "data" / "osv"


def build_mirror(dest: Path, *, csv: bool = True, sha256: bool = True,
                 records: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    """``dest/<Ecosystem>/all.zip`` (+ ``modified_id.csv``, ``<ID>.json``, ``all.zip.sha256``) from
    the checked-in records, or from ``records`` ({ecosystem: [record]}) when given."""
    if records is None:
        records = {eco.name: [json.loads(p.read_text()) for p in sorted(eco.glob("*.json"))]
                   for eco in sorted((DATA / "mirror").iterdir())}
    for eco, recs in records.items():
        d = dest / eco
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        with zipfile.ZipFile(d / "all.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for rec in recs:
                zf.writestr(f"{rec['id']}.json", json.dumps(rec))
        if csv:
            for rec in recs:
                (d / f"{rec['id']}.json").write_text(json.dumps(rec))
            lines = sorted((f"{r['modified']},{r['id']}" for r in recs), reverse=True)
            (d / "modified_id.csv").write_text("\n".join(lines) + "\n")
        if sha256:
            digest = hashlib.sha256((d / "all.zip").read_bytes()).hexdigest()
            (d / "all.zip.sha256").write_text(f"{digest}  all.zip\n")
    return dest


class Server:
    """State shared with the handler: the directory, the request log, a stall point."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[tuple[str, int]] = []  # (path, status)
        self.stall_path = ""
        self.goog_md5: dict[str, str] = {}  # path -> the MD5 to announce in x-goog-hash, as GCS does
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.url = ""

    def gets(self, suffix: str = "") -> list[tuple[str, int]]:
        return [(p, s) for p, s in self.log if p.endswith(suffix)]


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            rel = unquote(self.path.split("?", 1)[0].lstrip("/"))
            path = server.root / rel
            if not path.is_file():
                server.log.append((rel, 404))
                self.send_error(404)
                return
            st = path.stat()
            etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
            lm = formatdate(st.st_mtime, usegmt=True)
            since = self.headers.get("If-Modified-Since")
            match = self.headers.get("If-None-Match")  # takes precedence over If-Modified-Since
            if (match == etag if match else
                    since and int(parsedate_to_datetime(since).timestamp()) >= int(st.st_mtime)):
                server.log.append((rel, 304))
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            body = path.read_bytes()
            server.log.append((rel, 200))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", lm)
            md5 = server.goog_md5.get(rel, base64.b64encode(hashlib.md5(body).digest()).decode())
            self.send_header("x-goog-hash", f"crc32c=AAAAAA==,md5={md5}")
            self.end_headers()
            if rel == server.stall_path:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                server.stalled.set()
                server.release.wait(30)
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(root: Path) -> Iterator[Server]:
    state = Server(root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
