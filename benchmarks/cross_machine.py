"""The same runs made on two machines: how far apart their rows and models are, against the seed spread.

    python benchmarks/cross_machine.py benchmarks/results-cpu2 results/summaries/blip/smollm2 --out cross-machine.csv

Each argument is a folder with the `metrics.csv` (one row per run, split and seed: τ, ρ, F1 over the
split's test videos) and the `machine.json` that `llmvs aggregate` writes. For every run both machines
hold, per benchmark: the row (mean over splits of the seed-averaged split τ) on each machine;
per model (split and seed) the mean and largest |Δτ| between the machines; and, as the yardstick, the
mean and largest |Δτ| between two seeds of the same split on the same machine (both machines pooled;
empty for the untrained rows, which have one).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path


def machine_label(folder: Path) -> str:
    m = json.loads((folder / "machine.json").read_text())
    return f"{m['cpu']} ({', '.join(m['flags']) or 'no AVX-512/AMX'})"


def seed_gaps(frame) -> list[float]:
    """|Δτ| between every two seeds of the same run and split."""
    return [abs(a - b) for _, g in frame.groupby("split") for a, b in itertools.combinations(g.tau, 2)]


def compare(ref, other) -> list[dict]:
    keys = ["dataset", "run", "split", "seed"]
    both = ref.merge(other, on=keys, suffixes=("_ref", "_other"))
    rows = []
    for (ds, run), g in both.groupby(["dataset", "run"], sort=False):
        gap = (g.tau_other - g.tau_ref).abs()
        seeds = seed_gaps(ref[(ref.dataset == ds) & (ref.run == run)]) + seed_gaps(
            other[(other.dataset == ds) & (other.run == run)])
        row = {"dataset": ds, "run": run, "models": len(g)}
        for side in ("ref", "other"):
            row[f"tau_{side}"] = g.groupby("split")[f"tau_{side}"].mean().mean()
            row[f"rho_{side}"] = g.groupby("split")[f"rho_{side}"].mean().mean()
        row.update({"model_gap_mean": gap.mean(), "model_gap_max": gap.max(),  # untrained rows: no seeds
                    "seed_gap_mean": sum(seeds) / len(seeds) if seeds else None, "seed_gap_max": max(seeds, default=None)})
        rows.append(row)
    return rows


def main() -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference", type=Path, help="folder with metrics.csv and machine.json")
    p.add_argument("other", type=Path, help="the same files from the other machine")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    ref, other = (pd.read_csv(f / "metrics.csv") for f in (a.reference, a.other))
    frame = pd.DataFrame(compare(ref, other))
    if frame.empty:
        raise SystemExit("the two folders share no run")
    frame.insert(0, "other_machine", machine_label(a.other))
    frame.insert(0, "reference_machine", machine_label(a.reference))
    frame.to_csv(a.out, index=False, float_format="%.4f")
    print(frame.drop(columns=["reference_machine", "other_machine"]).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
