#!/usr/bin/env bash
# A virtual environment from a lock file: every pin installed with its hash checked, nothing
# resolved, then jwtmesh and its test harness (testing/) editable.
#   hack/venv.sh VENV LOCK TAG        (TAG names the step in the lines printed)
# uv installs the pins: it fetches them in parallel, ~20 s with empty caches (bytecode included)
# where pip took ~75 s; make test builds two of these. uv itself comes from the lock's own pin and
# hashes, installed by pip. If uv cannot be installed or fails, pip installs the same pins.
# Bytecode is compiled at install, as pip does: with PYTHONDONTWRITEBYTECODE set (CI sets it)
# every process would otherwise compile kopf, kubernetes and grpc again at each start.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1 lock=$2 tag=$3
say() { echo "[$tag] $*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating the virtual environment in $venv"
  python3 -m venv "$venv"
fi
py=$venv/bin/python
pip=("$py" -m pip --quiet --disable-pip-version-check)

# The lock's uv entry: its pin line and the hash lines continued from it.
uv_pin() { awk '/^uv==/ { found = 1 } found { print; if ($0 !~ /\\$/) exit }' "$lock"; }

with_uv() {
  # The index and certificates pip is told about (PIP_INDEX_URL, PIP_CERT) apply to uv too.
  [ -z "${PIP_INDEX_URL:-}" ] || export UV_DEFAULT_INDEX=${UV_DEFAULT_INDEX:-$PIP_INDEX_URL}
  [ -z "${PIP_CERT:-}" ] || export SSL_CERT_FILE=${SSL_CERT_FILE:-$PIP_CERT}
  [ -n "$(uv_pin)" ] || { say "no uv pin in $lock"; return 1; }
  "${pip[@]}" install --require-hashes --no-deps -r <(uv_pin) || return 1
  local uv=("$venv/bin/uv" pip --quiet)
  "${uv[@]}" install --python "$py" --compile-bytecode --require-hashes --no-deps -r "$lock" || return 1
  say "installing jwtmesh and its test harness (testing/), editable"
  "${uv[@]}" install --python "$py" --no-deps --no-build-isolation -e . -e testing || return 1
  "${uv[@]}" check --python "$py" >/dev/null
}

with_pip() {
  "${pip[@]}" install --require-hashes --no-deps -r "$lock"
  say "installing jwtmesh and its test harness (testing/), editable"
  "${pip[@]}" install --no-deps --no-build-isolation -e . -e testing
  "${pip[@]}" check >/dev/null
}

say "installing the pinned dependencies of $lock (hashes checked, nothing resolved)"
if ! with_uv; then
  say "uv could not install $lock: installing with pip instead"
  with_pip
fi
