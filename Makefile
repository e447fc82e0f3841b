# saliency-course: `make lab` to read and run the notebooks, `make test` to check everything.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

.PHONY: lab test unit notebooks notebooks-1thread test-portable test-rounding fingerprint test-determinism lint bench execute clean help test-browser report readme student test-student scan-student grade

help:
	@echo "make lab        start JupyterLab on notebooks/ (creates .venv when missing)"
	@echo "make test       ruff + unit tests + pytest --nbval over every notebook"
	@echo "make test-portable  pytest --nbval on an emulated older CPU (SSE4.1 kernels), one thread"
	@echo "make test-rounding  pytest --nbval with the weights jittered by 1e-6 (outputs another CPU would change)"
	@echo "make test-determinism  pytest --nbval three times, then once with torch.set_num_threads(1)"
	@echo "make execute    re-execute every notebook in place (after editing one)"
	@echo "make bench      run the benchmark scripts in benchmarks/"
	@echo "make test-browser  the saliency explorer in JupyterLab + headless Chromium (screenshots in reports/browser/)"
	@echo "make readme     make report, then the README's course table: previews and measured run times"
	@echo "make student    write the student edition to student/ (solutions stubbed, their outputs cleared)"
	@echo "make test-student  make student, execute it (every exercise must fail with its hint), scan it for leaks"
	@echo "make scan-student  make student, then only the leak scan (seconds)"
	@echo "make grade SUBMISSIONS=dir OUT=dir  grade SUBMISSIONS/<student>/<NN_topic>.ipynb into OUT/grades.csv, index.html"
	@echo "make report     execute every notebook afresh into reports/: HTML pages, index.html, reveal.js slides of 07"

# The virtual environment: created when missing, refreshed when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

test: lint unit notebooks

# ruff, then the package's layers (import-linter; the contracts are in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check utils tests benchmarks notebooks
	$(VENV)/bin/lint-imports --no-cache

unit: $(STAMP)
	$(PY) -m pytest tests

notebooks: $(STAMP)
	IPYTHONDIR=$(CURDIR)/tests/ipython $(PY) -m pytest $(NBVAL) notebooks

# Same outputs whatever the thread count: every kernel calls torch.set_num_threads(1) first
# (tests/ipython/profile_default/startup/01_threads.py).
notebooks-1thread: $(STAMP)
	SALIENCY_COURSE_THREADS=1 IPYTHONDIR=$(CURDIR)/tests/ipython $(PY) -m pytest $(NBVAL) notebooks

# The course must pass on a student's CPU, not only on this one. PyTorch, oneDNN and MKL choose
# kernels by CPU, so the last bits of every result differ between laptops; these variables make this
# machine compute like one without AVX (PORTABLE_ISA=avx2 emulates an AVX2-only CPU instead), on one
# thread. The committed outputs must pass unchanged. `make fingerprint` shows that the emulation
# really changes the logits' bits (python -m utils.course.env --fingerprint, with and without it).
PORTABLE_ISA ?= sse
ifeq ($(PORTABLE_ISA),avx2)
EMULATE := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
else
EMULATE := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
endif

fingerprint: $(STAMP)
	$(PY) -m utils.course.env --fingerprint
	$(EMULATE) OMP_NUM_THREADS=1 $(PY) -m utils.course.env --fingerprint

# One thread per kernel, so two notebooks run side by side (pytest-xdist; --dist loadscope keeps
# each notebook's cells in order in one worker).
PORTABLE_JOBS ?= 2
test-portable: fingerprint
	$(EMULATE) OMP_NUM_THREADS=1 SALIENCY_COURSE_THREADS=1 IPYTHONDIR=$(CURDIR)/tests/ipython \
	  $(PY) -m pytest $(NBVAL) -n $(PORTABLE_JOBS) --dist loadscope notebooks

# A stronger, one-machine hunt for outputs that another CPU would change: every classifier's
# weights get a relative 1e-6 jitter (tests/ipython/profile_default/startup/02_rounding_fuzz.py),
# seeds 1 and 2. Not part of `make test`; run it after re-executing notebooks (about 8 minutes).
test-rounding: $(STAMP)
	for seed in 1 2; do \
	  SALIENCY_COURSE_FUZZ=$$seed IPYTHONDIR=$(CURDIR)/tests/ipython $(PY) -m pytest $(NBVAL) notebooks || exit 1; \
	done

# Issue #8's determinism check (about 15 minutes on a 2-core laptop): three runs in a row, then 1 thread.
test-determinism: $(STAMP)
	for i in 1 2 3; do $(MAKE) --no-print-directory notebooks || exit 1; done
	$(MAKE) --no-print-directory notebooks-1thread

execute: $(STAMP)
	for nb in notebooks/[0-9]*.ipynb; do \
	  $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 $$nb || exit 1; \
	done

# Needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium); Playwright drives it.
test-browser: $(STAMP)
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet -e '.[test,browser]'
	$(PY) tests/browser/browser_check.py

# Executes copies (the committed notebooks are untouched); vendors MathJax/reveal.js via npm when
# available (else CDN links; python -m utils.course.report --help for the options).
report: $(STAMP)
	$(PY) -m utils.course.report --out reports

# The README's course table: preview thumbnails (notebooks/previews/) and run times measured by
# executing every notebook afresh (run it on a quiet machine).
readme: $(STAMP)
	$(PY) -m utils.course.report --out reports --readme README.md

# The seminar's student edition: nbgrader's ### BEGIN/END SOLUTION regions replaced by stubs
# (python -m utils.course.edition --help). A build output: hand out the folder, do not commit it.
student: $(STAMP)
	rm -rf student
	$(PY) -m utils.course.edition --out student

# Executes the student notebooks (minutes): each exercise's self-check must fail with its hint on
# the stub, and no other cell may fail; then scans the edition, and the hints it printed, for answers
# given away (utils/course/leaks.py). Fails on either.
test-student: student
	IPYTHONDIR=$(CURDIR)/tests/ipython $(PY) -m utils.course.edition --verify --out student

# The leak scan alone, without executing (seconds).
scan-student: student
	$(PY) -m utils.course.edition --scan --out student

# Grade the students' notebooks (python -m utils.course.grading --help): each in a fresh kernel, in
# a temporary copy of the course, offline, 300 s and 6 GiB per notebook. GRADE_OPTS passes options,
# e.g. GRADE_OPTS="--jobs 2 --notebooks 02 03".
SUBMISSIONS ?= submissions
OUT ?= grades
GRADE_OPTS ?=
grade: $(STAMP)
	$(PY) -m utils.course.grading $(SUBMISSIONS) $(OUT) $(GRADE_OPTS)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) reports student .pytest_cache .ruff_cache
