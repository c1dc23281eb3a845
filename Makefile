PYTHON ?= python3

.PHONY: install test

## install: system packages (apt) and Python packages (requirements.txt)
install:
	PYTHON=$(PYTHON) bash install.sh

## test: install, then run the whole test suite (what CI runs)
test: install
	$(PYTHON) -m pytest -q test
