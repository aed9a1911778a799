# Two commands on a fresh machine: `make run` (the whole pipeline locally) and `make test` (the test suite).
# Each sets up the virtual environment it needs from the pinned requirements by itself, in two steps on one venv:
#   $(VENV)/.local-installed  requirements-local.txt: the Lambda runtime set plus the local pipeline (run, invoke)
#   $(VENV)/.dev-installed    requirements-dev.txt: that plus the SAM CLI, cfn-lint, pytest, hypothesis, ruff (test,
#                             lint, build, bench)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check
export PYTHONPATH := functions:.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run invoke test lint bench build clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "Python 3.11 or newer is needed; '$(PYTHON)' is not. Point PYTHON at one: make $(MAKECMDGOALS) PYTHON=python3.12"; \
		exit 1; }
	@echo "==> Creating the virtual environment $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)

$(VENV)/.local-installed: requirements-local.txt functions/requirements.txt | $(PY)
	@echo "==> Installing the runtime and local-pipeline packages (requirements-local.txt: momento, Powertools, boto3,"
	@echo "    moto, rich; about 190 MB). Once only: from 15 s to a few minutes, depending on the connection."
	@$(PIP) --requirement requirements-local.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.local-installed
	@echo "==> Installing the development tools (requirements-dev.txt: SAM CLI, cfn-lint, pytest, hypothesis, ruff;"
	@echo "    about 280 MB more). Once only: from 30 s to a few minutes, depending on the connection."
	@$(PIP) --requirement requirements-dev.txt
	@touch $@

run: $(VENV)/.local-installed ## the whole pipeline on this machine: local Momento, moto table + stream, the real handler
	@$(PY) -m local_pipeline $(ARGS)

invoke: $(VENV)/.local-installed ## one event through the real handler, no Docker: make invoke EVENT=events/insert.json
	@$(PY) -m local_pipeline.invoke "$(EVENT)" $(if $(ENV_VARS),--env-vars "$(ENV_VARS)") $(ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint ## ruff, then every test (unit, integration, SAM checks, property runs)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed ## throughput, cold start, memory and cost; writes benchmarks/results.md
	$(PY) -m benchmarks $(ARGS)

build: $(VENV)/.dev-installed ## sam build without Docker (Makefile build method)
	PYTHON=$(abspath $(PY)) $(VENV)/bin/sam build --template template.yaml

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .hypothesis
