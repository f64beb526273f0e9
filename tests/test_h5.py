"""The field's h5 formats (llmvs.h5): eccv16 files out and back in, checked against our annotations;
the authors' released LLM states imported as embeddings; image features from a transformers model.

No real eccv16 or authors' file is at hand: the tests build small ones with the same keys, dtypes and
shapes (the published dumps show user_summary as <f4).
"""

import io
import shutil

import h5py
import numpy as np
import pyarrow as pa
import pytest

from conftest import DATA

from llmvs import LlmvsError
from llmvs.cli import main
from llmvs.datasets import kts_path, load_change_points
from llmvs.evaluation import tvsum_user_summaries
from llmvs.h5 import AUTHORS_LLM, benchmark_entries, read_eccv16, write_eccv16

SUMME_KEYS = ["video_8", "video_11", "video_12"]  # short videos: small files


def fails(capsys, *args) -> str:
    """Run `llmvs args...`; assert exit status 1 and no traceback; return the one error line."""
    assert main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.rstrip("\n").split("\n")[-1]


@pytest.fixture(scope="module")
def summe_h5(tmp_path_factory):
    """Three SumMe videos in the eccv16 layout, with small random 1024-d features."""
    out = tmp_path_factory.mktemp("h5") / "summe.h5"
    from llmvs.datasets import load_dataset

    videos = load_dataset("summe", DATA)
    rng = np.random.default_rng(0)
    feats = {k: rng.normal(size=(videos[k].n_steps, 1024)).astype(np.float32) for k in SUMME_KEYS}
    write_eccv16(out, benchmark_entries("summe", data_dir=DATA, keys=SUMME_KEYS, features=feats))
    return out, feats


def edited(src, tmp_path, edit, name="bad.h5"):
    """A copy of `src` changed by `edit(h5py.File)`."""
    dst = tmp_path / name
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def replace(group, field, value):
    del group[field]
    group.create_dataset(field, data=value)


# --- eccv16: layout and round trip ----------------------------------------------------------

def test_export_writes_the_eccv16_layout(summe_h5, summe):
    path, _ = summe_h5
    with h5py.File(path) as f:
        assert sorted(f) == sorted(SUMME_KEYS)
        g, v = f["video_8"], summe["video_8"]
        n_steps, n_users = v.n_steps, v.user_scores.shape[0]
        shapes = {k: (g[k].shape, g[k].dtype.str) for k in g}
        n_shots = g["change_points"].shape[0]
        assert shapes == {"features": ((n_steps, 1024), "<f4"), "gtscore": ((n_steps,), "<f4"),
                          "user_summary": ((n_users, v.n_frames), "<f4"), "change_points": ((n_shots, 2), "<i4"),
                          "n_frame_per_seg": ((n_shots,), "<i4"), "n_frames": ((), "<i4"), "picks": ((n_steps,), "<i4"),
                          "n_steps": ((), "<i4"), "gtsummary": ((n_steps,), "<f4"), "video_name": ((), "|S7")}
        # the authors' SumMe embedding key: str() of the bytes, b'...' cut off, spaces as '_'
        assert str(g["video_name"][()])[2:-1].replace(" ", "_") == v.caption_key == "Cooking"
        assert g["picks"][()].tolist() == list(range(0, v.n_frames, 15))
        assert set(np.unique(g["user_summary"][()])) <= {0.0, 1.0}


def test_summe_round_trip_equals_our_annotations_and_kts_shots(summe_h5, summe):
    path, feats = summe_h5
    got = read_eccv16(path, "summe", data_dir=DATA)
    kts = load_change_points(kts_path("summe", DATA), {k: summe[k] for k in SUMME_KEYS})
    assert list(got) == ["video_8", "video_11", "video_12"]
    for k in SUMME_KEYS:
        v, h = summe[k], got[k]
        assert np.array_equal(h.change_points, kts[k])
        assert np.array_equal(h.gtscore, v.gtscore)
        assert np.array_equal(h.user_summary, v.user_scores > 0)
        assert np.array_equal(h.features, feats[k])
        assert (h.n_frames, h.name) == (v.n_frames, v.name)
    assert read_eccv16(path, "summe", data_dir=DATA, features=False)["video_8"].features is None


def test_tvsum_round_trip_through_the_cli(tmp_path, tvsum):
    keys = ["video_10", "video_27"]  # no features: the benchmark mode exports them when given frames
    out = tmp_path / "tvsum.h5"
    assert main(["export-h5", "--dataset", "tvsum", "--keys", *keys, "--data-dir", str(DATA), "--out", str(out)]) == 0
    got = read_eccv16(out, "tvsum", data_dir=DATA)
    kts = load_change_points(kts_path("tvsum", DATA), {k: tvsum[k] for k in keys})
    for k in keys:
        v = tvsum[k]
        assert np.array_equal(got[k].change_points, kts[k])
        assert np.array_equal(got[k].gtscore, v.gtscore)
        assert np.array_equal(got[k].user_summary, tvsum_user_summaries(v.user_scores, kts[k], v.n_frames))
        assert got[k].features is None and got[k].name is None  # the TVSum file names no video
    with h5py.File(out) as f:
        assert "features" not in f["video_10"] and "video_name" not in f["video_10"]


def test_summe_user_summaries_may_come_in_another_user_order(summe_h5, tmp_path, summe):
    path, _ = summe_h5
    bad = edited(path, tmp_path, lambda f: replace(f["video_8"], "user_summary", f["video_8/user_summary"][()][::-1]))
    assert np.array_equal(read_eccv16(bad, "summe", data_dir=DATA)["video_8"].user_summary,
                          (summe["video_8"].user_scores > 0)[::-1])


# --- eccv16: every field checked against the annotations ------------------------------------

@pytest.mark.parametrize("edit, problem", [
    (lambda f: replace(f["video_8"], "video_name", np.bytes_(b"Jumps")),
     "video_8: video_name is 'Jumps' in the h5, but video_8 is 'Cooking' in the annotations"),
    (lambda f: replace(f["video_8"], "n_frames", np.int32(950)),
     "video_8: 950 frames in the h5, but video_8 (Cooking) has 1286 in the annotations; 950 frames is our "
     "video_12 (Jumps): the h5 orders the videos differently"),
    (lambda f: replace(f["video_8"], "picks", np.arange(0, 1286, 16)),
     "video_8: picks are not the annotations' 0, 15, ... < 1286 (81 picks, 86 steps)"),
    (lambda f: replace(f["video_8"], "change_points", f["video_8/change_points"][()][1:]),
     "video_8: change_points do not tile its 1286 frames (shots must cover frames 0..1285)"),
    (lambda f: replace(f["video_8"], "n_frame_per_seg", f["video_8/n_frame_per_seg"][()] + 1),
     "video_8: n_frame_per_seg disagrees with change_points (9 values for 9 shots; first difference at shot 0)"),
    (lambda f: f["video_8/user_summary"].__setitem__((0, slice(0, 50)), 1 - f["video_8/user_summary"][0, :50]),
     "video_8: user_summary (17 users) is not the GT user_score > 0 of Cooking (17 users; 1 h5 row(s) match none "
     "of them)"),
    (lambda f: f["video_8/user_summary"].__setitem__((0, 0), 0.5),
     "video_8: user_summary holds values other than 0 and 1"),
    (lambda f: f["video_8/gtscore"].__setitem__(3, np.nan), "video_8: gtscore has 1 NaN/inf value(s)"),
    (lambda f: replace(f["video_8"], "gtscore", np.zeros(85, np.float32)),
     "video_8: gtscore has 85 values for 86 steps"),
    (lambda f: f.move("video_8", "video_99"), "group 'video_99' is not a summe video (expected video_1 ... video_25)"),
    (lambda f: f["video_8"].__delitem__("change_points"), "video_8: no change_points"),
])
def test_eccv16_faults_name_the_file_and_the_video(summe_h5, tmp_path, edit, problem):
    path, _ = summe_h5
    bad = edited(path, tmp_path, edit)
    with pytest.raises(LlmvsError) as err:
        read_eccv16(bad, "summe", data_dir=DATA)
    assert str(err.value) == f"{bad}: {problem}"


def test_tvsum_videos_are_pinned_by_their_frame_count(tmp_path, tvsum):
    entries = benchmark_entries("tvsum", data_dir=DATA, keys=["video_10", "video_27"])
    swapped = tmp_path / "swapped.h5"
    write_eccv16(swapped, {"video_10": entries["video_27"], "video_27": entries["video_10"]})
    with pytest.raises(LlmvsError) as err:
        read_eccv16(swapped, "tvsum", data_dir=DATA)
    v10, v27 = tvsum["video_10"], tvsum["video_27"]
    assert str(err.value) == (f"{swapped}: video_10: {v27.n_frames} frames in the h5, but video_10 ({v10.name}) has "
                              f"{v10.n_frames} in the annotations; {v27.n_frames} frames is our video_27 ({v27.name}): "
                              "the h5 orders the videos differently")


def test_unreadable_h5_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an h5 file")
    line = fails(capsys, "import-states", "--prompt", bad, "--gen", bad, "--dataset", "tvsum", "--out-dir", tmp_path)
    assert line.startswith(f"llmvs: error: {bad}: not a readable h5 file (")


# --- the authors' released states -----------------------------------------------------------

def write_states(path, videos, keys, dataset, tokens, dim=16, seed=0, steps=None):
    """An authors'-style states file: one float16 (steps, tokens, dim) dataset per video."""
    rng = np.random.default_rng(seed)
    arrays = {}
    with h5py.File(path, "w") as f:
        for k in keys:
            name = k if dataset == "tvsum" else videos[k].caption_key
            arrays[k] = rng.normal(size=(steps or videos[k].n_steps, tokens, dim)).astype(np.float16)
            f.create_dataset(name, data=arrays[k])
    return arrays


@pytest.mark.parametrize("dataset, tokens", [("summe", 1), ("tvsum", 3)])
def test_import_states_writes_q_and_a_that_train_as_qa(tmp_path, request, dataset, tokens):
    from llmvs.embeddings import feature_matrix, read_embeddings
    from llmvs.embeddings import load_video_features

    videos = request.getfixturevalue(dataset)
    keys = SUMME_KEYS[:2] if dataset == "summe" else ["video_10", "video_27"]
    q = write_states(tmp_path / "user_prompt_pool.h5", videos, keys, dataset, tokens, seed=1)
    a = write_states(tmp_path / "gen_pool.h5", videos, keys, dataset, tokens, seed=2)
    assert main(["import-states", "--prompt", str(tmp_path / "user_prompt_pool.h5"), "--gen",
                 str(tmp_path / "gen_pool.h5"), "--dataset", dataset, "--keys", *keys, "--data-dir", str(DATA),
                 "--out-dir", str(tmp_path / "emb")]) == 0
    for k in keys:
        emb = read_embeddings(tmp_path / "emb" / f"{k}.arrow")
        assert np.array_equal(emb.frame_index, videos[k].picks)
        assert np.array_equal(emb.features("q"), q[k].max(axis=1).astype(np.float32))
        assert np.array_equal(emb.features("a"), a[k].max(axis=1).astype(np.float32))
        # the paper's input: max over the tokens of concat(q, a)
        both = np.concatenate([q[k], a[k]], axis=1).max(axis=1).astype(np.float32)
        assert np.array_equal(feature_matrix(emb, "qa"), both)
        assert np.array_equal(load_video_features(tmp_path / "emb", videos[k], "qa"), both)
        assert emb.meta["model"] == AUTHORS_LLM == "meta-llama/Llama-2-13b-chat-hf"
        assert (emb.meta["prompt_file"], emb.meta["gen_file"]) == (str(tmp_path / "user_prompt_pool.h5"),
                                                                  str(tmp_path / "gen_pool.h5"))
        assert emb.meta["hidden_size"] == 16 and emb.meta["video"] == k


def test_import_states_faults(tmp_path, capsys, summe):
    prompt, gen = tmp_path / "user_prompt_pool.h5", tmp_path / "gen_pool.h5"
    write_states(prompt, summe, ["video_8"], "summe", 1)
    write_states(gen, summe, ["video_8"], "summe", 1, steps=summe["video_8"].n_steps - 2)
    common = ["--dataset", "summe", "--data-dir", DATA, "--out-dir", tmp_path / "emb"]
    assert fails(capsys, "import-states", "--prompt", prompt, "--gen", gen, "--keys", "video_8", *common) == (
        f"llmvs: error: {gen}: Cooking (video_8): 84 steps, but video_8 has 86 (picks 0, 15, ... < 1286)")
    assert fails(capsys, "import-states", "--prompt", prompt, "--gen", prompt, "--keys", "video_2", *common) == (
        f"llmvs: error: {prompt}: no states for video_2 (Base jumping): expected a dataset 'Base_jumping' "
        "(summe files are keyed by the video name with spaces as '_')")
    with h5py.File(prompt, "r+") as f:
        f["Cooking"][0, 0, 0] = np.nan
    assert fails(capsys, "import-states", "--prompt", prompt, "--gen", prompt, "--keys", "video_8", *common) == (
        f"llmvs: error: {prompt}: Cooking (video_8): 1 NaN/inf value(s)")
    assert not (tmp_path / "emb").exists() or not any((tmp_path / "emb").iterdir())


# --- image features and user videos ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A randomly initialised 16-d ViT with its image processor, saved as a local model folder."""
    import torch
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    folder = tmp_path_factory.mktemp("vit")
    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=16)).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def pooled_by_hand(folder, jpegs):
    """The ViT's pooler output for JPEG frames, computed here without llmvs."""
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, ViTModel

    proc, model = AutoImageProcessor.from_pretrained(folder), ViTModel.from_pretrained(folder).eval()
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in jpegs]
    with torch.no_grad():
        return model(**proc(images=images, return_tensors="pt")).pooler_output.numpy()


def test_export_your_video_with_a_transformers_image_model(tmp_path, tiny_vit):
    from llmvs.io import read_parquet
    from llmvs.video import decode_frames
    from test_video import make_clip

    clip = make_clip(tmp_path / "clip.mp4", n_frames=60, fps=10)
    decode_frames(clip, tmp_path / "frames.parquet")
    out = tmp_path / "mine.h5"
    assert main(["export-h5", str(clip), str(tmp_path / "frames.parquet"), "--image-model", str(tiny_vit),
                 "--batch-size", "3", "--out", str(out)]) == 0
    jpegs = read_parquet(tmp_path / "frames.parquet").column("jpeg").to_pylist()
    expected = pooled_by_hand(tiny_vit, jpegs)
    with h5py.File(out) as f:
        assert sorted(f) == ["video_1", "video_2"]
        assert f.attrs["features"] == tiny_vit.name
        for key, name in (("video_1", "clip"), ("video_2", "clip")):
            g = f[key]
            assert sorted(g) == ["change_points", "features", "n_frame_per_seg", "n_frames", "n_steps", "picks",
                                 "video_name"]
            assert g["picks"][()].tolist() == [0, 15, 30, 45] and g["n_frames"][()] == 60 and g["n_steps"][()] == 4
            cps = g["change_points"][()]
            assert cps[0, 0] == 0 and cps[-1, 1] == 59 and np.all(cps[1:, 0] == cps[:-1, 1] + 1)
            assert np.array_equal(g["n_frame_per_seg"][()], cps[:, 1] - cps[:, 0] + 1)
            assert g["video_name"][()] == name.encode()
            np.testing.assert_allclose(g["features"][()], expected, rtol=1e-5, atol=1e-6)


def write_frames(path, n_frames, fps=30.0, step=15):
    """A frames Parquet as `llmvs frames` writes it, with small grey JPEGs."""
    from PIL import Image

    from llmvs.io import write_parquet

    picks = np.arange(0, n_frames, step)
    jpegs = []
    for i in picks:
        buf = io.BytesIO()
        Image.new("RGB", (24, 16), (int(i) % 256, 80, 160)).save(buf, format="JPEG")
        jpegs.append(buf.getvalue())
    write_parquet(pa.table({"frame_index": picks, "time_s": picks / fps, "jpeg": pa.array(jpegs, pa.binary())}),
                  path, metadata={"video": str(path), "n_frames": n_frames, "fps": fps})
    return jpegs


def test_benchmark_export_with_features_from_frames(tmp_path, capsys, tiny_vit, summe):
    jpegs = write_frames(tmp_path / "frames" / "video_12.parquet", summe["video_12"].n_frames)
    out = tmp_path / "summe.h5"
    assert main(["export-h5", "--dataset", "summe", "--keys", "video_12", "--frames-dir", str(tmp_path / "frames"),
                 "--image-model", str(tiny_vit), "--data-dir", str(DATA), "--out", str(out)]) == 0
    got = read_eccv16(out, "summe", data_dir=DATA)["video_12"]
    np.testing.assert_allclose(got.features, pooled_by_hand(tiny_vit, jpegs), rtol=1e-5, atol=1e-6)
    write_frames(tmp_path / "frames" / "video_8.parquet", 1000)
    bad = tmp_path / "frames" / "video_8.parquet"
    assert fails(capsys, "export-h5", "--dataset", "summe", "--keys", "video_8", "--frames-dir", tmp_path / "frames",
                 "--image-model", tiny_vit, "--data-dir", DATA, "--out", tmp_path / "bad.h5") == (
        f"llmvs: error: {bad}: frames of a 1000-frame video, but video_8 (Cooking) has 1286 frames (picks 0, 15, ...)")
    assert not (tmp_path / "bad.h5").exists()


def test_export_needs_an_image_model_and_torchvision_is_optional(tmp_path, capsys):
    import importlib.util

    clip = tmp_path / "clip.mp4"
    assert fails(capsys, "export-h5", clip, "--out", tmp_path / "x.h5") == (
        f"llmvs: error: {clip}: features of your videos need --image-model")
    if importlib.util.find_spec("torchvision") is None:
        assert fails(capsys, "export-h5", clip, "--image-model", "torchvision:GoogLeNet_Weights.IMAGENET1K_V1",
                     "--out", tmp_path / "x.h5") == (
            "llmvs: error: torchvision:GoogLeNet_Weights.IMAGENET1K_V1: torchvision is not installed (it must match "
            "the installed torch); use a transformers image model (hub id or folder) instead")
