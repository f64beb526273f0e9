import subprocess
import sys

import numpy as np
import pandas as pd

from conftest import DATA
from llmvs.cli import main
from llmvs.datasets import read_annotations


def test_annotations_round_trip(tmp_path, summe):
    out = tmp_path / "summe" / "annotations.parquet"
    assert main(["annotations", "--dataset", "summe", "--data-dir", str(DATA), "--out", str(out)]) == 0
    videos = read_annotations(out)
    assert list(videos) == list(summe)
    a, b = videos["video_3"], summe["video_3"]
    assert a.n_frames == b.n_frames and np.array_equal(a.user_scores, b.user_scores)
    assert np.array_equal(a.gtscore, b.gtscore) and a.dataset == "summe"
    assert not list(out.parent.glob("*.part"))


def test_human_command_writes_the_summe_row(tmp_path):
    out = tmp_path / "human.csv"
    assert main(["human", "--datasets", "summe", "--data-dir", str(DATA), "--out", str(out)]) == 0
    mean = pd.read_csv(out).query("video == 'mean'").iloc[0]
    assert round(mean.tau, 3) == 0.205 and round(mean.rho, 3) == 0.213


def test_errors_are_one_line_and_exit_1(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "llmvs.cli", "annotations", "--dataset", "summe",
                           "--data-dir", str(tmp_path), "--out", str(tmp_path / "a.parquet")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("llmvs: error:") and "summe-info.derived.tsv" in proc.stderr
