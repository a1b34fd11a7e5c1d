"""Which key signs now; the CLI from keys to a verdict; sidecar configuration errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jwtmesh.identity import (
    IdentityError,
    IdentityKeys,
    ScheduledKey,
    active_key,
    parse_identity,
    render_identity,
)
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_operator.cli import main as operator_main
from jwtmesh_sidecar.cli import main
from jwtmesh_sidecar.config import ConfigError, config_from_dict

OLD, NEW, NEXT = generate_signing_key(), generate_signing_key(), generate_signing_key()
IDENTITY = IdentityKeys(
    "https://i",
    "herald",
    300,
    (
        ScheduledKey(OLD, activates_at=0, retires_at=100),
        ScheduledKey(NEW, activates_at=100, retires_at=200),
        ScheduledKey(NEXT, activates_at=200, retires_at=None),
    ),
)


@pytest.mark.parametrize(
    ("now", "expected"),
    [(-1, None), (0, OLD), (99.9, OLD), (100, NEW), (199, NEW), (200, NEXT), (10**9, NEXT)],
)
def test_the_signing_key_switches_at_the_exact_activation_time(
    now: float, expected: object
) -> None:
    assert active_key(IDENTITY, now) == expected


def test_the_identity_file_round_trips_and_errors_never_show_key_material() -> None:
    data = render_identity(IDENTITY)
    assert [k.key.kid for k in parse_identity(data).keys] == [OLD.kid, NEW.kid, NEXT.kid]
    broken = json.loads(data)
    del broken["keys"][1]["alg"]
    with pytest.raises(IdentityError) as refused:
        parse_identity(json.dumps(broken).encode())
    assert "PRIVATE" not in str(refused.value)
    assert "PRIVATE" not in repr(parse_identity(data))


def test_keys_mint_bundle_inspect_through_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "herald"
    result = runner.invoke(
        main,
        [
            "keys",
            "generate",
            "--issuer",
            "https://i/herald",
            "--subject",
            "herald.a",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "signing-keys.json").stat().st_mode & 0o077 == 0, (
        "private keys are not world-readable"
    )
    bundle = tmp_path / "bundle.json"
    assert (
        runner.invoke(
            main,
            [
                "bundle",
                "build",
                "--issuer",
                f"https://i/herald={out / 'jwks.json'}",
                "--out",
                str(bundle),
            ],
        ).exit_code
        == 0
    )
    minted = runner.invoke(
        main,
        [
            "token",
            "mint",
            "--keys",
            str(out / "signing-keys.json"),
            "--aud",
            "census.a",
            "--claim",
            'roles=["admin"]',
        ],
    )
    token = minted.output.strip()
    passed = runner.invoke(
        main, ["token", "inspect", token, "--bundle", str(bundle), "--audience", "census.a"]
    )
    assert passed.exit_code == 0
    assert "PASS issuer=https://i/herald subject=herald.a" in passed.output
    assert '"admin"' in passed.output
    failed = runner.invoke(
        main, ["token", "inspect", token, "--bundle", str(bundle), "--audience", "other"]
    )
    assert failed.exit_code == 1
    assert "FAIL wrong_audience" in failed.output
    garbage = runner.invoke(main, ["token", "inspect", "not-a-token"])
    assert garbage.exit_code == 1
    assert "FAIL malformed_token" in garbage.output


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["keys", "generate"],
        ["bundle", "build"],
        ["token", "mint"],
        ["token", "inspect"],
        ["sidecar"],
    ],
    ids=lambda c: " ".join(c) or "jwtmesh",
)
def test_every_command_explains_itself(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"identity": "a", "trust": {"bundleFiles": ["b"]}}, "nothing to serve"),
        ({"identity": "a", "listen": {"grpc": "127.0.0.1:1"}}, "no trust source"),
        ({"listen": {"token": "0.0.0.0:9"}, "identityKeys": "k"}, "loopback"),
        ({"listen": {"token": "127.0.0.1:9"}}, "need identityKeys"),
        (
            {"identity": "a", "listen": {"grpc": "nope"}, "trust": {"bundleFiles": ["b"]}},
            "host:port",
        ),
        (
            {
                "identity": "a",
                "listen": {"http": "127.0.0.1:1"},
                "trust": {"jwksUrls": [{"issuer": "i", "url": "file:///etc/passwd"}]},
            },
            "must be an http",
        ),
    ],
    ids=[
        "no listener",
        "no trust source",
        "token endpoint off loopback",
        "token endpoint without keys",
        "bad address",
        "file URL",
    ],
)
def test_a_bad_sidecar_configuration_is_refused_with_a_reason(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(document)


def test_the_operator_has_its_own_command() -> None:
    result = CliRunner().invoke(operator_main, ["--help"])
    assert result.exit_code == 0
    assert "Run the ServiceIdentity operator" in result.output
