# The two commands a newcomer needs: `make demo` and `make test`. Both set themselves up.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(BIN)/pairpilot demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n auto --dist worksteal

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	scripts/verify-units.sh

clean:
	rm -rf $(VENV) .pytest_cache demo-output
