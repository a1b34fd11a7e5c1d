#!/usr/bin/env bash
# The fast suite on the oldest versions pyproject.toml allows for our direct dependencies
# (requirements-min.lock, from `uv pip compile --resolution lowest-direct`), in .venv-min.
# A lower bound that no longer works fails here, not on a user's machine.
#   hack/test-min.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-min
lock=requirements-min.lock
stamp="$venv/.installed-$(cat pyproject.toml testing/pyproject.toml "$lock" hack/venv.sh | sha1sum | cut -c1-12)"
say() { echo "[test-min] $*"; }
if [ ! -e "$stamp" ]; then
  say "$venv: the oldest versions pyproject.toml allows ($lock)"
  hack/venv.sh "$venv" "$lock" test-min
  rm -f "$venv"/.installed-* && touch "$stamp"
fi
say "$("$venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
  | awk 'tolower($1) ~ /^(grpcio|pyjwt|cryptography|kopf|kubernetes|protobuf|xds-protos|aiohttp)$/ {printf "%s %s  ", $1, $2}')"
exec "$venv/bin/python" -m pytest "$@"
