"""The HTTP answer memo: a repeated request is answered with the same bytes only while the
full path would answer the same (same bundle, same policy, token not expired, clock not
turned back), and nothing but an allowed inbound decision is ever remembered.

Each test drives the real AuthzHttpProtocol and DecisionService over a recording
transport, and compares the memo's answer with a sidecar that remembers nothing."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import weakref
from dataclasses import dataclass, field

import pytest

from jwtmesh.policy import ALLOW_ALL, Policy, policy_from_dict
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.answer_memo import MAX_REQUEST_BYTES, AnswerMemo
from jwtmesh_sidecar.decide import Inbound, TokenSettings
from jwtmesh_sidecar.http_adapter import AuthzHttpProtocol
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.service import DecisionLog, DecisionService

NOW = 1_800_000_000.0
ISS = "https://mesh.test/herald"
KEY = generate_signing_key()
LEEWAY = 30.0
SETTINGS = VerifierSettings(audience="census", leeway=LEEWAY)


def bundle(revoked: dict[str, float] | None = None) -> TrustBundle:
    return TrustBundle({ISS: IssuerTrust({KEY.public.kid: KEY.public}, revoked_jtis=revoked or {})})


def token(lifetime: int = 60) -> str:
    """A fresh token (each has its own jti)."""
    return mint_token(
        KEY, issuer=ISS, subject="herald", audience="census", now=NOW, lifetime=lifetime
    )


def jti_of(tok: str) -> str:
    payload = tok.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def request(tok: str, path: str = "/inbound/users/1", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nhost: census\r\nauthorization: Bearer {tok}\r\n"
        f"{extra}content-length: 0\r\n\r\n"
    ).encode("latin-1")


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
class Sidecar:
    """One HTTP connection to a sidecar whose clock, bundle and policy a test sets."""

    remember: int = 1024
    now: float = NOW
    verifier: Verifier = field(default_factory=lambda: Verifier(bundle(), SETTINGS))
    policy: Policy = ALLOW_ALL
    log: io.StringIO = field(default_factory=io.StringIO)

    def __post_init__(self) -> None:
        self.metrics = SidecarMetrics()
        inbound = Inbound(lambda: self.verifier, lambda: self.policy, TokenSettings(), 0)
        self.service = DecisionService(
            inbound, None, self.metrics, DecisionLog(self.log), clock=lambda: self.now
        )
        self.memo = AnswerMemo(self.remember)
        self.transport = RecordingTransport()
        self.protocol = AuthzHttpProtocol(self.service, self.memo)
        self.protocol.connection_made(self.transport)

    def send(self, *chunks: bytes) -> bytes:
        before = len(self.transport.written)
        for chunk in chunks:
            self.protocol.data_received(chunk)
        return b"".join(self.transport.written[before:])

    def decisions(self, result: str, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "jwtmesh_decisions_total", {"result": result, "reason": reason}
        )
        return value or 0.0


def fresh_answer(sidecar: Sidecar, data: bytes) -> bytes:
    """What a sidecar that remembers nothing answers in the same state."""
    twin = Sidecar(remember=0, now=sidecar.now, verifier=sidecar.verifier, policy=sidecar.policy)
    return twin.send(data)


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_repeated_allowed_request_gets_the_same_bytes_and_counts_as_a_decision() -> None:
    sidecar = Sidecar()
    data = request(token())
    first = sidecar.send(data)
    assert status(first) == 200
    assert sidecar.send(data) == first == fresh_answer(sidecar, data)
    assert sidecar.memo.hits == 1
    assert sidecar.decisions("allow", "allowed") == 2


def test_a_request_that_differs_in_one_byte_is_decided_on_its_own() -> None:
    sidecar = Sidecar(policy=policy_from_dict({"rules": [{"paths": ["/users/1"]}]}))
    tok = token()
    assert status(sidecar.send(request(tok, "/inbound/users/1"))) == 200
    assert status(sidecar.send(request(tok, "/inbound/users/2"))) == 403
    assert sidecar.memo.hits == 0


def test_a_new_bundle_revoking_the_token_is_obeyed_at_once() -> None:
    sidecar = Sidecar()
    leaked = token()
    data = request(leaked)
    assert status(sidecar.send(data)) == 200
    assert status(sidecar.send(data)) == 200
    sidecar.verifier = Verifier(bundle(revoked={jti_of(leaked): NOW + 60}), SETTINGS)
    refused = sidecar.send(data)
    assert status(refused) == 401
    assert b"token_revoked" in refused
    assert refused == fresh_answer(sidecar, data)


def test_a_new_bundle_without_the_key_is_obeyed_at_once() -> None:
    sidecar = Sidecar()
    data = request(token())
    assert status(sidecar.send(data)) == 200
    sidecar.verifier = Verifier(TrustBundle({ISS: IssuerTrust({})}), SETTINGS)
    assert status(sidecar.send(data)) == 401


def test_a_replaced_verifier_is_not_kept_alive_by_the_memo() -> None:
    """An entry must not pin an old bundle (megabytes at thousands of issuers) in memory."""
    sidecar = Sidecar()
    sidecar.send(request(token()))
    old = weakref.ref(sidecar.verifier)
    sidecar.verifier = Verifier(bundle(), SETTINGS)
    gc.collect()
    assert old() is None
    assert len(sidecar.memo) == 1, "the entry is still there, and will miss"


def test_a_new_policy_is_obeyed_at_once() -> None:
    sidecar = Sidecar()
    data = request(token())
    assert status(sidecar.send(data)) == 200
    sidecar.policy = policy_from_dict({"rules": [{"paths": ["/elsewhere"]}]})
    assert status(sidecar.send(data)) == 403
    assert sidecar.memo.hits == 0


@pytest.mark.parametrize(
    ("later", "expected"),
    [(60 + LEEWAY - 1, 200), (60 + LEEWAY, 401), (3600, 401)],
    ids=["within leeway", "at expiry plus leeway", "long after"],
)
def test_an_answer_ends_when_the_token_does(later: float, expected: int) -> None:
    sidecar = Sidecar()
    data = request(token(lifetime=60))
    assert status(sidecar.send(data)) == 200
    sidecar.now = NOW + later
    assert status(sidecar.send(data)) == expected
    assert status(fresh_answer(sidecar, data)) == expected


def test_a_clock_turned_back_decides_again() -> None:
    sidecar = Sidecar(now=NOW + 10)
    data = request(token())
    assert status(sidecar.send(data)) == 200
    sidecar.now = NOW + 5
    sidecar.send(data)
    assert sidecar.memo.hits == 0


def test_a_refusal_is_never_remembered_so_each_one_is_logged() -> None:
    sidecar = Sidecar()
    data = request(token()[:-4] + "AAAA")
    for _ in range(3):
        assert status(sidecar.send(data)) == 401
    assert len(sidecar.memo) == 0
    lines = [json.loads(line) for line in sidecar.log.getvalue().splitlines()]
    assert [line["reason"] for line in lines] == ["bad_signature"] * 3


def test_an_audited_denial_is_never_remembered() -> None:
    policy = policy_from_dict({"mode": "audit", "rules": [{"paths": ["/elsewhere"]}]})
    sidecar = Sidecar(policy=policy)
    data = request(token())
    for _ in range(2):
        assert status(sidecar.send(data)) == 200
    assert len(sidecar.memo) == 0
    assert len(sidecar.log.getvalue().splitlines()) == 2, "one audit line per request"


def test_a_request_asking_to_close_is_not_remembered_and_still_closes() -> None:
    sidecar = Sidecar()
    data = request(token(), extra="connection: close\r\n")
    assert status(sidecar.send(data)) == 200
    assert sidecar.transport.closed
    assert len(sidecar.memo) == 0


def test_a_request_split_across_reads_or_sent_with_the_next_is_answered_in_full() -> None:
    sidecar = Sidecar()
    data = request(token())
    first = sidecar.send(data)
    assert sidecar.send(data[:50], data[50:]) == first
    assert sidecar.send(data + data) == first + first
    assert sidecar.memo.hits == 0, "only one whole request in one read is looked up"


def test_the_memo_is_bounded_in_entries_and_request_size() -> None:
    sidecar = Sidecar(remember=2)
    datas = [request(token()) for _ in range(3)]
    for data in datas:
        sidecar.send(data)
    assert len(sidecar.memo) == 2
    sidecar.send(datas[0])
    assert sidecar.memo.hits == 0, "the oldest entry went first"
    big = request(token(), extra=f"x-jwtmesh-pad: {'a' * MAX_REQUEST_BYTES}\r\n")
    sidecar.send(big)
    sidecar.send(big)
    assert sidecar.memo.hits == 0


def test_no_token_cache_means_nothing_remembered() -> None:
    sidecar = Sidecar(remember=0)
    data = request(token())
    sidecar.send(data)
    sidecar.send(data)
    assert (len(sidecar.memo), sidecar.memo.hits) == (0, 0)


def test_egress_is_never_remembered() -> None:
    sidecar = Sidecar()
    data = b"GET /egress/x HTTP/1.1\r\nhost: billing\r\ncontent-length: 0\r\n\r\n"
    for _ in range(2):
        assert status(sidecar.send(data)) == 403
    assert len(sidecar.memo) == 0
