# Two commands do everything on a fresh machine:
#   make run    the main job: the dev stack up in the embedded sandbox, events through the API,
#               where they landed (the sandbox stays up for exploring; `make down` ends it)
#   make test   set up the toolchain if needed, then the unit suite
PYTHON  := .venv/bin/python
PYTEST  := $(PYTHON) -m pytest

.PHONY: setup test run down plan integration signoff load lint fmt clean

setup:
	python3 tapharness/toolchain.py setup

# The repository root's unit suite (the harness and the video-streaming stack), then each stack
# under stacks/ in a run of its own (its test packages share names; TAPSTACK_STACK selects it).
test: setup
	$(PYTEST) tests/unit -n auto
	@set -e; for suite in $(wildcard stacks/*/tests/unit); do \
	  stack=$${suite#stacks/}; stack=$${stack%%/*}; \
	  echo "== unit suite of $$stack"; TAPSTACK_STACK=$$stack $(PYTEST) $$suite -n auto; \
	done

run: setup
	$(PYTHON) -m tapharness.sandbox up --env dev
	$(PYTHON) -m tapharness.demo --env dev

down: setup
	$(PYTHON) -m tapharness.sandbox down --env dev

# Plan dev, staging and prod offline and print what differs in capacity.
plan: setup
	$(PYTHON) -m tapharness.summary

# The integration suite against a fresh dev sandbox (up, suite, down), with JUnit XML in reports/.
integration: setup
	$(PYTHON) -m tapharness.signoff --env dev --suites integration

# Release sign-off: the unit suite, then per environment the integration suite against the sandbox.
signoff: setup
	$(PYTHON) -m tapharness.signoff

# Load through a running sandbox (or TAPSTACK_OUTPUTS): 10,000 events over 60 s, every one accounted for.
load: setup
	$(PYTHON) benchmarks/load.py --env dev

lint: setup
	$(PYTHON) -m ruff check .
	bin/tofu fmt -check -recursive lib stacks

fmt: setup
	$(PYTHON) -m ruff check --fix .
	bin/tofu fmt -recursive lib stacks

clean:
	rm -rf lib/.build .venv .pytest_cache
