"""gRPC unary calls on the sidecar's own small HTTP/2 server, on asyncio (`grpcServer: asyncio`).

Why: grpcio runs its I/O on threads of its own and hands each call to ours, so at a steady
rate every Check pays several thread wake-ups on two busy cores: ~200-290 µs of CPU per
Check at 1,000 req/s, against ~16-20 µs for our handler (docs/performance.md). Here a Check
is one wake-up of one thread, as in the HTTP mode: the frames are parsed, the handler runs,
the answer is written.

Scope: the server side of cleartext HTTP/2 with prior knowledge (Envoy's gRPC client speaks
it), the frames a unary gRPC call uses, flow control both ways, HPACK decoding (hpack.py).
Nothing else a unary server does not need: no server push, priorities ignored, no message
compression (a compressed message is answered UNIMPLEMENTED). A frame that breaks RFC 9113
ends the connection with GOAWAY and the error's code; a broken stream is reset alone.
Memory is bounded per connection: a message may not exceed MAX_MESSAGE, and bytes received
but not yet answered may not exceed the connection window, which is given back only as
calls are answered.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import grpc

from jwtmesh_sidecar import h2_frames as h2
from jwtmesh_sidecar.grpc_server import Reply, UnaryMethod, reply_for
from jwtmesh_sidecar.hpack import HeaderDecoder, HpackError, encode_literal

log = logging.getLogger("jwtmesh.grpc")

MAX_MESSAGE = 4 << 20  # grpcio's default limit, which the sidecar had before
STREAM_WINDOW = MAX_MESSAGE + 5  # one whole message with its 5-byte prefix fits
CONNECTION_WINDOW = 2 * STREAM_WINDOW  # received, not yet answered, per connection
GIVE_BACK_AT = 1 << 20  # connection credit returned in steps, not per call
MAX_STREAMS = 100
MAX_HEADER_LIST = 64 << 10
OUR_SETTINGS = {
    h2.SETTINGS_ENABLE_PUSH: 0,
    h2.SETTINGS_MAX_CONCURRENT_STREAMS: MAX_STREAMS,
    h2.SETTINGS_INITIAL_WINDOW_SIZE: STREAM_WINDOW,
    h2.SETTINGS_MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
}

# Answers use no dynamic table, so they are fixed bytes. ":status: 200" is static entry 8;
# content-type is static entry 31, sent as a literal without indexing (0x0f 0x10).
_RESPONSE_HEADERS = b"\x88\x0f\x10\x10application/grpc"
_OK_TRAILERS = encode_literal(b"grpc-status", b"0")
_HTTP_415 = b"\x08\x03415"  # ":status: 415": a literal without indexing, name of entry 8


class _ConnectionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class _Stream:
    path: bytes
    grpc: bool  # content-type application/grpc*
    send_window: int
    data: bytearray = field(default_factory=bytearray)
    held: int = 0  # connection credit this stream's DATA took (padding included)


@dataclass(slots=True)
class _Blocked:
    """An answer whose message waits for flow-control credit (headers already sent)."""

    send_window: int
    body: bytes
    trailers: bytes


def _status_trailers(reply: Reply) -> bytes:
    fields = encode_literal(b"grpc-status", str(int(reply.code.value[0])).encode("ascii"))
    if reply.details:
        # grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2).
        fields += encode_literal(b"grpc-message", quote(reply.details, safe=" ").encode("ascii"))
    return fields


def one_message(data: bytes | bytearray) -> bytes | None:
    """The one length-prefixed message of a unary call; None if there is not exactly one."""
    if len(data) < 5 or int.from_bytes(data[1:5], "big") != len(data) - 5 or data[0] > 1:
        return None
    return bytes(data[5:])


_COMPRESSED = Reply(code=grpc.StatusCode.UNIMPLEMENTED, details="compressed messages are refused")
_TOO_LARGE = Reply(
    code=grpc.StatusCode.RESOURCE_EXHAUSTED, details=f"message larger than {MAX_MESSAGE} bytes"
)


class GrpcH2Protocol(asyncio.Protocol):
    """One HTTP/2 connection. `methods` maps "/package.Service/Method" (bytes) to handlers."""

    def __init__(self, methods: Mapping[bytes, UnaryMethod], server: AsyncioServer | None = None):
        self._methods = methods
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._preface_seen = False
        self._settings_seen = False
        self._decoder = HeaderDecoder(max_header_list_size=MAX_HEADER_LIST)
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, _Blocked] = {}
        self._last_stream = 0
        self._continuing: tuple[int, int, bytearray] | None = None  # stream, flags, block
        self._receive_window = CONNECTION_WINDOW
        self._to_give_back = 0
        self._send_window = h2.DEFAULT_WINDOW
        self._peer_stream_window = h2.DEFAULT_WINDOW
        self._peer_max_frame = h2.DEFAULT_MAX_FRAME

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            # Answers are small writes on one shared connection: with Nagle's algorithm each
            # would wait for the ACK of the one before (asyncio sets this only for sockets
            # it made itself).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._server is not None:
            self._server.connections.add(self)
        transport.write(
            h2.settings(OUR_SETTINGS) + h2.window_update(0, CONNECTION_WINDOW - h2.DEFAULT_WINDOW)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._server is not None:
            self._server.connections.discard(self)
        self._streams.clear()
        self._blocked.clear()
        self._transport = None

    def pause_writing(self) -> None:
        # A client that sends (PINGs, calls) but does not read: stop reading it until what
        # it was sent has drained, so its answers cannot pile up here without bound.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._read_frames()
        except _ConnectionError as exc:
            self._end(exc.code, str(exc))
        self._flush()

    def go_away(self) -> None:
        """The server stops: tell the client, then close once what is written has gone."""
        self._end(h2.NO_ERROR, "")
        self._flush()

    # -- reading

    def _read_frames(self) -> None:
        buffer = self._buffer
        if not self._preface_seen:
            if buffer[: len(h2.PREFACE)] != h2.PREFACE[: len(buffer)]:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
            if len(buffer) < len(h2.PREFACE):
                return
            del buffer[: len(h2.PREFACE)]
            self._preface_seen = True
        position = 0
        end = len(buffer)
        while end - position >= h2.FRAME_HEADER_SIZE and self._transport is not None:
            length_kind, flags, stream_id = h2.FRAME_HEADER.unpack_from(buffer, position)
            length = length_kind >> 8
            if length > h2.DEFAULT_MAX_FRAME:
                raise _ConnectionError(
                    h2.FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE"
                )
            start = position + h2.FRAME_HEADER_SIZE
            if end - start < length:
                break
            position = start + length
            self._on_frame(
                length_kind & 0xFF, flags, stream_id & 0x7FFFFFFF, bytes(buffer[start:position])
            )
        del buffer[:position]

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if not self._settings_seen:
            if kind != h2.SETTINGS or flags & h2.ACK:
                raise _ConnectionError(
                    h2.PROTOCOL_ERROR, "the client's first frame must be SETTINGS"
                )
            self._settings_seen = True
        if self._continuing is not None and kind != h2.CONTINUATION:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "a header block was interrupted")
        if kind == h2.DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == h2.HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == h2.CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif kind == h2.WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == h2.SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == h2.PING:
            self._on_ping(flags, stream_id, payload)
        elif kind == h2.RST_STREAM:
            self._on_rst_stream(stream_id, payload)
        elif kind == h2.PRIORITY:
            if stream_id == 0:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                self._reset(stream_id, h2.FRAME_SIZE_ERROR)
        elif kind == h2.GOAWAY:
            if stream_id != 0:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "GOAWAY on a stream")
        elif kind == h2.PUSH_PROMISE:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "a client may not push")
        # Unknown frame types are ignored (RFC 9113 §4.1).

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self._receive_window -= size
        if self._receive_window < 0:
            raise _ConnectionError(h2.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        stream = self._streams.get(stream_id)
        if stream is None:
            self._give_back(size)
            if stream_id > self._last_stream:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream already answered or reset: late frames are dropped
        stream.held += size
        if stream.held > STREAM_WINDOW:
            self._reset(stream_id, h2.FLOW_CONTROL_ERROR)
            return
        stream.data += _unpadded(flags, payload)
        if flags & h2.END_STREAM:
            self._answer(stream_id, stream)
        elif len(stream.data) >= 5 and int.from_bytes(stream.data[1:5], "big") > MAX_MESSAGE:
            # Refused now: waiting for the rest would leave the client stalled on our window.
            self._forget(stream_id)
            self._out.append(self._trailers_only(stream_id, _TOO_LARGE))
            self._out.append(h2.rst_stream(stream_id, h2.NO_ERROR))

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = _unpadded(flags, payload)
        if flags & h2.PRIORITY_FLAG:
            if len(block) < 5:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "HEADERS priority fields truncated")
            block = block[5:]
        if flags & h2.END_HEADERS:
            self._on_header_block(flags, stream_id, block)
        else:
            self._continuing = (stream_id, flags, bytearray(block))

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is None or self._continuing[0] != stream_id:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "CONTINUATION without HEADERS before it")
        _, first_flags, block = self._continuing
        block += payload
        if len(block) > MAX_HEADER_LIST:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "header block larger than the list limit")
        if flags & h2.END_HEADERS:
            self._continuing = None
            self._on_header_block(first_flags, stream_id, bytes(block))

    def _on_header_block(self, flags: int, stream_id: int, block: bytes) -> None:
        try:  # always decoded, even for a refused stream: the table must stay in step
            fields = self._decoder.decode(block)
        except HpackError as exc:
            raise _ConnectionError(h2.COMPRESSION_ERROR, str(exc)) from None
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers: they must end the stream, and carry nothing we use
            if flags & h2.END_STREAM:
                self._answer(stream_id, stream)
            else:
                self._reset(stream_id, h2.PROTOCOL_ERROR)
            return
        if stream_id % 2 == 0 or stream_id <= self._last_stream:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "HEADERS opening a closed or server stream")
        self._last_stream = stream_id
        if len(self._streams) + len(self._blocked) >= MAX_STREAMS:  # answers held count too
            self._out.append(h2.rst_stream(stream_id, h2.REFUSED_STREAM))
            return
        method = path = None
        content_type = b""
        for name, value in fields:
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b"content-type":
                content_type = value
        if method != b"POST" or not path:
            self._out.append(h2.rst_stream(stream_id, h2.PROTOCOL_ERROR))
            return
        stream = _Stream(
            path, content_type.startswith(b"application/grpc"), self._peer_stream_window
        )
        self._streams[stream_id] = stream
        if flags & h2.END_STREAM:
            self._answer(stream_id, stream)

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionError(h2.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > h2.MAX_WINDOW:
                raise _ConnectionError(h2.FLOW_CONTROL_ERROR, "connection window overflow")
        else:
            target: _Stream | _Blocked | None = self._blocked.get(stream_id) or self._streams.get(
                stream_id
            )
            if target is None:
                return  # a closed stream: allowed, and nothing to do
            if increment == 0:
                self._reset(stream_id, h2.PROTOCOL_ERROR)
                return
            target.send_window += increment
            if target.send_window > h2.MAX_WINDOW:
                self._reset(stream_id, h2.FLOW_CONTROL_ERROR)
                return
        self._send_blocked()

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & h2.ACK:
            if payload:
                raise _ConnectionError(
                    h2.FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload"
                )
            return
        if len(payload) % 6:
            raise _ConnectionError(h2.FRAME_SIZE_ERROR, "SETTINGS of the wrong size")
        for key, value in struct.iter_unpack(">HI", payload):
            if key == h2.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > h2.MAX_WINDOW:
                    raise _ConnectionError(h2.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._peer_stream_window
                self._peer_stream_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                for blocked in self._blocked.values():
                    blocked.send_window += delta
            elif key == h2.SETTINGS_MAX_FRAME_SIZE:
                if not h2.DEFAULT_MAX_FRAME <= value <= h2.MAX_FRAME_LIMIT:
                    raise _ConnectionError(
                        h2.PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range"
                    )
                self._peer_max_frame = value
            elif key == h2.SETTINGS_ENABLE_PUSH and value > 1:
                raise _ConnectionError(h2.PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1")
            # HEADER_TABLE_SIZE: our answers use no dynamic table, so any size fits.
        self._out.append(h2.frame(h2.SETTINGS, h2.ACK, 0))
        self._send_blocked()

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise _ConnectionError(h2.FRAME_SIZE_ERROR, "PING of the wrong size")
        if not flags & h2.ACK:
            self._out.append(h2.frame(h2.PING, h2.ACK, 0, payload))

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id > self._last_stream:
            raise _ConnectionError(h2.PROTOCOL_ERROR, "RST_STREAM on stream 0 or an idle stream")
        if len(payload) != 4:
            raise _ConnectionError(h2.FRAME_SIZE_ERROR, "RST_STREAM of the wrong size")
        self._forget(stream_id)
        self._blocked.pop(stream_id, None)

    # -- answering

    def _answer(self, stream_id: int, stream: _Stream) -> None:
        self._forget(stream_id)
        if not stream.grpc:
            self._out.append(
                h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, _HTTP_415)
            )
            return
        request = one_message(stream.data)
        if request is not None and stream.data[0] == 1:
            reply = _COMPRESSED
        else:
            reply = reply_for(self._methods, stream.path, request)
        if reply.message is None or reply.code is not grpc.StatusCode.OK:
            self._out.append(self._trailers_only(stream_id, reply))
            self._flush()
            return
        body = len(reply.message).to_bytes(5, "big") + reply.message
        out = self._out
        out.append(h2.frame(h2.HEADERS, h2.END_HEADERS, stream_id, _RESPONSE_HEADERS))
        if len(body) <= min(stream.send_window, self._send_window, self._peer_max_frame):
            self._send_window -= len(body)  # the common case: the whole answer at once
            out.append(h2.frame(h2.DATA, 0, stream_id, body))
            out.append(
                h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, _OK_TRAILERS)
            )
            # Sent now, not after the rest of this read: Envoy works on this answer while
            # we decide the next (held to the end, a read of 20 calls stalled it for all 20).
            self._flush()
        else:
            self._blocked[stream_id] = _Blocked(stream.send_window, body, _OK_TRAILERS)
            self._send_blocked()

    @staticmethod
    def _trailers_only(stream_id: int, reply: Reply) -> bytes:
        """A call that ends without a message: one HEADERS frame with the status."""
        block = _RESPONSE_HEADERS + _status_trailers(reply)
        return h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, block)

    def _send_blocked(self) -> None:
        """Send what flow control now allows of the answers waiting for credit."""
        for stream_id, blocked in list(self._blocked.items()):
            while blocked.body:
                size = min(
                    len(blocked.body), blocked.send_window, self._send_window, self._peer_max_frame
                )
                if size <= 0:
                    break
                self._out.append(h2.frame(h2.DATA, 0, stream_id, blocked.body[:size]))
                blocked.body = blocked.body[size:]
                blocked.send_window -= size
                self._send_window -= size
            if blocked.body:
                continue
            del self._blocked[stream_id]
            self._out.append(
                h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, blocked.trailers)
            )

    def _forget(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._give_back(stream.held)

    def _reset(self, stream_id: int, code: int) -> None:
        self._forget(stream_id)
        self._blocked.pop(stream_id, None)
        self._out.append(h2.rst_stream(stream_id, code))

    def _give_back(self, size: int) -> None:
        """Return connection credit for bytes no longer held, in steps of GIVE_BACK_AT."""
        self._to_give_back += size
        if self._to_give_back >= GIVE_BACK_AT:
            self._out.append(h2.window_update(0, self._to_give_back))
            self._receive_window += self._to_give_back
            self._to_give_back = 0

    def _end(self, code: int, message: str) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if code != h2.NO_ERROR:
            log.warning(
                "gRPC connection closed: %s", message, extra={"event": "grpc_connection_error"}
            )
        self._out.append(h2.goaway(self._last_stream, code, message.encode("utf-8")[:256]))
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if self._out and self._transport is not None:
            self._transport.write(b"".join(self._out))
        self._out.clear()


def _unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & h2.PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise _ConnectionError(h2.PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def _listening_socket(address: str) -> socket.socket:
    """A bound, listening socket for "host:port" or "unix:/path"."""
    target: str | tuple[str, int]
    if address.startswith("unix:"):
        family, target = socket.AF_UNIX, address[len("unix:") :]
    else:
        host, _, port = address.rpartition(":")  # port 0 allowed: any free port
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        target = (host, int(port))
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(target)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class AsyncioServer:
    """The GrpcServer of grpc_server.py on asyncio, on an event loop thread of its own.

    `threads` and `options` are grpcio's and have no meaning here; they are accepted so
    the three servers are built the same way."""

    def __init__(
        self,
        methods: Mapping[str, UnaryMethod],
        threads: int = 1,
        options: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        self._methods = {name.encode("utf-8"): handler for name, handler in methods.items()}
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jwtmesh-grpc", daemon=True
        )
        self.connections: set[GrpcH2Protocol] = set()

    def add_port(self, address: str) -> int:
        """Listen on "host:port" or "unix:/path": the bound port (1 for a socket file), 0 if
        it failed (as grpcio's add_port)."""
        try:
            sock = _listening_socket(address)
        except (OSError, ValueError) as exc:
            log.warning("gRPC server cannot listen on %s: %s", address, exc)
            return 0
        self._sockets.append(sock)
        return 1 if sock.family == socket.AF_UNIX else int(sock.getsockname()[1])

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    async def _listen(self) -> None:
        def connection() -> GrpcH2Protocol:
            return GrpcH2Protocol(self._methods, self)

        for sock in self._sockets:
            if sock.family == socket.AF_UNIX:
                server = await self._loop.create_unix_server(connection, sock=sock)
            else:
                server = await self._loop.create_server(connection, sock=sock)
            self._servers.append(server)

    def stop(self, grace: float = 1.0) -> None:
        """Stop listening and close every connection with GOAWAY. Calls are answered as they
        arrive, so none is running when this runs on the loop."""

        async def close() -> None:
            for server in self._servers:
                server.close()
            for connection in list(self.connections):
                connection.go_away()
            for server in self._servers:
                await asyncio.wait_for(server.wait_closed(), grace)

        if not self._thread.is_alive():
            for sock in self._sockets:
                sock.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(grace + 5)
        except Exception as exc:  # stopping goes on regardless
            log.warning("gRPC server did not close cleanly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
