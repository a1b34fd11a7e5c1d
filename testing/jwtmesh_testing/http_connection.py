"""One HTTP ext_authz connection to an in-process sidecar whose clock, trust bundle and
policy a test sets: the real AuthzHttpProtocol and DecisionService over a transport that
records what is written. For the answer memo's tests (unit and property)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field

from jwtmesh.policy import ALLOW_ALL, Policy
from jwtmesh.tokens.verify import Verifier
from jwtmesh_sidecar.answer_memo import MAX_ENTRIES, AnswerMemo
from jwtmesh_sidecar.decide import Inbound, TokenSettings
from jwtmesh_sidecar.http_adapter import AuthzHttpProtocol
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.service import DecisionLog, DecisionService


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@dataclass
class HttpConnection:
    """`remember`: the memo's size (0: a sidecar that remembers nothing)."""

    verifier: Verifier
    now: float
    policy: Policy = ALLOW_ALL
    remember: int = MAX_ENTRIES
    log: io.StringIO = field(default_factory=io.StringIO)

    def __post_init__(self) -> None:
        self.metrics = SidecarMetrics()
        inbound = Inbound(lambda: self.verifier, lambda: self.policy, TokenSettings(), 0)
        self.service = DecisionService(
            inbound, None, self.metrics, DecisionLog(self.log), clock=lambda: self.now
        )
        self.memo = AnswerMemo(self.remember)
        self.reconnect()

    def reconnect(self) -> None:
        """A new connection to the same sidecar (the same memo)."""
        self.transport = RecordingTransport()
        self.protocol = AuthzHttpProtocol(self.service, self.memo)
        self.protocol.connection_made(self.transport)

    def prime(self, data: bytes) -> bytes:
        """Send `data` until the memo holds it (twice: a request is remembered when it is
        allowed a second time); the answer."""
        answers = {self.send(data), self.send(data)}
        assert len(answers) == 1
        assert data in self.memo._entries, "the request was not remembered"
        return answers.pop()

    def send(self, *chunks: bytes) -> bytes:
        """Everything answered to these reads, in order."""
        before = len(self.transport.written)
        for chunk in chunks:
            self.protocol.data_received(chunk)
        return b"".join(self.transport.written[before:])

    def answer_without_memo(self, data: bytes) -> bytes:
        """What a sidecar that remembers nothing answers now, in the same state."""
        twin = HttpConnection(self.verifier, self.now, self.policy, remember=0)
        return twin.send(data)

    def decisions(self, result: str, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "jwtmesh_decisions_total", {"result": result, "reason": reason}
        )
        return value or 0.0


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])
