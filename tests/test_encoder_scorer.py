"""A shipped scorer that reads a sentence encoder's embeddings (a headline run with `embeddings: minilm`):
`llmvs release-scorer` records the encoder and the title in its checkpoint and card, and `llmvs summarize`
with it runs no LLM: the captions go through the `encode` stage's code (llmvs.scorer_inputs)."""

import contextlib
import csv
import io
import json
import re

import numpy as np
import pytest
import torch
import yaml

from conftest import DATA, ROOT, write_caption_benchmark, write_features
from llmvs.cli import main
from llmvs.encoders import SHIPPED
from llmvs.summarize import DEFAULT_CAPTIONER, OUTPUTS
from test_release import reduced_annotations
from test_summarize import CARPHONE_CAPTIONS, smollm2_scorers, write_captions_csv  # noqa: F401 (a fixture)
from test_video import sample_clip

BENCHMARK = {"summe": ["video_12", "video_19"], "tvsum": ["video_45", "video_38"]}  # short videos: 1 fit + 1 val each
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FEATURES = ["q_text", "c", "minilm:title_sim_max"]
SUMMARY = """dataset,row,source,n_splits,tau_mean,tau_std,rho_mean,rho_std,f1_mean,f1_std
summe,encoder,measured,5,0.06,0.04,0.07,0.05,36.0,4.0
tvsum,encoder,measured,5,0.17,0.03,0.22,0.04,62.0,2.0
"""
TITLE = "#12 A man talks in a car [MyChannel]"


@pytest.fixture(scope="module")
def encoder_scorer(tmp_path_factory):
    """The release scorer of a run reading real MiniLM embeddings (and the title) of two videos of each
    benchmark: the shipped captions through `llmvs captions` and `llmvs encode`, as the workflow runs them."""
    from llmvs.datasets import shipped_captions_path, write_annotations

    root = tmp_path_factory.mktemp("encoder_release")
    for ds, keys in BENCHMARK.items():
        write_annotations(ds, root / f"{ds}-all.parquet", DATA)
        ann = str(reduced_annotations(root / f"{ds}-all.parquet", keys, root / ds / "annotations.parquet"))
        write_caption_benchmark(root / ds, ds, keys, seed=0, write=lambda *_: None)  # its shots only
        caps = [str(root / ds / "captions" / f"{k}.parquet") for k in keys]
        for key, out in zip(keys, caps):
            assert main(["captions", "--backend", "import", "--annotations", ann, "--video", key, "--source",
                         str(shipped_captions_path(ds, data_dir=DATA)), "--captioner", "blip", "--out", out]) == 0
        assert main(["encode", "--captions", *caps, "--out", *[str(root / ds / "minilm" / f"{k}.arrow") for k in keys],
                     "--encoder", "minilm", "--annotations", ann, "--threads", "1"]) == 0
    (root / "summary.csv").write_text(SUMMARY)
    keys = {"features": FEATURES, "d_model": 16, "dim_feedforward": 32, "epochs": 2, "lr": 1e-3}
    assert main(["release-scorer", "--annotations", *[str(root / ds / "annotations.parquet") for ds in BENCHMARK],
                 "--embeddings-dir", *[str(root / ds / "minilm") for ds in BENCHMARK],
                 "--shots-dir", *[str(root / ds / "shots") for ds in BENCHMARK], "--run", "encoder",
                 "--run-config", json.dumps(keys), "--smooth-steps", "1", "--summary", str(root / "summary.csv"),
                 "--threads", "1", "--out", str(root / "scorers" / "blip-smollm2.pt"),
                 "--card", str(root / "scorers" / "blip-smollm2.md")]) == 0
    return root / "scorers" / "blip-smollm2.pt"


def test_the_release_checkpoint_and_card_name_the_encoder_and_its_columns(encoder_scorer):
    from llmvs.checkpoints import load_model

    ckpt = load_model(encoder_scorer)[1]
    assert ckpt["feature_schema"] == {
        "features": FEATURES, "input_dim": 384 + 384 + 1, "llm": None, "encoder": "minilm", "encoder_model": MINILM,
        "encoder_weights_sha256": SHIPPED["minilm"].sha256, "dims": 384, "columns": FEATURES, "title": True,
        "captioner": "blip", "captioner_model": DEFAULT_CAPTIONER}
    assert ckpt["run"] == "encoder" and ckpt["datasets"] == {ds: {"videos": 2, "fit": 1, "val": 1} for ds in BENCHMARK}
    lines = encoder_scorer.with_suffix(".md").read_text().splitlines()
    for line in [
        f"| embeddings | sentence encoder `minilm`: {MINILM}, 384-d, weights sha256 `{SHIPPED['minilm'].sha256}`; "
        "no LLM |",
        f"| feature columns | `q_text` (max over the window's captions of their L2-normalised sentence embeddings "
        f"({MINILM})), `c` (L2-normalised sentence embedding of the centre caption ({MINILM})), "
        "`minilm:title_sim_max` (max over the window's captions of title_sim); input 769 |",
        "| title | read by the title columns |",
        f"| captioner | `blip` ({DEFAULT_CAPTIONER}), every 15th frame |",
        "| SumMe | 5 | .060 ± .040 | .070 ± .050 | 36.0 ± 4.0 |",
    ]:
        assert line in lines, line
    assert not [line for line in lines if line.startswith(("| LLM", "| in-context"))]


def _no_llm(monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("the LLM stage ran")

    monkeypatch.setattr("llmvs.llm_stage.PromptRunner", refuse)
    monkeypatch.setattr("llmvs.summarize.llm_states", refuse)


def _summarize(tmp_path, *args):
    caps = write_captions_csv(tmp_path / "carphone.csv", 8, CARPHONE_CAPTIONS)
    out, err = tmp_path / "out", io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["summarize", sample_clip("carphone_pristine.mp4"), "--captions", str(caps), "--threads", "1",
                     "--out", str(out), *args]) == 0, err.getvalue()
    return out, json.loads((out / "summary.json").read_text()), err.getvalue().replace("\r", "\n")


def test_summarize_with_an_encoder_scorer_runs_no_llm_and_scores_as_the_encode_stage(encoder_scorer, tmp_path,
                                                                                    monkeypatch):
    from llmvs.captioning import write_captions
    from llmvs.checkpoints import checkpoint_scores, load_model
    from llmvs.embeddings import feature_matrix, read_embeddings

    _no_llm(monkeypatch)
    out, summary, err = _summarize(tmp_path, "--scorer", str(encoder_scorer), "--title", TITLE)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert (summary["llm"], summary["llm_dtype"], summary["exemplars"]) == (None, None, [])
    assert (summary["features"], summary["features_model"], summary["feature_columns"]) == ("encoder", MINILM, FEATURES)
    assert summary["title"] == {"title": TITLE, "title_query": "A man talks in a car", "title_source": "argument"}
    read = (f"sentence embeddings of the captions ({MINILM}): q_text, c, minilm:title_sim_max; "
            "title 'A man talks in a car' (argument)")
    assert summary["features_read"] == read
    assert "encoder_s" in summary["timings"] and "llm_s" not in summary["timings"]
    assert re.search(rf"^encoder +\d+\.\d s  8 captions by {MINILM}; scores: {re.escape(str(encoder_scorer))}$", err,
                     re.M)
    assert not re.search(r"^LLM ", err, re.M)
    html = (out / "summary.html").read_text()
    assert f"Features read: {read.replace(chr(39), '&#x27;')}" in html and " · no LLM · " in html
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert list(rows[0]) == ["frame_index", "time_s", "caption", "score"]  # no LLM answers
    # the same scores as the scorer gives the `encode` stage's file of these captions and title
    picks = np.arange(0, 120, 15)
    write_captions(tmp_path / "c.parquet", picks, CARPHONE_CAPTIONS, captioner="x", video="carphone_pristine",
                   n_frames=120, fps=30000 / 1001)
    assert main(["encode", "--captions", str(tmp_path / "c.parquet"), "--out", str(tmp_path / "c.arrow"),
                 "--title", TITLE]) == 0
    model, ckpt = load_model(encoder_scorer)
    x = feature_matrix(read_embeddings(tmp_path / "c.arrow"), FEATURES)
    expected = checkpoint_scores(model, ckpt, x, scorer=encoder_scorer, features="c.arrow", smooth_steps=1)
    np.testing.assert_array_equal(np.array([np.float32(r["score"]) for r in rows]), expected.astype(np.float32))


def test_the_default_encoder_scorer_reads_the_file_name_as_title(encoder_scorer, tmp_path, monkeypatch):
    _no_llm(monkeypatch)
    monkeypatch.setattr("llmvs.summarize.SHIPPED_SCORER", encoder_scorer)
    _, summary, _ = _summarize(tmp_path)
    assert summary["scorer"] == "default scorer blip-smollm2"
    assert summary["title"] == {"title": "carphone_pristine", "title_query": "carphone pristine",
                                "title_source": "file name"}


def test_an_encoder_scorer_whose_encoder_differs_is_refused_first(encoder_scorer, tmp_path, capsys):
    ckpt = torch.load(encoder_scorer, weights_only=False)
    caps = write_captions_csv(tmp_path / "c.csv", 8, CARPHONE_CAPTIONS)
    for key, value, problem in [
        ("encoder_weights_sha256", "0" * 64, f"trained on embeddings of {MINILM} (weights sha256 {'0' * 64}), but "
                                             f"encoder 'minilm' here has weights sha256 {SHIPPED['minilm'].sha256}"),
        ("encoder", str(tmp_path / "no-encoder"), f"reads embeddings of encoder '{tmp_path / 'no-encoder'}', which "
                                                  "is not available here: "),
    ]:
        bad = tmp_path / f"{key}.pt"
        torch.save({**ckpt, "feature_schema": {**ckpt["feature_schema"], key: value}}, bad)
        assert main(["summarize", sample_clip("carphone_pristine.mp4"), "--captions", str(caps), "--scorer", str(bad),
                     "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"llmvs: error: {bad}: {problem}") and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()


def test_summarize_with_an_llm_scorer_says_it_read_the_llm_states(smollm2_scorers, tmp_path, monkeypatch):  # noqa: F811
    """The LLM path as before (its stage stood in by a runner writing 576-d states: no LLM runs here)."""
    from llmvs.captioning import read_captions
    from llmvs.smollm2 import SMOLLM2_ID

    class Runner:
        def __init__(self, *_, **__):
            self.model_id, self.exemplars = SMOLLM2_ID, []

        def run(self, captions_file, out):
            frame_index, caps, _ = read_captions(captions_file)
            x = np.random.default_rng(0).normal(size=(len(caps), 576)).astype(np.float32)
            write_features(out, frame_index, {"q_text": x, "c": np.tanh(x)}, np.full(len(caps), 5.0))

    monkeypatch.setattr("llmvs.llm_stage.PromptRunner", Runner)
    out, summary, err = _summarize(tmp_path, "--scorer", str(smollm2_scorers["release"]))
    assert (summary["llm"], summary["features"], summary["title"]) == (SMOLLM2_ID, "llm", None)
    assert summary["features_read"] == f"the LLM's states ({SMOLLM2_ID}): q_text, c"
    assert re.search(r"^LLM +\d+\.\d s  8 windows by .*SmolLM2", err, re.M) and "llm_s" in summary["timings"]
    assert list(next(csv.DictReader(open(out / "scores.csv")))) == ["frame_index", "time_s", "caption", "answer_score",
                                                                   "score"]


def test_an_encoder_headline_releases_from_the_encoder_embeddings():
    from llmvs import LlmvsError
    from llmvs.workflow import release_config, release_source

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert release_source(config) == "smollm2"  # the LLM headline: unchanged
    assert release_source({**config, "headline": "encoder"}) == "minilm"
    assert json.loads(release_config({**config, "headline": "encoder"}))["features"] == ["q_text", "c"]
    for run in ("tfidf", "title", "zero_shot"):  # an LSA basis of the benchmark's captions; no trained scorer
        with pytest.raises(LlmvsError, match=f"config headline: run '{run}' trains no scorer"):
            release_source({**config, "headline": run})
