"""The repository layout never lets the `operator/` folder shadow the stdlib `operator`."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operator_folder_is_not_a_package() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "sidecar" / "__init__.py").exists()


def test_stdlib_operator_wins_even_with_the_repo_root_on_sys_path() -> None:
    code = (
        "import operator, typing, jwtmesh, jwtmesh_sidecar, jwtmesh_operator;"
        " print(operator.__file__)"
    )
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


def test_the_wheel_ships_the_three_rooms_and_no_test_harness(tmp_path: Path) -> None:
    """The token forger, the local cluster and the demo never reach production."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("jwtmesh-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packages = {name.split("/", 1)[0] for name in names if "/" in name}
    assert {"jwtmesh", "jwtmesh_sidecar", "jwtmesh_operator"} <= packages
    assert not [n for n in names if n.startswith(("jwtmesh_testing", "operator/", "tests/"))]
    assert not [n for n in names if n.endswith(("forge.py", "demo.py", "localcluster.py"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        scripts = archive.read(entry_points).decode()
    assert "jwtmesh = jwtmesh_sidecar.cli:main" in scripts
    assert "jwtmesh-operator = jwtmesh_operator.cli:main" in scripts


def test_the_three_rooms_are_plain_folders_holding_one_package_each() -> None:
    for folder, package in (
        ("core", "jwtmesh"),
        ("sidecar", "jwtmesh_sidecar"),
        ("operator", "jwtmesh_operator"),
        ("testing", "jwtmesh_testing"),
    ):
        assert not (ROOT / folder / "__init__.py").exists()
        assert (ROOT / folder / package / "__init__.py").exists()
