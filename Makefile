# workqueue-lab: the two commands the README promises.
#
#   make lab    set up .venv, make sure a RabbitMQ answers, open JupyterLab on 127.0.0.1
#   make test   set up .venv, run tests/ and then every notebook under nbval (--nbval-lax, this venv's kernel),
#               then the same again on RabbitMQ 4.0 (test-rabbitmq40; root only)
#   make check  the edit loop: the fast tier of tests/ (no private node, cluster, browser, venv or site build:
#               tests/conftest.py derives the tier) and notebooks 00-03, against the running broker
#
# Nothing here reads standard input, so both work from a fresh clone and in CI.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# Newer than every file that decides what is installed => nothing to reinstall.
STAMP := $(VENV)/.workqueue-lab.stamp
SITE_STAMP := $(VENV)/.workqueue-lab-site.stamp
PIP := $(VPY) -m pip --disable-pip-version-check --no-input

LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888
# Extra arguments for both pytest runs, e.g. `make test PYTEST_ARGS=-x`.
PYTEST_ARGS ?=

.PHONY: help venv lab-setup lab test check test-rabbitmq40 site lint clean distclean

help:
	@echo "make lab        open the course in JupyterLab (sets up .venv and a RabbitMQ broker first)"
	@echo "make test       run tests/ and every notebook (WORKQUEUE_LAB_TIME_SCALE defaults to 0.05), on 3.10 and 4.0"
	@echo "make check      the edit loop (a few minutes): fast tests and notebooks 00-03 against the running broker"
	@echo "make test-rabbitmq40  only the RabbitMQ 4.0 part of make test (root: builds 4.0 into a chroot once)"
	@echo "make site       the course as a website in build/site/html (runs every notebook at time scale 0.05)"
	@echo "make lint       ruff check ."
	@echo "make venv       only create/update .venv"
	@echo "make clean      remove caches and build output (keeps .venv)"
	@echo "make distclean  clean, and remove .venv too"

venv: $(STAMP)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(VPY)
	$(PIP) install -r requirements-dev.txt
	$(PIP) install -e .
	@touch $@

# The website's tools, only for `make site` and `make test`: a learner's `make lab` does without them.
$(SITE_STAMP): requirements-site.txt $(STAMP)
	$(PIP) install -r requirements-site.txt
	@touch $@

# Every time (cheap): JupyterLab settings the course ships (no news pop-up) and the git filter that
# keeps outputs out of the tracked notebooks, so a learner's runs never show up as changes.
NBSTRIP := '$(abspath $(VPY))' -m workqueue_lab.notebook_files
lab-setup: $(STAMP)
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git config filter.nbstripout.clean "$(NBSTRIP)"; \
		git config filter.nbstripout.smudge cat; \
		git config diff.ipynb.textconv "$(NBSTRIP)"; \
	fi

lab: lab-setup
	$(VPY) -m workqueue_lab broker start
	VENV=$(VENV) LAB_IP=$(LAB_IP) LAB_PORT=$(LAB_PORT) jupyter/start-lab

# Tests run simulated work 20x faster unless the caller already chose a scale.
test: export WORKQUEUE_LAB_TIME_SCALE ?= 0.05
# One prefix per run for tests and notebooks alike: a test run never resets a learner's own task_queue.
test: export WORKQUEUE_LAB_PREFIX ?= test-$(shell od -An -N3 -tx1 /dev/urandom | tr -d " \n").
# One home per run (unless the caller gives one) for the private nodes and clusters the tests and notebooks start
# (notebook 04's restarts, 08's cluster): a test run never reuses, stops or restarts a learner's own node, and
# stops its own by PID at the end.
test: lab-setup $(SITE_STAMP)
	@echo "== WORKQUEUE_LAB_TIME_SCALE=$$WORKQUEUE_LAB_TIME_SCALE WORKQUEUE_LAB_PREFIX=$$WORKQUEUE_LAB_PREFIX"
	@rc=0; own_home=; \
	if [ -z "$$WORKQUEUE_LAB_HOME" ]; then WORKQUEUE_LAB_HOME=$$($(VPY) tests/node_homes.py home); own_home=1; fi; \
	export WORKQUEUE_LAB_HOME; echo "== WORKQUEUE_LAB_HOME=$$WORKQUEUE_LAB_HOME"; \
	$(VPY) tests/foreign_queue.py plant || rc=1; \
	echo "== $(VPY) -m pytest tests $(PYTEST_ARGS)"; \
	$(VPY) -m pytest tests $(PYTEST_ARGS) || rc=1; \
	echo "== $(VPY) -m pytest --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS)"; \
	$(VPY) -m pytest --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS) || rc=1; \
	$(MAKE) --no-print-directory test-rabbitmq40 || rc=1; \
	$(VPY) tests/foreign_queue.py check || rc=1; \
	if [ -n "$$own_home" ]; then \
		$(VPY) tests/node_homes.py clean "$$WORKQUEUE_LAB_HOME" system || rc=1; \
		$(VPY) tests/node_homes.py check "$$WORKQUEUE_LAB_HOME" || rc=1; \
	fi; \
	if [ $$rc -ne 0 ]; then echo "== make test: FAILED (see above)"; fi; \
	exit $$rc

# The edit loop: what needs only the running broker (no private node, cluster, browser, venv or site build).
check: export WORKQUEUE_LAB_TIME_SCALE ?= 0.05
check: export WORKQUEUE_LAB_PREFIX ?= check-$(shell od -An -N3 -tx1 /dev/urandom | tr -d " \n").
check: lab-setup
	@rc=0; start=$$(date +%s); \
	$(VPY) -m pytest -q -m "not full" tests $(PYTEST_ARGS) || rc=1; \
	$(VPY) -m pytest -q --nbval-lax --nbval-current-env notebooks/0[0-3]_*.ipynb $(PYTEST_ARGS) || rc=1; \
	echo "== make check: $$(( $$(date +%s) - start )) s"; exit $$rc

# The course again on RabbitMQ 4.0 (root only: a chroot of Debian 13's packages the lab builds once, see
# docs/versions.md): the integration tests whose claims depend on the version, then every notebook with the
# lab in control of a 4.0 node that already denies what 4.3 denies.  Its nodes and cluster live in a home of
# their own, are stopped by PID, and `node_homes.py check` fails the run if anything is left running or mounted.
TESTS_40 := tests/test_topology.py tests/test_failures.py tests/test_programs.py tests/test_task_worker.py \
	tests/test_engine.py tests/test_ack_timeout_restore.py tests/test_watch_queue.py
test-rabbitmq40: export WORKQUEUE_LAB_TIME_SCALE ?= 0.05
test-rabbitmq40: export WORKQUEUE_LAB_PREFIX ?= test-$(shell od -An -N3 -tx1 /dev/urandom | tr -d " \n").
test-rabbitmq40: lab-setup
	@if [ "$$(id -u)" != 0 ]; then echo "== skipped: RabbitMQ 4.0 runs as root in a chroot (CI runs as root)"; exit 0; fi; \
	rc=0; home=$$($(VPY) tests/node_homes.py home); \
	export WORKQUEUE_LAB_RABBITMQ=4.0 WORKQUEUE_LAB_BROKER=private WORKQUEUE_LAB_HOME=$$home; \
	if $(VPY) tests/node_homes.py start $$home; then \
		echo "== RabbitMQ 4.0: $(VPY) -m pytest $(TESTS_40)"; \
		$(VPY) -m pytest $(TESTS_40) $(PYTEST_ARGS) || rc=1; \
		echo "== RabbitMQ 4.0: $(VPY) -m pytest --nbval-lax --nbval-current-env notebooks"; \
		$(VPY) -m pytest --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS) || rc=1; \
	else rc=1; fi; \
	$(VPY) tests/node_homes.py clean $$home || rc=1; \
	$(VPY) tests/node_homes.py check $$home || rc=1; \
	exit $$rc

# The notebooks, executed against RabbitMQ (at the CI time scale unless the caller chose one) into copies,
# rendered by Jupyter Book; open build/site/html/index.html.  tests/test_site.py builds and checks the same.
site: export WORKQUEUE_LAB_PREFIX ?= site.
site: lab-setup $(SITE_STAMP)
	$(VPY) -m workqueue_lab broker start
	$(VPY) book/build_site.py --out build/site

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf build dist artifacts .pytest_cache .ruff_cache ./*.egg-info
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o \
		-type d \( -name __pycache__ -o -name .ipynb_checkpoints \) -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
