# Entry points for a fresh machine. `make demo` and `make test` set up
# everything they need (a virtualenv in .venv, the Kafka jars on first use).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[service,routing,reconcile,test,dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/burnrate demo

test: setup
	sh .ci/install-debian-packages.sh
	$(BIN)/pytest

bench: setup
	for script in tests/benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) burnrate-out .pytest_cache
