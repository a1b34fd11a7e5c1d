"""A gRPC server for unary methods that runs each call where it is polled, on grpcio's core.

Why not `grpc.server()`: its synchronous server polls the completion queue on one thread
and runs each handler on a pool thread, and a unary call crosses between the two several
times (the call arrives; the worker asks for the message and waits for the poller to
deliver it; the answer goes back). On two cores those wake-ups cost ~140 µs per Check,
fifteen times our handler (docs/performance.md). Our handlers are short, CPU-bound and
hold the GIL anyway, so this server runs them on the polling thread itself: a call
arrives, its message is received, the handler answers, and the loop moves on. Same
HTTP/2 stack, no hand-offs: a Check costs about half the CPU.

It drives grpcio's Cython layer (`grpc._cython.cygrpc`) with the same calls
`grpc._server` makes, and must keep the same lifecycle rules, because the C core assumes
them (tests/e2e/test_grpc_server_lifecycle.py starts and stops it hundreds of times):

- No call on the server overlaps `destroy()`: `shutdown()`, `request_call()`,
  `cancel_all_calls()` and `destroy()` run under one lock, as `grpc._server` does with
  its state lock. The shutdown tag can reach a poller while the thread that called
  `shutdown()` is still inside `grpc_server_shutdown_and_notify` (stopping listeners);
  destroying then frees the server under that thread: SIGSEGV in `stop()`. Since grpcio
  1.80 this is the common case: the Python build now uses EventEngine listeners (the
  `event_engine_poller_for_python` experiment became default), whose shutdown completes
  on an EventEngine thread, so the tag is published at once when no connection is left.
- The server is destroyed, and the queue shut down, only when every tag handed to the
  core has come back (the shutdown tag, the pending request for a call, each call's
  batches), as `grpc._server` waits for no rpc state and no due tag. Otherwise a poller
  still running a handler answers on a queue already shut down: a failed check in the
  core (`grpc_cq_begin_op`), SIGABRT.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from grpc._cython import cygrpc

log = logging.getLogger("jwtmesh.grpc")


@dataclass(frozen=True)
class Reply:
    """What a unary method answers: a serialized message (on OK) and the call's status."""

    message: bytes | None = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""


UnaryMethod = Callable[[bytes], Reply]
"""Serialized request in, Reply out. Runs on a polling thread, blocking it: keep it short."""

_NEW_CALL = "new-call"
_SHUTDOWN = "shutdown"
_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class _Receiving:
    call: Any
    method: bytes


@dataclass(frozen=True)
class _Finishing:
    call: Any  # held until the answer is sent


def _status(code: grpc.StatusCode) -> int:
    return int(code.value[0])


def _answer(reply: Reply) -> tuple[Any, ...]:
    """The one batch that ends a call: headers, the message if any, the status."""
    operations: list[Any] = [cygrpc.SendInitialMetadataOperation(None, 0)]
    if reply.message is not None and reply.code is grpc.StatusCode.OK:
        operations.append(cygrpc.SendMessageOperation(reply.message, 0))
    operations.append(
        cygrpc.SendStatusFromServerOperation(
            None, _status(reply.code), reply.details.encode("utf-8"), 0
        )
    )
    # Completes once the client has the status (or went away): the call is then done.
    operations.append(cygrpc.ReceiveCloseOnServerOperation(0))
    return tuple(operations)


def reply_for(methods: Mapping[bytes, UnaryMethod], method: bytes, request: bytes | None) -> Reply:
    """Which reply a call gets; a failing handler is an INTERNAL error with no details."""
    handler = methods.get(method)
    if handler is None:
        return Reply(code=grpc.StatusCode.UNIMPLEMENTED, details="unknown method")
    if request is None:
        return Reply(code=grpc.StatusCode.INVALID_ARGUMENT, details="expected one request message")
    try:
        return handler(request)
    except Exception:
        log.exception("gRPC method %s failed", method.decode("utf-8", "replace"))
        return Reply(code=grpc.StatusCode.INTERNAL, details="internal error")


class UnaryServer:
    """`methods` maps full method names ("/package.Service/Method") to handlers.

    `threads` poll the one completion queue, and each runs whatever event it gets to the
    end. One is the least CPU per call; two measured best for latency (while one runs a
    handler, the other is already in the C core taking the next call), more only add
    GIL contention (docs/performance.md).
    """

    def __init__(
        self,
        methods: Mapping[str, UnaryMethod],
        threads: int = 2,
        options: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        self._methods = {name.encode("utf-8"): handler for name, handler in methods.items()}
        self._queue = cygrpc.CompletionQueue()
        self._server = cygrpc.Server(options, False)
        self._server.register_completion_queue(self._queue)
        self._threads = [
            threading.Thread(target=self._serve, name=f"jwtmesh-grpc-{i}", daemon=True)
            for i in range(threads)
        ]
        # Guards the server's lifecycle (module docstring) and the count below.
        self._lock = threading.Lock()
        self._due = 0  # tags handed to the core that have not come back from the queue
        self._stopping = False
        self._destroyed = False
        self._stopped = threading.Event()

    def add_port(self, address: str) -> int:
        """Listen on "host:port" or "unix:/path"; returns the bound port (0 if it failed)."""
        return int(self._server.add_http2_port(address.encode("utf-8")))

    def start(self) -> None:
        with self._lock:
            self._server.start()
            self._request_call()
        for thread in self._threads:
            thread.start()

    def stop(self, grace: float = 1.0) -> None:
        """Stop taking calls; calls still running after `grace` seconds are cancelled."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._server.shutdown(self._queue, _SHUTDOWN)
                self._due += 1
        if not self._stopped.wait(grace):
            with self._lock:
                if not self._destroyed:
                    self._server.cancel_all_calls()
            self._stopped.wait(5)

    def _request_call(self) -> None:
        """Ask the core for the next call; the caller holds the lock."""
        self._server.request_call(self._queue, self._queue, _NEW_CALL)
        self._due += 1

    def _came_back(self) -> None:
        """One due tag is back. The last one after shutdown ends the server."""
        with self._lock:
            self._due -= 1
            if self._due == 0 and self._stopping and not self._destroyed:
                self._destroyed = True
                self._server.destroy()
                self._queue.shutdown()  # every poller now gets queue_shutdown and ends
                self._stopped.set()

    def _serve(self) -> None:
        while True:
            event = self._queue.poll(time.time() + _POLL_SECONDS)
            if event.completion_type == cygrpc.CompletionType.queue_timeout:
                continue
            if event.completion_type == cygrpc.CompletionType.queue_shutdown:
                return
            try:
                self._handle(event)
            except Exception:  # one broken call must not end the server
                log.exception("gRPC server event failed")
            del event  # releases the call (if this was its last event) before polling again
            self._came_back()

    def _start_batch(self, call: Any, operations: tuple[Any, ...], tag: object) -> None:
        with self._lock:
            self._due += 1
        if call.start_server_batch(operations, tag) != cygrpc.CallError.ok:
            self._came_back()  # the core refused the batch: its tag will never come back
            raise RuntimeError("the core refused a batch")

    def _handle(self, event: Any) -> None:
        tag = event.tag
        if tag is _NEW_CALL:
            if not event.success:  # the server is shutting down
                return
            with self._lock:
                if not self._stopping:
                    self._request_call()
            self._start_batch(
                event.call,
                (cygrpc.ReceiveMessageOperation(0),),
                _Receiving(event.call, event.call_details.method),
            )
        elif isinstance(tag, _Receiving):
            request = event.batch_operations[0].message() if event.success else None
            reply = reply_for(self._methods, tag.method, request)
            self._start_batch(tag.call, _answer(reply), _Finishing(tag.call))
        # _SHUTDOWN and _Finishing: nothing to do but count them back (_serve).
