"""The shipped scorer: `llmvs release-scorer` (llmvs.release.train_release) fits the headline run on
every video of both benchmarks and writes the checkpoint with its model card; the rule
`build_scorer` wires it into the workflow (under results/), `release_scorer` copies it into the package."""

import hashlib
import json
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
import yaml

from conftest import DATA, ROOT, VIDEOS, write_caption_benchmark
from llmvs import LlmvsError
from llmvs.cli import main
from llmvs.datasets import write_annotations
from llmvs.embeddings import features_table, read_embeddings, write_arrow
from llmvs.io import read_parquet, write_parquet
from llmvs.checkpoints import load_model, predict, save_checkpoint
from llmvs.release import train_release
from llmvs.run_config import TrainConfig
from llmvs.train import validation_keys

TVSUM_VIDEOS = ["video_45", "video_38", "video_26"]  # the three shortest TVSum videos
LLM = "org/tiny-llm@c0ffee"
META = {"model": LLM, "hidden_size": 24, "dtype": "bfloat16", "captioner": "blip", "exemplar_seed": 0}
# the aggregate stage's summary.csv: the headline run `llmvs` beside another run, on both benchmarks
SUMMARY = """dataset,row,source,n_splits,tau_mean,tau_std,rho_mean,rho_std,f1_mean,f1_std
summe,qa,measured,5.0000,0.0374,0.0625,0.0411,0.0696,33.4658,5.1749
summe,llmvs,measured,5.0000,0.0512,0.0433,0.0561,0.0478,35.0123,4.3210
summe,LLMVS,published,,0.2530,,0.2820,,,
tvsum,llmvs,measured,5.0000,0.1620,0.0301,0.2114,0.0398,61.9876,2.1234
"""


def reduced_annotations(src, keys, out):
    """An annotations.parquet holding only `keys` (release training takes every video of the file)."""
    table = read_parquet(src)
    write_parquet(table.filter(pc.is_in(table.column("key"), pa.array(keys))), out)
    return out


def write_embeddings(path, picks, columns, meta):
    write_arrow(features_table(picks, columns, {**meta, "columns": {k: "test" for k in columns}}), path)


@pytest.fixture(scope="module")
def release_inputs(tiny_benchmark, tmp_path_factory):
    """Both benchmarks in the layout the rule gives: SumMe from the tiny benchmark of test_train (its
    five videos), TVSum's three shortest videos built the same way (features: a fixed projection of
    the caption TF-IDF); embeddings carry the metadata of the prompts stage."""
    root = tmp_path_factory.mktemp("release")
    summe = root / "summe"
    reduced_annotations(tiny_benchmark / "annotations.parquet", VIDEOS, summe / "annotations.parquet")
    shutil.copytree(tiny_benchmark / "shots", summe / "shots")
    for key in VIDEOS:
        emb = read_embeddings(tiny_benchmark / "emb" / f"{key}.arrow")
        write_embeddings(summe / "emb" / f"{key}.arrow", emb.frame_index,
                         {"q": emb.features("q"), "a": emb.features("a")}, META)
    tvsum = root / "tvsum"
    write_annotations("tvsum", root / "tvsum-all.parquet", DATA)
    reduced_annotations(root / "tvsum-all.parquet", TVSUM_VIDEOS, tvsum / "annotations.parquet")
    write_caption_benchmark(tvsum, "tvsum", TVSUM_VIDEOS, seed=1,
                            write=lambda path, picks, cols, _answers: write_embeddings(path, picks, cols, META))
    (root / "summary.csv").write_text(SUMMARY)
    return root


def sources(root):
    return [(root / ds / "annotations.parquet", root / ds / "emb", root / ds / "shots") for ds in ("summe", "tvsum")]


CFG = {"d_model": 32, "dim_feedforward": 64, "epochs": 3, "lr": 1e-3}


def release(root, out_dir, smooth_steps=0.0, **keys):
    return train_release(sources(root), TrainConfig.from_dict({**CFG, **keys}), out_dir / "blip-smollm2.pt",
                         out_dir / "blip-smollm2.md", root / "summary.csv", threads=1, smooth_steps=smooth_steps)


def test_release_trains_on_every_video_of_both_benchmarks(release_inputs, tmp_path):
    root = release_inputs
    ckpt = release(root, tmp_path, smooth_steps=3)
    assert ckpt["scoring"] == {"smooth_steps": 3.0}
    assert ckpt["datasets"] == {"summe": {"videos": 5, "fit": 4, "val": 1}, "tvsum": {"videos": 3, "fit": 2, "val": 1}}
    val = [f"summe:{k}" for k in validation_keys(VIDEOS, 0.2, 1112)] + [
        f"tvsum:{k}" for k in validation_keys(TVSUM_VIDEOS, 0.2, 1112)]
    assert ckpt["val_keys"] == val
    assert sorted(ckpt["fit_keys"] + val) == sorted([f"summe:{k}" for k in VIDEOS] + [f"tvsum:{k}" for k in TVSUM_VIDEOS])
    assert ckpt["feature_schema"] == {"features": "qa", "input_dim": 24, "llm": LLM, "hidden_size": 24,
                                      "columns": ["qa"], "dtype": "bfloat16", "captioner": "blip", "exemplar_seed": 0,
                                      "captioner_model": None}
    assert ckpt["train_config"] == TrainConfig.from_dict(CFG).__dict__ and ckpt["run"] == "llmvs"
    assert len(ckpt["seeds"]) == 1 and 1 <= ckpt["seeds"][0]["selected_epoch"][0] <= 3
    # the file holds the weights selected, as the evaluate stage loads them
    model, loaded = load_model(tmp_path / "blip-smollm2.pt")
    x = read_embeddings(root / "summe" / "emb" / "video_12.arrow").features("q")
    assert loaded["feature_schema"] == ckpt["feature_schema"]
    for name, tensor in ckpt["seeds"][0]["state_dicts"][0].items():
        assert torch.equal(loaded["seeds"][0]["state_dicts"][0][name], tensor)
    assert predict(model, x).shape == (64,)

    data = (tmp_path / "blip-smollm2.pt").read_bytes()
    card = (tmp_path / "blip-smollm2.md").read_text()
    lines = card.splitlines()
    assert lines[0] == "# blip-smollm2: the default scorer of `llmvs summarize`"
    for line in [
        f"| file | `blip-smollm2.pt`, {len(data):,} bytes, sha256 `{hashlib.sha256(data).hexdigest()}` |",
        f"| LLM (embeddings `model`) | {LLM} |",
        "| LLM states | hidden size 24, bfloat16; input 24 = 1 x 24 |",
        "| feature columns | `qa` (max over the query and answer tokens) |",
        "| captioner | `blip`, every 15th frame |",
        f"| SumMe | 5 | 4 | 1: {val[0].split(':')[1]} |",
        f"| TVSum | 3 | 2 | 1: {val[1].split(':')[1]} |",
        "| SumMe | 5 | .051 ± .043 | .056 ± .048 | 35.0 ± 4.3 |",  # the llmvs row, not qa's or the paper's
        "| TVSum | 5 | .162 ± .030 | .211 ± .040 | 62.0 ± 2.1 |",
        "make release",
        "Scoring: the model's step scores are smoothed over time by a Gaussian of sigma 3 steps (the run's "
        "`smooth_steps`; `llmvs summarize` applies it).",
    ]:
        assert line in lines, line
    config = card.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(config) == ckpt["train_config"]
    assert sum(line.startswith("Selection: `val_loss`, epoch ") and " of 3 (validation loss 0." in line for line in lines) == 1


def test_release_checkpoint_bytes_are_reproducible(release_inputs, tmp_path):
    """Same inputs, same bytes (so the card's sha256 names the weights): torch.save into a file puts
    that file's name inside the archive, so the checkpoint is written through a buffer."""
    root = release_inputs
    release(root, tmp_path / "a")
    release(root, tmp_path / "b")
    a, b = (tmp_path / d / "blip-smollm2.pt" for d in "ab")
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "blip-smollm2.md").read_text() == (tmp_path / "b" / "blip-smollm2.md").read_text()
    assert save_checkpoint(torch.load(a, weights_only=False)) == a.read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["blip-smollm2.md", "blip-smollm2.pt"]


def test_release_refuses_mixed_or_incomplete_inputs(release_inputs, tmp_path):
    root = release_inputs
    with pytest.raises(LlmvsError, match="needs test videos"):
        release(root, tmp_path, selection="test_rho")
    mixed = tmp_path / "mixed"
    shutil.copytree(root, mixed)
    emb = read_embeddings(mixed / "tvsum" / "emb" / "video_26.arrow")
    write_embeddings(mixed / "tvsum" / "emb" / "video_26.arrow", emb.frame_index,
                     {"q": emb.features("q"), "a": emb.features("a")}, {**META, "model": "org/other-llm@abc"})
    with pytest.raises(LlmvsError) as err:
        release(mixed, tmp_path / "out")
    assert str(err.value) == ('the embeddings mix model values "org/other-llm@abc", "org/tiny-llm@c0ffee": '
                              "train on one setting")
    assert not (tmp_path / "out").exists()


def test_release_scorer_cli_and_its_errors(release_inputs, tmp_path, capsys):
    root = release_inputs
    args = ["release-scorer", "--annotations", *[str(root / ds / "annotations.parquet") for ds in ("summe", "tvsum")],
            "--embeddings-dir", *[str(root / ds / "emb") for ds in ("summe", "tvsum")],
            "--shots-dir", *[str(root / ds / "shots") for ds in ("summe", "tvsum")],
            "--run-config", json.dumps({**CFG, "epochs": 1}), "--threads", "1"]
    out = tmp_path / "scorers"
    files = ["--out", str(out / "blip-smollm2.pt"), "--card", str(out / "blip-smollm2.md")]
    only_summe = tmp_path / "summary.csv"
    only_summe.write_text("".join(line + "\n" for line in SUMMARY.splitlines() if not line.startswith("tvsum")))
    assert main([*args, "--summary", str(only_summe), *files]) == 1
    err = capsys.readouterr().err
    assert err == f"llmvs: error: {only_summe}: no measured row for run 'llmvs' on tvsum (run the benchmark first)\n"
    assert not out.exists()
    assert main([*args, "--summary", str(root / "summary.csv"), "--run-config", '{"epochs": 1, "lerning_rate": 1}',
                 *files]) == 1
    assert capsys.readouterr().err == "llmvs: error: --run-config: unknown training key(s): lerning_rate\n"

    assert main([*args, "--summary", str(root / "summary.csv"), *files]) == 0
    ckpt = load_model(out / "blip-smollm2.pt")[1]
    assert ckpt["train_config"]["epochs"] == 1 and ckpt["seeds"][0]["selected_epoch"] == [1]
    assert ckpt["feature_schema"]["captioner_model"] == "Salesforce/blip-image-captioning-base"
    assert "| captioner | `blip` (Salesforce/blip-image-captioning-base), every 15th frame |" in (
        out / "blip-smollm2.md").read_text().splitlines()


# --- the rule -------------------------------------------------------------------------------------

def _copy(dest):
    shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "results", ".snakemake", "__pycache__", "*.egg-info", "videos", "scorers"))
    return dest


def _dry_run(wf, *args):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--nolock", "--workflow-profile", "none",
                           *args], cwd=wf, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def commands(dry_run: str, start: str) -> list[str]:
    """The shell commands starting with `start` that a dry run (-p) prints."""
    return [line[line.index(start):].strip() for line in dry_run.splitlines() if start in line]


def test_scorer_rule_trains_the_headline_run_under_results_and_joins_rule_all_for_its_setting(tmp_path):
    from llmvs.run_config import EVALUATION_KEYS
    from llmvs.workflow import release_config

    wf = _copy(tmp_path / "llmvs")
    config = yaml.safe_load((wf / "config.yaml").read_text())
    assert config["headline"] == "llmvs"
    out = _dry_run(wf, "build_scorer")
    headline = config["runs"]["llmvs"]
    keys = json.dumps({**config["training"], **{k: v for k, v in headline.items() if k not in EVALUATION_KEYS}},
                      sort_keys=True)
    assert release_config(config) == keys
    shell = commands(out, "llmvs release-scorer")
    assert shell == [
        "llmvs release-scorer --annotations results/summe/annotations.parquet results/tvsum/annotations.parquet"
        " --embeddings-dir results/summe/embeddings/blip/smollm2 results/tvsum/embeddings/blip/smollm2"
        " --shots-dir results/summe/shots results/tvsum/shots --run llmvs"
        f" --run-config '{keys}' --smooth-steps {float(headline['smooth_steps'])}"
        " --summary results/summaries/blip/smollm2/summary.csv --threads 1"
        " --out results/scorers/blip-smollm2.pt --card results/scorers/blip-smollm2.md"
        " > results/logs/build_scorer.log 2>&1"]
    assert "--run qa --run-config '" + json.dumps(config["training"], sort_keys=True) + "' --smooth-steps 0.0" in _dry_run(
        wf, "build_scorer", "--config", "headline=qa")
    # the default target builds it for blip/smollm2 on both benchmarks only, and never copies it into the package
    everything = _dry_run(wf)
    assert "rule build_scorer:" in everything and "rule release_scorer:" not in everything
    assert "build_scorer" not in _dry_run(wf, "--config", 'datasets=["summe"]')
    # the maintainer command copies that build into the package
    assert commands(_dry_run(wf, "release_scorer"), "cp results/scorers") == [
        f"cp results/scorers/blip-smollm2.pt {wf}/src/llmvs/scorers/blip-smollm2.pt && cp results/scorers/blip-smollm2.md"
        f" {wf}/src/llmvs/scorers/blip-smollm2.md 2> results/logs/release_scorer.log"]
    with pytest.raises(LlmvsError, match="config headline: run 'zero_shot' trains no scorer"):
        release_config({**config, "headline": "zero_shot"})
    with pytest.raises(LlmvsError, match="run 'llmvs' trains with other lr on summe than on tvsum"):
        release_config({**config, "training_by_dataset": {"summe": {"lr": 3e-4}}})


def test_summarize_rule_uses_the_shipped_scorer_unless_told_otherwise(tmp_path):
    wf = _copy(tmp_path / "llmvs")
    (wf / "videos").mkdir()
    shutil.copy(ROOT / "docs" / "img" / "bikes-captions.csv", wf / "videos" / "bikes.csv")
    (wf / "videos" / "bikes.mp4").write_bytes(b"not read by a dry run")

    def command(*args):
        (line,) = commands(_dry_run(wf, "summarize_videos", *args), "llmvs summarize")
        return line

    assert command().startswith("llmvs summarize videos/bikes.mp4 --captions videos/bikes.csv  --llm 'smollm2'")
    assert " --zero-shot " in command("--config", 'summarize={"scorer": "zero_shot"}')


def test_the_shipped_scorer_loads_and_scores_states_of_its_llm():
    """The committed scorer (llmvs/scorers/blip-smollm2.pt): its card names its sha256, it loads through the
    path `llmvs summarize` takes, and it scores SmolLM2-width states to one value in (0, 1) per step."""
    import numpy as np

    from llmvs.summarize import SHIPPED_SCORER, file_sha256

    card = SHIPPED_SCORER.with_suffix(".md").read_text()
    assert f"sha256 `{file_sha256(SHIPPED_SCORER)}`" in card
    model, ckpt = load_model(SHIPPED_SCORER)
    schema = ckpt["feature_schema"]
    assert ckpt["format"] == "llmvs-scorer/2" and schema["hidden_size"] == 576 and schema["llm"].startswith(
        "HuggingFaceTB/SmolLM2-135M-Instruct")
    x = np.random.default_rng(0).normal(size=(40, schema["input_dim"])).astype(np.float32)
    scores = predict(model, x)
    assert scores.shape == (40,) and ((scores > 0) & (scores < 1)).all() and scores.std() > 0
