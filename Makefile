# jwtmesh — every target works from a clean clone; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements-dev.lock
# A new stamp (so a fresh install) whenever the project's metadata or the pins change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml testing/pyproject.toml $(LOCK) | sha1sum | cut -c1-12)
FAST := -m "not envoy and not k8s and not soak and not fuzz and not slow and not cluster"
PYTEST_ARGS ?=
# make test runs these markers one at a time, after the rest ran JOBS at a time: their
# assertions (latency, rates, zero failed requests in a window, RSS) must not share the cores.
ALONE := soak or timing
JOBS ?= 3
# mypy's cache lives outside the checkout, like the Go-built binaries, so a new clone (CI)
# re-checks only what it cannot find unchanged there: ~27 s cold, ~1 s warm. mypy compares
# each file's contents, so a cache from another checkout or commit is never trusted blindly.
MYPY_CACHE ?= $(HOME)/.cache/jwtmesh/mypy

.PHONY: wrk help venv lint typecheck test test-fast test-min lock binaries clean load demo e2e-kind bench profile-grpc cluster cluster-down images e2e

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml testing/pyproject.toml $(LOCK) hack/venv.sh
	@hack/venv.sh $(VENV) $(LOCK) setup
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install everything Python needs

lint: $(STAMP) ## ruff (lint + format check) and the import rules between the rooms
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP) ## mypy --strict
	MYPY_CACHE_DIR=$(MYPY_CACHE) $(VENV)/bin/mypy

test-fast: $(STAMP) ## unit and property tests only (under a minute: no Envoy, API server or fuzzing campaign)
	$(PY) -m pytest $(FAST) -n auto $(PYTEST_ARGS)

test-min: ## the fast suite on the oldest versions pyproject.toml allows (requirements-min.lock)
	hack/test-min.sh $(FAST) -n auto

test: $(STAMP) lint typecheck binaries test-min ## everything: lint, types, oldest versions, unit, property, fuzzing, Envoy and Kubernetes end to end (the real cluster: make e2e)
	@echo "[test] the tests that measure nothing, $(JOBS) at a time (most wait on an API server)"
	$(PY) -m pytest -m "not cluster and not ($(ALONE))" -n $(JOBS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)
	@echo "[test] the tests that measure time, load or memory, one at a time"
	$(PY) -m pytest -m "not cluster and ($(ALONE))" $(PYTEST_ARGS)

lock: $(STAMP) ## refresh the lock files from pyproject.toml (uv), then run make test
	hack/lock.sh

demo: $(STAMP) binaries ## the main job: control plane, operator, Herald → Census behind Envoy + sidecar
	$(PY) -m jwtmesh_testing.demo

e2e-kind: ## the demo on a kind cluster (needs a Docker engine; skips cleanly without one)
	hack/e2e-kind.sh

binaries: ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm (cached outside the repo)
	hack/build-binaries.sh

cluster: $(STAMP) ## a real single-node Kubernetes here (containerd, kubelet, CNI, kube-proxy, CoreDNS); root
	$(PY) -m jwtmesh_testing.realcluster up

images: $(STAMP) ## jwtmesh, Envoy and demo-app images without Docker or a registry (imported if the cluster runs)
	hack/cluster/packages.sh
	$(PY) -m jwtmesh_testing.images
	$(PY) -m jwtmesh_testing.realcluster import-images

e2e: $(STAMP) wrk ## make demo's checks, rotation under load, failover, upgrade, uninstall on the real cluster (brought up and down here unless already up); root
	hack/cluster/e2e.sh

cluster-down: $(STAMP) ## remove everything `make cluster` started or changed on this machine
	$(PY) -m jwtmesh_testing.realcluster down

clean: ## remove the venv and caches (the Go-built binaries and mypy's cache stay in ~/.cache/jwtmesh)
	rm -rf $(VENV) .venv-min .mypy_cache .ruff_cache .pytest_cache .hypothesis

wrk:
	@command -v wrk >/dev/null || { echo "[bench] installing wrk (Debian)"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

load: $(STAMP) wrk ## data plane only: Envoy alone, jwt_authn, jwtmesh gRPC and HTTP, interleaved
	$(PY) bench/dataplane.py --seconds $${SECONDS_PER_RUN:-5} --rounds $${ROUNDS:-3}

bench: $(STAMP) wrk binaries ## everything measured: data plane vs jwt_authn (paced rates too), a cache miss split by stage, the wake-up floor, then control plane at scale
	@$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-bench.lock
	$(PY) bench/dataplane.py --seconds $${SECONDS_PER_RUN:-5} --rounds $${ROUNDS:-3}
	$(PY) bench/miss_split.py
	$(PY) bench/wakeup_floor.py
	$(PY) bench/profile_grpc.py --seconds 10
	$(PY) bench/controlplane.py --identities $${IDENTITIES:-1000}

profile-grpc: $(STAMP) wrk ## py-spy over the gRPC sidecar under wrk: our handler's share of each Check
	@$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-bench.lock
	$(PY) bench/profile_grpc.py --seconds 10

