# Two commands on a fresh machine: `make run` (the whole pipeline locally) and `make test` (the test suite).
# Each creates the virtual environment from the pinned requirements by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := functions:.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test lint bench build clean

$(VENV)/.installed: requirements-dev.txt functions/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed ## the whole pipeline on this machine: local Momento, moto table + stream, the real handler
	$(PY) -m local_pipeline $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint ## ruff, then every test (unit, integration, SAM checks, property runs)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed ## throughput, cold start, memory and cost; writes benchmarks/results.md
	$(PY) -m benchmarks $(ARGS)

build: $(VENV)/.installed ## sam build without Docker (Makefile build method)
	PYTHON=$(abspath $(PY)) $(VENV)/bin/sam build --template template.yaml

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .hypothesis
