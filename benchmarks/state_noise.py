"""How much do the results rows move when the LLM states change as another CPU kind would change them?

Another CPU computes the same float32 states with other kernels (other blockings and reduction orders),
and bfloat16 states with other bfloat16 kernels. Neither can be run here, so this script (1) measures
on this machine what such differences look like — the states of one video computed with 1 and with 2
threads in float32 (other matmul blockings), and the first windows in bfloat16 against float32 — as
stored (float16 columns); then (2) trains and evaluates the headline run exactly as the pipeline does
(same training keys and seeds, every test video of the five splits) on copies of the states perturbed
like that, and writes the rows beside the unperturbed ones:
- `float32-kernels`: each stored value of the headline's columns (q, a) moved by one float16 step, up or
  down, with the probability measured in (1);
- `bfloat16`: each stored value plus normal noise with its dimension's RMS difference measured in (1).

    python benchmarks/state_noise.py --results results --out benchmarks/results-cpu2/state-noise.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def headline_keys(dataset: str) -> tuple[dict, float]:
    """config.yaml's headline run as the pipeline trains and evaluates it: (training keys, smooth_steps)."""
    import yaml

    from llmvs.workflow import smooth_steps, train_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return json.loads(train_config(config, dataset, config["headline"])), smooth_steps(config, config["headline"])


COLUMNS = ("q", "a")  # the columns the headline reads (features qa)
VARIANTS = ("as computed", "float32-kernels", "bfloat16")


def kernel_differences(results: Path, work: Path, video: str = "video_8", windows: int = 32) -> dict:
    """Stored (float16) LLM states of one SumMe video computed two ways, compared value by value; writes each
    column's per-dimension RMS of the bfloat16 - float32 difference to `work`/bfloat16-rms.npz."""
    import torch

    from llmvs.captioning import read_captions
    from llmvs.embeddings import read_embeddings
    from llmvs.llm_stage import PromptRunner

    _, captions, _ = read_captions(results / "summe" / "captions" / "blip" / f"{video}.parquet")
    out = {}

    def states(dtype, threads, caps):  # {column: [windows, D]} as the embeddings files store them
        torch.set_num_threads(threads)
        runner = PromptRunner("smollm2", "auto", "summe", 0, "fast", dtype, threads=threads)
        res, _ = runner.score(caps, f"{dtype} {threads} thread(s)")
        return {c: np.stack([getattr(r, c).max(0) for r in res]).astype(np.float16).astype(np.float32)
                for c in COLUMNS}

    one, two = states("float32", 1, captions), states("float32", 2, captions)
    stored = read_embeddings(results / "summe" / "embeddings" / "blip" / "smollm2" / f"{video}.arrow")
    out["stored_vs_recomputed_max_abs"] = float(max(np.abs(stored.features(c) - one[c]).max() for c in COLUMNS))
    out["float32_threads_changed_fraction"] = float(np.mean([one[c] != two[c] for c in COLUMNS]))
    out["float32_threads_max_rel_diff"] = float(max(np.abs(one[c] - two[c]).max() / np.abs(one[c]).max()
                                                    for c in COLUMNS))
    b16 = states("bfloat16", 1, captions[:windows])
    diff = {c: b16[c] - one[c][:windows] for c in COLUMNS}
    rms = {c: np.sqrt((diff[c] ** 2).mean(0)) for c in COLUMNS}  # per dimension
    out["bfloat16_changed_fraction"] = float(np.mean([b16[c] != one[c][:windows] for c in COLUMNS]))
    for c in COLUMNS:  # as the fast-path bench reports it: the norm of the difference over the norm of the states
        out[f"bfloat16_{c}_rel_norm_diff"] = float(np.linalg.norm(diff[c]) / np.linalg.norm(one[c][:windows]))
        # against how much each dimension varies between the video's steps (what the scorer ranks by)
        out[f"bfloat16_{c}_rms_over_step_std"] = float(np.median(rms[c] / np.maximum(one[c].std(0), 1e-6)))
    out["bfloat16_windows"] = windows
    work.mkdir(parents=True, exist_ok=True)
    np.savez(work / "bfloat16-rms.npz", **rms)
    return out


def perturb(src: Path, dst: Path, kind: str, amount, seed: int) -> None:
    """Copies of every embeddings file of `src` with the headline's columns perturbed (see the docstring):
    `amount` is the changed fraction (float32-kernels) or {column: per-dimension RMS} (bfloat16)."""
    import pyarrow as pa

    from llmvs.embeddings import fixed_list, read_embeddings, write_arrow

    rng = np.random.default_rng(seed)
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.arrow")):
        emb = read_embeddings(path)
        table = emb.table
        for name in COLUMNS:
            x = emb.features(name).astype(np.float16)
            if kind == "float32-kernels":
                flip = rng.random(x.shape) < amount
                step = np.where(rng.random(x.shape) < 0.5, -np.inf, np.inf).astype(np.float16)
                x = np.where(flip, np.nextafter(x, step), x)
            else:
                x = (x.astype(np.float32) + amount[name] * rng.standard_normal(x.shape)).astype(np.float16)
            i = table.column_names.index(name)
            table = table.set_column(i, pa.field(name, table.schema.field(name).type), fixed_list(x))
        write_arrow(table, dst / path.name)


def split_rows(metrics_csv: Path, dataset: str, split: int) -> list[dict]:
    """A split's metrics.csv as one row per seed: its tau and rho averaged over the test videos."""
    import pandas as pd

    return [{"dataset": dataset, "split": split, "seed": int(seed), "tau": g.tau.mean(), "rho": g.rho.mean()}
            for seed, g in pd.read_csv(metrics_csv).groupby("seed")]


def headline_rows(results: Path, embeddings: Path, dataset: str, work: Path) -> list[dict]:
    """The headline trained and evaluated on `embeddings` for the five splits: a row per split and seed."""
    from llmvs.run_config import TrainConfig
    from llmvs.scoring import evaluate_split
    from llmvs.train import train_split

    splits = ROOT / "data" / "splits" / f"{dataset}_splits.json"
    keys, smooth = headline_keys(dataset)
    rows = []
    for split in range(5):
        out = work / dataset / f"split{split}"
        if not (out / "model.pt").exists():
            train_split(results / dataset / "annotations.parquet", embeddings, splits, split,
                        TrainConfig.from_dict(keys), out, shots_dir=results / dataset / "shots", threads=1)
        evaluate_split(results / dataset / "annotations.parquet", splits, split, "model", out,
                       embeddings_dir=embeddings, model_path=out / "model.pt", shots_dir=results / dataset / "shots",
                       smooth_steps=smooth)
        rows += split_rows(out / "metrics.csv", dataset, split)
    return rows


def pipeline_rows(results: Path, dataset: str) -> list[dict]:
    """The pipeline's `llmvs` run (config.yaml's headline, trained with the same keys) as rows per split and seed."""
    runs = results / dataset / "runs" / "blip" / "smollm2" / "llmvs"
    return [r for split in range(5) for r in split_rows(runs / f"split{split}" / "metrics.csv", dataset, split)]


def main() -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    p.add_argument("--work", default="/tmp/llmvs-state-noise")
    p.add_argument("--datasets", nargs="*", default=["tvsum", "summe"])
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                   help="the variants to compute (separate processes may train them side by side once the "
                        "kernel differences are measured; each keeps the others' rows of --out)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    results, work, out = Path(a.results), Path(a.work), Path(a.out)
    measured = work / "kernel-differences.json"
    if not measured.exists():
        t = time.perf_counter()
        diff = kernel_differences(results, work)
        diff["seconds"] = round(time.perf_counter() - t)
        measured.write_text(json.dumps(diff, indent=1))
    diff = json.loads(measured.read_text())
    print(diff, flush=True)
    amounts = {"as computed": lambda: None, "float32-kernels": lambda: diff["float32_threads_changed_fraction"],
               "bfloat16": lambda: dict(np.load(work / "bfloat16-rms.npz"))}
    rows = []
    for variant in a.variants:
        amount = amounts[variant]()
        for ds in a.datasets:
            if amount is None:  # the pipeline's own headline run: the same keys, seeds and evaluation
                rows += [{"variant": variant, **r} for r in pipeline_rows(results, ds)]
            else:
                emb = work / "states" / variant / ds
                if not emb.exists():  # written whole, then renamed: a killed run's `.partial` folder is redone
                    tmp = emb.with_name(emb.name + ".partial")
                    perturb(results / ds / "embeddings" / "blip" / "smollm2", tmp, variant, amount, seed=0)
                    tmp.rename(emb)
                rows += [{"variant": variant, **r} for r in headline_rows(results, emb, ds, work / "runs" / variant)]
            # the file's other rows stay: processes computing other variants or datasets write it too
            old = pd.read_csv(out) if out.exists() else pd.DataFrame({"variant": [], "dataset": []})
            done = {(r["variant"], r["dataset"]) for r in rows}  # only what this process has recomputed
            mine = pd.Series([pair in done for pair in zip(old.variant, old.dataset)], index=old.index, dtype=bool)
            frame = pd.concat([old[~mine], pd.DataFrame(rows)], ignore_index=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(out, index=False, float_format="%.4f")
            print(frame.groupby(["variant", "dataset"])[["tau", "rho"]].mean(), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
