"""Does training the seeds of a split together, as one batched model, save time on a CPU?

Times one optimizer step (forward, loss, backward, AdamW) of the headline's aggregator (M = 128,
feed-forward 256, no attention dropout) on one video of T steps, for N seeds:
- `sequential`: N models one after the other, as `llmvs train` does;
- `vmap`: the N models' parameters stacked (`torch.func.stack_module_state`) and one step through
  `torch.func.vmap(grad(...))`, the batched-model recipe of the PyTorch docs.
Writes one row per (T, N, way): milliseconds per step, the best of `--repeats` timed steps.

    python benchmarks/seed_batching.py --out benchmarks/results-cpu2/seed-batching.csv
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
import warnings
from pathlib import Path


def pearson_loss(out, y):
    pc, yc = out - out.mean(), y - y.mean()
    return 1 - (pc * yc).sum() / ((pc.pow(2).sum() * yc.pow(2).sum()).sqrt() + 1e-8)


def best_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def measure(steps: int, seeds: int, dim: int, repeats: int) -> dict[str, float]:
    import torch
    from torch.func import functional_call, grad, stack_module_state, vmap

    from llmvs.aggregator import GlobalAggregator
    from llmvs.run_config import TrainConfig, model_config

    cfg = model_config(TrainConfig(d_model=128, dim_feedforward=256, attention_dropout=0.0), dim)
    models = []
    for s in range(seeds):
        torch.manual_seed(s)
        models.append(GlobalAggregator(cfg).train())
    x, y = torch.randn(1, steps, dim), torch.rand(1, steps)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-4) for m in models]

    def sequential():
        for m, o in zip(models, opts):
            o.zero_grad()
            pearson_loss(m(x), y).backward()
            o.step()

    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    grads = vmap(grad(lambda p, b: pearson_loss(functional_call(base, (p, b), (x,)), y)),
                 in_dims=(0, 0), randomness="different")
    opt = torch.optim.AdamW(list(params.values()), lr=1e-4)

    def batched():
        for k, g in grads(params, buffers).items():
            params[k].grad = g
        opt.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the batching-rule fallback warning for fused attention
        return {"sequential": best_ms(sequential, repeats), "vmap": best_ms(batched, repeats)}


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", nargs="*", type=int, default=[100, 500])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--dim", type=int, default=576, help="input width (SmolLM2's hidden size)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for steps in a.steps:
        for way, ms in measure(steps, a.seeds, a.dim, a.repeats).items():
            rows.append({"steps": steps, "seeds": a.seeds, "way": way, "ms_per_step": round(ms, 1)})
            print(rows[-1], flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
