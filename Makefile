PYTHON ?= python3

.PHONY: install test test-fast demo

## install: system packages (apt) and Python packages (requirements.txt)
install:
	PYTHON=$(PYTHON) bash install.sh

## test: install, then run the whole test suite (what CI runs)
test: install
	$(PYTHON) -m pytest -q test

## test-fast: the tests not marked slow (every module; about 2 minutes once Jittor is warm)
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" test

## demo: install, build the emoji data set, train 8 -> 32 px on the CPU, write sample grids
demo: install
	PYTHON=$(PYTHON) bash demo.sh
