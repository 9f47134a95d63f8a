# The two set-up commands of the README:
#   make studio   creates .venv, installs wm_studio and launches the studio
#   make test     creates .venv, installs wm_studio with its test extras and runs the whole suite
# The first of python3.11, python3.12, python3 that runs and is 3.11 or 3.12 (numpy < 2, which Chainer 7.8.1 needs,
# has no wheel for 3.13). A name that is only a shim (pyenv's, for a version not selected) fails to run and is skipped.
SUPPORTED := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3.11 python3.12 python3; do $$p -c '$(SUPPORTED)' >/dev/null 2>&1 && \
                  command -v $$p && break; done)
endif
VENV := .venv
BIN := $(VENV)/bin
# Chainer 7.8.1's sdist needs setuptools < 70 in its build environment (see constraints-build.txt). pip up to 25
# applies PIP_CONSTRAINT to build environments; pip 26 and later only PIP_BUILD_CONSTRAINT. Each pip ignores the
# other variable, so both are set.
CONSTRAINTS := $(CURDIR)/constraints-build.txt
PIP := PIP_CONSTRAINT=$(CONSTRAINTS) PIP_BUILD_CONSTRAINT=$(CONSTRAINTS) $(BIN)/python -m pip \
       --disable-pip-version-check

.PHONY: studio test install install-test clean

studio: $(VENV)/.installed
	$(BIN)/wm-studio

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen SDL_VIDEODRIVER=dummy MPLBACKEND=Agg $(BIN)/python -m pytest -ra --durations=15 $(PYTEST_ARGS)

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(BIN)/python:
	@if [ -z "$(PYTHON)" ] || ! $(PYTHON) -c '$(SUPPORTED)' 2>/dev/null; then echo "wm_studio needs Python 3.11 \
	or 3.12, and $(or $(PYTHON),python3) is $$($(or $(PYTHON),python3) -V 2>&1): install python3.12 (Ubuntu 24.04: \
	sudo apt install python3.12-venv; or: uv python install 3.12), then make again, or make PYTHON=/path/to/python3.12"; \
	exit 1; fi
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints-build.txt | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints-build.txt | $(BIN)/python
	$(PIP) install -q -e ".[test]"
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) build *.egg-info
