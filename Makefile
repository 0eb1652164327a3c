# Two commands matter on a fresh machine:
#   make demo   start Kafka, PostgreSQL and the three services, drive the flow, show the logs
#   make test   run the whole test suite against the real local stack
# Each does its own set-up (virtualenv, dependencies, Kafka jars, PostgreSQL).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every transitive dependency is pinned with hashes in requirements/*.lock (pip-tools);
# a change to pyproject.toml or a lock file reinstalls. `make lock` refreshes the locks.
LOCKS := requirements/runtime.lock requirements/test.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) | sha256sum | cut -c1-12)
LOCK_VENV := .local/lock-venv
PIP_TOOLS := pip-tools==7.6.2
PIP_COMPILE := $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--all-build-deps --no-emit-find-links --no-emit-index-url $(if $(UPGRADE),--upgrade)

include deploy/local/stack.mk

.PHONY: help venv lock lint tools promtool smtp-sink browser screenshots contracts test test-secured cluster-faults test-unit test-integration demo up down services-up services-down services-status clean bench bench-growth

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/test.lock \
	   && $(PY) -m pip install --quiet --no-deps --no-build-isolation -e . ; } >$(VENV)/pip.log 2>&1 \
	   || { cat $(VENV)/pip.log; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create the virtualenv and install the locked dependencies (requirements/test.lock)

lock: ## re-resolve requirements/*.lock from pyproject.toml (keeps other pins; UPGRADE=1 takes the newest)
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet $(PIP_TOOLS); }
	@$(PIP_COMPILE) -o requirements/runtime.lock pyproject.toml
	@$(PIP_COMPILE) --extra test -c requirements/runtime.lock -o requirements/test.lock pyproject.toml
	@echo "written $(LOCKS)"

# Configured in pyproject.toml ([tool.ruff], [tool.mypy]); `make test`, and so CI, runs it first.
lint: venv ## ruff (style, bugs, unused noqa) and mypy (strict on shared/ and the domain modules)
	@$(VENV)/bin/ruff check --quiet .
	@$(VENV)/bin/mypy

test-unit: venv ## unit tests only (no I/O; the promtool checks run when `make promtool` has fetched it)
	@$(PY) -m pytest tests/unit -q

# Browser tests drive Debian's Chromium through Playwright's executable_path (Playwright's own
# browser download is not used: it needs a host outside the package registries).
browser: ## install Debian's chromium for the browser tests when it is missing
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

screenshots: venv browser stack-up ## refresh docs/screenshots/ from the browser journeys
	@NTB_ENV=development NTB_SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest tests -q -p no:cacheprovider -k browser

promtool: ## fetch promtool (alert-rule checks) into .local/tools unless one is installed
	@deploy/local/promtool.sh >/dev/null

smtp-sink: ## fetch Postfix's smtp-sink (C SMTP sink for the benchmarks) into .local/tools; no Postfix daemon
	@deploy/local/smtp_sink.sh >/dev/null

tools: ## OS test tools (kcat) when missing
	@deploy/local/tools.sh

test: lint tools browser stack-up promtool ## all tests against the real local Kafka and PostgreSQL
	@$(PY) -m pytest tests -q -p no:cacheprovider

test-secured: venv ## integration + security tests against the secured stack (SASL_SSL, SCRAM, ACLs)
	@LOCAL_KAFKA_SECURITY=sasl_ssl $(MAKE) --no-print-directory stack-up
	@LOCAL_KAFKA_SECURITY=sasl_ssl $(PY) -m pytest tests/integration tests/security -q -p no:cacheprovider

cluster-faults: venv ## three-broker KRaft cluster fault tests (RF 3, min.insync 2); see docs/reliability.md
	@deploy/local/cluster.sh test

bench: venv stack-up smtp-sink ## benchmarks beside raw baselines (SCALE=smoke|default|growth, ONLY=B1,B3); see docs/performance.md
	@NTB_ENV=development $(PY) -m bench.run --scale $(or $(SCALE),default) $(if $(ONLY),--only $(ONLY)) $(if $(JSON),--json $(JSON))

bench-growth: venv stack-up smtp-sink ## growth: B1, B4 and the pipeline at two sizes (defaults GROWTH=10000,100000 GROWTH_PIPELINE=1000,10000; hours at full size)
	@NTB_ENV=development $(PY) -m bench.run --scale growth --only GROWTH $(if $(GROWTH),--growth-sizes $(GROWTH)) $(if $(GROWTH_PIPELINE),--growth-pipeline $(GROWTH_PIPELINE)) $(if $(JSON),--json $(JSON))

demo: venv stack-up ## start the stack, an SMTP sink and the services; drive the whole Rakor scenario
	@deploy/local/demo.sh

up: venv stack-up ## start the stack and the three services and leave them running
	@deploy/local/services.sh start

down: ## stop the services and the stack
	@deploy/local/services.sh stop
	@$(MAKE) --no-print-directory stack-down

services-status: ## show the services' processes
	@deploy/local/services.sh status

clean: down ## stop everything and delete local data
	rm -rf .local

contracts: venv ## regenerate the published AsyncAPI and OpenAPI documents
	@$(PY) -m shared.contracts.asyncapi > deploy/asyncapi/asyncapi.yaml
	@$(PY) -m shared.contracts.kafka_acls --compose > deploy/compose/kafka-acls.sh
	@for s in invitations commitments notifications; do NTB_ENV=development $(PY) -m services.$$s openapi > deploy/openapi/$$s.json; done
	@echo "written deploy/asyncapi/asyncapi.yaml, deploy/compose/kafka-acls.sh and deploy/openapi/*.json"
