# workqueue-lab: the two commands the README promises.
#
#   make lab    set up .venv, make sure a RabbitMQ answers, open JupyterLab on 127.0.0.1
#   make test   set up .venv, run tests/ and then every notebook under nbval (--nbval-lax, this venv's kernel)
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

.PHONY: help venv lab-setup lab test site lint clean distclean

help:
	@echo "make lab        open the course in JupyterLab (sets up .venv and a RabbitMQ broker first)"
	@echo "make test       run tests/ and every notebook (WORKQUEUE_LAB_TIME_SCALE defaults to 0.05)"
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
test: lab-setup $(SITE_STAMP)
	@echo "== WORKQUEUE_LAB_TIME_SCALE=$$WORKQUEUE_LAB_TIME_SCALE WORKQUEUE_LAB_PREFIX=$$WORKQUEUE_LAB_PREFIX"
	@rc=0; \
	$(VPY) tests/foreign_queue.py plant || rc=1; \
	echo "== $(VPY) -m pytest tests $(PYTEST_ARGS)"; \
	$(VPY) -m pytest tests $(PYTEST_ARGS) || rc=1; \
	echo "== $(VPY) -m pytest --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS)"; \
	$(VPY) -m pytest --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS) || rc=1; \
	$(VPY) tests/foreign_queue.py check || rc=1; \
	if [ $$rc -ne 0 ]; then echo "== make test: FAILED (see above)"; fi; \
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
