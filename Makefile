# Set-up and test entry points. Every target installs what it needs (run as root on Debian 12).
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := openssh-server haproxy nginx-light libnginx-mod-stream iproute2 nftables socat python3-venv python3.11 procps psmisc
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: deps venv lab-up lab-down demo bench test test-unit test-lab test-sanity test-docs test-integration test-molecule lint clean

# apt packages: update the index only when something is missing (a fresh machine needs it first).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v docker >/dev/null || scripts/install-docker-cli.sh

venv: deps $(VENV)/.done

$(VENV)/.done: requirements.txt tests/lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e tests/lab
	touch $@

lab-up: venv
	$(BIN)/msr-lab up

lab-down: venv
	$(BIN)/msr-lab down

demo: venv
	scripts/demo.sh

# Not a test: measures a no-op reconcile against an empty run and the naive way on labs of 6-200 MKE nodes
# (about 15 minutes), writes docs/performance.json and .md. Run it on a quiet machine.
bench: venv
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

test: venv
	scripts/test.sh

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-lab: venv
	$(BIN)/pytest -q tests/lab/tests

lint: venv
	scripts/lint.sh

test-sanity: venv
	scripts/sanity.sh

test-docs: venv
	scripts/docs.sh

test-integration: venv
	$(BIN)/pytest -q tests/integration

test-molecule: venv
	scripts/molecule.sh

clean: lab-down
	rm -rf $(VENV) build tests/output
