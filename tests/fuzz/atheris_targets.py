"""Coverage-guided fuzzing (atheris / libFuzzer) of the token parser+verifier and the
policy matcher. Run by tests/fuzz/test_atheris.py, bounded in time; by hand:

    .venv/bin/python tests/fuzz/atheris_targets.py token -max_total_time=60 CORPUS_DIR

A crash is any exception other than TokenError escaping the verifier, a token other than
the untouched seed verifying, or the policy matcher raising or answering inconsistently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["jwtmesh"]):
    from jwtmesh.policy import evaluate, policy_from_dict
    from jwtmesh.tokens.errors import TokenError
    from jwtmesh.tokens.keys import generate_signing_key
    from jwtmesh.tokens.mint import mint_token
    from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
    from jwtmesh.tokens.verify import Verifier, VerifierSettings

NOW = 1_800_000_000.0
ISSUER = "https://mesh.test/herald"
KEY = generate_signing_key()
VALID = mint_token(KEY, issuer=ISSUER, subject="herald", audience="census", now=NOW, lifetime=60)
VERIFIER = Verifier(
    TrustBundle({ISSUER: IssuerTrust({KEY.kid: KEY.public})}), VerifierSettings(audience="census")
)
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


def token_target(data: bytes) -> None:
    token = data.decode("latin-1")
    try:
        verified = VERIFIER.verify(token, NOW)
    except TokenError as error:
        if not (error.reason and error.reason.islower()):
            raise AssertionError(f"refusal without a reason code: {error!r}") from None
        return
    if token != VALID:
        raise AssertionError(f"a modified token verified: {token!r}")
    assert verified.subject == "herald"


def policy_target(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    method = provider.PickValueInList(["GET", "POST", "get", "", "DELETE"])
    path = provider.ConsumeUnicodeNoSurrogates(80)
    try:
        claims: Any = json.loads(provider.ConsumeUnicodeNoSurrogates(200))
    except ValueError:
        claims = {}
    if not isinstance(claims, dict):
        claims = {"roles": claims}
    result = evaluate(POLICY, method=method, path=path, issuer="i", subject="s", claims=claims)
    if result.allowed != (result.reason == "allowed"):
        raise AssertionError(f"inconsistent policy result {result!r}")


TARGETS = {"token": token_target, "policy": policy_target}


def seed(corpus: Path) -> None:
    """Start from the valid token and its parts, so mutations explore near-valid input."""
    corpus.mkdir(parents=True, exist_ok=True)
    header, payload, _signature = VALID.split(".")
    for name, text in {"valid": VALID, "unsigned": f"{header}.{payload}.", "bare": header}.items():
        (corpus / name).write_text(text)


def main() -> None:
    target = TARGETS[sys.argv[1]]
    corpus = [a for a in sys.argv[2:] if not a.startswith("-")]
    if sys.argv[1] == "token":
        for directory in corpus:
            seed(Path(directory))
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
