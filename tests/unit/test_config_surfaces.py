"""Every configuration surface is strict: each gets its typos, wrong types and out-of-range
values, and refuses each with one line naming the key and what was expected.

Surfaces: the sidecar's YAML file, the sidecar's flags, the operator's flags, the chart's
values (values.schema.json, through `helm template`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from jwtmesh_operator.cli import main as operator_main
from jwtmesh_sidecar.cli import main
from jwtmesh_sidecar.config import ConfigError, config_from_dict
from jwtmesh_testing.localcluster import Binaries
from jwtmesh_testing.paths import CHART

GOOD: dict[str, Any] = {
    "identity": "census.default",
    "listen": {"grpc": "127.0.0.1:9001"},
    "trust": {"bundleFiles": ["bundle.json"]},
    "policyFile": "policy.yaml",
}


def changed(path: str, value: Any) -> dict[str, Any]:
    """GOOD with `path` (dotted) set to `value`; a `path` ending in `-` removes the key."""
    document: dict[str, Any] = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target.setdefault(key, {})
    if last.endswith("-"):
        target.pop(last[:-1])
    else:
        target[last] = value
    return document


SIDECAR_FILE = {
    "policy instead of policyFile": (
        {**changed("policyFile-", None), "policy": "p.yaml"},
        "policy: unknown key (did you mean policyFile?)",
    ),
    "leewaySecond": (
        changed("verification.leewaySecond", 3),
        "verification.leewaySecond: unknown key (did you mean leewaySeconds?)",
    ),
    "identity as a list": (changed("identity", ["x"]), "identity: expected a valid string"),
    "grpcThreads: two": (changed("grpcThreads", "two"), "grpcThreads: expected a valid integer"),
    "grpcThreads: 0": (changed("grpcThreads", 0), "grpcThreads: expected greater than or equal"),
    "strip: yes-string": (changed("token.strip", "yes"), "token.strip: expected a valid boolean"),
    "leeway out of range": (
        changed("verification.leewaySeconds", 3600),
        "verification.leewaySeconds: expected less than or equal to 300",
    ),
    "port out of range": (
        changed("listen.grpc", "127.0.0.1:99999"),
        "listen.grpc: '127.0.0.1:99999': the port must be between 1 and 65535",
    ),
    "unknown listen key": (
        changed("listen.grcp", "127.0.0.1:1"),
        "listen.grcp: unknown key (did you mean grpc?)",
    ),
    "jwksUrls entry typo": (
        changed("trust.jwksUrls", [{"issuer": "i", "url": "https://x/j", "refresh": 5}]),
        "trust.jwksUrls[0].refresh: unknown key",
    ),
    "bundleFiles a string": (
        changed("trust.bundleFiles", "bundle.json"),
        "trust.bundleFiles: expected a valid list",
    ),
    "egress audience a number": (
        changed("egress.audiences", {"census": 5}),
        "egress.audiences.census: expected a valid string",
    ),
    "grpcServer unknown": (
        changed("grpcServer", "fast"),
        "grpcServer: expected 'asyncio', 'core' or",
    ),
    "no policy and no noPolicy": (
        changed("policyFile-", None),
        "policyFile: required to verify inbound requests",
    ),
    "policy and noPolicy": (changed("noPolicy", True), "noPolicy: true contradicts policyFile"),
    "log level": (changed("logLevel", "loud"), "logLevel: expected 'debug', 'info'"),
}


@pytest.mark.parametrize("case", list(SIDECAR_FILE))
def test_the_sidecar_file_refuses_each_typo_naming_the_key(case: str) -> None:
    document, message = SIDECAR_FILE[case]
    with pytest.raises(ConfigError) as refused:
        config_from_dict(document)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_good_document_and_a_deliberate_no_policy_are_accepted() -> None:
    assert config_from_dict(GOOD).policy_file == Path("policy.yaml")
    assert config_from_dict({**changed("policyFile-", None), "noPolicy": True}).no_policy


def run_cli(command: Any, args: list[str], tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(command, args)
    output = result.output.strip()
    assert "Traceback" not in output
    return result.exit_code, output


SIDECAR_FLAGS = {
    "misspelled flag": (["--polcy", "p.yaml"], "Error: sidecar: no such option"),
    "port out of range": (["--grpc", "127.0.0.1:99999"], "Error: sidecar --grpc: "),
    "metrics port": (["--metrics", "127.0.0.1:99999"], "Error: sidecar --metrics: "),
    "egress without =": (
        ["--egress-audience", "census:census.default"],
        "Error: sidecar --egress-audience: 'census:census.default' is not HOST=AUDIENCE",
    ),
    "jwks url without issuer": (
        ["--jwks-url", "https://x"],
        "Error: sidecar --jwks-url: 'https://x' is not ISSUER=URL",
    ),
    "jwks url not http": (
        ["--jwks-url", "i=ftp://x"],
        "Error: sidecar --jwks-url: 'ftp://x' is not a URL",
    ),
    "threads not a number": (["--grpc-threads", "two"], "Error: sidecar --grpc-threads: "),
    "log level": (["--log-level", "loud"], "Error: sidecar --log-level: "),
    "flags that leave no policy": (
        ["--identity", "a", "--grpc", "127.0.0.1:9", "--bundle", "b.json"],
        "Error: sidecar: policyFile: required to verify inbound requests",
    ),
}


@pytest.mark.parametrize("case", list(SIDECAR_FLAGS))
def test_the_sidecar_flags_refuse_each_mistake_naming_the_flag(case: str, tmp_path: Path) -> None:
    args, message = SIDECAR_FLAGS[case]
    code, output = run_cli(main, ["sidecar", *args], tmp_path)
    assert code == 2
    assert output.startswith(message), output
    assert len(output.splitlines()) == 1


def test_a_config_file_typo_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump({**changed("policyFile-", None), "policy": "p.yaml"}))
    code, output = run_cli(main, ["sidecar", "--config", str(config)], tmp_path)
    assert code == 2
    assert output == (
        f"Error: sidecar --config {config}: policy: unknown key (did you mean policyFile?)"
    )


OPERATOR_FLAGS = {
    "misspelled flag": (["--trust-domian", "x"], "Error: jwtmesh-operator: no such option"),
    "http port": (["--http", "0.0.0.0:99999"], "Error: jwtmesh-operator --http: "),
    "trust domain": (["--trust-domain", "Not_A_Name"], "Error: jwtmesh-operator --trust-domain: "),
    "namespace": (["--namespace", "UPPER"], "Error: jwtmesh-operator --namespace: "),
    "public url": (["--public-url", "ftp://x"], "Error: jwtmesh-operator --public-url: "),
    "webhook address": (["--webhook", "9443"], "Error: jwtmesh-operator --webhook: "),
    "log level": (["--log-level", "loud"], "Error: jwtmesh-operator --log-level: "),
    "rotation floor": (
        ["--min-rotation-period", "10 minutes"],
        "Error: jwtmesh-operator --min-rotation-period: '10 minutes' is not a duration",
    ),
    "bad kubeconfig": (["--kubeconfig", "{kubeconfig}"], "Error: jwtmesh-operator --kubeconfig: "),
    "injected resources typo": (
        ["--sidecar-resources", '{"limits": {"memroy": "1Gi"}}'],
        "Error: jwtmesh-operator --sidecar-resources: limits.memroy: expected one of cpu",
    ),
}


@pytest.mark.parametrize("case", list(OPERATOR_FLAGS))
def test_the_operator_flags_refuse_each_mistake_naming_the_flag(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nclusters: [\n")
    args, message = OPERATOR_FLAGS[case]
    args = [arg.replace("{kubeconfig}", str(kubeconfig)) for arg in args]
    code, output = run_cli(operator_main, args, tmp_path)
    assert code == 2
    assert output.startswith(message), output
    assert len(output.splitlines()) == 1


CHART_VALUES = {
    "misspelled top-level key": ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    "resources typo": (
        {"resources": {"request": {"cpu": "1"}}},
        "at '/resources': additional properties 'request' not allowed",
    ),
    "resources quantity": (
        {"resources": {"requests": {"cpu": "lots"}}},
        "at '/resources/requests/cpu'",
    ),
    "pdb typo": (
        {"podDisruptionBudget": {"minAvailabe": 1}},
        "at '/podDisruptionBudget': additional properties 'minAvailabe' not allowed",
    ),
    "metrics typo": (
        {"metrics": {"servicemonitor": {"enabled": True}}},
        "at '/metrics': additional properties 'servicemonitor' not allowed",
    ),
    "replica count type": ({"replicaCount": "two"}, "at '/replicaCount'"),
    "injection port range": ({"injection": {"port": 80}}, "at '/injection/port'"),
    "toleration typo": ({"tolerations": [{"keys": "a"}]}, "at '/tolerations/0'"),
    "affinity typo": ({"affinity": {"nodeAfinity": {}}}, "at '/affinity'"),
    "injected resources typo": (
        {"injection": {"sidecarResources": {"limit": {"memory": "1Gi"}}}},
        "at '/injection/sidecarResources': additional properties 'limit' not allowed",
    ),
    "certificate source": ({"injection": {"certificate": "vault"}}, "at '/injection/certificate'"),
    "alert labels not strings": (
        {"metrics": {"prometheusRule": {"labels": {"team": 1}}}},
        "at '/metrics/prometheusRule/labels/team'",
    ),
}


@pytest.mark.parametrize("case", list(CHART_VALUES))
def test_the_chart_values_refuse_each_typo_naming_the_key(case: str, tmp_path: Path) -> None:
    binaries = Binaries.locate()
    if binaries is None:
        pytest.skip("helm is not built yet (make binaries)")
    values, message = CHART_VALUES[case]
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [str(binaries.helm), "template", "x", str(CHART), "-f", str(tmp_path / "values.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_the_documented_flag_table_is_the_one_the_sidecar_uses() -> None:
    """docs/formats.md lists each key with a flag; the table and the code agree."""
    from jwtmesh_sidecar.cli.run import FLAG_KEYS, sidecar

    docs = (CHART.parents[1] / "docs" / "formats.md").read_text()
    table = dict(
        (line.split("`")[1], line.split("`")[3].split()[0])
        for line in docs.splitlines()
        if line.startswith("| `") and line.count("`") >= 4 and " | `--" in line
    )
    options = {param.name: max(param.opts, key=len) for param in sidecar.params if param.opts}
    expected = {".".join(path): options[name] for name, path in FLAG_KEYS.items()}
    assert table == expected
