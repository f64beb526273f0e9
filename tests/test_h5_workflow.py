"""The field's h5 files in the workflow (llmvs.h5_workflow): an eccv16 h5 as the annotations, shots and
`googlenet` embeddings of the runs vision and text_vision; the authors' released states as an LLM setting
(presets/official-states.yaml); the as_authors reading (rank-0 shard, best test rho).

No real eccv16 h5 or authors' states file is at hand: the tests write small ones with the real keys,
dtypes and shapes (tests/test_h5.py's writers) for three short SumMe videos.
"""

import json
import re
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DATA, ROOT
from test_h5 import SUMME_KEYS, write_states
from test_workflow import make_copy, snakemake

from llmvs import LlmvsError
from llmvs.h5 import benchmark_entries, write_eccv16

STATES_DIM = 5120  # Llama-2-13B's hidden size, as in the authors' files


def write_summe_h5(path, keys=SUMME_KEYS, seed=0, edit=None):
    """An eccv16 SumMe file of `keys`: our annotations and KTS shots, its gtscore squared (so a test can
    tell it from ours) and random 1024-d features; `edit(entries)` changes it first."""
    from llmvs.datasets import load_dataset

    videos = load_dataset("summe", DATA)
    rng = np.random.default_rng(seed)
    feats = {k: rng.random((videos[k].n_steps, 1024)).astype(np.float32) for k in keys}
    entries = benchmark_entries("summe", data_dir=DATA, keys=keys, features=feats)
    for k in keys:
        entries[k]["gtscore"] = entries[k]["gtscore"] ** 2
    if edit:
        edit(entries)
    write_eccv16(path, entries)
    return feats


def write_official_states(folder, keys=SUMME_KEYS):
    """The authors' two SumMe states files for `keys` (float16, steps x 1 token x 5120)."""
    from llmvs.datasets import load_dataset

    videos = load_dataset("summe", DATA)
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in (("user_prompt_pool.h5", 1), ("gen_pool.h5", 2)):
        write_states(folder / name, videos, keys, "summe", 1, dim=STATES_DIM, seed=seed)
    return {"prompt": str(folder / "user_prompt_pool.h5"), "gen": str(folder / "gen_pool.h5")}


def job_counts(out: str) -> dict[str, int]:
    stats = out.split("Job stats:")[1].split("total")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}


def with_config(wf, **keys):
    config = yaml.safe_load((wf / "config.yaml").read_text())
    config.update(keys)
    (wf / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


H5_RUNS = {"qa": {}, "vision": {"embeddings": "googlenet", "features": "googlenet"},
           "text_vision": {"embeddings": ["llm", "googlenet"], "features": ["qa", "googlenet"]},
           "random": {"method": "random"}, "random_as_authors": {"method": "random", "reading": "as_authors",
                                                                 "checkpoints": 40},
           "oracle": {"method": "oracle"}}


@pytest.fixture(scope="module")
def h5_copy(tmp_path_factory):
    """The tiny SumMe workflow (train video_11, video_8; test video_12) with an eccv16 h5 of its videos."""
    wf = make_copy(tmp_path_factory.mktemp("h5wf") / "llmvs", "local")
    write_summe_h5(wf / "summe.h5")
    with_config(wf, h5={"summe": "summe.h5"}, runs=H5_RUNS)  # relative: to the working directory
    return wf


# --- the workflow, planned ------------------------------------------------------------------

def test_dry_run_with_h5_plans_the_h5_stages_and_the_vision_rows(h5_copy):
    rc, out = snakemake(h5_copy, "-n", "-p", "--nolock", "--workflow-profile", "none")
    assert rc == 0, out[-3000:]
    jobs = job_counts(out)
    assert jobs["build_annotations_h5"] == 1 and "build_annotations" not in jobs
    assert jobs["encode_googlenet_blip_summe"] == 1 and jobs["detect_shots"] == 3
    assert jobs["train_split"] == 3  # qa, vision, text_vision on the one split
    assert "llmvs annotations --dataset summe" in out and "--h5 summe.h5" in out
    assert out.count("llmvs shots --h5 summe.h5 --annotations results/summe/annotations.parquet") == 3
    assert ("llmvs h5-features --h5 summe.h5 --annotations results/summe/annotations.parquet --keys video_8 "
            "video_11 video_12 --out-dir results/summe/embeddings/blip/googlenet") in out
    # text_vision reads two folders, in the order of its embeddings
    assert ("--embeddings-dir results/summe/embeddings/blip/smollm2 results/summe/embeddings/blip/googlenet"
            in out)
    assert "--reading as_authors --checkpoints 40" in out
    assert "--readings random_as_authors=as_authors" in out


def test_without_h5_the_vision_rows_are_absent(tmp_path):
    wf = make_copy(tmp_path / "llmvs", "local")
    with_config(wf, runs=H5_RUNS)
    rc, out = snakemake(wf, "-n", "-p", "--nolock", "--workflow-profile", "none")
    assert rc == 0, out[-3000:]
    jobs = job_counts(out)
    assert "googlenet" not in out and "runs/blip/smollm2/vision" not in out and "text_vision" not in out
    assert jobs["train_split"] == 1 and jobs["build_annotations"] == 1 and "build_annotations_h5" not in jobs
    assert "--change-points" in out and "--h5" not in out  # the shipped KTS shots


@pytest.mark.parametrize("edit, problem", [
    (lambda e: e["video_8"].update(video_name="Jumps"),
     "video_8: video_name is 'Jumps' in the h5, but video_8 is 'Cooking' in the annotations"),
    (lambda e: e.pop("video_11"), "video_11: no such group with n_frames (Fire Domino; the configured "
                                  "splits use it)"),
])
def test_a_mismatching_h5_stops_before_any_job(h5_copy, tmp_path, edit, problem):
    write_summe_h5(tmp_path / "bad.h5", edit=edit)
    override = tmp_path / "bad.yaml"
    override.write_text(yaml.safe_dump({"h5": {"summe": str(tmp_path / "bad.h5")}}))
    rc, out = snakemake(h5_copy, "-n", "--nolock", "--workflow-profile", "none", "--configfile", str(override))
    assert rc == 1 and "Traceback" not in out, out[-2000:]
    assert f"llmvs: error: config h5.summe: {tmp_path / 'bad.h5'}: {problem}" in out.splitlines()


def test_an_h5_that_differs_in_a_field_stops_the_annotations_job(h5_copy, tmp_path):
    """What the DAG check leaves to the annotations job (picks, shots, user summaries) fails it, one line."""
    def bad_users(e):
        e["video_12"]["user_summary"] = e["video_12"]["user_summary"][:, ::-1]

    wf = tmp_path / "llmvs"
    shutil.copytree(h5_copy, wf, ignore=shutil.ignore_patterns("results", ".snakemake"))
    write_summe_h5(wf / "summe.h5", edit=bad_users)
    rc, out = snakemake(wf, "--cores", "1", "results/summe/annotations.parquet")
    assert rc != 0 and not (wf / "results/summe/annotations.parquet").exists()
    log = (wf / "results/logs/build_annotations/summe.log").read_text().strip().splitlines()
    assert log == ["llmvs: error: summe.h5: video_12: user_summary (15 users) is not the GT user_score > 0 of Jumps "
                   "(15 users; 15 h5 row(s) match none of them)"]


def test_config_checks_of_sources_and_readings(h5_copy):
    from llmvs.config_checks import check_config

    base = yaml.safe_load((h5_copy / "config.yaml").read_text())
    for runs, where in (
            ({"x": {"embeddings": ["llm", "minilm"], "features": ["q_text"]}}, "config runs.x.features: 'q_text' is in 2"),
            ({"x": {"embeddings": "googlenet", "features": "qa"}}, "config runs.x.features: 'qa' is in none"),
            ({"x": {"embeddings": ["llm", "llm"]}}, "config runs.x.embeddings: ['smollm2', 'smollm2'] names a source twice"),
            ({"x": {"method": "ridge", "embeddings": ["minilm", "googlenet"]}}, "only a trained model"),
            ({"x": {"embeddings": "clip"}}, "config runs.x.embeddings: 'clip' must be one of"),
            ({"x": {"reading": "as_authors", "selection": "val_loss"}}, "config runs.x.selection: reading as_authors"),
            ({"x": {"method": "random", "checkpoints": 9}}, "config runs.x.checkpoints: only the as_authors random"),
            ({"x": {"method": "ridge", "reading": "as_authors"}}, "config runs.x.reading: the ridge control"),
            ({"x": {"embeddings": ["llm", "googlenet"], "augment": True}}, "config runs.x.augment")):
        config = json.loads(json.dumps({**base, "runs": runs}))
        with pytest.raises(LlmvsError, match=re.escape(where)):
            check_config(config, ROOT)


def test_lineage_records_the_sources_a_run_reads(h5_copy):
    from llmvs.workflow import lineage, train_config

    config = yaml.safe_load((h5_copy / "config.yaml").read_text())
    plain = yaml.safe_load((ROOT / "config.yaml").read_text())
    both = json.loads(lineage(config, "blip", "smollm2", "text_vision", "summe"))
    assert both["h5"] == "summe.h5" and "--llm 'smollm2'" in both["llm"] and "captioner" in both
    vision = json.loads(lineage(config, "blip", "smollm2", "vision", "summe"))
    assert vision["h5"] == "summe.h5" and "llm" not in vision and "captioner" not in vision
    assert json.loads(lineage(config, "blip", "smollm2", "random")) == {"h5": {"summe": "summe.h5"}}
    assert lineage(plain, "blip", "smollm2", "random") == "{}"  # without h5: as before
    config["runs"]["as_authors"] = {"reading": "as_authors"}
    assert json.loads(train_config(config, "summe", "as_authors"))["selection"] == "shard_rho"


# --- the authors' states: the preset ---------------------------------------------------------

def test_official_states_preset_names_the_files_to_set_then_plans_the_import(tmp_path):
    rc, out = snakemake(ROOT, "-n", "--nolock", "--configfile", "presets/official-states.yaml",
                        "--workflow-profile", "none")
    assert rc == 1 and "Traceback" not in out
    assert ("llmvs: error: config llms.official.import.summe.prompt: /path/to/llama_emb/summe_sum/user_prompt/"
            "user_prompt_pool.h5 is not a file; set it to the authors' user_prompt_pool.h5 of summe") in out
    files = {ds: {part: str(tmp_path / f"{ds}_{part}.h5") for part in ("prompt", "gen")} for ds in ("summe", "tvsum")}
    for spec in files.values():
        for path in spec.values():
            open(path, "w").close()  # the plan needs the files to exist, not to be read
    override = tmp_path / "states.yaml"
    override.write_text(yaml.safe_dump({"llms": {"official": {"import": files}}}))
    rc, out = snakemake(ROOT, "-n", "-p", "--nolock", "--configfile", "presets/official-states.yaml", str(override),
                        "--workflow-profile", "none", "--directory", str(tmp_path / "work"))
    assert rc == 0, out[-3000:]
    jobs = job_counts(out)
    assert jobs["import_states_official_authors_summe"] == jobs["import_states_official_authors_tvsum"] == 1
    assert not {"prompts", "import_captions", "prepare_model"} & set(jobs)  # no LLM, no captions, no model
    for run in ("llmvs", "qa", "qa_test_rho", "qa_as_authors", "as_authors", "random_as_authors"):
        assert f"results/tvsum/runs/authors/official/{run}/split4/metrics.csv" in out
    for run in ("zero_shot", "tfidf", "title"):
        assert f"official/{run}/" not in out
    readings = re.search(r"--readings (.*) --out-dir", out).group(1).split()
    assert sorted(readings) == ["as_authors=as_authors", "qa_as_authors=as_authors", "qa_test_rho=test_rho",
                                "random_as_authors=as_authors"]


@pytest.fixture(scope="module")
def finished_h5_run(tmp_path_factory):
    """The tiny SumMe workflow on the authors'-style states (3 videos, 5120-d) and an eccv16 h5, run."""
    wf = make_copy(tmp_path_factory.mktemp("states") / "llmvs", "local")
    write_summe_h5(wf / "summe.h5")
    # with the preset's qa_test_rho and qa_as_authors
    with_config(wf, runs={k: v for k, v in H5_RUNS.items() if k not in ("random", "oracle")})
    override = {"h5": {"summe": "summe.h5"},
                "llms": {"official": {"import": {"summe": write_official_states(wf / "states")}}}}
    (wf / "override.yaml").write_text(yaml.safe_dump(override))
    rc, out = snakemake(wf, "--cores", "2", "--configfile", "presets/official-states.yaml", "override.yaml")
    assert rc == 0, out[-4000:]
    return wf, out


def test_official_states_and_h5_run_every_stage(finished_h5_run):
    wf, out = finished_h5_run
    jobs = job_counts(out)
    assert jobs["import_states_official_authors_summe"] == 1 and jobs["encode_googlenet_authors_summe"] == 1
    assert "prompts" not in jobs
    summary = pd.read_csv(wf / "results/summary.csv")
    measured = summary[(summary.source == "measured") & summary.captioner.notna()].set_index("row")
    assert sorted(measured.index) == sorted(["qa", "qa_test_rho", "qa_as_authors", "vision", "text_vision",
                                             "random_as_authors"])
    assert measured.reading.to_dict() == {"qa": "honest", "qa_test_rho": "test_rho", "qa_as_authors": "as_authors",
                                          "vision": "honest", "text_vision": "honest",
                                          "random_as_authors": "as_authors"}
    published = set(summary[summary.source == "published"].row)
    assert {"CSTA", "MSVA", "SSPVS", "LLMVS"} <= published
    # the h5 is what the annotations, shots and googlenet features hold
    from llmvs.datasets import read_annotations
    from llmvs.embeddings import read_embeddings
    from llmvs.h5 import read_eccv16
    from llmvs.shots import read_shots

    h5 = read_eccv16(wf / "summe.h5", "summe", data_dir=DATA)
    videos = read_annotations(wf / "results/summe/annotations.parquet")
    assert sorted(videos) == sorted(SUMME_KEYS)
    for k in SUMME_KEYS:
        assert np.array_equal(videos[k].gtscore, h5[k].gtscore) and np.array_equal(videos[k].user_summary,
                                                                                   h5[k].user_summary)
        assert np.array_equal(read_shots(wf / f"results/summe/shots/{k}.parquet", videos[k].n_frames),
                              h5[k].change_points)
        emb = read_embeddings(wf / f"results/summe/embeddings/authors/googlenet/{k}.arrow")
        assert np.allclose(emb.features("googlenet"), h5[k].features, atol=1e-3)
        states = read_embeddings(wf / f"results/summe/embeddings/authors/official/{k}.arrow")
        assert states.features("q").shape == (videos[k].n_steps, STATES_DIM)
    import torch

    ckpt = torch.load(wf / "results/summe/runs/authors/official/text_vision/split0/model.pt", weights_only=False)
    assert ckpt["model_config"]["input_dim"] == STATES_DIM + 1024
    # qa_as_authors has qa's training keys: qa's one training kept its shard_rho epochs too
    assert not (wf / "results/summe/runs/authors/official/qa_as_authors/split0/model.pt").exists()
    ckpt = torch.load(wf / "results/summe/runs/authors/official/qa/split0/model.pt", weights_only=False)
    assert ckpt["selection"] == "val_loss" and list(ckpt["also_selected"]) == ["shard_rho"]
    assert ckpt["feature_schema"]["source"] == "results/summe/embeddings/authors/official"
    rc, out = snakemake(wf, "-n", "--cores", "2", "--configfile", "presets/official-states.yaml", "override.yaml")
    assert rc == 0 and "Nothing to be done" in out


# --- the as_authors reading, stage by stage --------------------------------------------------

def test_shard_rho_selects_the_epoch_with_the_best_rank0_test_rho(tiny_benchmark, tmp_path):
    from llmvs.run_config import TrainConfig
    from llmvs.train import train_split

    splits = [{"train_keys": ["video_11", "video_18", "video_8"], "test_keys": ["video_12", "video_19"]}]
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    cfg = TrainConfig.from_dict({"d_model": 16, "dim_feedforward": 32, "epochs": 4, "selection": "shard_rho",
                                 "metrics_every": 4})
    root = tiny_benchmark
    train_split(root / "annotations.parquet", root / "emb", tmp_path / "splits.json", 0, cfg, tmp_path,
                shots_dir=root / "shots")
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log.test_rho.notna().all()  # every epoch, on the shard: SumMe's first test key only
    selected = json.loads((tmp_path / "selection.json").read_text())["selected_epoch"]
    assert selected == [int(log.epoch[log.test_rho.idxmax()])]
    from llmvs.scoring import evaluate_split

    rows = evaluate_split(root / "annotations.parquet", tmp_path / "splits.json", 0, "model", tmp_path / "ev",
                          embeddings_dir=[str(root / "emb")], model_path=tmp_path / "model.pt",
                          shots_dir=root / "shots", reading="as_authors")
    assert [r["video"] for r in rows] == ["video_12"]
    # the shard's rho at the selected epoch is the one the log recorded (no smoothing)
    assert rows[0]["rho"] == pytest.approx(log.test_rho.max(), abs=1e-6)


def test_one_training_keeps_the_shard_rho_models_a_training_of_its_own_would(tiny_benchmark, tmp_path):
    """`also_select`: the as_authors reading of a run needs no second training — the same seeds pass
    through the same epochs, so the shard_rho models kept beside the val_loss ones are identical."""
    import torch

    from llmvs.checkpoints import load_scorers
    from llmvs.run_config import TrainConfig
    from llmvs.scoring import evaluate_split
    from llmvs.train import train_split

    splits = [{"train_keys": ["video_11", "video_18", "video_8"], "test_keys": ["video_12", "video_19"]}]
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    root, keys = tiny_benchmark, {"d_model": 16, "dim_feedforward": 32, "epochs": 6, "lr": 3e-2, "seeds": 2}

    def train(out, also=(), **more):
        return train_split(root / "annotations.parquet", root / "emb", tmp_path / "splits.json", 0,
                           TrainConfig.from_dict({**keys, **more}), tmp_path / out, shots_dir=root / "shots",
                           also_select=also)

    both, alone, own = train("both", ("shard_rho",)), train("alone"), train("own", selection="shard_rho")
    for kept, separate in ((both["seeds"], alone["seeds"]), (both["also_selected"]["shard_rho"], own["seeds"])):
        for a, b in zip(kept, separate):
            assert a["selected_epoch"] == b["selected_epoch"]
            assert all(torch.equal(a["state_dicts"][0][n], b["state_dicts"][0][n]) for n in b["state_dicts"][0])
    assert both["seeds"][0]["selected_epoch"] != both["also_selected"]["shard_rho"][0]["selected_epoch"] or \
        both["seeds"][1]["selected_epoch"] != both["also_selected"]["shard_rho"][1]["selected_epoch"]
    selection = json.loads((tmp_path / "both" / "selection.json").read_text())
    assert selection["also_selected"]["shard_rho"] == [e for s in own["seeds"] for e in s["selected_epoch"]]
    for out, model in (("ev_both", "both"), ("ev_own", "own")):
        evaluate_split(root / "annotations.parquet", tmp_path / "splits.json", 0, "model", tmp_path / out,
                       embeddings_dir=root / "emb", model_path=tmp_path / model / "model.pt",
                       shots_dir=root / "shots", reading="as_authors")
    assert (tmp_path / "ev_both" / "metrics.csv").read_text() == (tmp_path / "ev_own" / "metrics.csv").read_text()
    with pytest.raises(LlmvsError, match=r"alone/model.pt: no models selected by shard_rho \(it holds val_loss; "
                                         r"train with --also-select shard_rho\)"):
        load_scorers(tmp_path / "alone" / "model.pt", "shard_rho")
    with pytest.raises(LlmvsError, match="selections test_rho and shard_rho read different test videos"):
        train("bad", ("shard_rho",), selection="test_rho")
    with pytest.raises(LlmvsError, match="also_select shard_rho needs every epoch: not with patience"):
        train("bad", ("shard_rho",), patience=2)
    with pytest.raises(LlmvsError, match="selection val_loss reads val_loss, which this training does not compute"):
        train("bad", val_fraction=0.0)  # no validation videos: refused, not epoch 1 kept silently
    curve_columns = pd.read_csv(tmp_path / "both" / "train_log.csv").columns
    assert "test_rho" in curve_columns  # logged for the as_authors reading (the curve leaves it out)


def test_an_as_authors_run_reads_the_training_of_the_run_with_its_keys():
    from llmvs.workflow import also_select, training_run

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for ds in ("summe", "tvsum"):
        assert training_run(config, ds, "as_authors") == "llmvs"  # `<<: *headline` + reading as_authors
        assert also_select(config, ds, "llmvs") == ["shard_rho"]
        assert [r for r in config["runs"] if also_select(config, ds, r)] == ["llmvs"]
        assert training_run(config, ds, "tfidf") == "tfidf" and training_run(config, ds, "random_as_authors") == \
            "random_as_authors"
    config["runs"]["as_authors"]["epochs"] = 10  # other keys: a training of its own
    assert training_run(config, "tvsum", "as_authors") == "as_authors" and also_select(config, "tvsum", "llmvs") == []
    config["runs"]["as_authors"] = {"reading": "as_authors"}  # the default keys, which `qa` has
    assert training_run(config, "tvsum", "as_authors") == "qa" and also_select(config, "tvsum", "qa") == ["shard_rho"]
    config["runs"] = {"qa_test_rho": {"selection": "test_rho"}, **config["runs"]}  # chosen on test videos: not
    assert training_run(config, "tvsum", "as_authors") == "qa"
    config["runs"]["qa"]["datasets"] = ["summe"]  # qa not trained on TVSum: as_authors trains there itself
    assert training_run(config, "tvsum", "as_authors") == "as_authors"
    assert training_run(config, "summe", "as_authors") == "qa"


def test_as_authors_random_equals_evaluate_scores(tmp_path, summe):
    """The pipeline's random_as_authors row per split is `llmvs evaluate-scores`' as_authors random row."""
    from llmvs.datasets import kts_path, load_change_points, load_splits, write_annotations
    from llmvs.score_files import _best_random
    from llmvs.scoring import evaluate_split
    from llmvs.shots import run_shots

    splits = load_splits("summe", DATA)
    write_annotations("summe", tmp_path / "annotations.parquet", DATA)
    shards = [s["test_keys"][0] for s in splits]
    for key in set(shards):
        run_shots(tmp_path / "shots" / f"{key}.parquet", change_points=kts_path("summe", DATA),
                  annotations=tmp_path / "annotations.parquet", video=key)
    cps = load_change_points(kts_path("summe", DATA), {k: summe[k] for k in shards})
    expected = _best_random(summe, cps, {}, splits, 0, 25)
    for split in (0, 3):
        rows = evaluate_split(tmp_path / "annotations.parquet", DATA / "splits/summe_splits.json", split, "random",
                              tmp_path / f"s{split}", shots_dir=tmp_path / "shots", reading="as_authors",
                              checkpoints=25)
        assert [r["video"] for r in rows] == [shards[split]]
        for m in ("tau", "rho", "f1"):
            assert rows[0][m] == pytest.approx(expected[split][m])


def test_tvsum_shard_is_keys_0_and_5(tmp_path, tvsum):
    from llmvs.datasets import load_splits, write_annotations
    from llmvs.scoring import evaluate_split

    write_annotations("tvsum", tmp_path / "annotations.parquet", DATA)
    rows = evaluate_split(tmp_path / "annotations.parquet", DATA / "splits/tvsum_splits.json", 1, "oracle",
                          tmp_path / "ev", reading="as_authors")
    test_keys = load_splits("tvsum", DATA)[1]["test_keys"]
    assert [r["video"] for r in rows] == [test_keys[0], test_keys[5]]


# --- an eccv16 h5 as the annotations ----------------------------------------------------------

def test_tvsum_h5_user_summaries_are_the_f1_ground_truth(tmp_path, tvsum):
    """TVSum F1 reads the h5's user summaries, not the knapsacks of our annotations under the shots."""
    from llmvs.datasets import load_change_points, kts_path, read_annotations, write_annotations
    from llmvs.evaluation import knapsack_summary, f1_score, video_metrics

    keys = ["video_10", "video_27"]
    entries = benchmark_entries("tvsum", data_dir=DATA, keys=keys)
    rng = np.random.default_rng(0)
    for k in keys:  # other user summaries: 20 random 15 % masks
        entries[k]["user_summary"] = (rng.random(entries[k]["user_summary"].shape) < 0.15).astype(np.float32)
    write_eccv16(tmp_path / "tvsum.h5", entries)
    write_annotations("tvsum", tmp_path / "a.parquet", DATA, h5=tmp_path / "tvsum.h5")
    videos = read_annotations(tmp_path / "a.parquet")
    assert sorted(videos) == keys
    cps = load_change_points(kts_path("tvsum", DATA), {k: tvsum[k] for k in keys})
    for k in keys:
        v = videos[k]
        assert np.array_equal(v.user_summary, entries[k]["user_summary"].astype(bool))
        scores = rng.random(v.n_steps)
        summary = knapsack_summary(scores, cps[k], v.n_frames, v.picks)
        got = video_metrics(v, scores, cps[k])
        assert got["f1"] == pytest.approx(f1_score(summary, v.user_summary, "avg"))
        assert got["f1"] != pytest.approx(video_metrics(tvsum[k], scores, cps[k])["f1"])
        assert got["rho"] == video_metrics(tvsum[k], scores, cps[k])["rho"]  # tau/rho read the annotators' scores


def test_summe_h5_annotations_take_its_gtscore(tmp_path, summe):
    from llmvs.datasets import read_annotations, write_annotations
    from llmvs.io import read_parquet, table_metadata

    write_summe_h5(tmp_path / "summe.h5")
    write_annotations("summe", tmp_path / "a.parquet", DATA, h5=tmp_path / "summe.h5")
    videos = read_annotations(tmp_path / "a.parquet")
    for k in SUMME_KEYS:
        assert np.array_equal(videos[k].gtscore, summe[k].gtscore ** 2)
        assert np.array_equal(videos[k].user_summary, summe[k].user_summaries)
    assert table_metadata(read_parquet(tmp_path / "a.parquet"))["h5"] == str(tmp_path / "summe.h5")
    with h5py.File(tmp_path / "summe.h5", "r+") as f:  # a TVSum-style swap: frames of another video
        del f["video_8/n_frames"]
        f["video_8"].create_dataset("n_frames", data=np.int32(950))
    from llmvs.cli import main

    assert main(["annotations", "--dataset", "summe", "--data-dir", str(DATA), "--h5", str(tmp_path / "summe.h5"),
                 "--out", str(tmp_path / "b.parquet")]) == 1
    assert not (tmp_path / "b.parquet").exists()
