"""The README's results table is the committed reference run (benchmarks/results-cpu2/)."""

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_readme_results_table_is_the_reference_run():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results_table import rows

    summary = pd.read_csv(ROOT / "benchmarks" / "results-cpu2" / "summary.csv")
    ours = summary[(summary.source == "measured") & summary.n_splits.notna()]
    assert set(ours.dataset) == {"summe", "tvsum"}
    assert {"llmvs", "qa", "tfidf", "encoder", "ridge", "title", "random", "oracle"} <= set(ours.row)
    table = [x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("| ") and " — `" in x]
    assert table == rows(summary)
    # one cell spelled out from the csv itself, so a formatting slip in rows() cannot pass unseen
    head = ours[(ours.row == "llmvs") & (ours.dataset == "tvsum")].iloc[0]
    line = next(x for x in table if "— `llmvs` |" in x)
    assert f"{head.tau_mean:.3f} ± {head.tau_std:.3f}".replace("0.", ".") in line
