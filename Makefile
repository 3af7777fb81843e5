# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m app --host 127.0.0.1 --port 8080 --data-dir ./Client_Data

# The habits run themselves: lint, formatting and types first, then the suite.
lint: $(STAMP)
	$(BIN)/ruff check app jobs tests bench
	$(BIN)/ruff format --check app jobs tests bench
	$(BIN)/mypy app jobs

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
