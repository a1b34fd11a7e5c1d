#!/usr/bin/env bash
# `make e2e`: the images, the real cluster (started here and removed at the end unless it was
# already running), then tests/cluster (pytest -m cluster), which installs the chart and the
# Herald → Census example and removes them again.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
say() { echo "[e2e] $*"; }

started=$SECONDS
"$PY" -m jwtmesh_testing.images
if "$PY" -m jwtmesh_testing.realcluster status >/dev/null 2>&1; then
  say "using the running cluster (left running afterwards)"
else
  say "no cluster running: starting one, removed again at the end"
  trap '"$PY" -m jwtmesh_testing.realcluster down' EXIT
fi
"$PY" -m jwtmesh_testing.realcluster up
say "tests/cluster"
JWTMESH_REQUIRE_CLUSTER=1 "$PY" -m pytest -m cluster -v -s tests/cluster ${PYTEST_ARGS:-}
say "done in $((SECONDS - started)) s"
