# Two commands on a fresh machine with Python 3.11+:
#   make demo   set up .venv, train on built-in real data (MNIST digits), evaluate, predict, serve
#   make test   set up .venv with test needs, then run the test suite
#   make docs   build the documentation site into site/ (offline; open site/index.html)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test docs install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install --upgrade pip >/dev/null
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test,demo,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m recog.demo

test: $(STAMP)
	$(BIN)/python scripts/ensure_chromium.py
	$(BIN)/python -m pytest

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) runs build site *.egg-info
