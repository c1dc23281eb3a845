# Every target runs in the project's virtual environment (VENV, made by make install with PYTHON).
PYTHON ?=
VENV ?= .venv
VENV_BIN := $(abspath $(VENV))/bin
# the environment's bin/ first, as `source $(VENV)/bin/activate` does: its python, mpirun, mpicc
IN_VENV := PATH="$(VENV_BIN):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))"
NEEDS_VENV = @test -x "$(VENV_BIN)/python" || { echo "make: no environment at $(VENV); run make install first" >&2; exit 2; }

.PHONY: install test test-fast demo

## install: make the environment (.venv, or VENV=...) with PYTHON (default python3) and install into it
install:
	PYTHON="$(PYTHON)" VENV="$(VENV)" bash install.sh

## test: install, then run the whole test suite (what CI runs)
test: install
	$(IN_VENV) "$(VENV_BIN)/python" -m pytest -q test

## test-fast: the tests not marked slow, in the environment make install made
test-fast:
	$(NEEDS_VENV)
	$(IN_VENV) "$(VENV_BIN)/python" -m pytest -q -m "not slow" test

## demo: install, build the emoji data set, train 8 -> 32 px on the CPU, write sample grids
demo: install
	$(IN_VENV) PYTHON="$(VENV_BIN)/python" bash demo.sh
