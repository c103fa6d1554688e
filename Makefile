# Every target creates or reuses the local virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint install clean revision

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m agentiam.demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Token endpoints and middleware against the peer, then the audit log.
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/audit_bench.py

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

# Regenerate the initial Alembic revision from every package's tables.  Until the
# first release there is one revision; after it, add revisions instead.
revision: $(STAMP)
	rm -f agentiam-data/autogenerate.db src/agentiam/storage/migrations/versions/0001_*.py
	mkdir -p agentiam-data
	$(BIN)/python -m alembic -c src/agentiam/storage/migrations/alembic.ini \
		revision --autogenerate --rev-id 0001 -m "initial schema"
	# SQLite renders a false default as 0, which PostgreSQL rejects for a boolean.
	sed -i 's/server_default=sa.text(.0.)/server_default=sa.false()/' \
		src/agentiam/storage/migrations/versions/0001_*.py
	$(BIN)/ruff format src/agentiam/storage/migrations/versions
	rm -f agentiam-data/autogenerate.db

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
