# Two commands do everything on a fresh machine:
#   make run    the main job (plan every environment and print a summary)
#   make test   set up the toolchain if needed, then the unit suite
PYTHON  := .venv/bin/python
PYTEST  := $(PYTHON) -m pytest

.PHONY: setup test run lint fmt integration clean

setup:
	python3 tapharness/toolchain.py setup

test: setup
	$(PYTEST) tests/unit -n auto

run: setup
	$(PYTHON) -m tapharness.summary

lint: setup
	$(PYTHON) -m ruff check .
	bin/tofu fmt -check -recursive lib

fmt: setup
	$(PYTHON) -m ruff check --fix .
	bin/tofu fmt -recursive lib

clean:
	rm -rf lib/.build .venv .pytest_cache
