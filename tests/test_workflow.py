"""The Snakemake workflow on a tiny real configuration (4 short SumMe videos, real SmolLM2 prompts)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT

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
        "qa": {}, "zero_shot": {"method": "zero_shot"}, "random": {"method": "random"}, "oracle": {"method": "oracle"}}
    if kind == "slurm":
        config["gpus"] = {"captions": 0, "prompts": 0, "train": 1}
    (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def snakemake(cwd, *args, timeout=1200):
    """Run Snakemake; on timeout interrupt it with SIGINT (it ignores a plain terminate) and fail."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
    assert "aggregate_metrics" in out and "train_split" in out
    rc, out = snakemake(ROOT, "--lint", "--nolock", "--workflow-profile", "none")
    assert rc == 0, out[-3000:]
    rc, out = snakemake(ROOT, "-n", "--nolock", "--profile", "slurm")
    assert rc == 0 and "aggregate_metrics" in out, out[-2000:]


def test_bad_config_key_fails_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    rc, out = snakemake(ROOT, "-n", "--nolock", "--configfile", str(bad), "--workflow-profile", "none")
    assert rc != 0 and "epochz" in out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    wf = make_copy(tmp_path_factory.mktemp("wf") / "llmvs", "local")
    rc, out = snakemake(wf, "--cores", "2")
    assert rc == 0, out[-4000:]
    return wf


def test_tiny_run_produces_every_stage(finished_run):
    wf = finished_run
    summary = pd.read_csv(wf / "results" / "summary.csv")
    measured = summary[summary.source == "measured"]
    assert {"qa", "zero_shot", "random", "oracle"} <= set(measured.row)
    assert (wf / "results" / "summary.png").stat().st_size > 5000
    for key in ("video_8", "video_11", "video_12"):
        assert (wf / f"results/summe/embeddings/blip/smollm2/{key}.arrow").exists()
        assert (wf / f"results/summe/shots/{key}.parquet").exists()
    assert (wf / "results/benchmarks/embed_windows/summe/blip/smollm2/video_8.tsv").exists()
    assert not list((wf / "results").rglob("*.part"))
    rc, out = snakemake(wf, "-n", "--cores", "2")
    assert rc == 0 and "Nothing to be done" in out


def test_forcerun_reruns_one_stage_and_what_depends_on_it(finished_run):
    wf = finished_run
    results = wf / "results/summe"
    upstream = results / "embeddings/blip/smollm2/video_8.arrow"
    downstream = results / "runs/qa/split0/model.pt"
    up_before, down_before = upstream.stat().st_mtime_ns, downstream.stat().st_mtime_ns
    rc, out = snakemake(wf, "--cores", "2", "--forcerun", "detect_shots", "--until", "detect_shots")
    assert rc == 0, out[-3000:]
    assert out.count("rule detect_shots") == 3 and "rule train_split" not in out
    assert downstream.stat().st_mtime_ns == down_before
    rc, out = snakemake(wf, "--cores", "2", "--forcerun", "detect_shots")
    assert rc == 0, out[-3000:]
    assert "rule train_split" in out and "rule embed_windows" not in out
    assert downstream.stat().st_mtime_ns > down_before  # depends on the shots: redone
    assert upstream.stat().st_mtime_ns == up_before  # upstream of the shots: untouched


def _job_pid(fragment: str) -> int | None:
    """PID of the `llmvs` job whose command line contains `fragment`."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "llmvs" in cmd and " prompts " in cmd and fragment in cmd and "snakemake" not in cmd:
            return int(proc.name)
    return None


def test_killed_job_resumes_without_redoing_finished_videos(finished_run):
    wf = finished_run
    emb = wf / "results/summe/embeddings/blip/smollm2"
    victim, kept = emb / "video_11.arrow", emb / "video_8.arrow"
    kept_mtime = kept.stat().st_mtime_ns
    victim.unlink()
    target = str(victim.relative_to(wf))
    log = wf / "results/logs/embed_windows/summe/blip/smollm2/video_11.log"
    log.unlink()
    proc = subprocess.Popen([*SNAKEMAKE, "--cores", "2", target], cwd=wf,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = None
    for _ in range(480):  # SIGKILL the job (a node failure) once the LLM is working on the video
        if log.exists() and "window" in log.read_text(errors="ignore"):
            pid = _job_pid(target)
            if pid:
                break
        time.sleep(0.25)
    assert pid, "the embed_windows job did not start"
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=120) != 0
    assert not victim.exists()
    rc, out = snakemake(wf, "--cores", "2", target)  # the same command again
    assert rc == 0, out[-3000:]
    assert victim.exists() and kept.stat().st_mtime_ns == kept_mtime
    assert out.count("rule embed_windows") == 1
    assert not list(emb.glob(".*.part"))  # the killed job's temporary file is gone too


@pytest.mark.slurm
def test_slurm_profile_runs_every_stage(tmp_path):
    if subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        pytest.skip("no Slurm controller (tests/slurm/local_slurm.sh start)")
    wf = make_copy(tmp_path / "llmvs", "slurm")
    start = time.time()
    rc, out = snakemake(wf, "--profile", "slurm", "--slurm-init-seconds-before-status-checks", "2", timeout=1500)
    assert rc == 0, out[-4000:]
    assert time.time() - start < 1500
    assert (wf / "results/summary.csv").exists()
    train_logs = list((wf / ".snakemake/slurm_logs/rule_train_split").rglob("*.log"))
    assert train_logs, "train_split did not go through sbatch"
    jobs = subprocess.run(["squeue", "-t", "all", "-h", "-O", "JobID,tres-per-job:30,Comment:200"],
                          capture_output=True, text=True).stdout
    train = [line for line in jobs.splitlines() if "rule_train_split" in line]
    assert train and all("gres:gpu:1" in line for line in train), jobs
