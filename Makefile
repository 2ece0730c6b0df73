# Everything a new machine needs: `make train` or `make test` creates .venv and installs on first use.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
TORCH   := torch==2.13.0

.PHONY: help install train sweep report bench test test-fast lint tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# the pinned CPU torch first: an unpinned one, pulled in by lightning, would bring GBs of CUDA
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with its dev tools

train: $(STAMP)  ## train the reference model (experiment=cm3) on the synthetic data; ARGS= adds overrides
	$(PY) -m lstm_cls.train $(value ARGS)

sweep: $(STAMP)  ## the overfitting study (27 jobs, on all cores); ARGS="seed=1,2,3 data=..." adds to it
	$(PY) -m lstm_cls.train -m experiment=overfitting hydra/launcher=forkserver $(value ARGS)

report: $(STAMP)  ## tables and figures for a sweep: make report SWEEP=outputs/multirun/<date_time>
	$(PY) -m lstm_cls.report $(SWEEP)

bench: $(STAMP)  ## performance figures against a plain PyTorch loop measured in the same run
	$(PY) benchmarks/bench.py $(value ARGS)

# two pytest workers (pytest-xdist): most tests wait on a training subprocess, and each uses one torch thread
test: $(STAMP)  ## run the whole test suite (slow tests included), two workers
	$(PY) -m pytest -q -n 2 $(value ARGS)

test-fast: $(STAMP)  ## the test suite without slow tests
	$(PY) -m pytest -q -n 2 -m "not slow" $(value ARGS)

lint: $(STAMP)  ## ruff
	$(PY) -m ruff check lstm_cls hydra_plugins tests benchmarks
	$(PY) -m ruff format --check lstm_cls hydra_plugins tests benchmarks

tensorboard: $(STAMP)  ## serve every run under outputs/ on http://localhost:6006
	$(PY) -m tensorboard.main --logdir outputs --port 6006

clean:  ## remove .venv and caches (never outputs/: runs are yours)
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
