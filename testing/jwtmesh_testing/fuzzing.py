"""What the fuzz tests feed and check: hypothesis (tests/property) and atheris (tests/fuzz).

One valid token and a verifier that accepts it, one policy with every kind of matcher, and
the two oracles: whatever arrives, the verifier either refuses it with a TokenError carrying
a reason code or verifies the untouched token; the policy matcher always answers, and
consistently. The oracles raise AssertionError themselves, so they hold under `python -O`.
"""

from __future__ import annotations

from typing import Any

from jwtmesh.policy import Caller, PolicyResult, evaluate, policy_from_dict
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings

NOW = 1_800_000_000.0
ISSUER = "https://mesh.test/herald"
KEY = generate_signing_key()
VALID = mint_token(KEY, issuer=ISSUER, subject="herald", audience="census", now=NOW, lifetime=60)
METHODS = ("GET", "POST", "get", "", "DELETE")
POLICY = policy_from_dict(
    {
        "rules": [
            {
                "paths": [{"glob": "/a/*/b/**"}],
                "methods": ["GET"],
                "claims": [{"claim": "roles", "anyOf": ["x"]}],
            },
            {"paths": [{"prefix": "/p"}], "claims": [{"claim": "o.t", "equals": "g"}]},
            {"paths": ["/exact"], "subjects": ["s"]},
        ]
    }
)


def make_verifier() -> Verifier:
    """A verifier that trusts KEY for ISSUER, for the audience VALID was minted for."""
    return Verifier(
        TrustBundle({ISSUER: IssuerTrust({KEY.kid: KEY.public})}),
        VerifierSettings(audience="census"),
    )


def check_token(verifier: Verifier, token: str) -> None:
    """Refused with a reason code, or VALID itself: anything else is an AssertionError."""
    try:
        verified = verifier.verify(token, NOW)
    except TokenError as error:  # the only exception type allowed out
        if not (error.reason and error.reason.islower()):
            raise AssertionError(f"a refusal without a reason code: {error!r}") from None
        return
    if token != VALID:
        raise AssertionError(f"a modified token verified: {token!r}")
    if verified.subject != "herald":
        raise AssertionError(f"VALID verified with the wrong subject {verified.subject!r}")


def check_policy(method: str, path: str, claims: dict[str, Any]) -> None:
    """The matcher answers, and `allowed` agrees with the reason code."""
    result = evaluate(POLICY, method=method, path=path, caller=Caller("i", "s", claims))
    if not isinstance(result, PolicyResult) or result.allowed != (result.reason == "allowed"):
        raise AssertionError(f"an inconsistent policy result {result!r}")
