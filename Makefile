# Set-up and checks for a fresh Debian 12 machine, run as root.
#   make demo   install, make an offline base image, build/import an example and list it
#   make test   install test and peer tools, start the peers, run ruff, mypy --strict and every test
#   make check  the contributor's fast loop: ruff, mypy --strict and the tests not marked slow
SHELL := /bin/bash
# Debian's interpreter when there is one: built with PGO and LTO, it starts ~4 ms sooner and runs
# ~20 % faster than a default source build (a pyenv one found first on PATH); dockyard is CPU-bound
# on its cached paths (a no-change rebuild, a second runner, `images`).
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV ?= .venv
PEERS ?= scripts/peers
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test check lint typecheck unit fast peers bench clean mutation

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null && $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip; }
	@# every container's seccomp filter is compiled by libseccomp (loaded with ctypes); pasta (passt)
	@# gives containers and RUN steps their private network with outbound access
	@{ ldconfig -p | grep -q 'libseccomp\.so\.2 ' && command -v pasta >/dev/null; } || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp2 passt; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q src >/dev/null
	touch $@

install: $(BIN)/.installed

peers: install
	bash scripts/peers-up.sh $(PEERS)

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy --strict

# pytest exits 5 when it collects nothing: make fails on it like on any other non-zero status.
unit: install
	$(BIN)/pytest -q -n 2 --dist loadgroup

fast: install
	$(BIN)/pytest -q -n 2 --dist loadgroup -m "not slow"

test: install peers lint typecheck unit

check: install lint typecheck fast

demo: install
	bash scripts/demo.sh

bench: install peers
	bash bench/run-all.sh

# Slow (tens of minutes): not part of `make test`. MODULES="oci-digest ..." runs a subset.
mutation: install
	$(BIN)/pip install -q -e '.[mutation]'
	$(BIN)/python scripts/mutation.py $(MODULES)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
