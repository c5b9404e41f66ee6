# The course's entry points. Each target creates .venv on first use.
#   make lab        JupyterLab on the course's notebooks (the student's view)
#   make formgrade  JupyterLab with nbgrader's instructor tools (Formgrader, Create Assignment)
#   make test       the whole test suite (what CI runs)
#   make release    regenerate notebooks/ (student versions) from solutions/
#   make grade      autograde the bundled samples, or a class: make grade SUBMISSIONS=path/to/submitted
#   make bench      print measured speed ratios, grading speed, the notebooks' run time and memory

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed
TEST_STAMP := $(VENV)/.dev-installed
PORT   ?= 8888
SUBMISSIONS ?=
LAB_ARGS ?=
GRADING_DIR ?= $(CURDIR)/build/grading/class
# Jupyter refuses to run as root (containers, CI) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: venv lab formgrade test release grade bench clean

venv: $(STAMP)

# Re-installs when pyproject.toml changes. torch comes from the default index
# (or a local wheel cache): any torch >= the floor in pyproject.toml is accepted.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[course]"
	touch $(STAMP)

# jupyter/student/ opens JupyterLab on notebooks/ and hides nbgrader's instructor plugins.
lab: $(STAMP)
	PYTHONPATH=$(CURDIR) JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/student:$(CURDIR)/autograder \
		$(VENV)/bin/jupyter lab --no-browser --port=$(PORT) --notebook-dir=$(CURDIR) \
		$(ROOT_FLAG) $(LAB_ARGS)

# The instructor's view: every nbgrader plugin, the formgrader on the grading work dir.
formgrade: $(STAMP)
	mkdir -p $(GRADING_DIR)
	PYTHONPATH=$(CURDIR) JUPYTER_CONFIG_PATH=$(CURDIR)/autograder COURSE_GRADING_DIR=$(GRADING_DIR) \
		PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/jupyter lab --no-browser --port=$(PORT) --notebook-dir=$(CURDIR) \
		--LabApp.default_url=/formgrader $(ROOT_FLAG) $(LAB_ARGS)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[course,dev]"
	touch $(TEST_STAMP)

# Two workers, each taking whole test files: the autograding tests share one grading run per file.
test: $(TEST_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

release: $(STAMP)
	$(PY) -m autograder.release

grade: $(STAMP)
	$(PY) -m autograder.grade $(if $(SUBMISSIONS),--submissions $(SUBMISSIONS))

bench: $(STAMP)
	$(PY) benchmarks/pooling_speed.py
	$(PY) benchmarks/grading_speed.py
	$(PY) benchmarks/notebook_resources.py

clean:
	rm -rf build .pytest_cache
