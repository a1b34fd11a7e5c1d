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

The private layer has no compatibility promise, so it is fenced: pyproject.toml bounds
grpcio to the versions tested, and `choose_server` falls back to the public
`grpc.server()` (`PublicServer`, same methods, about twice the CPU per Check) when grpcio
is outside that range or lacks a name used here, or when configuration asks for it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

try:
    from grpc._cython import cygrpc
except ImportError:  # grpcio moved its private layer: choose_server falls back
    cygrpc = None

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


class GrpcServer(Protocol):
    """What the sidecar needs of either server."""

    def add_port(self, address: str) -> int: ...
    def start(self) -> None: ...
    def stop(self, grace: float = 1.0) -> None: ...


class PublicServer:
    """The fallback: grpcio's public `grpc.server()` answering the same methods with the
    same replies, as bytes (no (de)serializers), each call handed to a pool thread."""

    def __init__(
        self,
        methods: Mapping[str, UnaryMethod],
        threads: int = 2,
        options: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        by_name = {name.encode("utf-8"): handler for name, handler in methods.items()}
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(_behaviour(by_name, name.encode("utf-8")))
            for name in methods
        }
        self._server = grpc.server(
            ThreadPoolExecutor(threads, thread_name_prefix="jwtmesh-grpc-public"),
            handlers=[_ByMethodName(handlers)],
            options=options,
        )

    def add_port(self, address: str) -> int:
        try:
            return int(self._server.add_insecure_port(address))
        except RuntimeError:  # newer grpcio raises instead of returning 0
            return 0

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float = 1.0) -> None:
        self._server.stop(grace).wait(grace + 5)


class _ByMethodName(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, handlers: Mapping[str, Any]) -> None:
        self._handlers = dict(handlers)

    def service(self, handler_call_details: Any) -> Any:
        return self._handlers.get(handler_call_details.method)  # None: UNIMPLEMENTED


def _behaviour(methods: Mapping[bytes, UnaryMethod], method: bytes) -> Callable[..., bytes]:
    def behaviour(request: bytes, context: Any) -> bytes:
        reply = reply_for(methods, method, request)
        if reply.code is not grpc.StatusCode.OK:
            context.abort(reply.code, reply.details)  # raises
        return reply.message or b""

    return behaviour


# The grpcio versions the core server was tested on, >= 1.66 and < 1.86, as pyproject.toml
# says: a new grpcio gets the core server once the lifecycle stress test and the Envoy
# suites passed on it (and both bounds move together).
TESTED_GRPCIO = ((1, 66), (1, 86))
TESTED_RANGE = ">=1.66,<1.86"

# Everything the core server touches in cygrpc: name -> the attributes it uses.
_CONTRACT: dict[str, tuple[str, ...]] = {
    "CompletionQueue": ("poll", "shutdown"),
    "Server": (
        "register_completion_queue",
        "add_http2_port",
        "start",
        "request_call",
        "shutdown",
        "cancel_all_calls",
        "destroy",
    ),
    "Call": ("start_server_batch",),
    "CallError": ("ok",),
    "CompletionType": ("queue_timeout", "queue_shutdown"),
    "RequestCallEvent": ("completion_type", "tag", "success", "call", "call_details"),
    "BatchOperationEvent": ("completion_type", "tag", "success", "batch_operations"),
    "CallDetails": ("method",),
    "ReceiveMessageOperation": ("message",),
    "SendInitialMetadataOperation": (),
    "SendMessageOperation": (),
    "SendStatusFromServerOperation": (),
    "ReceiveCloseOnServerOperation": (),
}


def missing_from_core() -> list[str]:
    """The cygrpc names the core server uses that this grpcio lacks (empty: all there)."""
    if cygrpc is None:
        return ["grpc._cython.cygrpc"]
    missing = []
    for name, attributes in _CONTRACT.items():
        owner = getattr(cygrpc, name, None)
        if owner is None:
            missing.append(f"cygrpc.{name}")
        else:
            missing += [f"cygrpc.{name}.{a}" for a in attributes if not hasattr(owner, a)]
    return missing


@dataclass(frozen=True)
class ServerChoice:
    server: str  # "asyncio" (grpc_h2.py), "core" (UnaryServer) or "public" (PublicServer)
    log_line: str  # which server runs, and why the fallback if it is one


def choose_server(requested: str, grpcio_version: str, missing: Sequence[str]) -> ServerChoice:
    """Which gRPC server to run: `requested` is the configuration's grpcServer."""
    if requested == "asyncio":  # ours: no grpcio version or private name to check
        return ServerChoice("asyncio", "gRPC server: asyncio (HTTP/2 on asyncio)")
    found = re.match(r"(\d+)\.(\d+)", grpcio_version)
    version = (int(found[1]), int(found[2])) if found else None
    low, high = TESTED_GRPCIO
    if requested == "public":
        why = "grpcServer is public"
    elif missing:
        why = f"grpcio {grpcio_version} lacks {', '.join(missing)}"
    elif version is None or not low <= version < high:
        why = f"grpcio {grpcio_version} is outside the tested range {TESTED_RANGE}"
    else:
        return ServerChoice("core", f"gRPC server: core (grpcio {grpcio_version})")
    return ServerChoice("public", f"gRPC server: public grpc.server() fallback because {why}")
