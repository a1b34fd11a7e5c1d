"""Coverage-guided fuzzing with atheris, bounded in time (a few seconds per target here;
run atheris_targets.py by hand for longer). Skipped where atheris has no wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has no wheel for this platform/Python")
pytestmark = pytest.mark.fuzz

HARNESS = Path(__file__).with_name("atheris_targets.py")
SECONDS = 15


@pytest.mark.parametrize("target", ["token", "policy"])
def test_fuzzing_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=1024",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        cwd=tmp_path,  # crash-* reproducers land here, not in the repo
    )
    executed = [line for line in run.stderr.splitlines() if line.startswith("#") and "cov:" in line]
    assert run.returncode == 0, f"atheris found a crash:\n{run.stderr[-4000:]}"
    assert executed, f"atheris did not run:\n{run.stderr[-2000:]}"
