# The two commands a fresh machine needs: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench schemas clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/ledger run

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(BIN)/ruff check .
	$(BIN)/mypy ledger projections api workers entrypoints tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy ledger projections api workers entrypoints tests

schemas: install
	$(BIN)/python -m ledger.event_schemas

bench: install
	$(BIN)/python bench/commands.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/scale_out.py
	$(BIN)/python bench/projections.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/books.py

clean:
	rm -rf $(VENV) .ledger
