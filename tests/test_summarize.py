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

from conftest import VIDEOS

from llmvs import LlmvsError
from llmvs.cli import main
from llmvs.embeddings import read_embeddings
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
    assert main(["summarize", sample_clip("bikes.mp4"), "--captions", str(caps), "--zero-shot", "--out", str(out),
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


def _tkhd_rotation(path) -> tuple:
    """(a, b, c, d) of the first track's display matrix, read from the MP4's tkhd box bytes."""
    import struct

    data = open(path, "rb").read()
    box = data.index(b"tkhd") - 4
    m = struct.unpack(">9i", data[box + 48:box + 84])  # version 0 box; 16.16 fixed point
    return tuple(v >> 16 for v in (m[0], m[1], m[3], m[4]))


@pytest.mark.parametrize("degrees_cw", [90, 270])
def test_summary_of_a_phone_video_keeps_its_rotation(tmp_path, degrees_cw):
    clip = make_clip(tmp_path / "phone.mp4", n_frames=200, fps=10, rotate=degrees_cw)
    caps = write_captions_csv(tmp_path / "phone.csv", 14, ["a white square on a black screen", "a dark empty frame"])
    out = tmp_path / "phone"
    assert main(["summarize", str(clip), "--captions", str(caps), "--zero-shot", "--out", str(out)]) == 0
    assert _tkhd_rotation(out / "summary.mp4") == _tkhd_rotation(clip) != (1, 0, 0, 1)


def test_summarize_long_clip_keeps_audio_and_honours_seconds(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", n_frames=610, fps=10, audio=True)  # 61 s
    caps = write_captions_csv(tmp_path / "long.csv", 41, ["a white square on a black screen",
                                                         "a small bright square moves to the right",
                                                         "a dark empty frame"])
    out = tmp_path / "long"
    assert main(["summarize", str(clip), "--captions", str(caps), "--zero-shot", "--out", str(out),
                 "--seconds", "12"]) == 0
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
        ([str(tiny), "--captions", str(caps)],
         f"{tiny}: too short to summarize: 15 frame(s) give one sampled frame (every 15th); at least 16"),
        ([sample_clip("bikes.mp4"), "--captions", str(caps), "--seconds", "0.03"],
         "bikes.mp4: a budget of 0.030 s is shorter than one frame (0.040 s): raise --budget or --seconds"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        assert main(["summarize", *args, "--zero-shot", "--out", str(out)]) == 1
        assert message in capsys.readouterr().err
        assert not out.exists() and not list(tmp_path.glob(".out.*"))


@pytest.fixture(scope="module")
def carphone(tmp_path_factory):
    """One `llmvs summarize` run on the 4 s sample clip (8 sampled frames), with its stderr."""
    tmp = tmp_path_factory.mktemp("carphone")
    caps = write_captions_csv(tmp / "carphone.csv", 8, CARPHONE_CAPTIONS)
    out, err = tmp / "out", io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["summarize", sample_clip("carphone_pristine.mp4"), "--captions", str(caps), "--zero-shot",
                   "--out", str(out)])
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


# --- the default scorer -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2_scorers(tiny_benchmark, tmp_path_factory):
    """Scorers that expect SmolLM2's 576-d `q_text` and `c` columns (two columns: input 2 x 576), trained on
    the tiny benchmark's five SumMe videos with its features lifted to 576-d: `split` from `llmvs train`
    (split 0: video_12 is its test video), `release` from `llmvs release-scorer` (its card says SmolLM2)."""
    from llmvs.smollm2 import SMOLLM2_ID
    from test_release import reduced_annotations, write_embeddings

    root, tmp = tiny_benchmark, tmp_path_factory.mktemp("scorers")
    lift = np.random.default_rng(2).normal(size=(24, 576)).astype(np.float32) / 5
    meta = {"model": SMOLLM2_ID, "hidden_size": 576, "dtype": "float32", "captioner": "blip", "exemplar_seed": 0}
    for key in VIDEOS:
        emb = read_embeddings(root / "emb" / f"{key}.arrow")
        q = emb.features("q") @ lift
        write_embeddings(tmp / "emb" / f"{key}.arrow", emb.frame_index, {"q_text": q, "c": np.tanh(q)}, meta)
    keys = '{"features": ["q_text", "c"], "d_model": 32, "dim_feedforward": 64, "epochs": 2, "lr": 0.001}'
    assert main(["train", "--annotations", str(root / "annotations.parquet"), "--embeddings-dir", str(tmp / "emb"),
                 "--splits", str(root / "splits.json"), "--split", "0", "--run-config", keys, "--threads", "1",
                 "--out-dir", str(tmp / "split0")]) == 0
    (tmp / "summary.csv").write_text("dataset,row,source,n_splits,tau_mean,tau_std,rho_mean,rho_std,f1_mean,f1_std\n"
                                     "summe,llmvs,measured,5,0.05,0.04,0.06,0.05,35.0,4.3\n")
    annotations = reduced_annotations(root / "annotations.parquet", VIDEOS, tmp / "annotations.parquet")
    assert main(["release-scorer", "--annotations", str(annotations), "--embeddings-dir", str(tmp / "emb"),
                 "--shots-dir", str(root / "shots"), "--run-config", keys, "--summary", str(tmp / "summary.csv"),
                 "--threads", "1", "--out", str(tmp / "release" / "blip-smollm2.pt"),
                 "--card", str(tmp / "release" / "blip-smollm2.md")]) == 0
    assert "| LLM states | hidden size 576, float32; input 1152 = 2 x 576 |" in (
        tmp / "release" / "blip-smollm2.md").read_text()
    return {"split": tmp / "split0" / "model.pt", "release": tmp / "release" / "blip-smollm2.pt"}


def test_without_a_shipped_scorer_summarize_says_how_to_build_it(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "scorers" / "blip-smollm2.pt"
    monkeypatch.setattr("llmvs.summarize.SHIPPED_SCORER", missing)
    caps = write_captions_csv(tmp_path / "bikes.csv", 17, ["a man rides a bicycle"])
    assert main(["summarize", sample_clip("bikes.mp4"), "--captions", str(caps), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"llmvs: error: {missing}: no default scorer is shipped in this copy of llmvs; build it with "
        "`make release` in the repository, or pass --scorer FILE or --zero-shot\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bikes.csv"]


def test_summarize_scores_with_the_shipped_scorer_by_default(smollm2_scorers, tmp_path, monkeypatch):
    from llmvs.summarize import file_sha256

    shipped = smollm2_scorers["release"]
    monkeypatch.setattr("llmvs.summarize.SHIPPED_SCORER", shipped)
    caps = write_captions_csv(tmp_path / "carphone.csv", 8, CARPHONE_CAPTIONS)
    out, err = tmp_path / "out", io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["summarize", sample_clip("carphone_pristine.mp4"), "--captions", str(caps), "--threads", "1",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["scorer"], summary["scorer_path"], summary["scorer_sha256"]) == (
        "default scorer blip-smollm2", str(shipped), file_sha256(shipped))
    assert summary["llm_dtype"] == "float32"  # the dtype of the scorer's training states, from its checkpoint
    assert re.search(r"^LLM +\d+\.\d s  8 windows by .*SmolLM2.*; scores: default scorer blip-smollm2$",
                     err.getvalue().replace("\r", "\n"), re.M)
    scores = [float(r["score"]) for r in csv.DictReader(open(out / "scores.csv"))]
    assert len(scores) == 8 and all(0 < x < 1 for x in scores)  # a sigmoid's, not the LLM's 1-10 answers


def test_a_scorer_of_another_llm_is_refused_before_the_llm_runs(smollm2_scorers, tiny_benchmark, tmp_path,
                                                                 capsys):
    import torch

    from llmvs.smollm2 import SMOLLM2_ID

    ckpt = torch.load(smollm2_scorers["release"], weights_only=False)
    ckpt["feature_schema"]["llm"] = "org/other-576-d-llm@abc"  # the same width, another model
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    assert main(["train", "--annotations", str(tiny_benchmark / "annotations.parquet"), "--embeddings-dir",
                 str(tiny_benchmark / "emb"), "--splits", str(tiny_benchmark / "splits.json"), "--split", "0",
                 "--run-config", '{"epochs": 1, "d_model": 16, "dim_feedforward": 32}', "--threads", "1",
                 "--out-dir", str(tmp_path / "run24")]) == 0
    small = tmp_path / "run24" / "model.pt"  # 24-d states, q and a
    capsys.readouterr()
    caps = write_captions_csv(tmp_path / "bikes.csv", 17, ["a man rides a bicycle"])
    for scorer, problem in [
        (other, f"trained on the states of org/other-576-d-llm@abc, but this LLM is {SMOLLM2_ID}"),
        (small, f"trained on 24-d LLM states, but this LLM ({SMOLLM2_ID}) gives 576-d states"),
    ]:
        assert main(["summarize", sample_clip("bikes.mp4"), "--captions", str(caps), "--scorer", str(scorer),
                     "--out", str(tmp_path / "out")]) == 1
        # the only line: refused before the frames were decoded (each stage prints a line as it ends)
        assert capsys.readouterr().err == (
            f"llmvs: error: {scorer}: {problem}: pass --scorer FILE trained with {SMOLLM2_ID}, or --zero-shot\n")
        assert not (tmp_path / "out").exists()


def test_summarize_scores_a_video_exactly_as_the_benchmark_does(smollm2_scorers, tiny_benchmark, tmp_path):
    """One scoring path: SumMe's shortest video (video_12, 64 steps) through the benchmark stages
    (imported captions -> `llmvs prompts` -> `llmvs evaluate` with a split model) and, as a video of the
    same length and rate with the same captions in a CSV, through `llmvs summarize` with that model:
    the same step scores, bit for bit."""
    import pyarrow.parquet as pq

    from conftest import DATA
    from llmvs.datasets import load_caption_json, read_annotations, shipped_captions_path

    root, model = tiny_benchmark, smollm2_scorers["split"]
    v = read_annotations(root / "annotations.parquet")["video_12"]
    shipped = shipped_captions_path("summe", data_dir=DATA)
    # the benchmark: the rules' commands with config.yaml's LLM settings (SmolLM2 in float32)
    assert main(["captions", "--backend", "import", "--annotations", str(root / "annotations.parquet"), "--video",
                 "video_12", "--source", str(shipped), "--captioner", "blip", "--out", str(tmp_path / "cap.parquet")]) == 0
    assert main(["prompts", "--captions", str(tmp_path / "cap.parquet"), "--out", str(tmp_path / "emb" / "video_12.arrow"),
                 "--dataset", "summe", "--llm", "smollm2", "--dtype", "float32", "--exemplars", "auto", "--seed", "0",
                 "--data-dir", str(DATA), "--threads", "1"]) == 0
    assert main(["evaluate", "--annotations", str(root / "annotations.parquet"), "--splits", str(root / "splits.json"),
                 "--split", "0", "--method", "model", "--model", str(model), "--embeddings-dir", str(tmp_path / "emb"),
                 "--shots-dir", str(root / "shots"), "--out-dir", str(tmp_path / "eval")]) == 0
    table = pq.read_table(tmp_path / "eval" / "scores.parquet").to_pylist()
    assert [r["video"] for r in table] == ["video_12"]
    benchmark = np.asarray(table[0]["score"], np.float32)
    # the same video as a user's file
    from fractions import Fraction

    clip = make_clip(tmp_path / "Jumps.mp4", n_frames=v.n_frames, fps=Fraction(v.fps).limit_denominator(1001))
    captions = load_caption_json(shipped)[v.caption_key]["captions"]
    with open(tmp_path / "Jumps.csv", "w", newline="") as f:
        csv.writer(f).writerows([("frame_index", "caption"), *zip(v.picks.tolist(), captions)])
    out = tmp_path / "out"
    assert main(["summarize", str(clip), "--captions", str(tmp_path / "Jumps.csv"), "--scorer", str(model),
                 "--dtype", "float32", "--threads", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [int(r["frame_index"]) for r in rows] == v.picks.tolist() and len(rows) == 64
    ours = np.array([np.float32(r["score"]) for r in rows])
    assert np.array_equal(ours, benchmark), np.abs(ours - benchmark).max()
    answers = read_embeddings(tmp_path / "emb" / "video_12.arrow").answer_score
    assert [float(r["answer_score"]) for r in rows] == answers.tolist()


# --- captions without a captions file -------------------------------------------------------------

BLIP_COMMIT = "b" * 40


def tiny_blip(folder):
    """A randomly initialised BLIP captioner (ViT + BERT decoder, 2 layers each) with its own WordPiece
    vocabulary: real machinery, meaningless captions; special tokens but [SEP] are made unlikely, so
    that it writes words."""
    import torch
    from transformers import (BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
                              BlipProcessor, BlipTextConfig, BlipVisionConfig)

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + (
        "a an the man woman dog car street bike rides walks on in of with red blue white field people".split())
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, bos_token="[DEC]")
    vision = BlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8)
    text = BlipTextConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, encoder_hidden_size=32, max_position_embeddings=64,
                          bos_token_id=tok.bos_token_id, sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id,
                          pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                                    projection_dim=32))
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[[words.index(w) for w in ("[PAD]", "[UNK]", "[CLS]", "[MASK]",
                                                                          "[DEC]")]] = -20.0
    model.save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(folder)
    return folder


@pytest.fixture
def blip_hub(tmp_path, monkeypatch):
    """A Hugging Face cache holding a tiny BLIP as Salesforce/blip-image-captioning-base; offline, no
    prepared models."""
    from llmvs.summarize import DEFAULT_CAPTIONER
    from test_model_store import add_snapshot

    folder = tiny_blip(tmp_path / "tiny-blip")
    add_snapshot(tmp_path / "hf" / "hub", DEFAULT_CAPTIONER, BLIP_COMMIT,
                 {p.name: p.read_bytes() for p in folder.iterdir()}, refs=["main"])
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("LLMVS_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


def test_summarize_without_captions_runs_blip_base(blip_hub, tmp_path):
    """No captions file: BLIP base from the hub cache writes them (here a tiny random one under that
    name), unconditionally, beam search 5, at most 50 tokens, one per 15th frame."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from llmvs.captioning import frame_images
    from llmvs.io import read_parquet
    from llmvs.video import decode_frames

    clip = make_clip(tmp_path / "clip.mp4", n_frames=46, fps=10)  # 4 sampled frames
    out = tmp_path / "out"
    assert main(["summarize", str(clip), "--zero-shot", "--threads", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["captioner"] == f"Salesforce/blip-image-captioning-base@{BLIP_COMMIT}"
    captions = [r["caption"] for r in csv.DictReader(open(out / "scores.csv"))]
    # what the model writes for each frame alone, called as the shipped captions were made
    decode_frames(clip, tmp_path / "frames.parquet")
    proc, model = BlipProcessor.from_pretrained(blip_hub), BlipForConditionalGeneration.from_pretrained(blip_hub)
    expected = []
    for image in frame_images(read_parquet(tmp_path / "frames.parquet")):
        with torch.no_grad():
            ids = model.generate(**proc(images=image, return_tensors="pt"), max_length=50, num_beams=5)
        expected.append(proc.decode(ids[0], skip_special_tokens=True).strip())
    assert captions == expected and len(captions) == 4
    assert all(c and set(c.split()) <= set("a an the man woman dog car street bike rides walks on in of with "
                                           "red blue white field people".split()) for c in captions)


def test_summarize_without_captions_or_captioner_model_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("LLMVS_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["summarize", sample_clip("bikes.mp4"), "--zero-shot", "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        "llmvs: error: Salesforce/blip-image-captioning-base: captioning model not found (not prepared in "
        f"{tmp_path / 'models'} nor in the Hugging Face cache); fetch it once with `llmvs models prepare "
        "Salesforce/blip-image-captioning-base` where the hub is reachable, or pass --captions FILE\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
