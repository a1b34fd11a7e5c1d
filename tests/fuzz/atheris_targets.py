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
    from jwtmesh_testing.fuzzing import METHODS, VALID, check_policy, check_token, make_verifier

VERIFIER = make_verifier()


def token_target(data: bytes) -> None:
    check_token(VERIFIER, data.decode("latin-1"))


def policy_target(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    method = provider.PickValueInList(list(METHODS))
    path = provider.ConsumeUnicodeNoSurrogates(80)
    try:
        claims: Any = json.loads(provider.ConsumeUnicodeNoSurrogates(200))
    except ValueError:
        claims = {}
    if not isinstance(claims, dict):
        claims = {"roles": claims}
    check_policy(method, path, claims)


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
