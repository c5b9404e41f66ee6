# The course's entry points. Each target creates .venv on first use.
#   make lab        JupyterLab on the course
#   make test       the whole test suite (what CI runs)
#   make release    regenerate notebooks/ (student versions) from solutions/
#   make grade      autograde the bundled samples, or a class: make grade SUBMISSIONS=path/to/submitted
#   make bench      print measured speed ratios

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed
PORT   ?= 8888
SUBMISSIONS ?=
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: venv lab test release grade bench clean

venv: $(STAMP)

# Re-installs when pyproject.toml changes. torch comes from the default index
# (or a local wheel cache): any torch >= the floor in pyproject.toml is accepted.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[course]"
	touch $(STAMP)

lab: $(STAMP)
	PYTHONPATH=$(CURDIR) JUPYTER_CONFIG_PATH=$(CURDIR)/autograder $(VENV)/bin/jupyter lab \
		--no-browser --port=$(PORT) --notebook-dir=$(CURDIR) \
		--ServerApp.default_url=/lab/tree/notebooks $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	$(PY) -m pytest

release: $(STAMP)
	$(PY) -m autograder.release

grade: $(STAMP)
	$(PY) -m autograder.grade $(if $(SUBMISSIONS),--submissions $(SUBMISSIONS))

bench: $(STAMP)
	$(PY) benchmarks/pooling_speed.py

clean:
	rm -rf build .pytest_cache
