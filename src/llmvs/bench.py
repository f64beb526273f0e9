"""`llmvs bench prompts`: the LLM stage's speed on this machine, plain vs fast path, in one run.

Uses real windows (distinct ones, so de-duplication does not flatter the fast path) from the
shipped SumMe BLIP captions and the default model; measures a float32 matmul peak of the machine
next to the achieved GFLOP/s, and checks that the paths agree. Results go to a JSON file that
can be compared run to run.

    llmvs bench prompts --windows 64 --out results/bench/prompts.json
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np


def matmul_peak_gflops(n: int = 2048, repeats: int = 10, dtype=None) -> float:
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def window_flops(model, n_new: int, n_context: int) -> float:
    """Approximate FLOPs to run `n_new` tokens attending to `n_context` tokens (matmuls only)."""
    cfg = model.config
    body = sum(p.numel() for n, p in model.model.named_parameters() if "embed" not in n and p.dim() > 1)
    attn = 4 * cfg.num_hidden_layers * cfg.hidden_size * n_new * n_context
    return 2 * body * n_new + attn


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def bench_prompts(n_windows: int = 64, batch_size: int = 8, threads: int | None = None, bf16: bool = True) -> dict:
    import torch
    from tqdm import tqdm

    from llmvs.datasets import load_caption_json, shipped_captions_path
    from llmvs.llm import load_llm
    from llmvs.prompts import PromptBuilder, format_window, resolve_exemplars
    from llmvs.window_scorer import WindowScorer

    if threads:
        torch.set_num_threads(threads)
    caps = load_caption_json(shipped_captions_path("summe"))
    windows: list[str] = []
    for entry in caps.values():  # distinct real windows, taken in order across videos
        for t in range(len(entry["captions"])):
            w = format_window(entry["captions"], t)
            if w not in windows:
                windows.append(w)
            if len(windows) == n_windows:
                break
        if len(windows) == n_windows:
            break
    tok, model, model_id = load_llm("smollm2", "float32", "cpu")
    exemplars = resolve_exemplars("auto", "summe", 0)
    builder = PromptBuilder(tok, exemplars)
    scorer = WindowScorer(model, builder, batch_size=batch_size)
    peak = matmul_peak_gflops()

    t = time.perf_counter()
    plain = [scorer.plain(w) for w in tqdm(windows, desc="plain", unit="window")]
    t_plain = time.perf_counter() - t
    scorer._prefix_kv = None  # the fast path pays for its prefix inside the timing
    t = time.perf_counter()
    fast = scorer.fast(windows)
    t_fast = time.perf_counter() - t

    P = len(builder.prefix_ids)
    new_tokens = sum(len(r.q) + len(r.a) for r in fast)
    flops = window_flops(model, P, P) + sum(window_flops(model, len(r.q) + len(r.a), P + len(r.q) + len(r.a)) for r in fast)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "torch": torch.__version__},
        "model": model_id, "windows": len(windows), "batch_size": batch_size, "prefix_tokens": P,
        "mean_query_tokens": float(np.mean([len(r.q) for r in fast])),
        "naive_windows_per_s": len(windows) / t_plain,
        "fast_windows_per_s": len(windows) / t_fast,
        "speedup": t_plain / t_fast,
        "fast_tokens_per_s": new_tokens / t_fast,
        "fast_gflops": flops / t_fast / 1e9,
        "matmul_peak_gflops_fp32": peak,
        "fraction_of_peak": flops / t_fast / 1e9 / peak,
        "fast_vs_plain_max_rel_diff_q": max(_rel(f.q, p.q) for f, p in zip(fast, plain)),
        "fast_vs_plain_max_rel_diff_a": max(_rel(f.a, p.a) for f, p in zip(fast, plain) if f.a.shape == p.a.shape),
        "same_answers": all(f.answer == p.answer for f, p in zip(fast, plain)),
        "fallback_windows": sum(r.path == "plain" for r in fast),
    }
    if bf16:
        tok16, model16, _ = load_llm("smollm2", "bfloat16", "cpu")
        scorer16 = WindowScorer(model16, PromptBuilder(tok16, exemplars), batch_size=batch_size)
        t = time.perf_counter()
        fast16 = scorer16.fast(windows)
        t16 = time.perf_counter() - t
        pooled = lambda rs, part: np.stack([getattr(r, part).max(0) for r in rs])  # noqa: E731
        result.update({
            "bf16_windows_per_s": len(windows) / t16,
            "bf16_speedup": t_plain / t16,
            "bf16_vs_fp32_max_rel_diff_pooled_q": _rel(pooled(fast16, "q"), pooled(plain, "q")),
            "bf16_vs_fp32_max_rel_diff_pooled_a": _rel(pooled(fast16, "a"), pooled(plain, "a")),
            "bf16_same_answers": float(np.mean([f.answer == p.answer for f, p in zip(fast16, plain)])),
        })
    return result


def write_bench(result: dict, out) -> None:
    from llmvs.io import write_text

    write_text(json.dumps(result, indent=2) + "\n", out)
