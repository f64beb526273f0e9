import contextlib
import csv
import io
import json
import re
import shutil
import subprocess

import av
import numpy as np
import pytest

from llmvs import LlmvsError
from llmvs.cli import main
from llmvs.shots import split_shots
from llmvs.summarize import OUTPUTS, select_shots
from test_video import make_clip, sample_clip

CARPHONE_CAPTIONS = [  # what the 8 sampled frames of carphone_pristine.mp4 show
    "a man in a dark suit and red bow tie talks in the back seat of a car",
    "a man in a dark suit and red bow tie talks in the back seat of a car",
    "a man in a dark suit and red bow tie talks in the back seat of a car",
    "a man in a bow tie leans towards the camera inside a car",
    "a man in a bow tie opens his mouth wide in surprise inside a car",
    "a man in a bow tie tilts his head and talks inside a car",
    "a man in a bow tie tilts his head and talks inside a car",
    "a man in a bow tie opens his mouth wide inside a car",
]


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
    tiny = make_clip(tmp_path / "tiny.mp4", n_frames=15)  # one sampled frame
    cases = [
        ([str(tmp_path / "missing.mp4"), "--captions", str(caps)], "file not found"),
        ([str(caps), "--captions", str(caps)], "not a readable video"),
        ([sample_clip("bikes.mp4"), "--captions", str(caps)], "5 captions for 17 sampled frames"),
        ([sample_clip("bikes.mp4")], "give --captions"),
        ([str(tiny), "--captions", str(caps)],
         f"{tiny}: too short to summarize: 15 frame(s) give one sampled frame (every 15th); at least 16"),
        ([sample_clip("bikes.mp4"), "--captions", str(caps), "--seconds", "0.03"],
         "bikes.mp4: a budget of 0.030 s is shorter than one frame (0.040 s): raise --budget or --seconds"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        assert main(["summarize", *args, "--out", str(out)]) == 1
        assert message in capsys.readouterr().err
        assert not out.exists() and not list(tmp_path.glob(".out.*"))


@pytest.fixture(scope="module")
def carphone(tmp_path_factory):
    """One `llmvs summarize` run on the 4 s sample clip (8 sampled frames), with its stderr."""
    tmp = tmp_path_factory.mktemp("carphone")
    caps = write_captions_csv(tmp / "carphone.csv", 8, CARPHONE_CAPTIONS)
    out, err = tmp / "out", io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["summarize", sample_clip("carphone_pristine.mp4"), "--captions", str(caps), "--out", str(out)])
    assert rc == 0, err.getvalue()
    return out, err.getvalue()


def test_short_video_is_split_to_fit_the_budget(carphone):
    out, _ = carphone
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    fps = 30000 / 1001
    budget_s = 0.15 * 120 / fps  # 18 frames; the 4 s clip is one detected shot
    with av.open(str(out / "summary.mp4")) as c:
        duration = c.duration / 1e6
        frames = sum(1 for _ in c.decode(c.streams.video[0]))
    assert frames == 15 and 0 < duration <= budget_s  # one whole sampled step: 15 frames fit in 18
    shots = list(csv.DictReader(open(out / "shots.csv")))
    assert [(int(s["start_frame"]), int(s["end_frame"])) for s in shots] == [(15 * i, 15 * i + 14) for i in range(8)]
    assert {s["detected_shot"] for s in shots} == {"0"}
    assert [s for s in shots if s["selected"] == "True"][0]["score"] == max((s["score"] for s in shots), key=float)
    assert sum(s["selected"] == "True" for s in shots) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_detected_shots"], summary["n_shots"], summary["n_selected_shots"]) == (1, 8, 1)
    assert summary["summary_duration_s"] == pytest.approx(15 / fps)


def test_summarize_reports_each_stage_as_it_ends(carphone):
    _, err = carphone
    lines = err.replace("\r", "\n").splitlines()
    stages = [(r"frames", r"8 of 120 frames sampled \(4\.0 s at 29\.97 fps\)"),
              (r"captions", r"8 from file:carphone\.csv"),
              (r"LLM", r"8 windows by .*SmolLM2.*; scores: zero-shot LLM answers"),
              (r"shots", r"1 detected, split into 8 to fit the budget; 1 selected for a budget of 0\.60 s"),
              (r"summary video", r"0\.50 s of 4\.0 s"),
              (r"outputs", r"shots\.csv, scores\.csv, timeline\.png, summary\.html")]
    where = []
    for stage, detail in stages:
        hits = [i for i, line in enumerate(lines) if re.fullmatch(rf"{stage} +\d+\.\d s  {detail}", line)]
        assert len(hits) == 1, (stage, lines)
        where.append(hits[0])
    assert where == sorted(where)
    # the LLM bar, with elapsed<remaining time, comes between the captions and LLM lines
    bar = [i for i, line in enumerate(lines)
           if re.search(r"prompts carphone_pristine: +\d+%.*\| \d/8 \[\d\d:\d\d<(\d\d:\d\d|\?)", line)]
    assert bar and where[1] < bar[0] and bar[-1] < where[2]
    assert any("8/8 [" in lines[i] for i in bar)


def _chromium(*args, cwd):
    cmd = [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={cwd / 'profile'}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_summary_page_in_headless_chromium(carphone, tmp_path):
    from PIL import Image

    out, _ = carphone
    dom = _chromium("--dump-dom", (out / "summary.html").as_uri(), cwd=tmp_path)
    assert '<video src="summary.mp4" controls="" preload="metadata"></video>' in dom
    assert '<img src="data:image/png;base64,' in dom
    shots = re.search(r'<table id="shots">.*?</table>', dom, re.S).group(0)
    assert shots.count("<tr") == 1 + 8 and shots.count('<tr class="selected">') == 1
    assert re.search(r'<table id="steps">.*</table>', dom, re.S).group(0).count(CARPHONE_CAPTIONS[4]) == 1
    # the browser itself plays the summary video the page links to
    probe = out.parent / "probe" / "probe.html"
    probe.parent.mkdir(exist_ok=True)
    shutil.copy(out / "summary.mp4", probe.parent)
    probe.write_text('<title>pending</title><video id=v src="summary.mp4" muted preload=auto></video><script>'
                     'v.onloadeddata = () => { document.title = `loaded ${v.videoWidth}x${v.videoHeight}`; };'
                     'v.onerror = () => { document.title = `error ${v.error.code}`; };</script>')
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), cwd=tmp_path)
    assert "<title>loaded 176x144</title>" in dom
    png = tmp_path / "page.png"
    _chromium(f"--screenshot={png}", "--window-size=1200,900", (out / "summary.html").as_uri(), cwd=tmp_path)
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape == (900, 1200, 3)
    assert pixels.std() > 30 and len(np.unique(pixels.reshape(-1, 3) // 16, axis=0)) > 100


def test_split_shots_fits_every_piece_into_the_budget():
    picks = np.arange(0, 120, 15)
    pieces, origin = split_shots([[0, 44], [45, 119]], 40, picks)
    assert pieces.tolist() == [[0, 29], [30, 44], [45, 74], [75, 104], [105, 119]]
    assert origin.tolist() == [0, 0, 1, 1, 1]
    # a budget under one step: equal pieces of each step; short shots stay whole
    pieces, origin = split_shots([[0, 2], [3, 19]], 5, [0, 15])
    assert pieces.tolist() == [[0, 2], [3, 6], [7, 10], [11, 14], [15, 19]]  # 12 frames -> 3 x 4
    assert origin.tolist() == [0, 1, 1, 1, 1]
    pieces, _ = split_shots([[0, 249]], 37, np.arange(0, 250, 15))
    assert np.all(pieces[1:, 0] == pieces[:-1, 1] + 1) and pieces[0, 0] == 0 and pieces[-1, 1] == 249
    assert (pieces[:, 1] - pieces[:, 0] + 1).max() <= 37
    with pytest.raises(LlmvsError, match="pieces of 0 frames"):
        split_shots([[0, 9]], 0, [0])


def test_select_shots_is_the_knapsack_and_never_empty():
    assert select_shots([0.2, 0.9, 0.5], [10, 10, 10], 20).tolist() == [False, True, True]
    # the knapsack takes no zero-score shot; the summary still gets the first best one that fits
    assert select_shots([0.0, 0.0, 0.0], [30, 10, 10], 20).tolist() == [False, True, False]
    with pytest.raises(LlmvsError, match="no shot fits a budget of 20 frames"):
        select_shots([0.5, 0.5], [30, 25], 20)
