"""HTTP/1.1 for the registry client, on bare sockets (``dockyard.registry.http1``).

httpx (with httpcore, h11, anyio and http.cookiejar) cost ~270M instructions to import: ~40 % of the
serial time of a build whose every step comes from a registry cache, and a third of a pull's Python
time went to its 64 KiB body events; ``http.client`` after it still cost ~10 ms of imports (its
``email`` parser) and ~250 us of CPU per exchange. This module gives the registry client what it used
of httpx:

- ``Client``: keep-alive connections pooled per origin; TLS with the given context (or none
  verified); a connect timeout, then a timeout on every read and write; redirects followed on
  request (``Authorization`` dropped when the origin changes); request bodies as bytes, a file or an
  iterable of bytes (chunked unless a ``Content-Length`` is given); proxies from the environment as
  Go's ``ProxyFromEnvironment`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``; loopback never).
- ``Request``, ``Response`` (streamed or read), ``Headers`` (case-insensitive, repeatable).
- Transport failures as ``TransportError`` subclasses named as httpx names them (messages and
  retry rules use the names); the ``OSError`` behind one is its ``__cause__``.

A ``Client`` made with ``transport=`` hands each request to that function instead of the network
(tests script registries with it); redirects and everything above still run.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import json as _json
import os
import select
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

from dockyard.registry import http1

if TYPE_CHECKING:
    import ssl  # loaded when a TLS connection is first made: a plain-HTTP registry never needs it

    # The TLS context for https: one, a function that makes it at the first TLS connection (a trust
    # store costs to load), or None for no verification.
    Verify = ssl.SSLContext | Callable[[], ssl.SSLContext] | None

__all__ = ["Client", "ConnectError", "ConnectTimeout", "Headers", "ReadError", "ReadTimeout",
           "RemoteProtocolError", "Request", "Response", "TimeoutException", "Transport", "TransportError",
           "UnsupportedProtocol", "WriteError", "WriteTimeout", "reason_phrase"]

PIECE = 1 << 20
MAX_REDIRECTS = 10
# A response read whole (not streamed: manifests, configs, tokens, errors) larger than this is refused,
# so a registry cannot make the client hold an endless body in memory; blobs are streamed.
MAX_READ = 64 << 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = ("content-length", "content-type", "transfer-encoding")

Content = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes] | None


class TransportError(Exception):
    """No (complete) HTTP answer: the connection failed, timed out or broke."""

    def __init__(self, message: str = "", *, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class TimeoutException(TransportError):
    pass


class ConnectError(TransportError):
    pass


class ConnectTimeout(TimeoutException):
    pass


class ReadError(TransportError):
    pass


class ReadTimeout(TimeoutException):
    pass


class WriteError(TransportError):
    pass


class WriteTimeout(TimeoutException):
    pass


class RemoteProtocolError(TransportError):
    pass


class UnsupportedProtocol(TransportError):
    pass


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code (``""`` for an unknown one)."""
    from http import HTTPStatus  # only where an answer came without one (scripted transports)

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Headers:
    """Response headers: names case-insensitive, a repeated header kept as several values."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self._values.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str = "") -> str:
        """The header's value (several joined with ``", "``), or ``default``."""
        values = self._values.get(name.lower())
        return ", ".join(values) if values else default

    def get_list(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        if name.lower() not in self._values:
            raise KeyError(name)
        return self.get(name)

    def __setitem__(self, name: str, value: str) -> None:
        self._values[name.lower()] = [value]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self._values.items() for value in values]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class URL(str):
    """A URL string with its parts at hand (``path``, ``host``, ``params``...)."""

    __slots__ = ()

    @property
    def scheme(self) -> str:
        return urlsplit(self).scheme

    @property
    def host(self) -> str:
        return urlsplit(self).hostname or ""

    @property
    def port(self) -> int | None:
        return urlsplit(self).port

    @property
    def path(self) -> str:
        return unquote(urlsplit(self).path) or "/"

    @property
    def raw_path(self) -> str:
        """Path and query as sent on the request line."""
        return _target(self)

    @property
    def query(self) -> str:
        return urlsplit(self).query

    @property
    def params(self) -> QueryParams:
        return QueryParams(self.query)

    def copy_with(self, **parts: Any) -> URL:
        """This URL with ``scheme``, ``host``, ``port``, ``path`` or ``query`` replaced."""
        old = urlsplit(self)
        host = parts.get("host", old.hostname or "")
        port = parts.get("port", old.port)
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        return URL(urlunsplit((parts.get("scheme", old.scheme), netloc, parts.get("path", old.path),
                               parts.get("query", old.query), old.fragment)))


class QueryParams(Mapping[str, str]):
    """A query's names: the first value of each, and all of them with ``get_list``."""

    def __init__(self, query: str) -> None:
        self._pairs = parse_qsl(query, keep_blank_values=True)

    def __getitem__(self, name: str) -> str:
        for key, value in self._pairs:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def __len__(self) -> int:
        return len(dict.fromkeys(key for key, _ in self._pairs))

    def get_list(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


class RequestHeaders(MutableMapping[str, str]):
    """A request's headers: looked up and replaced whatever the case, sent as first spelled."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in (items or {}).items():
            self[name] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._items[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"RequestHeaders({dict(self.items())!r})"


class Request:
    """One request: ``content`` is sent as it is (bytes, a file, or an iterable of bytes)."""

    __slots__ = ("content", "headers", "method", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                 content: Content = None) -> None:
        self.method = method
        self.url = URL(url)
        self.headers = RequestHeaders(headers)
        self.content = content

    def read(self) -> bytes:
        """The body as bytes (a stream is read whole, and then sent from what was read)."""
        content = self.content
        if content is None:
            return b""
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        if hasattr(content, "read"):
            stream: IO[bytes] = content  # type: ignore[assignment]
            data = b"".join(iter(lambda: stream.read(PIECE), b""))
        else:
            data = b"".join(content)
        self.content = data
        return data

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response:
    """A status, headers and a body that is either read (``content``) or streamed (``iter_raw``).

    ``stream`` is an iterable of body pieces; it may raise ``TransportError`` midway. A streamed
    response must be closed (or read to its end) by whoever asked for it."""

    def __init__(self, status_code: int,
                 headers: Headers | Mapping[str, str] | Iterable[tuple[str, str]] = (), *,
                 content: bytes | None = None, stream: Iterable[bytes] | None = None, json: Any = None,
                 reason: str = "", url: str = "", request: Request | None = None) -> None:
        if json is not None:
            content = _json.dumps(json).encode()
            headers = [*(headers.items() if isinstance(headers, Headers | Mapping) else headers),
                       ("Content-Type", "application/json")]
        self.status_code = status_code
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.reason_phrase = reason or reason_phrase(status_code)
        self.url = URL(url or (request.url if request is not None else ""))
        self.request = request
        self._content = content
        self._stream = stream if content is None else None
        self._consumed = content is not None

    def iter_raw(self) -> Iterator[bytes]:
        """The body's pieces as they arrive (at most ``PIECE`` bytes each from the network)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._consumed:
            raise RemoteProtocolError("the response body was already read")
        self._consumed = True
        stream = self._stream
        if stream is None:
            return
        try:
            yield from stream
        finally:
            self._close_stream()

    def read(self, limit: int | None = None) -> bytes:
        """The whole body (read once, then kept); more than ``limit`` bytes is a protocol error."""
        if self._content is None:
            data = bytearray()
            for piece in self.iter_raw():
                data += piece
                if limit is not None and len(data) > limit:
                    self.close()
                    raise RemoteProtocolError(f"response body larger than {limit} bytes")
            self._content = bytes(data)
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.read())

    @property
    def stream(self) -> Iterable[bytes]:
        """The body's pieces, for a wrapper that passes them on (as ``iter_raw``)."""
        return self.iter_raw()

    def close(self) -> None:
        """Drop what is left of the body (the connection is then closed, not reused)."""
        self._consumed = True
        self._close_stream()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        close = getattr(stream, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason_phrase}]>"


Transport = Callable[[Request], Response]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _with_params(url: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> str:
    if not params:
        return url
    pairs = params.items() if isinstance(params, Mapping) else params
    query = urlencode([(k, "" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
                       for k, v in pairs])
    return f"{url}{'&' if '?' in url else '?'}{query}"


Origin = tuple[str, str, int]


def _origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedProtocol(f"Request URL has an unsupported protocol '{scheme}://'.")
    if not parts.hostname:
        raise UnsupportedProtocol(f"Request URL is missing a host: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise UnsupportedProtocol(f"Invalid port in {url!r}") from exc
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(scheme: str, host: str, port: int,
              environ: Mapping[str, str] = os.environ) -> tuple[str, int] | None:
    """The (host, port) of the HTTP proxy for a request, as Go's ``ProxyFromEnvironment`` picks it:
    ``HTTPS_PROXY`` for https, ``HTTP_PROXY`` for http (upper case first), none for loopback or a host
    ``NO_PROXY`` names (``*``, a domain and its subdomains, ``.domain``, ``host:port``, an IP or CIDR)."""
    if _is_loopback(host):
        return None
    names = ("HTTPS_PROXY", "https_proxy") if scheme == "https" else ("HTTP_PROXY", "http_proxy")
    proxy = next((environ[n] for n in names if environ.get(n)), "")
    if not proxy:
        return None
    no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return None
        name, _, want_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if want_port and want_port != str(port):
            continue
        name = name or entry
        if "/" in name:
            try:
                if ipaddress.ip_address(host.strip("[]")) in ipaddress.ip_network(name, strict=False):
                    return None
            except ValueError:
                pass
            continue
        name = name.lstrip("*.")
        if host.lower() == name or host.lower().endswith("." + name):
            return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urlsplit(proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise UnsupportedProtocol(f"proxy {proxy!r}: only http:// proxies are supported")
    return parts.hostname, parts.port or 80


class Client:
    """Requests with default headers, redirects and forms over a transport (the network: ``Network``);
    thread-safe. ``verify`` is the TLS context for https (None: no verification, for insecure
    registries)."""

    def __init__(self, *, verify: Verify, timeout: float = 60.0, connect_timeout: float = 10.0,
                 max_idle: int = 16, headers: Mapping[str, str] | None = None,
                 transport: Transport | None = None) -> None:
        self._network = Network(verify=verify, timeout=timeout, connect_timeout=connect_timeout,
                                max_idle=max_idle) if transport is None else None
        self._transport: Transport = transport or self._network  # type: ignore[assignment]
        self._headers = dict(headers or {})

    # -- requests ---------------------------------------------------------------------------------

    def build_request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
                      content: Content = None) -> Request:
        """A request with this client's default headers and the framing of its body: a
        ``Content-Length`` for bytes, chunked transfer encoding for a stream of unknown length."""
        request = Request(method, _with_params(url, params), {**self._headers, **(headers or {})}, content)
        if content is not None and "content-length" not in request.headers:
            if isinstance(content, bytes | bytearray | memoryview):
                request.headers["Content-Length"] = str(len(content))
            else:
                request.headers["Transfer-Encoding"] = "chunked"
        return request

    def send(self, request: Request, *, stream: bool = False, follow_redirects: bool = False) -> Response:
        """Send ``request``; ``stream=False`` reads the body before returning."""
        response = self._send_one(request)
        hops = 0
        while follow_redirects and response.status_code in _REDIRECTS and "location" in response.headers:
            hops += 1
            if hops > MAX_REDIRECTS:
                response.close()
                raise RemoteProtocolError(f"Exceeded maximum allowed redirects ({MAX_REDIRECTS}).")
            response.close()
            request = self._redirected(request, response)
            response = self._send_one(request)
        if not stream:
            try:
                response.read(MAX_READ)
            finally:
                response.close()
        return response

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None, content: Content = None,
                auth: tuple[str, str] | None = None, stream: bool = False,
                follow_redirects: bool = False) -> Response:
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = _basic(*auth)
        req = self.build_request(method, url, headers=hdrs, params=params, content=content)
        return self.send(req, stream=stream, follow_redirects=follow_redirects)

    @contextlib.contextmanager
    def stream(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
               follow_redirects: bool = False) -> Iterator[Response]:
        """A streamed response, closed when the block ends."""
        response = self.request(method, url, headers=headers, stream=True, follow_redirects=follow_redirects)
        try:
            yield response
        finally:
            response.close()

    def get(self, url: str, *, headers: Mapping[str, str] | None = None,
            params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
            auth: tuple[str, str] | None = None) -> Response:
        return self.request("GET", url, headers=headers, params=params, auth=auth)

    def post(self, url: str, *, data: Mapping[str, str]) -> Response:
        """POST a form (``application/x-www-form-urlencoded``)."""
        return self.request("POST", url, content=urlencode(data).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def _redirected(self, request: Request, response: Response) -> Request:
        url = urljoin(request.url, response.headers.get("location"))
        method, content = request.method, request.content
        if (response.status_code == 303 and method != "HEAD") or (response.status_code in (301, 302)
                                                                   and method == "POST"):
            method, content = "GET", None
        headers = dict(request.headers)
        if content is None:
            for name in [n for n in headers if n.lower() in _BODY_HEADERS]:
                del headers[name]
        if _origin(url) != _origin(request.url):
            for name in [n for n in headers if n.lower() == "authorization"]:
                del headers[name]  # credentials for one origin never go to another
        return Request(method, url, headers, content)

    def _send_one(self, request: Request) -> Response:
        response = self._transport(request)
        response.request = request
        response.url = request.url
        return response

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections (or the given transport, if it can be closed)."""
        closer = getattr(self._network or self._transport, "close", None)
        if closer is not None:
            closer()


class Network:
    """The transport over the network: keep-alive connections pooled per origin (at most
    ``max_idle`` kept idle for each), a connect timeout, then ``timeout`` on every read and write."""

    def __init__(self, *, verify: Verify, timeout: float = 60.0, connect_timeout: float = 10.0,
                 max_idle: int = 16) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = None
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, request: Request) -> Response:
        origin = _origin(request.url)
        replayable = request.content is None or isinstance(request.content, bytes | bytearray | memoryview)
        while True:
            conn, reused = self._connection(origin)
            try:
                head = self._exchange(conn, origin, request)
            except _Stale:
                conn.close()
                if reused and replayable:
                    continue  # the server had closed a kept-alive connection: once more on a new one
                raise RemoteProtocolError("Server disconnected without sending a response.") from None
            except BaseException:
                conn.close()
                raise
            body = _Body(conn, head, functools.partial(self._release, origin, conn))
            return Response(head.status, Headers(head.fields), reason=head.reason, url=request.url,
                            request=request, stream=body)

    def _exchange(self, conn: _Connection, origin: Origin, request: Request) -> http1.Head:
        try:
            self._send(conn, origin, request)
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The server may have answered (a 401, a 413) and closed before taking the whole body.
            try:
                return conn.wire.head(request.method)
            except OSError:
                raise _Stale() from exc
        except TimeoutError as exc:
            raise WriteTimeout("timed out") from exc
        except OSError as exc:
            raise WriteError(str(exc)) from exc
        try:
            return conn.wire.head(request.method)
        except (http1.Closed, ConnectionResetError) as exc:
            raise _Stale() from exc
        except TimeoutError as exc:
            raise ReadTimeout("timed out") from exc
        except http1.ProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc
        except OSError as exc:
            raise ReadError(str(exc)) from exc

    @staticmethod
    def _send(conn: _Connection, origin: Origin, request: Request) -> None:
        scheme, host, port = origin
        # Plain HTTP through a proxy names the whole URL on the request line (https tunnels instead).
        target = request.url if scheme == "http" and conn.proxied else _target(request.url)
        fields = list(request.headers.items())
        given = {name.lower() for name, _ in fields}
        if "host" not in given:
            name = host if host.isascii() else host.encode("idna").decode("ascii")
            name = f"[{name}]" if ":" in name else name
            default = 443 if scheme == "https" else 80
            fields.insert(0, ("Host", name if port == default else f"{name}:{port}"))
        if "accept-encoding" not in given:
            fields.append(("Accept-Encoding", "identity"))
        body = request.content
        chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
        if body is None:
            if request.method in ("POST", "PUT", "PATCH") and "content-length" not in given:
                fields.append(("Content-Length", "0"))  # as http.client: servers may want a length
        elif isinstance(body, bytes | bytearray | memoryview):
            if "content-length" not in given and not chunked:
                fields.append(("Content-Length", str(len(body))))
        elif "content-length" not in given and not chunked:
            fields.append(("Transfer-Encoding", "chunked"))
            chunked = True
        head = http1.request_head(request.method, target, fields)
        if body is None:
            conn.wire.send(head)
        elif isinstance(body, bytes | bytearray | memoryview):
            if chunked:
                conn.wire.send(head)
                for piece in _chunks([body]):
                    conn.wire.send(piece)
            else:
                conn.wire.send_request(head, body)
        else:
            conn.wire.send(head)
            if hasattr(body, "read"):
                stream: IO[bytes] = body  # type: ignore[assignment]
                pieces: Iterable[bytes] = iter(lambda: stream.read(PIECE), b"")
            else:
                pieces = body
            for piece in _chunks(pieces) if chunked else pieces:
                if piece:
                    conn.wire.send(piece)

    def _connection(self, origin: Origin) -> tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if conn.still_open():
                    return conn, True
                conn.close()
        return self._connect(origin), False

    def _release(self, origin: Origin, conn: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if not self._closed and len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        proxy = proxy_for(scheme, host, port)
        dial_host, dial_port = proxy or (host, port)
        try:
            sock = socket.create_connection((_ascii(dial_host), dial_port),  # type: ignore[arg-type]
                                            self._connect_timeout)
        except TimeoutError as exc:
            raise ConnectTimeout("timed out") from exc
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if proxy is not None:
                    _tunnel(sock, host, port)
                sock = self._tls().wrap_socket(sock, server_hostname=_ascii(host))
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeout("timed out") from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            sock.close()
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self._timeout)
        return _Connection(sock, proxied=proxy is not None)

    def _tls(self) -> ssl.SSLContext:
        """The TLS context of this transport's https connections (made at the first one)."""
        with self._lock:
            if self._context is None:
                verify = self._verify
                self._context = _unverified() if verify is None else verify() if callable(verify) else verify
            return self._context

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _ascii(host: str) -> str | bytes:
    """An ASCII host name as bytes: ``getaddrinfo`` and ``ssl`` encode a ``str`` with the IDNA codec,
    whose import (``stringprep``, ``unicodedata``, a Unicode regex) cost a registry command ~4 ms; for
    ASCII names its result is the same bytes."""
    return host.encode("ascii") if host.isascii() else host


def _tunnel(sock: socket.socket, host: str, port: int) -> None:
    """Ask the HTTP proxy at the other end of ``sock`` for a tunnel to ``host:port`` (CONNECT)."""
    name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    wire = http1.Wire(sock)
    wire.send(http1.request_head("CONNECT", name, [("Host", name)]))
    head = wire.head("CONNECT")
    if head.status != 200:
        raise OSError(f"Tunnel connection failed: {head.status} {head.reason}")
    if wire.buffer:
        raise http1.ProtocolError("the proxy sent bytes after its answer to CONNECT")


class _Connection:
    """A kept-alive connection: its wire, and whether it goes through a proxy."""

    def __init__(self, sock: socket.socket, *, proxied: bool) -> None:
        self.wire = http1.Wire(sock)
        self.proxied = proxied

    def close(self) -> None:
        self.wire.close()

    def still_open(self) -> bool:
        """Whether an idle connection may carry another request: nothing to read on it (a readable idle
        socket is at EOF, or holds bytes nobody asked for)."""
        sock = self.wire.sock
        if self.wire.buffer or sock.fileno() < 0:
            return False
        pending = getattr(sock, "pending", None)  # TLS: bytes decrypted but not read
        if pending is not None and pending():
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable


def _chunks(pieces: Iterable[bytes | bytearray | memoryview]) -> Iterator[bytes | bytearray | memoryview]:
    """``pieces`` in chunked transfer encoding, each sent as it is: a piece's size line (with the
    previous piece's closing CRLF) goes in a small send of its own rather than the piece being copied
    into one with its framing (a copy and fresh pages for every megabyte)."""
    crlf = b""
    for piece in pieces:
        if piece:
            yield b"%s%X\r\n" % (crlf, len(piece))
            yield piece
            crlf = b"\r\n"
    yield crlf + b"0\r\n\r\n"


class _Body:
    """A response body read from its connection as the socket gives it; at the end the connection goes
    back to the pool (``release``), unless the server asked to close it or the body was left unread
    or broke off."""

    def __init__(self, conn: _Connection, head: http1.Head, release: Callable[[], None]) -> None:
        self._conn = conn
        self._head = head
        self._release = release
        self._done = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            try:
                yield from self._conn.wire.body(self._head, PIECE)
            except TimeoutError as exc:
                raise ReadTimeout("timed out") from exc
            except http1.ProtocolError as exc:
                raise RemoteProtocolError(str(exc)) from exc
            except OSError as exc:
                raise ReadError(str(exc) or type(exc).__name__) from exc
            self._done = True
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._done and not self._head.close:
            self._release()
        else:
            self._conn.close()


class _Stale(Exception):
    """The connection broke before any byte of an answer (a kept-alive one the server had closed)."""


_unverified_context: ssl.SSLContext | None = None


def _unverified() -> ssl.SSLContext:
    """A TLS client context that checks neither the certificate nor the host name (insecure registries)."""
    import ssl

    global _unverified_context
    if _unverified_context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _unverified_context = context
    return _unverified_context
