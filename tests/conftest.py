import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

# Snakemake rules run `llmvs`: make the test interpreter's environment the one they find first.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def summe():
    from llmvs.datasets import load_dataset

    return load_dataset("summe", DATA)


@pytest.fixture(scope="session")
def tvsum():
    from llmvs.datasets import load_dataset

    return load_dataset("tvsum", DATA)


VIDEOS = ["video_8", "video_11", "video_12", "video_19", "video_18"]  # the five shortest SumMe videos


def write_features(path, picks, columns: dict, answer_score=None):
    """An embeddings file with the given [T, D] feature columns (and answer scores)."""
    import pyarrow as pa

    extra = {} if answer_score is None else {"answer_score": pa.array(answer_score, pa.float32()),
                                              "answer_expected": pa.array(answer_score, pa.float32())}
    from llmvs.embeddings import features_table, write_arrow

    write_arrow(features_table(picks, columns, {"model": "test", "columns": {k: "test" for k in columns}}, extra), path)


def write_caption_benchmark(root, dataset, keys, seed, write):
    """For each video of `root`/annotations.parquet in `keys`: stand-in LLM states (a fixed random
    projection of its captions' TF-IDF) written by `write(path, picks, {"q", "a"}, answers)` under
    `root`/emb, and its shots under `root`/shots."""
    import numpy as np
    import pyarrow as pa

    from llmvs.datasets import load_caption_json, read_annotations, shipped_captions_path
    from llmvs.io import write_parquet
    from llmvs.shots import caption_features, detect_shots

    videos = read_annotations(Path(root) / "annotations.parquet")
    caps = load_caption_json(shipped_captions_path(dataset, data_dir=DATA))
    proj = np.random.default_rng(seed).normal(size=(4096, 24)).astype(np.float32)
    for key in keys:
        v = videos[key]
        tfidf = caption_features(caps[v.caption_key]["captions"])
        feats = tfidf @ proj[: tfidf.shape[1]]
        write(Path(root) / "emb" / f"{key}.arrow", v.picks, {"q": feats, "a": feats * 0.5}, np.arange(len(feats)) % 10)
        cps = detect_shots(tfidf, v.n_frames, v.picks, v.fps)
        write_parquet(pa.table({"start": cps[:, 0], "end": cps[:, 1]}), Path(root) / "shots" / f"{key}.parquet")


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory):
    """Annotations, shots and schema-valid embeddings for five real SumMe videos.

    The embedding vectors are a fixed random projection of each step's caption TF-IDF (real
    content, no LLM run) so that the training and evaluation stages can be exercised in seconds;
    the LLM stage itself is tested in test_prompting.py.
    """
    import json

    from llmvs.datasets import write_annotations

    root = tmp_path_factory.mktemp("bench")
    write_annotations("summe", root / "annotations.parquet", DATA)
    write_caption_benchmark(root, "summe", VIDEOS, seed=0, write=write_features)
    splits = [{"train_keys": ["video_11", "video_18", "video_19", "video_8"], "test_keys": ["video_12"]},
              {"train_keys": ["video_11", "video_12", "video_18", "video_8"], "test_keys": ["video_19"]}]
    (root / "splits.json").write_text(json.dumps(splits))
    return root
