"""SIGTERM, as `scancel` and Slurm time limits send it, for every long stage.

Each test starts the real `llmvs` command as its own process, sends SIGTERM once the stage is at
work, and checks that the process stops promptly with status 143 (128 + SIGTERM), leaves neither a
temporary file nor a complete-looking output, and that the same command then finishes the job
(resuming where the stage can: the prompts stage keeps the videos it finished).
"""

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import DATA

PROMPT_STOP_S = 20  # one batch of windows may finish first; on a busy 2-core machine that takes seconds


def llmvs(*args) -> list[str]:
    return [sys.executable, "-m", "llmvs.cli", *map(str, args)]


def terminate_when(cmd, ready, timeout=300, stop_within=10.0):
    """Run `cmd`, send SIGTERM as soon as `ready(stderr so far)` holds; returns (exit status, seconds to stop,
    stderr)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        deadline = time.time() + timeout
        while not ready(_read(err)):
            assert proc.poll() is None, f"finished before it could be stopped:\n{_read(err)[-2000:]}"
            assert time.time() < deadline, "the stage never got to work"
            time.sleep(0.05)
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=stop_within + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("SIGTERM did not stop the stage")
        stopped = time.time() - sent
        assert stopped < stop_within, f"took {stopped:.1f} s to stop"
        return proc.returncode, stopped, _read(err)


def _read(file) -> str:
    file.seek(0)
    return file.read()


def shows(text: str, then_seconds: float = 0.0):
    """Ready once the stage's stderr shows `text` (its progress bar), and `then_seconds` later."""
    seen = []

    def ready(err: str) -> bool:
        if not seen and text in err:
            seen.append(time.time())
        return bool(seen) and time.time() - seen[0] >= then_seconds
    return ready


def no_temporaries(folder: Path):
    left = [p for p in Path(folder).rglob(".*") if p.name.endswith(".part") or p.is_dir()]
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    from test_video import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "long.mp4", n_frames=1500, fps=25, size=(320, 240))


@pytest.fixture(scope="module")
def longer_clip(tmp_path_factory):
    """Four minutes of video: a couple of seconds of decoding, so SIGTERM lands mid-stream."""
    from test_video import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "longer.mp4", n_frames=6000, fps=25, size=(320, 240))


def test_sigterm_stops_frames(longer_clip, tmp_path):
    out = tmp_path / "frames.parquet"
    # at work = its temporary output exists (it is written from the first decoded frame on)
    decoding = lambda _: any(p.name.startswith(".frames.parquet") for p in tmp_path.iterdir())  # noqa: E731
    rc, _, err = terminate_when(llmvs("frames", longer_clip, "--out", out), decoding)
    assert rc == 143 and "frames longer.mp4" in err
    assert not out.exists()
    no_temporaries(tmp_path)
    assert subprocess.run(llmvs("frames", longer_clip, "--out", out), capture_output=True).returncode == 0
    from llmvs.io import read_parquet

    assert read_parquet(out).column("frame_index").to_pylist() == list(range(0, 6000, 15))


def test_sigterm_stops_captions(long_clip, tmp_path):
    import torch

    from llmvs.video import decode_frames
    from test_captioning import _tiny_llava

    torch.manual_seed(0)
    model = tmp_path / "tiny-llava"
    _tiny_llava(model)
    frames = tmp_path / "frames.parquet"
    decode_frames(long_clip, frames)
    out = tmp_path / "out" / "captions.parquet"
    cmd = llmvs("captions", "--backend", "transformers", "--frames", frames, "--model", model, "--batch-size", 2,
                "--out", out)
    rc, _, err = terminate_when(cmd, shows("captions", then_seconds=1))
    assert rc == 143 and "captions" in err
    assert not out.exists()
    if out.parent.exists():
        no_temporaries(out.parent)
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    from llmvs.captioning import read_captions

    assert len(read_captions(out)[1]) == 100


def test_sigterm_stops_prompts_and_the_rerun_keeps_finished_videos(tmp_path):
    from llmvs.captioning import run_captions
    from llmvs.datasets import write_annotations

    ann = tmp_path / "annotations.parquet"
    write_annotations("summe", ann, DATA)
    keys = ["video_12", "video_8", "video_11"]  # 64, 86 and 108 windows
    caps, outs = [], []
    for k in keys:
        caps.append(tmp_path / "captions" / f"{k}.parquet")
        run_captions(caps[-1], "import", annotations=ann, video=k, captioner="blip",
                     source=DATA / "captions" / "blip" / "summe_captions.json.gz")
        outs.append(tmp_path / "emb" / f"{k}.arrow")
    cmd = llmvs("prompts", "--captions", *caps, "--out", *outs, "--dataset", "summe", "--dtype", "float32",
                "--data-dir", DATA, "--threads", 1)
    rc, _, err = terminate_when(cmd, lambda _: outs[0].exists(), stop_within=PROMPT_STOP_S)
    assert rc == 143
    finished = outs[0].stat().st_mtime_ns
    assert not outs[2].exists() and not (outs[1].exists() and outs[2].exists())
    no_temporaries(tmp_path / "emb")
    from llmvs.embeddings import read_embeddings

    assert len(read_embeddings(outs[0]).frame_index) == 64  # what it finished is complete
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert outs[0].stat().st_mtime_ns == finished  # resumed: the finished video was not redone
    assert [len(read_embeddings(o).frame_index) for o in outs] == [64, 86, 108]


def test_sigterm_stops_training(tiny_benchmark, tmp_path):
    root = tiny_benchmark
    out = tmp_path / "run"
    cmd = llmvs("train", "--annotations", root / "annotations.parquet", "--embeddings-dir", root / "emb",
                "--splits", root / "splits.json", "--split", 0, "--shots-dir", root / "shots", "--threads", 1,
                "--run-config", '{"d_model": 32, "dim_feedforward": 64, "epochs": 400}', "--out-dir", out)
    rc, _, err = terminate_when(cmd, shows("train split 0", then_seconds=1))
    assert rc == 143 and "train split 0" in err
    assert not (out / "model.pt").exists() and not (out / "train_log.csv").exists()
    if out.exists():
        no_temporaries(out)
    small = [c if "epochs" not in c else '{"d_model": 32, "dim_feedforward": 64, "epochs": 2}' for c in cmd]
    assert subprocess.run(small, capture_output=True).returncode == 0
    assert (out / "model.pt").exists()


def test_sigterm_stops_summarize(tmp_path):
    from test_video import sample_clip

    clip = sample_clip("bikes.mp4")
    captions = Path(__file__).resolve().parents[1] / "docs" / "img" / "bikes-captions.csv"
    out = tmp_path / "summary"
    cmd = llmvs("summarize", clip, "--captions", captions, "--zero-shot", "--out", out, "--threads", 1)
    # stop it inside the LLM stage, after the frames were decoded into its work folder
    work = lambda _: any(p.name.startswith(".summary.") for p in tmp_path.iterdir())  # noqa: E731
    rc, _, _ = terminate_when(cmd, work, stop_within=PROMPT_STOP_S)
    assert rc == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no outputs, no work folder
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"summary.mp4", "summary.json", "summary.html"} <= {p.name for p in out.iterdir()}


SWALLOWED_COMMITS = {  # the two ways a stage commits its output: one file, one folder
    "atomic_path": "with io.atomic_path(out / 'out.parquet') as tmp:\n    tmp.write_text('complete-looking')",
    "model folder": "model_store._publish(out / 'model', lambda d: (d / 'config.json').write_text('{}'))",
}


@pytest.mark.parametrize("commit", list(SWALLOWED_COMMITS))
def test_a_swallowed_sigterm_still_commits_nothing(commit, tmp_path):
    """The handler's exception can be lost inside a C callback; the noted signal still stops the commit."""
    code = f"""
import os, signal
from pathlib import Path
from llmvs import cli, io, model_store
out = Path({str(tmp_path)!r})
signal.signal(signal.SIGTERM, cli._terminate)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # the handler runs between bytecodes
        pass
except SystemExit:
    pass  # swallowed, as PyAV's log callback would
{SWALLOWED_COMMITS[commit]}
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 143, proc.stderr
    assert list(tmp_path.iterdir()) == []
