"""The asyncio gRPC server (grpc_h2.py) at the HTTP/2 level, over a real socket: what a
client that breaks the protocol, or pushes on flow control, gets; and that nothing it sends
stops the server answering everyone else."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwtmesh_sidecar import h2_frames as h2
from jwtmesh_sidecar.grpc_h2 import MAX_MESSAGE, MAX_STREAMS, AsyncioServer
from jwtmesh_sidecar.grpc_server import Reply
from jwtmesh_sidecar.hpack import HeaderDecoder, encode_literal

ECHO = "/test.Echo/Echo"
BIG = "/test.Echo/Big"
BIG_ANSWER = bytes(range(256)) * 400  # 102,400 bytes: more than the default 65,535 window


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = AsyncioServer(
        {ECHO: lambda request: Reply(request[::-1]), BIG: lambda _request: Reply(BIG_ANSWER)}
    )
    bound = server.add_port("127.0.0.1:0")
    server.start()
    yield bound
    server.stop(grace=0.5)


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Every raw connection is closed when its test ends, passed or failed."""
    yield
    while _OPEN:
        _OPEN.pop().close()


@dataclass
class Frame:
    kind: int
    flags: int
    stream_id: int
    payload: bytes


class RawClient:
    """A hand-driven HTTP/2 client: sends exact frames, reads what comes back."""

    def __init__(self, port: int, opening: bytes = h2.PREFACE + h2.settings({})) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        _OPEN.append(self.sock)
        self.buffer = b""
        self.decoder = HeaderDecoder()
        self.send(opening)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """False once the server has closed the connection (it may, on a protocol error)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def frame(self) -> Frame | None:
        """The next frame, or None once the server has closed the connection."""
        while True:
            if len(self.buffer) >= 9:
                length_kind, flags, stream_id = h2.FRAME_HEADER.unpack_from(self.buffer)
                end = 9 + (length_kind >> 8)
                if len(self.buffer) >= end:
                    payload, self.buffer = self.buffer[9:end], self.buffer[end:]
                    return Frame(length_kind & 0xFF, flags, stream_id & 0x7FFFFFFF, payload)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:  # closed with our bytes unread: a reset, not a FIN
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def until(self, kind: int, stream_id: int | None = None) -> Frame:
        while True:
            got = self.frame()
            assert got is not None, f"closed before a frame of type {kind}"
            if got.kind == kind and (stream_id is None or got.stream_id == stream_id):
                return got

    def goaway_code(self) -> int:
        """The GOAWAY's error code, after which the server must close."""
        got = self.until(h2.GOAWAY)
        while self.frame() is not None:
            pass
        return int(struct.unpack(">II", got.payload[:8])[1])

    def close(self) -> None:
        self.sock.close()


def request_headers(path: str = ECHO, content_type: bytes = b"application/grpc") -> bytes:
    fields = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", b"sidecar"),
        (b"content-type", content_type),
        (b"te", b"trailers"),
    ]
    return b"".join(encode_literal(name, value) for name, value in fields)


def message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def still_serves(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert channel.unary_unary(ECHO)(b"alive", timeout=5) == b"evila"


def test_a_call_frame_by_frame(port: int) -> None:
    client = RawClient(port)
    client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, request_headers()))
    client.send(h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"abc")))
    headers = client.until(h2.HEADERS, 1)
    assert dict(client.decoder.decode(headers.payload))[b":status"] == b"200"
    assert client.until(h2.DATA, 1).payload == message(b"cba")
    trailers = client.until(h2.HEADERS, 1)
    assert trailers.flags & h2.END_STREAM
    assert dict(client.decoder.decode(trailers.payload))[b"grpc-status"] == b"0"
    client.close()


def test_ping_is_answered_with_the_same_bytes(port: int) -> None:
    client = RawClient(port)
    client.send(h2.frame(h2.PING, 0, 0, b"12345678"))
    answer = client.until(h2.PING)
    assert answer.flags & h2.ACK
    assert answer.payload == b"12345678"
    client.close()


def test_an_answer_larger_than_the_window_waits_for_credit(port: int) -> None:
    client = RawClient(port)  # the default 65,535-byte windows
    client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, request_headers(BIG)))
    client.send(h2.frame(h2.DATA, h2.END_STREAM, 1, message(b"")))
    received = b""
    while len(received) < h2.DEFAULT_WINDOW:
        received += client.until(h2.DATA, 1).payload
    assert len(received) == h2.DEFAULT_WINDOW, "sent beyond the window"
    client.send(h2.window_update(0, 1 << 20) + h2.window_update(1, 1 << 20))
    while True:
        got = client.until(h2.HEADERS if len(received) == len(BIG_ANSWER) + 5 else h2.DATA, 1)
        if got.kind == h2.HEADERS:
            break
        received += got.payload
    assert received == message(BIG_ANSWER)
    assert dict(client.decoder.decode(got.payload))[b"grpc-status"] == b"0"
    client.close()


def test_a_message_over_the_limit_is_refused_at_once(port: int) -> None:
    client = RawClient(port)
    client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, request_headers()))
    client.send(h2.frame(h2.DATA, 0, 1, b"\x00" + (MAX_MESSAGE + 1).to_bytes(4, "big")))
    answer = client.until(h2.HEADERS, 1)
    fields = dict(client.decoder.decode(answer.payload))
    assert fields[b"grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]).encode()
    assert client.until(h2.RST_STREAM, 1).payload == struct.pack(">I", h2.NO_ERROR)
    client.close()


def test_data_beyond_the_stream_window_resets_the_stream(port: int) -> None:
    client = RawClient(port)
    client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, request_headers()))
    chunk = b"\x00" * h2.DEFAULT_MAX_FRAME
    client.send(h2.frame(h2.DATA, 0, 1, b"\x00" + (MAX_MESSAGE).to_bytes(4, "big")))
    for _ in range(MAX_MESSAGE // len(chunk) + 1):
        client.send(h2.frame(h2.DATA, 0, 1, chunk))
    reset = client.until(h2.RST_STREAM, 1)
    assert reset.payload == struct.pack(">I", h2.FLOW_CONTROL_ERROR)
    client.close()
    still_serves(port)


def test_answers_held_for_credit_count_against_the_stream_limit(port: int) -> None:
    client = RawClient(port, opening=h2.PREFACE + h2.settings({h2.SETTINGS_INITIAL_WINDOW_SIZE: 0}))
    for stream_id in range(1, 2 * MAX_STREAMS + 2, 2):  # one more call than the limit
        client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, stream_id, request_headers()))
        client.send(h2.frame(h2.DATA, h2.END_STREAM, stream_id, message(b"abc")))
    refused = client.until(h2.RST_STREAM)
    assert refused.stream_id == 2 * MAX_STREAMS + 1
    assert refused.payload == struct.pack(">I", h2.REFUSED_STREAM)


def test_a_client_that_never_reads_is_not_buffered_without_bound(port: int) -> None:
    client = RawClient(port)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sock.settimeout(0.5)
    sent = 0
    with contextlib.suppress(TimeoutError):  # the server stopped reading: our sends block
        while sent < 64 << 20:
            client.sock.sendall(h2.frame(h2.PING, 0, 0, b"12345678") * 1000)
            sent += 17_000
    assert sent < 64 << 20, "the server read 64 MiB of PINGs it could not answer"
    still_serves(port)


def test_not_grpc_is_415(port: int) -> None:
    client = RawClient(port)
    client.send(
        h2.frame(
            h2.HEADERS,
            h2.END_HEADERS | h2.END_STREAM,
            1,
            request_headers(content_type=b"text/plain"),
        )
    )
    answer = client.until(h2.HEADERS, 1)
    assert dict(client.decoder.decode(answer.payload))[b":status"] == b"415"
    client.close()


def test_a_compressed_message_is_unimplemented(port: int) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.RpcError) as error,
    ):
        channel.unary_unary(ECHO)(b"x" * 1000, timeout=5, compression=grpc.Compression.Gzip)
    assert error.value.code() is grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("what", "data", "code"),
    [
        ("not HTTP/2", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", h2.PROTOCOL_ERROR),
        ("DATA on stream 0", h2.frame(h2.DATA, 0, 0, b"x"), h2.PROTOCOL_ERROR),
        ("DATA on an idle stream", h2.frame(h2.DATA, 0, 7, b"x"), h2.PROTOCOL_ERROR),
        (
            "HEADERS on an even stream",
            h2.frame(h2.HEADERS, h2.END_HEADERS, 2, request_headers()),
            h2.PROTOCOL_ERROR,
        ),
        (
            "a broken header block",
            h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"\x80"),
            h2.COMPRESSION_ERROR,
        ),
        (
            "CONTINUATION alone",
            h2.frame(h2.CONTINUATION, h2.END_HEADERS, 1, b""),
            h2.PROTOCOL_ERROR,
        ),
        ("PING of 7 bytes", h2.frame(h2.PING, 0, 0, b"1234567"), h2.FRAME_SIZE_ERROR),
        ("SETTINGS of 5 bytes", h2.frame(h2.SETTINGS, 0, 0, b"12345"), h2.FRAME_SIZE_ERROR),
        ("WINDOW_UPDATE of 0", h2.window_update(0, 0), h2.PROTOCOL_ERROR),
        ("a window overflow", h2.window_update(0, h2.MAX_WINDOW), h2.FLOW_CONTROL_ERROR),
        (
            "PUSH_PROMISE",
            h2.frame(h2.PUSH_PROMISE, h2.END_HEADERS, 1, b"\x00\x00\x00\x02"),
            h2.PROTOCOL_ERROR,
        ),
        (
            "a frame over 16 KiB",
            h2.frame(h2.DATA, 0, 1, b"x" * (h2.DEFAULT_MAX_FRAME + 1)),
            h2.FRAME_SIZE_ERROR,
        ),
        (
            "padding longer than the frame",
            h2.frame(h2.DATA, h2.PADDED, 1, b"\x09abc"),
            h2.PROTOCOL_ERROR,
        ),
    ],
)
def test_a_protocol_error_ends_the_connection_with_its_code(
    port: int, what: str, data: bytes, code: int
) -> None:
    client = RawClient(port, opening=b"" if what == "not HTTP/2" else h2.PREFACE + h2.settings({}))
    if what == "padding longer than the frame":
        client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, request_headers()))
    client.send(data)
    assert client.goaway_code() == code, what
    client.close()
    still_serves(port)


def test_the_first_frame_must_be_settings(port: int) -> None:
    client = RawClient(port, opening=h2.PREFACE + h2.frame(h2.PING, 0, 0, b"12345678"))
    assert client.goaway_code() == h2.PROTOCOL_ERROR
    client.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frames=st.lists(
        st.tuples(
            st.integers(0, 10),  # frame type, unknown ones included
            st.integers(0, 255),
            st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),
            st.binary(max_size=64),
        ),
        max_size=8,
    )
)
def test_any_frames_end_in_an_answer_or_a_goaway_never_a_crash(
    port: int, frames: list[tuple[int, int, int, bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with RawClient(port) as client:
        client.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, request_headers()))
        for kind, flags, stream_id, payload in frames:
            if not client.send(h2.frame(kind, flags, stream_id, payload)):
                break
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        while client.frame() is not None:
            pass
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an unexpected error"
