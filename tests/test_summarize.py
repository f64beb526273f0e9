import csv
import json

import av
import pytest

from llmvs import LlmvsError
from llmvs.cli import main
from llmvs.summarize import OUTPUTS
from test_video import make_clip, sample_clip


def write_captions_csv(path, n_steps, texts):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame_index", "caption"])
        for i in range(n_steps):
            w.writerow([15 * i, texts[i * len(texts) // n_steps]])
    return path


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        return frames, float(v.average_rate), bool(c.streams.audio)


def test_summarize_sample_video(tmp_path):
    caps = write_captions_csv(tmp_path / "bikes.csv", 17, ["a man rides a bicycle down a city street",
                                                          "cyclists ride past parked cars",
                                                          "a close up of a bicycle wheel"])
    out = tmp_path / "bikes"
    assert main([ "summarize", sample_clip("bikes.mp4"), "--captions", str(caps), "--out", str(out),
                 "--shot-seconds", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    summary = json.loads((out / "summary.json").read_text())
    frames, fps, _ = probe(out / "summary.mp4")
    assert 0 < frames <= int(0.15 * 250) and fps == 25
    assert summary["summary_duration_s"] == pytest.approx(frames / 25)
    shots = list(csv.DictReader(open(out / "shots.csv")))
    assert sum(int(s["end_frame"]) - int(s["start_frame"]) + 1 for s in shots if s["selected"] == "True") == frames
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 17 and rows[0]["caption"].startswith("a man rides")


def test_summarize_long_clip_keeps_audio_and_honours_seconds(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", n_frames=610, fps=10, audio=True)  # 61 s
    caps = write_captions_csv(tmp_path / "long.csv", 41, ["a white square on a black screen",
                                                         "a small bright square moves to the right",
                                                         "a dark empty frame"])
    out = tmp_path / "long"
    assert main(["summarize", str(clip), "--captions", str(caps), "--out", str(out), "--seconds", "12"]) == 0
    frames, _, has_audio = probe(out / "summary.mp4")
    assert has_audio and 0 < frames <= 120
    with av.open(str(out / "summary.mp4")) as c:
        audio_s = sum(f.samples for f in c.decode(c.streams.audio[0])) / c.streams.audio[0].sample_rate
    assert abs(audio_s - frames / 10) < 0.5


def test_summarize_errors_leave_nothing_behind(tmp_path, capsys):
    caps = write_captions_csv(tmp_path / "c.csv", 5, ["a caption"])
    cases = [
        ([str(tmp_path / "missing.mp4"), "--captions", str(caps)], "file not found"),
        ([str(caps), "--captions", str(caps)], "not a readable video"),
        ([sample_clip("bikes.mp4"), "--captions", str(caps)], "5 captions for 17 sampled frames"),
        ([sample_clip("bikes.mp4")], "give --captions"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        assert main(["summarize", *args, "--out", str(out)]) == 1
        assert message in capsys.readouterr().err
        assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_budget_that_selects_nothing(tmp_path, capsys):
    caps = write_captions_csv(tmp_path / "bbb.csv", 9, ["a large white rabbit stands in a meadow"])
    out = tmp_path / "bbb"
    assert main(["summarize", sample_clip("bigbuckbunny.mp4"), "--captions", str(caps), "--out", str(out),
                 "--seconds", "0.5"]) == 1
    assert "selects nothing" in capsys.readouterr().err
    assert not out.exists()
