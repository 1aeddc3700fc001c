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

.PHONY: help setup data book lectures test lab assignments grade clean

help:
	@echo "make book         set up, fetch data, execute every lecture, build the book into book/_build/html/"
	@echo "make test         set up, then run the whole test suite"
	@echo "make setup        create .venv/ with the pinned dependencies and fetch the data (idempotent)"
	@echo "make lab          JupyterLab on the course (127.0.0.1)"
	@echo "make assignments  regenerate assignments/ from solutions/ with nbgrader"
	@echo "make grade        autograde grading/submitted/, write feedback and grading/grades.csv"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[course]"
	touch $@

setup: $(STAMP) data

data: $(STAMP)
	$(BIN)/python -m dgm.data

lectures: setup
	$(BIN)/python -m dgm.course execute --out book/lectures $(LECTURES)

book: lectures
	$(BIN)/jupyter-book build book --warningiserror --nitpick --keep-going
	@echo "Book: $(CURDIR)/book/_build/html/index.html"

test: setup
	DGM_FAST=1 $(BIN)/python -m pytest

lab: setup
	$(BIN)/jupytext-config set-default-viewer markdown myst
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser

assignments: setup
	$(BIN)/python -m dgm.course assignments

grade: setup
	$(BIN)/python -m dgm.course grade

clean:
	rm -rf book/_build book/lectures grading/autograded grading/feedback
