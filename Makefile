# repdrift: `make demo` runs the whole study on the embedded demo; `make test` runs the test suite.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all

.PHONY: install demo report test test-slurm test-fast lint bench clean

install: $(VENV)/.installed

# torch/torchvision first and exactly pinned: pip then takes the local wheels instead of resolving a download.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "report: results/report.html"

# The Slurm integration test (a real one-node Slurm, ~5 min) runs apart: make test-slurm; CI runs both.
test: install
	$(BIN)/pytest -m "not slurm"

test-slurm: install
	$(BIN)/pytest -m slurm

test-fast: install
	$(BIN)/pytest -m "not e2e and not slow"

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check workflow tests benchmarks
	$(BIN)/ruff format --check workflow tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf results .snakemake
