#!/usr/bin/env bash
# Refreshes the lock files from pyproject.toml (`make lock`). Installs never resolve: `make`,
# .ci/run and the image install exactly these pins, with hashes.
#
#   requirements.lock       runtime dependencies: what the image and a user's install run
#   requirements-dev.lock   + the dev extras (tests, linters, Envoy), same runtime pins
#   requirements-bench.lock + the bench extras, same pins again
#   requirements-min.lock   the oldest versions pyproject.toml allows for our direct
#                           dependencies (`make test-min` runs the fast suite on them)
#
# Each refresh resolves the newest versions pyproject.toml allows (--upgrade): what a user
# installing today gets. Target: CPython 3.11 on x86_64 Linux (CI, the image's python3).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
common=(--quiet --upgrade --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes
        --no-header --annotation-style line)
say() { echo "[lock] $*"; }

say "requirements.lock (runtime)"
"$uv" pip compile "${common[@]}" pyproject.toml -o requirements.lock
say "requirements-dev.lock (runtime + dev)"
"$uv" pip compile "${common[@]}" pyproject.toml --extra dev -c requirements.lock \
  -o requirements-dev.lock
say "requirements-bench.lock (runtime + dev + bench)"
"$uv" pip compile "${common[@]}" pyproject.toml --extra dev --extra bench \
  -c requirements-dev.lock -o requirements-bench.lock
say "requirements-min.lock (lowest allowed direct dependencies + dev)"
"$uv" pip compile "${common[@]}" pyproject.toml --extra dev --resolution lowest-direct \
  -o requirements-min.lock
say "done; commit the four files"
