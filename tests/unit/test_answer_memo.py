"""The HTTP answer memo: a repeated request is answered with the same bytes only while the
full path would answer the same (same bundle, same policy, token not expired, clock not
turned back), and nothing but an allowed inbound decision is ever remembered.

Each test drives the real AuthzHttpProtocol and DecisionService over a recording
transport, and compares the memo's answer with a sidecar that remembers nothing."""

from __future__ import annotations

import base64
import gc
import json
import weakref
from typing import Any

import pytest

from jwtmesh.policy import policy_from_dict
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.answer_memo import MAX_REQUEST_BYTES
from jwtmesh_testing.http_connection import HttpConnection, status_of

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


def connection(**kw: Any) -> HttpConnection:
    """A sidecar connection at NOW trusting KEY, unless told otherwise."""
    kw.setdefault("verifier", Verifier(bundle(), SETTINGS))
    kw.setdefault("now", NOW)
    return HttpConnection(**kw)


def test_a_repeated_allowed_request_gets_the_same_bytes_and_counts_as_a_decision() -> None:
    sidecar = connection()
    data = request(token())
    first = sidecar.send(data)
    assert status_of(first) == 200
    assert len(sidecar.memo) == 0, "remembered when allowed a second time, not the first"
    assert sidecar.send(data) == first
    assert (len(sidecar.memo), sidecar.memo.hits) == (1, 0)
    assert sidecar.send(data) == first == sidecar.answer_without_memo(data)
    assert sidecar.memo.hits == 1
    assert sidecar.decisions("allow", "allowed") == 3


def test_requests_seen_once_cost_no_entry() -> None:
    sidecar = connection(remember=4)
    for _ in range(10):
        assert status_of(sidecar.send(request(token()))) == 200
    assert len(sidecar.memo) == 0
    assert len(sidecar.memo._seen_once) == 4, "bounded as the entries are"


def test_a_request_that_differs_in_one_byte_is_decided_on_its_own() -> None:
    sidecar = connection(policy=policy_from_dict({"rules": [{"paths": ["/users/1"]}]}))
    tok = token()
    assert status_of(sidecar.prime(request(tok, "/inbound/users/1"))) == 200
    assert status_of(sidecar.send(request(tok, "/inbound/users/2"))) == 403
    assert sidecar.memo.hits == 0


def test_a_get_and_a_head_are_remembered_apart() -> None:
    """The key is the request's bytes, method first: a HEAD is never answered with what a
    GET was (nor the reverse), here where a rule admits HEAD only."""
    head_only = policy_from_dict({"rules": [{"paths": ["/users/1"], "methods": ["HEAD"]}]})
    sidecar = connection(policy=head_only)
    data = request(token())
    head = data.replace(b"GET ", b"HEAD ", 1)
    assert status_of(sidecar.prime(head)) == 200
    assert status_of(sidecar.send(data)) == 403
    assert sidecar.memo.hits == 0


def test_a_new_bundle_revoking_the_token_is_obeyed_at_once() -> None:
    sidecar = connection()
    leaked = token()
    data = request(leaked)
    assert status_of(sidecar.prime(data)) == 200
    sidecar.verifier = Verifier(bundle(revoked={jti_of(leaked): NOW + 60}), SETTINGS)
    refused = sidecar.send(data)
    assert status_of(refused) == 401
    assert b"token_revoked" in refused
    assert refused == sidecar.answer_without_memo(data)


def test_a_new_bundle_without_the_key_is_obeyed_at_once() -> None:
    sidecar = connection()
    data = request(token())
    assert status_of(sidecar.prime(data)) == 200
    sidecar.verifier = Verifier(TrustBundle({ISS: IssuerTrust({})}), SETTINGS)
    assert status_of(sidecar.send(data)) == 401


def test_a_replaced_verifier_is_not_kept_alive_by_the_memo() -> None:
    """An entry must not pin an old bundle (megabytes at thousands of issuers) in memory."""
    sidecar = connection()
    sidecar.prime(request(token()))
    old = weakref.ref(sidecar.verifier)
    sidecar.verifier = Verifier(bundle(), SETTINGS)
    gc.collect()
    assert old() is None
    assert len(sidecar.memo) == 1, "the entry is still there, and will miss"


def test_a_new_policy_is_obeyed_at_once() -> None:
    sidecar = connection()
    data = request(token())
    assert status_of(sidecar.prime(data)) == 200
    sidecar.policy = policy_from_dict({"rules": [{"paths": ["/elsewhere"]}]})
    assert status_of(sidecar.send(data)) == 403
    assert sidecar.memo.hits == 0


@pytest.mark.parametrize(
    ("later", "expected"),
    [(60 + LEEWAY - 1, 200), (60 + LEEWAY, 401), (3600, 401)],
    ids=["within leeway", "at expiry plus leeway", "long after"],
)
def test_an_answer_ends_when_the_token_does(later: float, expected: int) -> None:
    sidecar = connection()
    data = request(token(lifetime=60))
    assert status_of(sidecar.prime(data)) == 200
    sidecar.now = NOW + later
    assert status_of(sidecar.send(data)) == expected
    assert status_of(sidecar.answer_without_memo(data)) == expected


def test_a_clock_turned_back_decides_again() -> None:
    sidecar = connection(now=NOW + 10)
    data = request(token())
    assert status_of(sidecar.prime(data)) == 200
    sidecar.now = NOW + 5
    sidecar.send(data)
    assert sidecar.memo.hits == 0


def test_a_refusal_is_never_remembered_so_each_one_is_logged() -> None:
    sidecar = connection()
    data = request(token()[:-4] + "AAAA")
    for _ in range(3):
        assert status_of(sidecar.send(data)) == 401
    assert len(sidecar.memo) == 0
    lines = [json.loads(line) for line in sidecar.log.getvalue().splitlines()]
    assert [line["reason"] for line in lines] == ["bad_signature"] * 3


def test_an_audited_denial_is_never_remembered() -> None:
    policy = policy_from_dict({"mode": "audit", "rules": [{"paths": ["/elsewhere"]}]})
    sidecar = connection(policy=policy)
    data = request(token())
    for _ in range(2):
        assert status_of(sidecar.send(data)) == 200
    assert len(sidecar.memo) == 0
    assert len(sidecar.log.getvalue().splitlines()) == 2, "one audit line per request"


def test_a_request_asking_to_close_is_not_remembered_and_still_closes() -> None:
    sidecar = connection()
    data = request(token(), extra="connection: close\r\n")
    for _ in range(2):  # twice: a request is remembered when allowed a second time
        sidecar.reconnect()
        assert status_of(sidecar.send(data)) == 200
        assert sidecar.transport.closed
    assert len(sidecar.memo) == 0


def test_a_request_split_across_reads_or_sent_with_the_next_is_answered_in_full() -> None:
    sidecar = connection()
    data = request(token())
    first = sidecar.prime(data)
    assert sidecar.send(data[:50], data[50:]) == first
    assert sidecar.send(data + data) == first + first
    assert sidecar.memo.hits == 0, "only one whole request in one read is looked up"


def test_the_memo_is_bounded_in_entries_and_request_size() -> None:
    sidecar = connection(remember=2)
    datas = [request(token()) for _ in range(3)]
    for data in datas:
        sidecar.prime(data)
    assert len(sidecar.memo) == 2
    sidecar.send(datas[0])
    assert sidecar.memo.hits == 0, "the oldest entry went first"
    big = request(token(), extra=f"x-jwtmesh-pad: {'a' * MAX_REQUEST_BYTES}\r\n")
    for _ in range(3):
        sidecar.send(big)
    assert sidecar.memo.hits == 0


def test_no_token_cache_means_nothing_remembered() -> None:
    sidecar = connection(remember=0)
    data = request(token())
    sidecar.send(data)
    sidecar.send(data)
    assert (len(sidecar.memo), sidecar.memo.hits) == (0, 0)


def test_egress_is_never_remembered() -> None:
    sidecar = connection()
    data = b"GET /egress/x HTTP/1.1\r\nhost: billing\r\ncontent-length: 0\r\n\r\n"
    for _ in range(2):
        assert status_of(sidecar.send(data)) == 403
    assert len(sidecar.memo) == 0
