"""A ServiceIdentity's defaults have one home (jwtmesh_operator.spec); the CRD repeats them
so that `kubectl get -o yaml` shows them, and this test holds the two equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jwtmesh.tokens.keys import MIN_RSA_BITS
from jwtmesh_operator import spec as defaults
from jwtmesh_operator.durations import parse_duration
from jwtmesh_operator.spec import SpecError, parse_spec, period_refusal
from jwtmesh_operator.state import OperatorConfig

CRD = Path(__file__).resolve().parents[2] / "crds" / "serviceidentities.jwtmesh.io.yaml"


def spec_schema() -> dict[str, Any]:
    document = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]


def test_the_crd_defaults_are_the_operators_defaults() -> None:
    schema = spec_schema()
    properties = schema["properties"]
    rotation = properties["rotation"]["properties"]
    assert schema["default"] == {
        "algorithm": defaults.DEFAULT_ALGORITHM,
        "maxTokenLifetime": defaults.DEFAULT_MAX_TOKEN_LIFETIME,
        "rotation": {
            "period": defaults.DEFAULT_ROTATION_PERIOD,
            "prePublish": defaults.DEFAULT_PRE_PUBLISH,
            "retain": defaults.DEFAULT_RETAIN,
        },
    }
    assert properties["algorithm"]["default"] == defaults.DEFAULT_ALGORITHM
    assert properties["maxTokenLifetime"]["default"] == defaults.DEFAULT_MAX_TOKEN_LIFETIME
    assert rotation["period"]["default"] == defaults.DEFAULT_ROTATION_PERIOD
    assert rotation["prePublish"]["default"] == defaults.DEFAULT_PRE_PUBLISH
    assert rotation["retain"]["default"] == defaults.DEFAULT_RETAIN
    assert f"Default {defaults.DEFAULT_RSA_BITS}" in properties["keySize"]["description"]


def test_the_crd_key_sizes_are_the_operators() -> None:
    """The API server refuses what the operator would refuse (an 8192-bit key costs it
    10-20 s of a thread on every rotation)."""
    key_size = spec_schema()["properties"]["keySize"]
    assert (key_size["minimum"], key_size["maximum"]) == (MIN_RSA_BITS, defaults.MAX_RSA_BITS)


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_the_usual_rsa_key_sizes_are_accepted(bits: int) -> None:
    spec = parse_spec("shop", "cart", {"algorithm": "RS256", "keySize": bits}, "mesh.test")
    assert spec.rsa_bits == bits


def test_an_rsa_key_larger_than_the_operator_makes_is_refused_with_the_range() -> None:
    """An identity stored before the CRD said so (the API server does not look again)."""
    with pytest.raises(SpecError, match=r"keySize 8192 is outside 2048\.\.4096"):
        parse_spec("shop", "cart", {"algorithm": "RS256", "keySize": 8192}, "mesh.test")


def test_an_empty_spec_gets_every_default() -> None:
    parsed = parse_spec("shop", "cart", {}, "mesh.test")
    assert parsed.issuer == "https://mesh.test/ns/shop/cart"
    assert parsed.audience == "cart.shop"
    assert parsed.secret_name == "cart-jwtmesh-key"
    assert parsed.algorithm == defaults.DEFAULT_ALGORITHM
    assert parsed.rotation.period == parse_duration(defaults.DEFAULT_ROTATION_PERIOD)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"maxTokenLifetime": "1h", "rotation": {"retain": "30m"}}, "retain must be at least"),
        ({"rotation": {"period": "soon"}}, "is not a duration"),
        ({"policy": {"rules": "all"}}, "policy: rules must be a list"),
    ],
    ids=["retain shorter than a token's life", "not a duration", "a broken policy"],
)
def test_a_spec_the_crd_should_have_refused_is_a_spec_error(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec("shop", "cart", spec, "mesh.test")


def test_a_rotation_period_under_the_operators_floor_is_refused_with_both_figures() -> None:
    """One tenant's fast schedule would rewrite every namespace's bundle all the time."""
    floor = OperatorConfig().min_rotation_period
    assert floor == 600.0, "10m by default"
    fast = parse_spec(
        "dev",
        "herald",
        {
            "rotation": {
                "period": "8s",
                "prePublish": "4s",
                "retain": "31s",
            },
            "maxTokenLifetime": "1s",
        },
        "mesh.test",
    )
    message = period_refusal(fast.rotation, floor)
    assert message is not None
    assert "8s" in message
    assert "10m" in message
    assert "--min-rotation-period" in message
    usual = parse_spec("dev", "herald", {}, "mesh.test")
    assert period_refusal(usual.rotation, floor) is None
    assert period_refusal(fast.rotation, 8.0) is None, "at the floor is allowed"
