# Two commands do everything on a fresh machine:
#   make run    the main job: the dev stack up in the embedded sandbox, events through the API,
#               where they landed (the sandbox stays up for exploring; `make down` ends it)
#   make test   set up the toolchain if needed, then the unit suite
PYTHON  := .venv/bin/python
PYTEST  := $(PYTHON) -m pytest

.PHONY: setup test run down plan integration signoff load lint fmt clean

setup:
	python3 tapharness/toolchain.py setup

# Every stack's unit suite side by side (tapharness/suites.py): the repository root's (the harness
# and the video-streaming stack) on two workers, each stack under stacks/ in a process of its own.
test: setup
	$(PYTHON) -m tapharness.suites

run: setup
	$(PYTHON) -m tapharness.sandbox up --env dev
	$(PYTHON) -m tapharness.demo --env dev

down: setup
	$(PYTHON) -m tapharness.sandbox down --env dev

# Plan dev, staging and prod offline and print what differs in capacity.
plan: setup
	$(PYTHON) -m tapharness.summary

# The integration suite of one stack (STACK=hotel_booking; default the video-streaming one) against
# a fresh dev sandbox (up, suite, down), with JUnit XML in reports/.
STACK ?= video_streaming
integration: setup
	$(PYTHON) -m tapharness.signoff --stack $(STACK) --env dev --suites integration

# Release sign-off of every stack: its unit suite, then per environment its integration suite
# against the sandbox (reports/signoff.md, reports/<stack>/signoff.md).
signoff: setup
	@set -e; for stack in video_streaming $(notdir $(wildcard stacks/*)); do \
	  $(PYTHON) -m tapharness.signoff --stack $$stack; \
	done

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
