# Set-up and checks for a fresh Debian 12 machine, run as root.
#   make demo   install, make an offline base image, build/import an example and list it
#   make test   install test and peer tools, start the peers, run ruff, mypy --strict and every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PEERS ?= ../shared/peers
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint typecheck unit peers bench clean mutation

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null && $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip; }
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

unit: install
	$(BIN)/pytest -q -n 2 --dist loadgroup

test: install peers lint typecheck unit

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
