#!/usr/bin/env bash
# `make e2e-kind`: the demo on a real kind cluster, for machines with a Docker engine.
# Without one it skips with a clear message (exit 0): there is nothing to run it on.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "[e2e-kind] $*"; }

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  say "skipped: no Docker engine on this machine ('docker info' failed); kind needs one."
  say "the same checks run without Docker in 'make test' (tests/k8s/test_demo.py)."
  exit 0
fi

cache="${JWTMESH_BIN_CACHE:-$HOME/.cache/jwtmesh/bin}"
"$here/hack/build-binaries.sh"
# shellcheck disable=SC1091
source "$cache/current.env"
kind="$cache/kind-v0.30.0/kind"
if [ ! -x "$kind" ]; then
  say "building kind v0.30.0"
  mkdir -p "$(dirname "$kind")"
  GOTOOLCHAIN=local GOBIN="$(dirname "$kind")" go install sigs.k8s.io/kind@v0.30.0
fi
image=ghcr.io/jwtmesh/jwtmesh:e2e
cluster=jwtmesh-e2e
say "building the image $image"
docker build -t "$image" "$here"
say "creating the kind cluster $cluster"
"$kind" create cluster --name "$cluster" --wait 120s
trap '"$kind" delete cluster --name "$cluster"' EXIT
"$kind" load docker-image "$image" --name "$cluster"
say "helm install"
"$JWTMESH_HELM" install jwtmesh "$here/charts/jwtmesh" --namespace jwtmesh-system --create-namespace \
  --set image.repository=ghcr.io/jwtmesh/jwtmesh --set image.tag=e2e --set image.pullPolicy=Never --wait
say "deploying Herald and Census"
"$JWTMESH_KUBECTL" apply -f "$here/examples/herald-census/manifests.yaml"
"$JWTMESH_KUBECTL" -n demo rollout status deploy/census deploy/herald --timeout=180s
k() { "$JWTMESH_KUBECTL" -n demo exec deploy/herald -c app -- "$@"; }
check() {
  local name=$1 expected=$2 actual=$3
  if [ "$expected" = "$actual" ]; then say "ok   $name ($actual)"; else say "FAIL $name: expected $expected, got $actual"; exit 1; fi
}
check "Herald → Census with a minted token" 200 "$(k curl -s -o /dev/null -w '%{http_code}' -H 'host: census.demo.svc:8080' http://127.0.0.1:15001/users/7)"
check "no token" 401 "$(k curl -s -o /dev/null -w '%{http_code}' http://census.demo.svc:8080/users/7)"
check "a caller without the required role" 403 "$(k curl -s -o /dev/null -w '%{http_code}' -X DELETE -H 'host: census.demo.svc:8080' http://127.0.0.1:15001/users/7)"
say "all checks passed"
