"""HTTP/1.1 on a bare socket (``dockyard.registry.http1``), against bytes written to the other end of a
socket pair: heads, the three body framings, and every way an answer can be malformed or cut short."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dockyard.registry import http1


@pytest.fixture
def pair() -> Iterator[tuple[http1.Wire, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    yield http1.Wire(ours), theirs
    ours.close()
    theirs.close()


def test_a_head_gives_status_reason_and_fields_in_order(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"  # a 1xx nobody asked for: skipped
                 b"HTTP/1.1 404 Not Found\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
                 b"Link: <a>\r\nLink: <b>\r\nX-Folded: one\r\n two\r\nContent-Length: 0\r\n\r\n")
    head = wire.head("GET")
    assert (head.version, head.status, head.reason) == ("HTTP/1.1", 404, "Not Found")
    assert head.fields[:3] == [("Docker-Distribution-Api-Version", "registry/2.0"), ("Link", "<a>"),
                               ("Link", "<b>")]
    headers = head.headers()
    assert headers.get("link") == "<a>, <b>" and headers.get("x-folded") == "one two" and \
        headers.get("nope", "") == ""
    assert head.length == 0 and not head.close
    assert list(wire.body(head)) == []


@pytest.mark.parametrize(("answer", "method", "close"), [
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "GET", True),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", True),
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", "GET", False),
    (b"HTTP/1.1 200 OK\r\n\r\n", "GET", True),  # delimited by the end of the connection
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD", False),  # a HEAD's answer has no body
    (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE", False),
    (b"HTTP/1.1 304 Not Modified\r\n\r\n", "GET", False),
])
def test_whether_the_connection_can_carry_another_request(pair: tuple[http1.Wire, socket.socket],
                                                          answer: bytes, method: str, close: bool) -> None:
    wire, peer = pair
    peer.sendall(answer)
    assert wire.head(method).close is close


def test_a_body_framed_by_length_streams_in_pieces_and_leaves_the_next_answer(
        pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    body = bytes(range(256)) * 40  # 10,240 bytes: more than one piece, partly in the head's buffer
    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10240\r\n\r\n" + body + b"HTTP/1.1 201 Created\r\n")
    head = wire.head("GET")
    pieces = list(wire.body(head, most=1000))
    assert b"".join(pieces) == body and max(map(len, pieces)) <= 1000
    peer.sendall(b"Content-Length: 2\r\n\r\nok")
    second = wire.head("PUT")
    assert second.status == 201 and wire.read(second) == b"ok" and not wire.buffer


def test_a_chunked_body_with_extensions_and_trailers(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                 b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: yes\r\n\r\nNEXT")
    head = wire.head("GET")
    assert head.chunked and head.length is None and not head.close
    assert list(wire.body(head, most=3)) == [b"hel", b"lo", b" ", b"wor", b"ld"]
    assert bytes(wire.buffer) == b"NEXT"


def test_a_body_up_to_the_end_of_the_connection(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of it")
    peer.shutdown(socket.SHUT_WR)
    head = wire.head("GET")
    assert head.close and wire.read(head) == b"all of it"


def test_a_short_body_says_how_much_is_missing(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    peer.shutdown(socket.SHUT_WR)
    head = wire.head("GET")
    with pytest.raises(http1.Incomplete, match=r"\(7 bytes missing\)") as caught:
        list(wire.body(head))
    assert caught.value.missing == 7


def test_a_short_body_read_whole_says_how_much_is_missing(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(http1.Incomplete, match=r"\(6 bytes missing\)"):
        wire.read(wire.head("GET"))


def test_a_chunked_body_cut_short(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc")
    peer.shutdown(socket.SHUT_WR)
    head = wire.head("GET")
    with pytest.raises(http1.Incomplete, match=r"without sending complete message body$"):
        list(wire.body(head))


def test_a_connection_closed_before_any_answer_is_closed_not_malformed(
        pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(http1.Closed):
        wire.head("GET")


def test_a_connection_closed_inside_a_head_is_a_protocol_error(
        pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-")
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(http1.ProtocolError, match="inside an answer's head") as caught:
        wire.head("GET")
    assert not isinstance(caught.value, http1.Closed)


@pytest.mark.parametrize(("answer", "error"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.x answer"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x answer"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
    (b"HTTP/1.1 200 OK\r\nName : value\r\n\r\n", "malformed header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * (http1.HEAD_LIMIT + 10), "over-long"),
    # Latin-1 digits that str.isdigit() takes and int() refuses: an error here, never a ValueError.
    ("HTTP/1.1 2\u00b20 OK\r\n\r\n".encode("latin-1"), "not an HTTP/1.x answer"),
    ("HTTP/1.1 200 OK\r\nContent-Length: \u00b9\r\n\r\n".encode("latin-1"), "bad Content-Length"),
    (b"HTTP/1.1 100 Continue\r\n\r\n" * (http1.INTERIM_LIMIT + 1) + b"HTTP/1.1 200 OK\r\n\r\n", "interim"),
])
def test_a_malformed_head_is_a_protocol_error(pair: tuple[http1.Wire, socket.socket], answer: bytes,
                                              error: str) -> None:
    wire, peer = pair
    peer.sendall(answer)
    with pytest.raises(http1.ProtocolError, match=error):
        wire.head("GET")


def test_a_repeated_content_length_of_one_value_is_taken(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
    assert wire.read(wire.head("GET")) == b"ok"


@pytest.mark.parametrize("chunk", [b"zz\r\n", b"2\r\nokXX0\r\n\r\n", b"-5\r\n", b"0x5\r\n", b"1_0\r\n",
                                   b"+5\r\n", b"\r\n", b"1" * 17 + b"\r\n"])
def test_a_malformed_chunk_is_a_protocol_error(pair: tuple[http1.Wire, socket.socket], chunk: bytes) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
    with pytest.raises(http1.ProtocolError, match="chunk"):
        list(wire.body(wire.head("GET")))


def test_a_request_head_with_a_line_break_is_refused() -> None:
    assert http1.request_head("GET", "/v2/", [("Host", "a"), ("Accept", "*/*")]) == \
        b"GET /v2/ HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
    for fields in ([("X-Token", "a\r\nX-Evil: 1")], [("X-Token", "a\nb")], [("X-A\r\nB", "c")]):
        with pytest.raises(ValueError, match="line break"):
            http1.request_head("GET", "/v2/", fields)
    with pytest.raises(ValueError, match="line break"):
        http1.request_head("GET", "/v2/ HTTP/1.1\r\nHost: evil", [])


def test_a_body_whose_last_coding_is_not_chunked_ends_with_the_connection(
        pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 2\r\n\r\n5\r\nx")
    peer.shutdown(socket.SHUT_WR)
    head = wire.head("GET")
    assert not head.chunked and head.length is None and head.close
    assert wire.read(head) == b"5\r\nx"


def test_a_few_interim_answers_are_skipped(pair: tuple[http1.Wire, socket.socket]) -> None:
    wire, peer = pair
    peer.sendall(b"HTTP/1.1 102 Processing\r\n\r\n" * http1.INTERIM_LIMIT
                 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    head = wire.head("GET")
    assert head.status == 200 and wire.read(head) == b"ok"
