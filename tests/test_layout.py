"""The repository layout never lets the `operator/` folder shadow the stdlib `operator`."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operator_folder_is_not_a_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "sidecar" / "__init__.py").exists()


def test_stdlib_operator_wins_even_with_the_repo_root_on_sys_path() -> None:
    code = "import operator, typing, jwtmesh, jwtmesh_operator; print(operator.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "site-packages" not in out
    assert str(ROOT / "operator") not in out


def test_ruff_checks_stdlib_shadowing() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lint = config["tool"]["ruff"]["lint"]
    assert "A" in lint["select"]
    assert "A005" not in lint.get("ignore", [])
