"""One error boundary per entry point: each command, fed each class of bad input, prints
exactly one line `Error: <where>: <what>` and exits with the documented code; never a
traceback (unless --debug asks for one)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from jwtmesh.boundary import EXIT_CODES, EXIT_ENVIRONMENT, EXIT_USAGE
from jwtmesh.identity import IdentityKeys, ScheduledKey, render_identity
from jwtmesh.tokens.keys import generate_signing_key, jwks
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_sidecar.cli import main

KEY = generate_signing_key()
ISSUER = "https://mesh.test/ns/a/herald"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    identity = IdentityKeys(ISSUER, "herald.a", 900, (ScheduledKey(KEY, 0, None),))
    (d / "signing-keys.json").write_bytes(render_identity(identity))
    (d / "jwks.json").write_text(json.dumps(jwks([KEY.public])))
    bundle = TrustBundle({ISSUER: IssuerTrust({KEY.kid: KEY.public})})
    (d / "bundle.json").write_bytes(render_bundle(bundle))
    (d / "garbage.json").write_text("{not json")
    broken_pem = json.loads(render_identity(identity))
    broken_pem["keys"][0]["privateKeyPem"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
    (d / "bad-pem.json").write_text(json.dumps(broken_pem))
    private = KEY.public.to_jwk() | {"d": "AAAA"}
    (d / "private-jwk.json").write_text(json.dumps({"keys": [private]}))
    twice = KEY.public.to_jwk()
    (d / "duplicate-kid.json").write_text(json.dumps({"keys": [twice, twice]}))
    (d / "existing").mkdir()
    (d / "existing" / "signing-keys.json").write_text("{}")
    (d / "policy.yaml").write_text("rules: [{name: x, paths: [/a], roles: [nobody]}]\n")
    return d


# (arguments, the line's start, exit code); {d} is the fixture's directory.
CASES: dict[str, tuple[list[str], str, int]] = {
    "keys: issuer not a URL": (
        ["keys", "generate", "--issuer", "herald", "--subject", "h.a", "--out", "{d}/k1"],
        "Error: keys generate --issuer: 'herald' is not a URL",
        EXIT_USAGE,
    ),
    "keys: empty subject": (
        ["keys", "generate", "--issuer", ISSUER, "--subject", "", "--out", "{d}/k2"],
        "Error: keys generate --subject: '' must be a non-empty",
        EXIT_USAGE,
    ),
    "keys: huge RSA": (
        [
            "keys",
            "generate",
            "--alg",
            "RS256",
            "--rsa-bits",
            "100000",
            "--issuer",
            ISSUER,
            "--subject",
            "h.a",
            "--out",
            "{d}/k3",
        ],
        "Error: keys generate --rsa-bits: 100000 is not in the range 2048<=x<=8192",
        EXIT_USAGE,
    ),
    "keys: missing directory": (
        ["keys", "generate", "--issuer", ISSUER, "--subject", "h.a", "--out", "{d}/no/k"],
        "Error: keys generate --out {d}/no/k: the directory {d}/no does not exist",
        EXIT_USAGE,
    ),
    "keys: would overwrite": (
        ["keys", "generate", "--issuer", ISSUER, "--subject", "h.a", "--out", "{d}/existing"],
        "Error: keys generate --out {d}/existing: {d}/existing/signing-keys.json exists; "
        "pass --force",
        EXIT_USAGE,
    ),
    "mint: registered claim": (
        ["token", "mint", "--keys", "{d}/signing-keys.json", "--aud", "c", "--claim", "iss=x"],
        "Error: token mint --claim iss: iss is a registered claim",
        EXIT_USAGE,
    ),
    "mint: a JWKS as keys": (
        ["token", "mint", "--keys", "{d}/jwks.json", "--aud", "c"],
        "Error: token mint --keys {d}/jwks.json: this is a JWKS",
        EXIT_USAGE,
    ),
    "mint: a bundle as keys": (
        ["token", "mint", "--keys", "{d}/bundle.json", "--aud", "c"],
        "Error: token mint --keys {d}/bundle.json: this is a trust bundle",
        EXIT_USAGE,
    ),
    "mint: bad JSON": (
        ["token", "mint", "--keys", "{d}/garbage.json", "--aud", "c"],
        "Error: token mint --keys {d}/garbage.json: identity key file is not valid JSON",
        EXIT_USAGE,
    ),
    "mint: bad PEM": (
        ["token", "mint", "--keys", "{d}/bad-pem.json", "--aud", "c"],
        "Error: token mint --keys {d}/bad-pem.json: keys[0].privateKeyPem: unreadable",
        EXIT_USAGE,
    ),
    "mint: lifetime over the maximum": (
        ["token", "mint", "--keys", "{d}/signing-keys.json", "--aud", "c", "--lifetime", "5000"],
        "Error: token mint --lifetime: 5000 s is more than this identity's",
        EXIT_USAGE,
    ),
    "mint: no audience": (
        ["token", "mint", "--keys", "{d}/signing-keys.json"],
        "Error: token mint --aud: required",
        EXIT_USAGE,
    ),
    "inspect: bundle not JSON": (
        ["token", "inspect", "x.y.z", "--bundle", "{d}/garbage.json", "--audience", "c"],
        "Error: token inspect --bundle {d}/garbage.json: trust bundle is not valid JSON",
        EXIT_USAGE,
    ),
    "explain: bundle missing": (
        ["explain", "x.y.z", "--bundle", "{d}/nope.json", "--audience", "c"],
        "Error: explain {d}/nope.json: no such file or directory",
        EXIT_ENVIRONMENT,
    ),
    "explain: no audience": (
        ["explain", "x.y.z", "--bundle", "{d}/bundle.json"],
        "Error: explain --audience: required",
        EXIT_USAGE,
    ),
    "explain: bad policy": (
        [
            "explain",
            "x.y.z",
            "--bundle",
            "{d}/bundle.json",
            "--audience",
            "c",
            "--policy",
            "{d}/garbage.json",
        ],
        "Error: explain --policy {d}/garbage.json: ",
        EXIT_USAGE,
    ),
    "bundle: missing file": (
        ["bundle", "build", "--issuer", f"{ISSUER}={{d}}/nope.json", "--out", "{d}/b1.json"],
        f"Error: bundle build --issuer {ISSUER}={{d}}/nope.json: no such file or directory",
        EXIT_ENVIRONMENT,
    ),
    "bundle: bad JSON": (
        ["bundle", "build", "--issuer", f"{ISSUER}={{d}}/garbage.json", "--out", "{d}/b2.json"],
        f"Error: bundle build --issuer {ISSUER}={{d}}/garbage.json: not valid JSON",
        EXIT_USAGE,
    ),
    "bundle: private JWK": (
        ["bundle", "build", "--issuer", f"{ISSUER}={{d}}/private-jwk.json", "--out", "{d}/b.json"],
        f"Error: bundle build --issuer {ISSUER}={{d}}/private-jwk.json: the JWKS.keys[0]: "
        "a trust bundle must never contain private key material",
        EXIT_USAGE,
    ),
    "bundle: duplicate kid": (
        [
            "bundle",
            "build",
            "--issuer",
            f"{ISSUER}={{d}}/duplicate-kid.json",
            "--out",
            "{d}/b3.json",
        ],
        f"Error: bundle build --issuer {ISSUER}={{d}}/duplicate-kid.json: the JWKS: duplicate kid",
        EXIT_USAGE,
    ),
    "bundle: unwritable out": (
        ["bundle", "build", "--issuer", f"{ISSUER}={{d}}/jwks.json", "--out", "{d}/no/b.json"],
        "Error: bundle build --out {d}/no/b.json: no such file or directory",
        EXIT_ENVIRONMENT,
    ),
    "bundle: issuer twice": (
        [
            "bundle",
            "build",
            "--issuer",
            f"{ISSUER}={{d}}/jwks.json",
            "--issuer",
            f"{ISSUER}={{d}}/jwks.json",
            "--out",
            "{d}/b4.json",
        ],
        f"Error: bundle build --issuer {ISSUER}: given twice",
        EXIT_USAGE,
    ),
    "bundle: no =": (
        ["bundle", "build", "--issuer", "{d}/jwks.json", "--out", "{d}/b5.json"],
        "Error: bundle build --issuer: '{d}/jwks.json' is not ISSUER=JWKS_FILE",
        EXIT_USAGE,
    ),
    "bundle show: not a bundle": (
        ["bundle", "show", "--bundle", "{d}/jwks.json"],
        "Error: bundle show --bundle {d}/jwks.json: unsupported trust bundle version",
        EXIT_USAGE,
    ),
    "sidecar: egress without =": (
        ["sidecar", "--egress-audience", "census:census.default"],
        "Error: sidecar --egress-audience: 'census:census.default' is not HOST=AUDIENCE",
        EXIT_USAGE,
    ),
    "sidecar: jwks url without issuer": (
        ["sidecar", "--jwks-url", "https://x"],
        "Error: sidecar --jwks-url: 'https://x' is not ISSUER=URL",
        EXIT_USAGE,
    ),
    "sidecar: metrics port": (
        ["sidecar", "--metrics", "127.0.0.1:99999"],
        "Error: sidecar --metrics: '127.0.0.1:99999': the port must be between 1 and 65535",
        EXIT_USAGE,
    ),
    "sidecar: grpc port": (
        ["sidecar", "--grpc", "127.0.0.1:99999"],
        "Error: sidecar --grpc: '127.0.0.1:99999': the port must be between 1 and 65535",
        EXIT_USAGE,
    ),
    "sidecar: http port": (
        ["sidecar", "--http", "127.0.0.1:99999"],
        "Error: sidecar --http: '127.0.0.1:99999': the port must be between 1 and 65535",
        EXIT_USAGE,
    ),
    "sidecar: missing config": (
        ["sidecar", "--config", "{d}/nope.yaml"],
        "Error: sidecar --config {d}/nope.yaml: cannot read: no such file or directory",
        EXIT_USAGE,
    ),
    "no such command": (["mnt"], "Error: jwtmesh: no such command", EXIT_USAGE),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_input_is_one_line_with_its_exit_code(case: str, files: Path) -> None:
    args, line, code = CASES[case]
    args = [arg.replace("{d}", str(files)) for arg in args]
    result = CliRunner().invoke(main, args)
    output = result.output.strip()
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert output.startswith(line.replace("{d}", str(files))), output
    assert result.exit_code == code, output


def _jwtmesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jwtmesh_sidecar.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_real_process_writes_the_line_on_stderr_and_nothing_else(files: Path) -> None:
    result = _jwtmesh("token", "mint", "--keys", str(files / "jwks.json"), "--aud", "c")
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("Error: token mint --keys ")
    assert len(result.stderr.splitlines()) == 1


def test_debug_adds_the_traceback(files: Path) -> None:
    result = _jwtmesh("--debug", "token", "mint", "--keys", str(files / "jwks.json"), "--aud", "c")
    assert result.returncode == EXIT_USAGE
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: token mint --keys ")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_port_in_use_is_an_environment_error(files: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag in ("--grpc", "--http", "--metrics"):
            result = _jwtmesh(
                "sidecar",
                "--identity",
                "census.a",
                "--no-policy",
                "--bundle",
                str(files / "bundle.json"),
                *(("--grpc", f"127.0.0.1:{_free_port()}") if flag == "--metrics" else ()),
                flag,
                f"127.0.0.1:{port}",
            )
            assert result.returncode == EXIT_ENVIRONMENT, result.stderr
            key = {"--grpc": "grpc", "--http": "http", "--metrics": "metrics"}[flag]
            assert result.stderr.strip().splitlines()[-1] == (
                f"Error: sidecar: listen.{key}: cannot listen on 127.0.0.1:{port}: "
                "address already in use"
            )


def test_a_broken_kubeconfig_stops_the_operator_at_once(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nclusters: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "jwtmesh_operator.cli", "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith("Error: jwtmesh-operator --kubeconfig: not a usable kubeconfig")
    assert len(result.stderr.splitlines()) == 1


def test_the_exit_codes_are_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in docs
