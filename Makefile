# Two commands do everything on a fresh machine with Python 3.11 and pip: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := sample_project
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint bench install clean sample-data bqemu-venv bqemu

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[checks,dev,openlineage,dagster]'
	@touch $(STAMP)

install: $(STAMP)

# The synthetic raw events are made by a deterministic generator, never committed.
sample-data: $(STAMP)
	$(BIN)/python $(SAMPLE)/generate_data.py

demo: sample-data
	$(BIN)/python -m sqlassets.demo $(SAMPLE)

# The BigQuery emulator pins an older sqlglot than sqlassets: it gets a venv of its own, which the
# BigQuery tests start from (tests/adapters/bqemu_launch.py) on a free loopback port.
BQEMU_VENV := .venv-bqemu
BQEMU_STAMP := $(BQEMU_VENV)/.installed
$(BQEMU_STAMP):
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11"; exit 2; }
	$(PYTHON) -m venv $(BQEMU_VENV)
	$(BQEMU_VENV)/bin/python -m pip install -q 'bqemulator==1.4.0' 'numpy>=1.26,<3'
	@touch $(BQEMU_STAMP)

bqemu-venv: $(BQEMU_STAMP)

# Serve the emulator on 127.0.0.1:9050 for `sqlassets --target bigquery` on the sample project.
bqemu: $(BQEMU_STAMP)
	$(BQEMU_VENV)/bin/python tests/adapters/bqemu_launch.py --port 9050

test: $(STAMP) $(BQEMU_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(BQEMU_VENV) $(SAMPLE)/target $(SAMPLE)/.sqlassets $(SAMPLE)/data/*.duckdb
