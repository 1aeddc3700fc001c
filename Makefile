# The commands users type. `make book` and `make test` are the two the README leads with;
# both create .venv/ and fetch the data first if needed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dgm-installed

# Jupyter's config/data/runtime folders stay inside the repo, never in ~.
export JUPYTER_CONFIG_DIR  ?= $(CURDIR)/.jupyter/config
export JUPYTER_DATA_DIR    ?= $(CURDIR)/.jupyter/data
export JUPYTER_RUNTIME_DIR ?= $(CURDIR)/.jupyter/runtime
export PIP_DISABLE_PIP_VERSION_CHECK := 1

LECTURES := $(sort $(wildcard lectures/[0-9][0-9]_*.md))

.PHONY: help setup data mathjax hub browser sandbox book lectures test lab assignments grade bench clean

help:
	@echo "make book         set up, fetch data, execute every lecture, build the book into book/_build/html/"
	@echo "make test         set up, then run the whole test suite"
	@echo "make setup        create .venv/ with the pinned dependencies and fetch the data (idempotent)"
	@echo "make browser      install Debian's chromium for the browser tests (apt-get, as root or via sudo)"
	@echo "make sandbox      install Debian's bubblewrap, the grading sandbox (apt-get, as root or via sudo)"
	@echo "make hub          install the hub's proxy (npm configurable-http-proxy, pinned) into grading-hub/node_modules/"
	@echo "make lab          JupyterLab on the course (127.0.0.1); INSTRUCTOR=1 adds nbgrader's tools"
	@echo "make assignments  regenerate assignments/ from solutions/ with nbgrader"
	@echo "make grade        autograde grading/submitted/ in the sandbox (JOBS=N in parallel, SCHEDULER=tcp://... on Dask): feedback, grades.csv, report.csv"
	@echo "make bench        every family on one bench (chapter 8): table, CSVs and plots in bench-output/; FAST=1: <= 3 min"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[course]"
	touch $@

setup: $(STAMP) data mathjax hub

data: $(STAMP)
	$(BIN)/python -m dgm.data

# MathJax for the book, vendored from the npm registry (checksum-verified) so the book loads
# nothing from another host: book/_config.yml points mathjax_path at book/_vendor/mathjax/.
MATHJAX        := mathjax@3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
MATHJAX_DIR    := book/_vendor/mathjax

mathjax: $(MATHJAX_DIR)/tex-mml-chtml.js

$(MATHJAX_DIR)/tex-mml-chtml.js:
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed to vendor MathJax for the book"; exit 1; }
	rm -rf $(MATHJAX_DIR).tmp && mkdir -p $(MATHJAX_DIR).tmp
	cd $(MATHJAX_DIR).tmp && npm pack --silent $(MATHJAX) >/dev/null
	echo "$(MATHJAX_SHA256)  $(MATHJAX_DIR).tmp/$(subst @,-,$(MATHJAX)).tgz" | sha256sum --check --quiet -
	tar -xzf $(MATHJAX_DIR).tmp/*.tgz -C $(MATHJAX_DIR).tmp --strip-components=1 package/LICENSE
	tar -xzf $(MATHJAX_DIR).tmp/*.tgz -C $(MATHJAX_DIR).tmp --strip-components=2 \
	    package/es5/tex-mml-chtml.js package/es5/input package/es5/output/chtml package/es5/a11y package/es5/ui
	rm $(MATHJAX_DIR).tmp/*.tgz && rm -rf $(MATHJAX_DIR) && mv $(MATHJAX_DIR).tmp $(MATHJAX_DIR)

# The class on a JupyterHub (grading-hub/, tests/test_hub.py): the hub is the pip package jupyterhub
# (pinned in pyproject.toml), its proxy the npm package configurable-http-proxy, pinned with its
# dependencies in grading-hub/package-lock.json and installed here with `npm ci` (never globally).
HUB_PROXY := grading-hub/node_modules/.bin/configurable-http-proxy

hub: $(HUB_PROXY)
	@if ! command -v setfacl >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then \
	    echo "make hub: setfacl is missing (the hub test lets its users reach a Python under /root with it): sudo apt-get install acl"; \
	  else \
	    echo "make hub: installing Debian's acl (setfacl) with apt-get"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq acl >/dev/null || exit 1; \
	  fi; \
	fi

$(HUB_PROXY): grading-hub/package.json grading-hub/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed for the hub's proxy (configurable-http-proxy)"; exit 1; }
	cd grading-hub && npm ci --silent --no-audit --no-fund
	@touch $@

# The browser tests drive Debian's chromium with Python's playwright (pinned in pyproject.toml;
# never `playwright install`). Installed with apt-get when missing; under CI=true a missing
# chromium is an error, elsewhere the browser tests are skipped with a message.
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then \
	    echo "make browser: $(CHROMIUM) is missing and apt-get needs root; run: sudo apt-get install chromium"; \
	  else \
	    echo "make browser: installing Debian's chromium with apt-get"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null || exit 1; \
	  fi; \
	fi
	@if [ -x $(CHROMIUM) ]; then $(CHROMIUM) --version 2>/dev/null | head -1; \
	elif [ -n "$$CI" ] && [ "$$CI" != false ] && [ "$$CI" != 0 ]; then \
	  echo "make browser: no $(CHROMIUM) under CI=true, the browser tests cannot run"; exit 1; \
	else echo "make browser: no $(CHROMIUM), the browser tests will be skipped"; fi

# Every grading kernel runs under bubblewrap (book/instructors.md). Installed with apt-get when missing;
# `make grade` refuses to run without it unless UNSAFE=1, and the grading tests fail without it.
sandbox:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then \
	    echo "make sandbox: bubblewrap is missing and apt-get needs root; run: sudo apt-get install bubblewrap"; exit 1; \
	  fi; \
	  echo "make sandbox: installing Debian's bubblewrap with apt-get"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bubblewrap >/dev/null || exit 1; \
	fi
	@bwrap --version

lectures: setup
	$(BIN)/python -m dgm.course execute --out book/lectures $(LECTURES)

book: lectures
	$(BIN)/python -m dgm.course book-assignments --out book/assignments
	$(BIN)/jupyter-book build book --warningiserror --nitpick --keep-going
	@echo "Book: $(CURDIR)/book/_build/html/index.html"

test: setup browser sandbox
	DGM_FAST=1 $(BIN)/python -m pytest

# Lab needs neither npm nor MathJax (only the book does). lab-settings makes .md lectures open as
# notebooks and hides nbgrader's tools from students; `make lab INSTRUCTOR=1` shows them.
INSTRUCTOR ?=# 1: JupyterLab with nbgrader's instructor tools [no]

lab: $(STAMP) data
	$(BIN)/python -m dgm.course lab-settings $(if $(filter 1,$(strip $(INSTRUCTOR))),--instructor)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

assignments: setup
	$(BIN)/python -m dgm.course assignments

# Grading settings (book/instructors.md, "Settings"): `make grade JOBS=4 GRADE_CELL_TIMEOUT=60`.
# Unset ones fall back to the DGM_GRADE_* environment variables, then to the defaults in brackets.
JOBS                   ?=# students graded at once, or auto: one per core that fits in memory [auto]
GRADE_CELL_TIMEOUT     ?=# seconds one cell may run [120]
GRADE_NOTEBOOK_TIMEOUT ?=# seconds one notebook may run [900]
GRADE_MEMORY_MB        ?=# memory limit of one grading kernel, MiB [4096]
UNSAFE                 ?=# 1: grade even where bubblewrap cannot run (kernels NOT confined) [no]
SCHEDULER              ?=# a Dask scheduler to grade on, tcp://host:port [none: JOBS workers on this machine]

grade: setup $(if $(filter 1,$(strip $(UNSAFE))),,sandbox)
	$(BIN)/python -m dgm.grading grade $(if $(strip $(JOBS)),--jobs $(strip $(JOBS))) \
	    $(if $(filter 1,$(strip $(UNSAFE))),--unsafe-no-sandbox) \
	    $(if $(strip $(GRADE_CELL_TIMEOUT)),--cell-timeout $(strip $(GRADE_CELL_TIMEOUT))) \
	    $(if $(strip $(GRADE_NOTEBOOK_TIMEOUT)),--notebook-timeout $(strip $(GRADE_NOTEBOOK_TIMEOUT))) \
	    $(if $(strip $(GRADE_MEMORY_MB)),--memory-mb $(strip $(GRADE_MEMORY_MB))) \
	    $(if $(strip $(SCHEDULER)),--scheduler $(strip $(SCHEDULER)))

# Chapter 8's bench (benchmarks/bench.py; CPU only, one thread): every family at the same CPU-time
# budget, seeds 0 1 2 (~30 min on 2 cores); `make bench FAST=1` is the smoke run (<= 3 min).
FAST ?=# 1: the FAST setting of the bench (budget 5 s, n 40, seeds 0 1) [no]

bench: $(STAMP) data
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench.py $(if $(filter 1,$(strip $(FAST))),--fast) --out bench-output

clean:
	rm -rf book/_build book/lectures grading/autograded grading/feedback
