"""Where the repository's files are, seen from the test harness (one home for the paths)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
HACK = REPO_ROOT / "hack"
CHART = REPO_ROOT / "charts" / "jwtmesh"
EXAMPLES = REPO_ROOT / "examples"
