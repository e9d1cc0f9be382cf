# The two commands of the README. Each creates .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install install-dev bench chaos clean

run: $(VENV)/.stamp-run
	$(BIN)/lull run

# The short chaos run goes last, alone: its 3-minute budget is for a machine it does not
# share with the other tests' processes (together they ran it in 4-5 minutes).
CHAOS_TEST := tests/chaos/test_chaos.py

test: $(VENV)/.stamp-dev
	$(BIN)/pytest --ignore=$(CHAOS_TEST)
	$(BIN)/pytest --numprocesses=0 $(CHAOS_TEST)

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

# Lull against a Redis batcher and a per-message bot; needs redis-server (Debian package).
# 20 minutes of load and faults on a real deployment, then the checker's table.
chaos: $(VENV)/.stamp-dev
	$(BIN)/python -m tests.chaos.run --minutes $${CHAOS_MINUTES:-20}

bench: $(VENV)/.stamp-dev
	@command -v redis-server >/dev/null || (echo "bench needs redis-server: apt-get install -y redis-server"; exit 1)
	$(BIN)/python -m bench.compare

install: $(VENV)/.stamp-run
install-dev: $(VENV)/.stamp-dev

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Lull needs Python 3.11 or newer; set PYTHON=...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.stamp-run

clean:
	rm -rf $(VENV) .lull build *.egg-info
