"""The Snakemake workflow on a tiny real configuration (4 short SumMe videos, real SmolLM2 prompts)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import DATA, ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY_SPLITS = {
    "local": [{"train_keys": ["video_11", "video_8"], "test_keys": ["video_12"]}],
    "slurm": [{"train_keys": ["video_8"], "test_keys": ["video_12"]}],
}


def make_copy(dest: Path, kind: str) -> Path:
    """A copy of the workflow whose config runs every stage on a few short SumMe videos."""
    shutil.copytree(ROOT, dest, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__", "*.egg-info"))
    (dest / "data" / "splits" / "summe_splits.json").write_text(json.dumps(TINY_SPLITS[kind]))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(datasets=["summe"], splits=[0])
    config["training"] = {"d_model": 32, "dim_feedforward": 64, "epochs": 3,
                          **({"val_fraction": 0.0, "selection": "last"} if kind == "slurm" else {})}
    config["runs"] = {"qa": {}, "oracle": {"method": "oracle"}} if kind == "slurm" else {
        "qa": {}, "zero_shot": {"method": "zero_shot"}, "zero_shot_expected": {"method": "zero_shot_expected"},
        "tfidf": {"embeddings": "tfidf", "features": ["q_text", "c"]},
        "ridge": {"method": "ridge", "embeddings": "minilm", "features": ["q_text", "c"]},
        "title": {"method": "feature", "embeddings": "minilm", "features": "title_sim_max", "smooth_steps": 2},
        "random": {"method": "random"}, "oracle": {"method": "oracle"}}
    if kind == "slurm":
        config["gpus"] = {"captions": 0, "prompts": 0, "train": 1}
    (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def snakemake(cwd, *args, timeout=1200, env=None):
    """Run Snakemake; on timeout interrupt it with SIGINT (it ignores a plain terminate) and fail."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        pytest.fail(f"snakemake {' '.join(args)} timed out:\n{out[-3000:]}")
    return proc.returncode, out


def test_dry_run_lists_default_targets_and_lint_is_clean():
    rc, out = snakemake(ROOT, "-n", "--nolock", "--workflow-profile", "none")
    assert rc == 0, out[-2000:]
    assert "combine_settings" in out and "train_split" in out
    rc, out = snakemake(ROOT, "--lint", "--nolock", "--workflow-profile", "none")
    assert rc == 0, out[-3000:]
    rc, out = snakemake(ROOT, "-n", "--nolock", "--profile", "slurm")
    assert rc == 0 and "combine_settings" in out, out[-2000:]


def test_bad_config_key_fails_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    rc, out = snakemake(ROOT, "-n", "--nolock", "--configfile", str(bad), "--workflow-profile", "none")
    assert rc != 0 and "epochz" in out


def test_nested_config_typos_fail_when_the_dag_is_built(tmp_path):
    for text, where in (("training:\n  epochz: 3\n", "config training"),
                        ("runs:\n  qa: {lerning_rate: 1}\n", "config runs.qa"),
                        ("llm: llama\n", "config llm"),
                        # values, not only keys: checked before the LLM stage, not inside a train job
                        ("runs:\n  qa: {aggregator: transformer}\n", "llmvs: error: config runs.qa (summe): unknown "
                         "aggregator 'transformer': expected one of attention, mlp"),
                        ("runs:\n  qa: {features: [q, qq]}\n", "llmvs: error: config runs.qa.features: 'qq' is in "
                         "none of its embeddings (smollm2)"),
                        ("runs:\n  qa: {embeddings: glove}\n", "llmvs: error: config runs.qa.embeddings: 'glove' must "
                         "be one of"),
                        ("runs:\n  llmvs: {smooth_steps: -2}\n", "-2 is less than the minimum of 0")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        rc, out = snakemake(ROOT, "-n", "--nolock", "--configfile", str(bad), "--workflow-profile", "none")
        assert rc == 1 and where in out and "Traceback" not in out, out[-1500:]


def test_paper_preset_names_what_to_set_then_plans_the_model_rule(tmp_path):
    rc, out = snakemake(ROOT, "-n", "--nolock", "--configfile", "presets/paper.yaml", "--workflow-profile", "none")
    assert rc == 1 and "Traceback" not in out and "File " not in out
    assert "llmvs: error: config benchmark_videos.summe: /path/to/SumMe/videos is not a folder" in out
    from llmvs.datasets import load_dataset

    folders = {}
    for ds in ("summe", "tvsum"):  # empty stand-ins, named as each benchmark names its videos
        folders[ds] = tmp_path / ds
        folders[ds].mkdir()
        for v in load_dataset(ds, DATA).values():
            (folders[ds] / f"{v.name}.mp4").touch()
    videos = tmp_path / "videos.yaml"
    videos.write_text(yaml.safe_dump({"benchmark_videos": {k: str(v) for k, v in folders.items()}}))
    env_models = tmp_path / "models"  # nothing prepared: the DAG starts by preparing the models
    rc, out = snakemake(ROOT, "-n", "--nolock", "--configfile", "presets/paper.yaml", str(videos),
                        "--workflow-profile", "none", "--directory", str(tmp_path / "work"),  # no results yet
                        env={"LLMVS_MODELS": str(env_models)})
    assert rc == 0, out[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert stats["prepare_model"] == "3" and stats["decode_frames"] == "75"  # LLaVA, Llama-2, SmolLM2 (compare)
    assert stats["caption_frames"] == "75"
    assert f"{env_models}/meta-llama--Llama-2-13b-chat-hf@main" in out
    assert "results/summaries/llava/llama2_13b/summary.csv" in out
    assert "results/summaries/blip/smollm2/summary.csv" in out  # the embedded default beside it


def test_title_prompt_preset_runs_the_llm_rows_under_both_prompts():
    rc, out = snakemake(ROOT, "-n", "-p", "--nolock", "--configfile", "presets/title-prompt.yaml",
                        "--workflow-profile", "none")
    assert rc == 0, out[-2000:]
    prompts = [line for line in out.splitlines() if line.startswith("Shell command: llmvs prompts ")]
    titled = [line for line in prompts if "--title-prompt" in line]
    assert len(prompts) == 100 and len(titled) == 50, (len(prompts), len(titled))
    assert all("/smollm2_title/" in line for line in titled) and all("/tvsum/" in line for line in prompts)
    assert "results/tvsum/runs/blip/smollm2_title/llmvs/split4/metrics.csv" in out
    assert "runs/blip/smollm2_title/tfidf/" not in out  # rows without LLM states are read once, not per prompt


def test_runs_from_another_working_directory(tmp_path):
    rc, out = snakemake(tmp_path, "-n", "--nolock", "--snakefile", str(ROOT / "Snakefile"), "--workflow-profile", "none")
    assert rc == 0 and "combine_settings" in out, out[-2000:]
    # the shipped data come from the workflow's folder; outputs go to the working directory
    assert f"input: {ROOT}/data/summe/summe-info.derived.tsv" in out and f"Working directory: {tmp_path}" in out


def test_jobs_find_llmvs_without_an_activated_environment(tmp_path):
    """`.venv/bin/snakemake` from a shell whose PATH lacks the environment: jobs still find `llmvs`."""
    wf = make_copy(tmp_path / "llmvs", "local")
    rc, out = snakemake(wf, "--cores", "1", "results/human.csv", env={"PATH": "/usr/bin:/bin"})
    assert rc == 0, out[-3000:]
    assert len(pd.read_csv(wf / "results/human.csv")) > 0


def source_files(wf: Path) -> dict[str, bytes]:
    """Every file of a workflow copy that git would track (outside the ignored run outputs)."""
    ignored = ("results", ".snakemake", "models")
    return {str(p.relative_to(wf)): p.read_bytes() for p in wf.rglob("*")
            if p.is_file() and p.relative_to(wf).parts[0] not in ignored and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    wf = make_copy(tmp_path_factory.mktemp("wf") / "llmvs", "local")
    before = source_files(wf)
    rc, out = snakemake(wf, "--cores", "2")
    assert rc == 0, out[-4000:]
    assert source_files(wf) == before  # a run writes only under results/ (and the models folder)
    return wf


def test_tiny_run_produces_every_stage(finished_run):
    wf = finished_run
    summary = pd.read_csv(wf / "results" / "summary.csv")
    measured = summary[(summary.source == "measured") & summary.captioner.notna()]
    assert list(measured.row) == ["qa", "zero_shot", "zero_shot_expected", "tfidf", "ridge", "title", "random", "oracle"]
    assert list(measured.row[measured.uses_title]) == ["title"]
    assert json.loads((wf / "results/machine.json").read_text())["cores"] == os.cpu_count()
    assert set(measured.captioner) == {"blip"} and set(measured.llm) == {"smollm2"}
    assert (wf / "results/summaries/blip/smollm2/summary.csv").exists()
    assert (wf / "results" / "summary.png").stat().st_size > 5000
    for key in ("video_8", "video_11", "video_12"):
        assert (wf / f"results/summe/embeddings/blip/smollm2/{key}.arrow").exists()
        assert (wf / f"results/summe/shots/{key}.parquet").exists()
    assert len(list((wf / "results/benchmarks/prompts/summe/blip/smollm2").glob("video_*.tsv"))) == 3  # one job per video
    assert not list((wf / "results").rglob("*.part"))
    rc, out = snakemake(wf, "-n", "--cores", "2")
    assert rc == 0 and "Nothing to be done" in out


def test_run_times_account_for_every_planned_job(finished_run):
    """benchmarks/run_times.py against the same log's own plan (its "Job stats" table)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_times import job_spans, llm_job_rows, stage_of, stage_table

    log = min((finished_run / ".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    text = log.read_text()
    planned: dict[str, int] = {}
    for rule, n in re.findall(r"^(\w+)\s+(\d+)$", text.split("Job stats:")[1].split("total")[0], re.M):
        planned[stage_of(rule)] = planned.get(stage_of(rule), 0) + int(n)
    rows = {r["stage"]: r for r in stage_table(job_spans(text.splitlines()))}
    assert {s: r["jobs"] for s, r in rows.items() if s != "total"} == planned
    assert rows["total"]["jobs"] == sum(planned.values())
    assert 0 < rows["prompts"]["job_seconds"] <= rows["total"]["wall_seconds"] * 2  # two cores
    import pyarrow.ipc as ipc

    jobs = llm_job_rows(finished_run / "results")  # windows read from the jobs' progress bars
    arrows = list((finished_run / "results/summe/embeddings/blip/smollm2").glob("*.arrow"))
    assert len(jobs) == len(arrows) == 3
    assert sum(j["windows"] for j in jobs) == sum(ipc.open_file(p).read_all().num_rows for p in arrows)


def test_forcerun_reruns_one_stage_and_what_depends_on_it(finished_run):
    wf = finished_run
    results = wf / "results/summe"
    upstream = results / "embeddings/blip/smollm2/video_8.arrow"
    downstream = results / "runs/blip/smollm2/qa/split0/model.pt"
    up_before, down_before = upstream.stat().st_mtime_ns, downstream.stat().st_mtime_ns
    rc, out = snakemake(wf, "--cores", "2", "--forcerun", "detect_shots", "--until", "detect_shots")
    assert rc == 0, out[-3000:]
    assert out.count("rule detect_shots") == 3 and "rule train_split" not in out
    assert downstream.stat().st_mtime_ns == down_before
    rc, out = snakemake(wf, "--cores", "2", "--forcerun", "detect_shots")
    assert rc == 0, out[-3000:]
    assert "rule train_split" in out and "rule prompts" not in out
    assert downstream.stat().st_mtime_ns > down_before  # depends on the shots: redone
    assert upstream.stat().st_mtime_ns == up_before  # upstream of the shots: untouched


def _job_processes(fragment: str) -> list[int]:
    """PIDs of the `llmvs` Python processes (not their shell wrappers) whose command line has `fragment`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            comm = (proc / "comm").read_text().strip()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if comm == "llmvs" and fragment in cmd:
            pids.append(int(proc.name))
    return pids


def _arrow(path):
    import pyarrow as pa

    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_file(src).read_all()


def _kill_job_then_rerun(wf, target: str, fragment: str, ready, timeout=600, args=()):
    """Start Snakemake for `target`, SIGKILL the job's own Python process once `ready()` (a node
    failure as the job sees it), check nothing of it survives, then run the same command again."""
    proc = subprocess.Popen([*SNAKEMAKE, "--cores", "2", *args, target], cwd=wf,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = []
    for _ in range(timeout * 4):
        pids = _job_processes(fragment)
        if pids and ready():
            break
        time.sleep(0.25)
    assert pids, "the job did not start"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=120) != 0  # Snakemake sees the job fail
    time.sleep(1)
    assert not _job_processes(fragment), "a process of the killed job survived"
    assert not list((wf / "results").rglob(".*.part")), "the killed job left a temporary file"
    return snakemake(wf, "--cores", "2", *args, target)


def test_killed_llm_job_reruns_to_identical_outputs(finished_run):
    wf = finished_run
    emb = wf / "results/summe/embeddings/blip/smollm2"
    killed = emb / "video_11.arrow"
    reference = _arrow(killed)
    other = emb / "video_12.arrow"
    other_mtime = other.stat().st_mtime_ns
    killed.unlink()
    log = wf / "results/logs/prompts/summe/blip/smollm2/video_11.log"
    log.unlink()
    # kill once the job is at work on its windows (its progress bar has started)
    target = str(killed.relative_to(wf))  # the job's command line names its output relative to wf
    rc, out = _kill_job_then_rerun(wf, target, target, lambda: log.exists() and "window" in log.read_text())
    assert rc == 0, out[-3000:]
    assert out.count("rule prompts:") == 1 and other.stat().st_mtime_ns == other_mtime
    rerun = _arrow(killed)
    assert rerun.equals(reference) and rerun.schema.metadata == reference.schema.metadata


def test_killed_training_job_reruns_to_identical_model(finished_run):
    import torch

    wf = finished_run
    run = wf / "results/summe/runs/blip/smollm2/qa/split0"
    reference = torch.load(run / "model.pt", weights_only=False)["seeds"]
    for name in ("model.pt", "train_log.csv", "train_curve.png"):
        (run / name).unlink()
    target = str((run / "model.pt").relative_to(wf))
    rc, out = _kill_job_then_rerun(wf, target, str(run.relative_to(wf)), lambda: not (run / "model.pt").exists())
    assert rc == 0, out[-3000:]
    rerun = torch.load(run / "model.pt", weights_only=False)["seeds"]
    assert len(rerun) == len(reference)
    for a, b in zip(rerun, reference):
        assert (a["seed"], a["selected_epoch"]) == (b["seed"], b["selected_epoch"])
        assert len(a["state_dicts"]) == len(b["state_dicts"])
        for sa, sb in zip(a["state_dicts"], b["state_dicts"]):
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_changed_training_survives_a_killed_job(finished_run, tmp_path):
    """Change a training key, kill the retraining job, run again: the split must be retrained and
    re-evaluated. (Snakemake deletes a job's old outputs before it starts and does not rebuild a missing
    intermediate file while the files made from it look up to date: without the training keys among the
    evaluation's parameters, the second run kept the old configuration's metrics and no model.)"""
    wf = finished_run
    run = wf / "results/summe/runs/blip/smollm2/qa/split0"
    config = yaml.safe_load((wf / "config.yaml").read_text())
    changed = tmp_path / "epochs.yaml"
    changed.write_text(yaml.safe_dump({"training": {**config["training"], "epochs": config["training"]["epochs"] + 2}}))
    before = (run / "metrics.csv").stat().st_mtime_ns
    rc, out = _kill_job_then_rerun(wf, "all", str(run.relative_to(wf)), lambda: True, args=(f"--configfile={changed}",))
    assert rc == 0, out[-3000:]
    assert "rule train_split" in out and "rule evaluate_split" in out
    log = pd.read_csv(run / "train_log.csv")
    assert list(log.epoch) == list(range(1, config["training"]["epochs"] + 3))
    assert (run / "metrics.csv").stat().st_mtime_ns > before
    assert (run / "metrics.csv").stat().st_mtime_ns > (run / "model.pt").stat().st_mtime_ns
    assert (wf / "results/summary.csv").stat().st_mtime_ns > (run / "metrics.csv").stat().st_mtime_ns
    rc, out = snakemake(wf, "--cores", "2")  # back to the fixture's configuration for any later test
    assert rc == 0 and "rule train_split" in out, out[-3000:]


def test_lineage_holds_what_changes_a_runs_inputs():
    from llmvs.workflow import lineage

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    base = json.loads(lineage(config, "blip", "smollm2", "qa", "summe"))
    assert base["training"]["epochs"] == config["training"]["epochs"] and "--dtype float32" in base["llm"]
    assert lineage(config, "blip", "smollm2", "random", "summe") == "{}"  # reads no features
    assert "llm" not in json.loads(lineage(config, "blip", "smollm2", "tfidf", "summe"))  # no LLM states
    assert "training" not in json.loads(lineage(config, "blip", "smollm2", "qa"))  # train_split has them already
    resources = json.loads(json.dumps(config))
    resources["llms"]["smollm2"].update(threads=8, mem_mb=64000)
    assert lineage(resources, "blip", "smollm2", "qa", "summe") == json.dumps(base, sort_keys=True)
    changed = json.loads(json.dumps(config))
    changed["training"]["epochs"] += 1
    assert json.loads(lineage(changed, "blip", "smollm2", "qa", "summe"))["training"]["epochs"] == config["training"]["epochs"] + 1
    changed["exemplars"] = "none"
    assert lineage(changed, "blip", "smollm2", "qa") != lineage(config, "blip", "smollm2", "qa")


@pytest.mark.slurm
def test_slurm_profile_runs_every_stage(tmp_path, summe):
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.skip("no Slurm controller (tests/slurm/local_slurm.sh start)")
    wf = make_copy(tmp_path / "llmvs", "slurm")
    # this test cluster has one partition, "debug", with one (fake) GPU
    (wf / "workflow/profiles/slurm/partitions.yaml").write_text(yaml.safe_dump(
        {"partitions": {"debug": {"max_gpu": 1, "max_runtime": 1440, "max_mem_mb": 20000, "max_threads": 2}}}))
    rc, out = snakemake(wf, "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2", timeout=1500)
    assert rc == 0, out[-4000:]
    summary = pd.read_csv(wf / "results/summary.csv")
    oracle = summary[(summary.row == "oracle") & (summary.source == "measured")]
    # the oracle is the annotations' own gtscore, read on the shipped KTS shots: the cluster run must
    # report what the evaluator gives straight from the data (video_12 has 7 shots: tau .060)
    from llmvs.datasets import kts_path, load_change_points
    from llmvs.evaluation import video_metrics
    video = summe["video_12"]
    expected = video_metrics(video, video.gtscore, load_change_points(kts_path("summe", DATA), summe)["video_12"])
    assert len(oracle) == 1, summary
    assert [oracle.tau_mean.iloc[0], oracle.f1_mean.iloc[0]] == pytest.approx([expected["tau"], expected["f1"]], abs=1e-4)
    # tres-per-job shows --gpus=N (the "%b" of `squeue -o` shows only per-node gres)
    jobs = subprocess.run(["squeue", "-t", "all", "-h", "-O", "JobID:|,NumCPUs:|,MinMemory:|,tres-per-job:|,Comment:"],
                          capture_output=True, text=True).stdout
    submitted = {}
    for line in jobs.splitlines():
        _, cpus, mem, tres, comment = line.split("|")
        submitted.setdefault(comment.split("_wildcards")[0], []).append((cpus, mem, tres))
    # what each job asked for reached sbatch: the GPU training job and a CPU LLM job
    assert submitted["rule_train_split"] == [("1", "16000M", "gres:gpu:1")], jobs
    assert set(submitted["rule_prompts"]) == {("1", "4000M", "N/A")} and len(submitted["rule_prompts"]) == 2, jobs
    # small jobs run beside the controller, not in the queue
    assert not {k for k in submitted if k.split("rule_")[-1] in ("import_captions", "detect_shots", "evaluate_split")}, jobs
