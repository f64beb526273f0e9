"""`llmvs bench prompts`: the LLM stage's speed on this machine, every path in one run.

Uses real, distinct windows (so de-duplication does not flatter the fast path) from the shipped
SumMe BLIP captions and the default model, and measures, in this order: the plain float32 path
(the reference: `generate` per window), the fast path in float32 with all threads in one process,
the fast path as the pipeline runs it on a CPU (one one-thread worker process per core, each scoring
every window, in the pipeline's dtype, float32), and with `--bf16` the fast path in bfloat16 too (a
CPU without native bfloat16 runs it about 8x slower). Beside each speed: GFLOP/s and the fraction of
the matching matmul peak measured here, answers and pooled states compared with the plain path, and
`startup_s` (a fresh process, from its start until the first batch can run). Results go to a JSON
file that can be compared run to run.

    llmvs bench prompts --windows 64 --out results/bench/prompts.json
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
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


def bench_windows(n: int) -> list[str]:
    from llmvs.datasets import load_caption_json, shipped_captions_path
    from llmvs.prompt_builder import format_window

    windows: list[str] = []
    for entry in load_caption_json(shipped_captions_path("summe")).values():
        for t in range(len(entry["captions"])):
            w = format_window(entry["captions"], t)
            if w not in windows:
                windows.append(w)
            if len(windows) == n:
                return windows
    return windows


def _scorer(dtype: str, batch_size: int):
    from llmvs.llm import load_llm
    from llmvs.prompt_builder import PromptBuilder, resolve_exemplars
    from llmvs.window_scorer import WindowScorer

    tok, model, model_id = load_llm("smollm2", dtype, "cpu")
    return WindowScorer(model, PromptBuilder(tok, resolve_exemplars("auto", "summe", 0)), batch_size=batch_size), model_id


def _worker(rank: int, n_windows: int, batch_size: int, dtype: str, barrier, results) -> None:
    """One one-thread pipeline worker: load, wait for the others, score the windows (each worker all of
    them, as each pipeline job scores its own video)."""
    import torch

    torch.set_num_threads(1)
    scorer, _ = _scorer(dtype, batch_size)
    windows = bench_windows(n_windows)
    scorer.fast(windows[:2])  # warm-up, as a job's first batch
    scorer._prefix = None
    barrier.wait()
    t = time.perf_counter()
    out = scorer.fast(windows)
    results[rank] = (time.perf_counter() - t, [(r.answer, r.q.max(0), r.a.max(0)) for r in out])


def startup_seconds(threads: int = 1, dtype: str = "float32") -> float:
    """A fresh process: interpreter, imports, model load, exemplars and the prompt prefix."""
    code = ("import time, sys; from llmvs.llm_stage import PromptRunner; "
            f"r = PromptRunner('smollm2', 'auto', 'summe', 0, 'fast', '{dtype}', threads={threads}); "
            "r.scorer._prefix_states(); print(time.time())")
    t = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) - t


def bench_prompts(n_windows: int = 64, batch_size: int = 16, threads: int | None = None, bf16: bool = False) -> dict:
    import multiprocessing as mp

    import torch
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    windows = bench_windows(n_windows)
    scorer, model_id = _scorer("float32", batch_size)
    model, builder = scorer.model, scorer.b
    peak = matmul_peak_gflops()

    t = time.perf_counter()
    plain = [scorer.plain(w) for w in tqdm(windows, desc="plain", unit="window")]
    t_plain = time.perf_counter() - t
    scorer._prefix = None  # the fast path pays for its prefix inside the timing
    t = time.perf_counter()
    fast = scorer.fast(windows)
    t_fast = time.perf_counter() - t

    P = len(builder.prefix_ids)
    flops = window_flops(model, P, P) + sum(window_flops(model, len(r.q) + len(r.a) + 1, P + len(r.q) + len(r.a))
                                            for r in fast)
    pooled = lambda rs, part: np.stack([getattr(r, part).max(0) for r in rs])  # noqa: E731
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "torch": torch.__version__},
        "model": model_id, "windows": len(windows), "batch_size": batch_size, "prefix_tokens": P,
        "mean_query_tokens": float(np.mean([len(r.q) for r in fast])),
        "matmul_peak_gflops_fp32": peak,
        "naive_windows_per_s": len(windows) / t_plain,
        "fast_windows_per_s": len(windows) / t_fast,
        "speedup": t_plain / t_fast,
        "fast_gflops": flops / t_fast / 1e9,
        "fraction_of_peak": flops / t_fast / 1e9 / peak,
        "fast_vs_plain_max_rel_diff_q": max(_rel(f.q, p.q) for f, p in zip(fast, plain)),
        "fast_vs_plain_max_rel_diff_a": max(_rel(f.a, p.a) for f, p in zip(fast, plain) if f.a.shape == p.a.shape),
        "same_answers": all(f.answer == p.answer for f, p in zip(fast, plain)),
        "fallback_windows": sum(r.path == "plain" for r in fast),
        "flops_per_window": flops / len(windows),
    }
    # the pipeline on a CPU: one one-thread worker process per core, in the pipeline's dtype
    workers = os.cpu_count() or 1
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier, results = manager.Barrier(workers + 1), manager.dict()
        procs = [ctx.Process(target=_worker, args=(r, n_windows, batch_size, "float32", barrier, results))
                 for r in range(workers)]
        for p in procs:
            p.start()
        barrier.wait()
        t = time.perf_counter()
        for p in procs:
            p.join()
        t_workers = time.perf_counter() - t
        parts = dict(results)
    got = dict(zip(windows, parts[0][1]))
    ref = {w: p for w, p in zip(windows, plain)}
    peak_1 = _single_thread_peak(torch.float32)
    result.update({
        "workers": workers,
        "workers_windows_per_s": workers * len(windows) / t_workers,
        "workers_speedup": workers * t_plain / t_workers,
        "workers_fraction_of_peak": flops / t_workers / 1e9 / peak_1,  # each worker: all windows, one core
        "matmul_peak_gflops_fp32_one_thread": peak_1,
        "workers_same_answers": float(np.mean([got[w][0] == ref[w].answer for w in windows])),
        "workers_vs_plain_max_rel_diff_pooled_q": _rel(np.stack([got[w][1] for w in windows]), pooled(plain, "q")),
        "workers_vs_plain_max_rel_diff_pooled_a": _rel(np.stack([got[w][2] for w in windows]), pooled(plain, "a")),
    })
    if bf16:
        peak16 = matmul_peak_gflops(dtype=torch.bfloat16)
        scorer16, _ = _scorer("bfloat16", batch_size)
        scorer16.fast(windows[:2])
        scorer16._prefix = None
        t = time.perf_counter()
        fast16 = scorer16.fast(windows)
        t16 = time.perf_counter() - t
        result.update({
            "matmul_peak_gflops_bf16": peak16,
            "bf16_windows_per_s": len(windows) / t16,
            "bf16_speedup": t_plain / t16,
            "bf16_fraction_of_peak": flops / t16 / 1e9 / peak16,
            "bf16_vs_fp32_max_rel_diff_pooled_q": _rel(pooled(fast16, "q"), pooled(plain, "q")),
            "bf16_vs_fp32_max_rel_diff_pooled_a": _rel(pooled(fast16, "a"), pooled(plain, "a")),
            "bf16_same_answers": float(np.mean([f.answer == p.answer for f, p in zip(fast16, plain)])),
        })
    result["startup_s"] = startup_seconds()
    return result


def _single_thread_peak(dtype) -> float:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return matmul_peak_gflops(dtype=dtype)
    finally:
        torch.set_num_threads(threads)


def write_bench(result: dict, out) -> None:
    from llmvs.io import write_text

    write_text(json.dumps(result, indent=2) + "\n", out)
