"""What stopping a training early would save, and what it would change, read from a finished run's logs.

    python benchmarks/early_stopping.py results --runs llmvs qa q a mlp tfidf encoder

Every model of a run selected by validation loss logs that loss after each epoch (`train_log.csv`).
Stopping once it has not improved for `patience` epochs leaves the weights of every epoch before the
stop unchanged (same seed, same batches, a learning-rate schedule set by `epochs`), so the selected
checkpoint changes only where the run's best epoch comes later than the stop. Per benchmark, run and
patience: the models whose selection would stay the same, the fraction of epochs trained, and the
job-seconds saved (each training job's time from its Snakemake benchmark file, scaled by that fraction).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

PATIENCE = (5, 10, 15, 20)


def stop_epoch(val_loss: np.ndarray, patience: int) -> tuple[int, int]:
    """(epochs trained, 1-based epoch selected among them) under early stopping with `patience`."""
    best = 0
    for e in range(len(val_loss)):
        if val_loss[e] < val_loss[best]:
            best = e
        if e - best >= patience:
            return e + 1, best + 1
    return len(val_loss), best + 1


def rows(results: Path, setting: str, runs: list[str] | None) -> list[dict]:
    out = []
    for log in sorted(results.glob(f"*/runs/{setting}/*/split*/train_log.csv")):
        split_dir = log.parent
        run, dataset = split_dir.parent.name, split_dir.parents[4].name
        if runs and run not in runs or json.loads((split_dir / "selection.json").read_text()).get("selection") != "val_loss":
            continue
        bench = results / "benchmarks" / "train_split" / dataset / setting / run / f"{split_dir.name}.tsv"
        seconds = float(pd.read_csv(bench, sep="\t")["s"].iloc[0]) if bench.exists() else float("nan")
        logs = pd.read_csv(log)
        for patience in PATIENCE:
            trained = same = epochs = 0
            for _, g in logs.groupby("seed"):
                v = g.sort_values("epoch").val_loss.to_numpy()
                n, chosen = stop_epoch(v, patience)
                trained, epochs = trained + n, epochs + len(v)
                same += chosen == int(np.argmin(v)) + 1
            out.append({"dataset": dataset, "run": run, "split": split_dir.name, "patience": patience,
                        "models": logs.seed.nunique(), "same_selection": same, "epochs": epochs,
                        "epochs_trained": trained, "job_seconds": seconds,
                        "job_seconds_saved": seconds * (1 - trained / epochs)})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, help="a finished run's results folder")
    p.add_argument("--setting", default="blip/smollm2", help="<captioner>/<llm> under runs/")
    p.add_argument("--runs", nargs="*", help="only these runs (default: every run selected by validation loss)")
    p.add_argument("--out", default="benchmarks/results-cpu2/early-stopping.csv")
    a = p.parse_args(argv)
    frame = pd.DataFrame(rows(a.results, a.setting, a.runs))
    table = frame.groupby(["dataset", "run", "patience"], as_index=False).agg(
        models=("models", "sum"), same_selection=("same_selection", "sum"), epochs=("epochs", "sum"),
        epochs_trained=("epochs_trained", "sum"), job_seconds=("job_seconds", "sum"),
        job_seconds_saved=("job_seconds_saved", "sum"))
    table.round(1).to_csv(a.out, index=False, quoting=csv.QUOTE_MINIMAL)
    total = frame.groupby("patience")[["models", "same_selection", "epochs_trained", "epochs", "job_seconds",
                                       "job_seconds_saved"]].sum()
    print(total.assign(epoch_fraction=total.epochs_trained / total.epochs).round(2).to_string())


if __name__ == "__main__":
    main()
