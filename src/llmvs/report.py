"""The `aggregate` stage: results tables for every dataset x run x split, beside the paper.

Per setting (captioner x LLM), under `results/summaries/{captioner}/{llm}/`:
`metrics.csv`: captioner, llm, dataset, run, split, seed, n_videos, tau, rho, f1 (means over the
split's test videos, per trained seed); `summary.csv`: per dataset x run (source = measured) the
mean, the std over the splits (of each split's mean over its seeds) and the std over the seeds (of
each seed's mean over the splits; its standard error is seed_std / sqrt(n_seeds)), how the row reads
its test videos (`reading`: honest; test_rho = the epoch chosen on the test split; as_authors = the
authors' reading, rank-0 shard only), our human baseline (measured), and the paper's published rows
(source = published); `summary.png`.
`combine` stacks several settings' summaries into one table and chart (`results/summary.csv`), so
the embedded default and the paper preset are compared side by side.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmvs import LlmvsError

if TYPE_CHECKING:
    import pandas as pd

# LLMVS paper (CVPR 2025), Kendall tau / Spearman rho.
PUBLISHED = [
    ("Human", "summe", .205, .213), ("Human", "tvsum", .177, .204),
    ("LLM zero-shot", "summe", .170, .189), ("LLM zero-shot", "tvsum", .051, .056),
    ("CSTA", "summe", .246, .274), ("CSTA", "tvsum", .194, .255),  # vision only (GoogLeNet features)
    ("MSVA", "summe", .200, .230), ("MSVA", "tvsum", .190, .210),  # vision only
    ("SSPVS", "summe", .192, .257), ("SSPVS", "tvsum", .181, .238),  # vision + text
    ("LLMVS", "summe", .253, .282), ("LLMVS", "tvsum", .211, .275),
    ("LLMVS a only", "summe", .233, .260), ("LLMVS q only", "summe", .238, .265),
    ("LLMVS q+a, MLP instead of attention", "summe", .182, .203),
]
_PATH = re.compile(r"(?P<dataset>[^/]+)/runs/(?P<captioner>[^/]+)/(?P<llm>[^/]+)/(?P<run>[^/]+)/split(?P<split>\d+)"
                   r"/metrics\.csv$")
SETTING = ["captioner", "llm"]


def collect_metrics(paths) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for p in paths:
        m = _PATH.search(Path(p).as_posix())
        if not m:
            raise LlmvsError(f"{p}: expected .../{{dataset}}/runs/{{captioner}}/{{llm}}/{{run}}/split{{N}}/metrics.csv")
        try:
            frame = pd.read_csv(p)
        except (OSError, ValueError) as err:
            raise LlmvsError(f"{p}: not a readable metrics CSV ({err})") from None
        if frame.empty:
            raise LlmvsError(f"{p}: no videos")
        for seed, part in frame.groupby("seed") if "seed" in frame else [(0, frame)]:
            row = {"captioner": m["captioner"], "llm": m["llm"], "dataset": m["dataset"], "run": m["run"],
                   "split": int(m["split"]), "seed": int(seed), "n_videos": len(part)}
            for col in ("tau", "rho", "f1"):
                row[col] = float(part[col].mean()) if col in part else np.nan
            rows.append(row)
    frame = pd.DataFrame(rows)
    run_order = frame.run.map({run: i for i, run in enumerate(dict.fromkeys(frame.run))})  # as given: the config's
    return (frame.assign(run_order=run_order).sort_values(["captioner", "llm", "dataset", "run_order", "split", "seed"])
            .drop(columns="run_order").reset_index(drop=True))


def summarize(metrics, human=None, uses_title=(), readings=None) -> "pd.DataFrame":
    """`uses_title`: the runs whose scores read the video's title (a column, so rows compare like with like);
    `readings`: run -> how it reads the test videos where not honestly (test_rho, as_authors)."""
    import pandas as pd

    rows = []
    setting = dict(zip(SETTING, metrics[SETTING].iloc[0])) if len(metrics) else {}
    for (dataset, run), g in metrics.groupby(["dataset", "run"], sort=False):
        splits = g.groupby("split")[["tau", "rho", "f1"]].mean()  # each split: the mean over its seeds
        seeds = g.groupby("seed")[["tau", "rho", "f1"]].mean()  # each seed: the mean over the splits
        row = {**setting, "dataset": dataset, "row": run, "source": "measured", "uses_title": run in uses_title,
               "reading": (readings or {}).get(run, "honest"), "n_splits": len(splits), "n_seeds": len(seeds)}
        for col in ("tau", "rho", "f1"):
            row[f"{col}_mean"] = splits[col].mean()
            row[f"{col}_std"] = splits[col].std(ddof=0)  # spread over the splits (of the seed means)
            row[f"{col}_seed_std"] = seeds[col].std(ddof=1) if len(seeds) > 1 else np.nan  # spread over the seeds
        rows.append(row)
    if human is not None:
        for dataset, g in human[human.video == "mean"].groupby("dataset"):
            rows.append({"dataset": dataset, "row": "human (all videos)", "source": "measured", "uses_title": False,
                         "tau_mean": float(g.tau.iloc[0]), "rho_mean": float(g.rho.iloc[0])})
    measured = set(metrics.dataset)
    for name, dataset, tau, rho in PUBLISHED:
        if dataset in measured:
            rows.append({"dataset": dataset, "row": name, "source": "published", "uses_title": False,
                         "tau_mean": tau, "rho_mean": rho})
    return pd.DataFrame(rows)


def combine(summary_files, out_dir) -> "pd.DataFrame":
    """One table of several settings' summaries: measured rows of each, human and published rows once."""
    import pandas as pd

    from llmvs.io import atomic_path

    frames = []
    for p in summary_files:
        try:
            frames.append(pd.read_csv(p))
        except (OSError, ValueError) as err:
            raise LlmvsError(f"{p}: not a readable summary CSV ({err})") from None
    table = pd.concat(frames, ignore_index=True)
    shared = table.source == "published"
    shared |= table.row.astype(str).str.startswith("human")
    table.loc[shared, SETTING] = ""
    table = table.drop_duplicates(subset=["dataset", "row", "source", *SETTING], keep="first")
    rank = table.source.map({"measured": 0, "published": 2}).where(~table.row.astype(str).str.startswith("human"), 1)
    table = table.assign(_rank=rank).sort_values(["dataset", "_rank"], kind="stable").drop(columns="_rank")
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "summary.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    write_machine(out_dir / "machine.json")
    plot_summary(table, out_dir / "summary.png")
    return table


def _label(row) -> str:
    setting = "/".join(str(row[c]) for c in SETTING if c in row and isinstance(row[c], str) and row[c])
    name = f"{row['row']} ({setting})" if setting and row["source"] == "measured" else str(row["row"])
    return name + (" (paper)" if row["source"] == "published" else "")


def plot_summary(summary, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmvs.io import atomic_path

    datasets = sorted(summary.dataset.unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 0.5 + 0.32 * summary.groupby("dataset").size().max()),
                             squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        g = summary[summary.dataset == ds].iloc[::-1]
        y = np.arange(len(g))
        colors = ["tab:blue" if s == "measured" else "tab:grey" for s in g.source]
        ax.barh(y + 0.2, g.tau_mean, 0.4, color=colors, alpha=0.9, label="Kendall τ",
                xerr=g.get("tau_std", None), error_kw={"lw": 0.8})
        ax.barh(y - 0.2, g.rho_mean, 0.4, color=colors, alpha=0.5, label="Spearman ρ",
                xerr=g.get("rho_std", None), error_kw={"lw": 0.8})
        ax.set_yticks(y, [_label(r) for _, r in g.iterrows()], fontsize=8)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_title(f"{ds}: ours (blue, mean ± std over 5 splits) vs published (grey)", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def aggregate(metric_files, out_dir, human_csv=None, uses_title=(), readings=None) -> None:
    import pandas as pd

    from llmvs.io import atomic_path

    metrics = collect_metrics(metric_files)
    human = pd.read_csv(human_csv) if human_csv else None
    summary = summarize(metrics, human, uses_title, readings)
    out_dir = Path(out_dir)
    for frame, name in ((metrics, "metrics.csv"), (summary, "summary.csv")):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
    write_machine(out_dir / "machine.json")
    plot_summary(summary, out_dir / "summary.png")


def write_machine(out) -> None:
    """The machine these tables were made on (llmvs.machine), beside them."""
    import json

    from llmvs.io import write_text
    from llmvs.machine import describe

    write_text(json.dumps(describe(), indent=1) + "\n", out)
