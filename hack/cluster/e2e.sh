#!/usr/bin/env bash
# `make e2e`: the Debian packages, the images, the real cluster (started here and removed at
# the end, also on failure, unless it was already running), then tests/cluster (pytest -m
# cluster), which installs the chart and the Herald → Census example and removes them again.
# On failure: the cluster's state (Pods, events, the operator's log) before it goes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
say() { echo "[e2e] $*"; }

started=$SECONDS
hack/cluster/packages.sh  # mmdebstrap for the images, the rest for the cluster
"$PY" -m jwtmesh_testing.images
if "$PY" -m jwtmesh_testing.realcluster status >/dev/null 2>&1; then
  say "using the running cluster (left running afterwards)"
else
  say "no cluster running: starting one, removed again at the end (also on failure)"
  trap 'say "removing the cluster"; "$PY" -m jwtmesh_testing.realcluster down' EXIT
fi
"$PY" -m jwtmesh_testing.realcluster up
say "tests/cluster"
if ! JWTMESH_REQUIRE_CLUSTER=1 "$PY" -m pytest -m cluster -v -s --durations=12 tests/cluster ${PYTEST_ARGS:-}; then
  say "FAILED after $((SECONDS - started)) s; the cluster as it was:"
  "$PY" -m jwtmesh_testing.realcluster diagnose || true
  exit 1
fi
say "passed in $((SECONDS - started)) s"
