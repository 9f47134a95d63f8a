# The two set-up commands of the README:
#   make studio   creates .venv, installs wm_studio and launches the studio
#   make test     creates .venv, installs wm_studio with its test extras and runs the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Chainer 7.8.1's sdist needs setuptools < 70 in its build environment (see constraints-build.txt).
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints-build.txt $(BIN)/python -m pip --disable-pip-version-check

.PHONY: studio test install install-test clean

studio: $(VENV)/.installed
	$(BIN)/wm-studio

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen SDL_VIDEODRIVER=dummy MPLBACKEND=Agg $(BIN)/python -m pytest -ra $(PYTEST_ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints-build.txt | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints-build.txt | $(BIN)/python
	$(PIP) install -q -e ".[test]"
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build *.egg-info
