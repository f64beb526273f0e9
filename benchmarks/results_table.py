"""The README's results table, written from a `summary.csv` (so the two cannot drift apart).

    python benchmarks/results_table.py benchmarks/results-cpu2/summary.csv

One row per measured run of the embedded setting, in the summary's order: τ and ρ as mean ± std over
the five splits (a trained run's split values are means over its seeds; the seeds' own spread, the
std of their five-split means, in brackets), F1, and the published row it compares with.
"""

from __future__ import annotations

import argparse
import sys

LABELS = {  # run -> what it is, as the README names it
    "llmvs": "**headline** (the LLM's q+a states; chosen on validation)",
    "qa": "LLMVS as published (q+a, attention, MSE)",
    "q": "q only",
    "a": "a only",
    "mlp": "q+a, MLP instead of attention",
    "zero_shot": "LLM zero-shot greedy answers",
    "zero_shot_expected": "LLM zero-shot, expected score Σ k·p(k)",
    "tfidf": "control: TF-IDF/LSA of the captions, no LLM, trained as the headline",
    "encoder": "sentence encoder (MiniLM) of the captions, no LLM, trained as the headline",
    "ridge": "control: ridge regression on the MiniLM embeddings",
    "title": "captions' similarity to the title (MiniLM), no training",
    "as_authors": "the headline read as the published numbers most likely were (best test ρ epoch; not a result)",
    "random": "control: random scores",
    "random_as_authors": "random scores under that reading (best of 400 draws per split)",
    "oracle": "control: gtscore (the ceiling under these shots)",
}
PUBLISHED = {"qa": ".211/.275 · .253/.282", "q": "— · .238/.265", "a": "— · .233/.260", "mlp": "— · .182/.203",
             "zero_shot": ".051/.056 · .170/.189"}


def short(x: float) -> str:
    """.134 style, as the README writes it."""
    text = f"{x:.3f}".replace("0.", ".", 1)
    return ".000" if text in ("-.000", ".000") else text


def cell(row) -> str:
    seeds = f" ({short(row.tau_seed_std)})" if row.n_seeds > 1 else ""
    return f"{short(row.tau_mean)} ± {short(row.tau_std)}{seeds} / {short(row.rho_mean)} ± {short(row.rho_std)}"


def rows(summary) -> list[str]:
    """Markdown rows (run | title | TVSum | F1 | SumMe | F1 | published) of the measured runs."""
    ours = summary[(summary.source == "measured") & summary.n_splits.notna()]
    out = []
    for run in dict.fromkeys(ours.row):
        r = {ds: g.iloc[0] for ds, g in ours[ours.row == run].groupby("dataset")}
        parts = [f"{cell(r[ds])} | {r[ds].f1_mean:.1f}" if ds in r else "— | —" for ds in ("tvsum", "summe")]
        title = "yes" if any(bool(x.uses_title) for x in r.values()) else ""
        out.append(f"| {LABELS.get(run, run)} — `{run}` | {title} | {parts[0]} | {parts[1]} | {PUBLISHED.get(run, '—')} |")
    return out


def main() -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary", help="a summary.csv of `llmvs aggregate`")
    a = p.parse_args()
    print("\n".join(rows(pd.read_csv(a.summary))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
