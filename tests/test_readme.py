"""The README's results table is the committed reference run (benchmarks/results-cpu2/)."""

from pathlib import Path

import pandas as pd


def _short(x: float) -> str:
    """.134 style, as the README writes it."""
    text = f"{x:.3f}".replace("0.", ".", 1)
    return ".000" if text in ("-.000", ".000") else text


def test_readme_results_table_matches_the_reference_run():
    root = Path(__file__).resolve().parents[1]
    summary = pd.read_csv(root / "benchmarks" / "results-cpu2" / "summary.csv")
    lines = (root / "README.md").read_text().splitlines()
    ours = summary[(summary.source == "measured") & summary.n_splits.notna()]
    assert set(ours.dataset) == {"summe", "tvsum"} and len(ours) == 20
    assert set(ours.row) == {"llmvs", "qa", "q", "a", "mlp", "zero_shot", "zero_shot_expected", "tfidf", "random",
                             "oracle"}
    for r in ours.itertuples():
        line = next(x for x in lines if x.startswith("|") and f"`{r.row}` |" in x)
        cell = f"{_short(r.tau_mean)} ± {_short(r.tau_std)} / {_short(r.rho_mean)} ± {_short(r.rho_std)}"
        assert cell in line, (r.dataset, r.row, cell, line)
