"""Bad input, end to end: each test feeds one fault to the real `llmvs` command and checks the
one-line error (`llmvs: error: <file>: <problem>`), exit status 1, and that nothing is left
behind. The README's "Faults and bad input" table lists these tests.
"""

import json
import shutil

import av
import numpy as np
import pyarrow as pa
import pytest

from conftest import DATA, write_features

from llmvs.cli import main
from llmvs.datasets import read_annotations
from llmvs.embeddings import fixed_list, write_arrow
from llmvs.video import decode_frames
from test_video import make_clip

INVALID = "Invalid data found when processing input"  # FFmpeg's AVERROR_INVALIDDATA text


def fails(capsys, *args) -> str:
    """Run `llmvs args...`; assert exit status 1 and no traceback; return the error line."""
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.rstrip("\n").split("\n")[-1]  # progress bars may come before it


def files_in(folder) -> list[str]:
    """Every file under `folder`, temporary `.part` files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- videos ---------------------------------------------------------------------------------

def video_packets(path):
    """(display frame index at 10 fps, byte offset, size) of every video packet, in file order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(round(float(p.pts * s.time_base) * 10), p.pos, p.size) for p in c.demux(s) if p.size]


@pytest.mark.parametrize("bad_frame", [0, 20, 59])
def test_video_corrupt_at_frame_n(tmp_path, capsys, bad_frame):
    """The frame's H.264 data is zeroed; the error names that frame in display order, even though
    B-frames reorder it and frame-threaded decoding reports it late (frame 59: not at all)."""
    clip = make_clip(tmp_path / "clip.mp4", n_frames=60, fps=10)
    data = bytearray(clip.read_bytes())
    [(_, pos, size)] = [p for p in video_packets(clip) if p[0] == bad_frame]
    data[pos:pos + size] = bytes(size)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(data)
    out = tmp_path / "out"
    assert fails(capsys, "frames", bad, "--out", out / "bad.parquet") == (
        f"llmvs: error: {bad}: corrupt video stream at frame {bad_frame} ({bad_frame / 10:.2f} s): {INVALID}")
    assert files_in(out) == []


def test_truncated_video(tmp_path, capsys):
    """A download cut short: with the index at the front (faststart) FFmpeg decodes what is there
    without complaint, so the decoded end is checked against the index; with the index at the
    end the file cannot be opened at all."""
    out = tmp_path / "out"
    front = make_clip(tmp_path / "front.mp4", n_frames=60, container_options={"movflags": "faststart"})
    packets = video_packets(front)
    [cut_at] = [pos for frame, pos, _ in packets if frame == 30]
    cut = tmp_path / "cut_front.mp4"
    cut.write_bytes(front.read_bytes()[:cut_at])
    whole = [frame for frame, pos, size in packets if pos + size <= cut_at]  # B-frames: not just 0..29
    assert fails(capsys, "frames", cut, "--out", out / "a.parquet") == (
        f"llmvs: error: {cut}: truncated video: decoding ends at {(max(whole) + 1) / 10:.2f} s "
        f"after {len(whole)} frames, its index lists 6.00 s")
    end = make_clip(tmp_path / "end.mp4", n_frames=60)
    cut = tmp_path / "cut_end.mp4"
    cut.write_bytes(end.read_bytes()[: end.stat().st_size // 2])
    assert fails(capsys, "frames", cut, "--out", out / "b.parquet") == (
        f"llmvs: error: {cut}: not a readable video ({INVALID})")
    assert files_in(out) == []


def test_video_without_decodable_frames(tmp_path, capsys):
    """A Matroska file whose video track holds no frame (the audio track does)."""
    path = tmp_path / "empty_track.mkv"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 44100
        for p in list(a.encode(frame)) + list(a.encode()) + list(v.encode()):
            out.mux(p)
    assert fails(capsys, "frames", path, "--out", tmp_path / "out" / "f.parquet") == (
        f"llmvs: error: {path}: no decodable video frames")
    assert files_in(tmp_path / "out") == []


# --- Parquet and Arrow inputs ----------------------------------------------------------------

def test_corrupt_parquet_input(tiny_benchmark, tmp_path, capsys):
    root, out = tiny_benchmark, tmp_path / "out"
    data = (root / "annotations.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])  # no footer
    assert fails(capsys, "evaluate", "--annotations", cut, "--splits", root / "splits.json", "--split", 0,
                 "--method", "oracle", "--shots-dir", root / "shots", "--out-dir", out) == (
        f"llmvs: error: {cut}: not a readable Parquet file (Parquet magic bytes not found in footer. "
        "Either the file is corrupted or this is not a parquet file.)")
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(data[:100] + bytes(1000) + data[1100:])  # footer intact, a data page zeroed
    assert fails(capsys, "evaluate", "--annotations", damaged, "--splits", root / "splits.json", "--split", 0,
                 "--method", "oracle", "--shots-dir", root / "shots", "--out-dir", out) == (
        f"llmvs: error: {damaged}: not a readable Parquet file (ZSTD decompression failed: Data corruption detected)")
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "video_12.parquet").write_bytes(b"PAR1" + bytes(50) + b"PAR1")  # magic bytes, nothing else
    assert fails(capsys, "evaluate", "--annotations", root / "annotations.parquet", "--splits", root / "splits.json",
                 "--split", 0, "--method", "oracle", "--shots-dir", shots, "--out-dir", out) == (
        f"llmvs: error: {shots / 'video_12.parquet'}: not a readable Parquet file (Couldn't deserialize thrift: No more data to read.)")
    assert files_in(out) == []


def test_corrupt_arrow_embeddings(tiny_benchmark, tmp_path, capsys):
    root, out = tiny_benchmark, tmp_path / "out"
    emb = tmp_path / "emb"
    shutil.copytree(root / "emb", emb)
    target = emb / "video_12.arrow"  # the test video of split 0
    data = target.read_bytes()
    args = ["evaluate", "--annotations", root / "annotations.parquet", "--splits", root / "splits.json", "--split", 0,
            "--method", "zero_shot", "--embeddings-dir", emb, "--shots-dir", root / "shots", "--out-dir", out]
    target.write_bytes(data[: len(data) // 2])
    assert fails(capsys, *args) == f"llmvs: error: {target}: not a readable Arrow file (Not an Arrow file)"
    target.write_bytes(data[:200] + b"\xff" * 500 + data[700:])  # the schema message overwritten
    assert fails(capsys, *args) == (
        f"llmvs: error: {target}: not a readable Arrow file (Invalid IPC message: negative metadata length)")
    assert files_in(out) == []


# --- captions ---------------------------------------------------------------------------------

def test_caption_json_missing_a_video(tiny_benchmark, tmp_path, capsys):
    root, out = tiny_benchmark, tmp_path / "out"
    args = ["captions", "--backend", "import", "--annotations", root / "annotations.parquet", "--video", "video_12"]
    source = tmp_path / "captions.json"
    source.write_text(json.dumps({"Air_Force_One": {"picks": [0, 15], "captions": ["a plane", "a runway"]}}))
    assert fails(capsys, *args, "--source", source, "--out", out / "c.parquet") == (
        f"llmvs: error: {source}: no captions for video 'Jumps'")
    source.write_text(json.dumps({"Jumps": {"picks": [0, 15]}}))
    assert fails(capsys, *args, "--source", source, "--out", out / "c.parquet") == (
        f"llmvs: error: {source}: the entry for video 'Jumps' has no \"captions\" list")
    source.write_text(json.dumps(["a plane", "a runway"]))
    assert fails(capsys, *args, "--source", source, "--out", out / "c.parquet") == (
        f"llmvs: error: {source}: not a caption JSON file (expected an object, got a list)")
    assert files_in(out) == []


@pytest.fixture
def three_step_frames(tmp_path):
    """The frames Parquet of a 31-frame clip: picks 0, 15, 30."""
    decode_frames(make_clip(tmp_path / "clip.mp4", n_frames=31), tmp_path / "frames.parquet")
    return tmp_path / "frames.parquet"


@pytest.mark.parametrize("name, content, problem", [
    ("semicolons.csv", "frame_index;caption\n0;a\n15;b\n30;c\n",
     "expected CSV columns frame_index,caption, found frame_index;caption"),
    ("renamed.csv", "frame,text\n0,a\n15,b\n30,c\n", "expected CSV columns frame_index,caption, found frame,text"),
    ("header_only.csv", "frame_index,caption\n", "no caption rows after the header"),
    ("empty.csv", "", "empty file (expected CSV columns frame_index,caption)"),
    ("latin1.csv", "frame_index,caption\n0,café\n15,b\n30,c\n".encode("latin-1"),
     "not UTF-8 text (invalid continuation byte at byte 25)"),
    ("short_row.csv", "frame_index,caption\n0,a\n15\n30,c\n", "missing caption for frame(s) [15]"),
    ("wrong_frames.csv", "frame_index,caption\n0,a\n16,b\n30,c\n",
     "caption frame indices do not match the sampled frames (0, 15, 30, ...)"),
])
def test_bad_caption_csv(three_step_frames, tmp_path, capsys, name, content, problem):
    source = tmp_path / name
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    assert fails(capsys, "captions", "--backend", "import", "--frames", three_step_frames, "--source", source,
                 "--out", out / "c.parquet") == f"llmvs: error: {source}: {problem}"
    assert files_in(out) == []


def test_caption_csv_with_byte_order_mark_is_read(three_step_frames, tmp_path):
    """Spreadsheet programs save UTF-8 CSV with a byte-order mark: it is not part of the header."""
    from llmvs.captioning import read_captions

    source = tmp_path / "excel.csv"
    source.write_bytes("\ufeffframe_index,caption\n0,a café\n15,b\n30,c\n".encode())
    out = tmp_path / "c.parquet"
    assert main(["captions", "--backend", "import", "--frames", str(three_step_frames), "--source", str(source),
                 "--out", str(out)]) == 0
    assert read_captions(out)[1] == ["a café", "b", "c"]


# --- shots ------------------------------------------------------------------------------------

def test_kts_change_points_with_a_gap(tiny_benchmark, tmp_path, capsys):
    """One shot of video_11 starts a frame late: `llmvs shots` names the file and the video, writes nothing."""
    import gzip

    from llmvs.datasets import kts_path

    with gzip.open(kts_path("summe", DATA), "rt") as f:
        data = json.load(f)
    name = read_annotations(tiny_benchmark / "annotations.parquet")["video_11"].caption_key
    data["videos"][name]["change_points"][2][0] += 1
    bad = tmp_path / "kts.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "shots"
    assert fails(capsys, "shots", "--change-points", bad, "--annotations", tiny_benchmark / "annotations.parquet",
                 "--video", "video_11", "--out", out / "video_11.parquet") == (
        f"llmvs: error: {bad}: video_11 ({name}): change points do not tile its 1612 frames "
        "(shots must be contiguous, non-empty [start, end] ranges)")
    assert files_in(out) == []


# --- features, answers and scorers --------------------------------------------------------------

def test_nan_features_stop_training(tiny_benchmark, tmp_path, capsys):
    root, out = tiny_benchmark, tmp_path / "run"
    emb = tmp_path / "emb"
    shutil.copytree(root / "emb", emb)
    v = read_annotations(root / "annotations.parquet")["video_8"]
    x = np.ones((v.n_steps, 24), np.float32)
    x[5, 3] = np.nan  # written directly: the prompts stage's own writer refuses NaN
    write_arrow(pa.table({"frame_index": pa.array(v.picks, pa.int64()), "q": fixed_list(x),
                          "a": fixed_list(np.ones_like(x))}), emb / "video_8.arrow")
    assert fails(capsys, "train", "--annotations", root / "annotations.parquet", "--embeddings-dir", emb,
                 "--splits", root / "splits.json", "--split", 0, "--run-config", '{"epochs": 1, "d_model": 16}',
                 "--out-dir", out) == f"llmvs: error: {emb / 'video_8.arrow'}: column q contains NaN/inf"
    assert files_in(out) == []


def test_answers_without_a_number_take_the_median(tiny_benchmark, tmp_path):
    """An answer with no number parses to NaN; zero-shot scoring gives it the median of the
    video's parsed answers (here 5 of 64 answers parse: 2, 9, 4, 7, 3 -> median 4)."""
    import pyarrow.parquet as pq

    from llmvs.prompt_builder import parse_score

    root = tiny_benchmark
    assert np.isnan(parse_score("I cannot rate this frame.")) and parse_score("Score: 7") == 7
    emb = tmp_path / "emb"
    shutil.copytree(root / "emb", emb)
    v = read_annotations(root / "annotations.parquet")["video_12"]
    answers = np.full(v.n_steps, np.nan)
    answers[[0, 10, 20, 30, 40]] = [2, 9, 4, 7, 3]
    feats = np.ones((v.n_steps, 24), np.float32)
    write_features(emb / "video_12.arrow", v.picks, {"q": feats, "a": feats}, answer_score=answers)
    assert main(["evaluate", "--annotations", str(root / "annotations.parquet"), "--splits", str(root / "splits.json"),
                 "--split", "0", "--method", "zero_shot", "--embeddings-dir", str(emb),
                 "--shots-dir", str(root / "shots"), "--out-dir", str(tmp_path / "zs")]) == 0
    scores = np.asarray(pq.read_table(tmp_path / "zs" / "scores.parquet").column("score")[0].as_py())
    assert np.array_equal(scores, np.where(np.isnan(answers), 4.0, answers))


def train_tiny_scorer(root, out):
    """A one-epoch scorer of the tiny benchmark's 24-d states; returns its model.pt."""
    assert main(["train", "--annotations", str(root / "annotations.parquet"), "--embeddings-dir", str(root / "emb"),
                 "--splits", str(root / "splits.json"), "--split", "0", "--out-dir", str(out),
                 "--run-config", '{"epochs": 1, "d_model": 16, "dim_feedforward": 32}']) == 0
    return out / "model.pt"


def write_narrow_states(root, path, width: int) -> None:
    """An embeddings file of the test video video_12 whose q and a columns are `width`-d."""
    v = read_annotations(root / "annotations.parquet")["video_12"]
    feats = np.ones((v.n_steps, width), np.float32)
    write_features(path, v.picks, {"q": feats, "a": feats}, answer_score=np.ones(v.n_steps))


def test_scorer_of_another_hidden_size(tiny_benchmark, tmp_path, capsys):
    """A scorer trained on 24-d states, applied to a 16-d LLM's states."""
    from llmvs import LlmvsError
    from llmvs.summarize import step_scores

    model = train_tiny_scorer(tiny_benchmark, tmp_path / "run")
    write_narrow_states(tiny_benchmark, tmp_path / "small.arrow", 16)
    with pytest.raises(LlmvsError) as err:
        step_scores(tmp_path / "small.arrow", model)
    assert str(err.value) == (f"{tmp_path / 'small.arrow'}: 16-d features, but {model} was "
                              "trained on 24-d ones (use the scorer of the same LLM and features)")


def test_evaluate_with_a_scorer_of_another_llm(tiny_benchmark, tmp_path, capsys):
    """`llmvs evaluate` of a scorer of 24-d states on a folder of 8-d ones names both files; writes nothing."""
    root = tiny_benchmark
    model = train_tiny_scorer(root, tmp_path / "run")
    write_narrow_states(root, tmp_path / "small" / "video_12.arrow", 8)
    assert fails(capsys, "evaluate", "--annotations", root / "annotations.parquet", "--splits", root / "splits.json",
                 "--split", "0", "--method", "model", "--model", model, "--embeddings-dir", tmp_path / "small",
                 "--shots-dir", root / "shots", "--out-dir", tmp_path / "eval") == (
        f"llmvs: error: {tmp_path / 'small' / 'video_12.arrow'}: 8-d features, but {model} was trained on 24-d ones "
        "(use the scorer of the same LLM and features)")
    assert not (tmp_path / "eval").exists()


def test_summarize_with_a_scorer_of_another_llm(tiny_benchmark, tmp_path, capsys):
    """The same through `llmvs summarize` (SmolLM2 gives 576-d states): exit 1, no output folder;
    found from the LLM's config before it runs."""
    from llmvs.smollm2 import SMOLLM2_ID

    model = train_tiny_scorer(tiny_benchmark, tmp_path / "run")
    clip = make_clip(tmp_path / "clip.mp4", n_frames=31)
    captions = tmp_path / "clip.csv"
    captions.write_text("frame_index,caption\n0,a white square\n15,a square moves right\n30,a dark frame\n")
    assert fails(capsys, "summarize", clip, "--captions", captions, "--scorer", model, "--out", tmp_path / "out") == (
        f"llmvs: error: {model}: trained on 24-d LLM states, but this LLM ({SMOLLM2_ID}) gives 576-d states: "
        f"pass --scorer FILE trained with {SMOLLM2_ID}, or --zero-shot")
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
