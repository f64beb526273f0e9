import json
import math

import numpy as np
import pyarrow as pa
import pytest

from conftest import DATA
from llmvs.captioning import write_captions
from llmvs.cli import main
from llmvs.datasets import load_caption_json, shipped_captions_path
from llmvs.embeddings import FEATURE_COLUMNS, read_embeddings
from llmvs.prompt_builder import (SCORES, PromptBuilder, choose_exemplars, format_window, make_window, parse_score,
                           resolve_exemplars, window_indices)
from llmvs.window_scorer import WindowScorer


def test_windows_are_centred_and_truncated_at_the_ends():
    assert list(window_indices(10, 100)) == list(range(7, 14))
    assert list(window_indices(0, 100)) == [0, 1, 2, 3]
    assert list(window_indices(99, 100)) == [96, 97, 98, 99]
    text = format_window([f"c{i}" for i in range(5)], 1)
    assert text.splitlines()[1:] == [" -1: c0", "*+0: c1", " +1: c2", " +2: c3", " +3: c4"]


def test_parse_score():
    assert parse_score("Score: 7") == 7.0
    assert parse_score(" 8.5/10") == 8.5
    assert math.isnan(parse_score("I cannot tell"))


def test_exemplars_come_from_the_other_benchmark_and_are_fixed_by_seed():
    ex = resolve_exemplars("auto", "summe", seed=0, data_dir=DATA)
    assert len(ex) == 3 and all(e.id.startswith("tvsum:") for e in ex)
    assert sorted(e.score for e in ex)[0] <= 3 and sorted(e.score for e in ex)[-1] >= 8
    assert [e.id for e in choose_exemplars("tvsum", seed=0, data_dir=DATA)] == [e.id for e in ex]
    assert all(e.id.startswith("summe:") for e in resolve_exemplars("auto", "tvsum", 0, DATA))
    assert resolve_exemplars("none", "summe", 0) == []


@pytest.fixture(scope="module")
def smollm2():
    from llmvs.llm import load_llm

    return load_llm("smollm2", "float32", "cpu")


@pytest.fixture(scope="module")
def real_windows():
    caps = load_caption_json(shipped_captions_path("summe", data_dir=DATA))["Cooking"]["captions"]
    return [format_window(caps, t) for t in (0, 1, 40, 41, 90, len(caps) - 1)]


def test_token_spans_of_a_known_window(smollm2):
    tok = smollm2[0]
    builder = PromptBuilder(tok, [])
    window = make_window(["a man rides a bike", "a dog runs", "  two cars  "], 1)
    assert window.text == "Frames:\n -1: a man rides a bike\n*+0: a dog runs\n +1: two cars"
    text, centre = builder.token_masks(window)
    ids = builder.encode(builder.query_text(window.text))
    assert len(ids) == len(text) == len(centre)
    assert tok.decode([i for i, m in zip(ids, text) if m]) == " a man rides a bike a dog runs two cars"
    assert tok.decode([i for i, m in zip(ids, centre) if m]) == " a dog runs"
    # the chat-template, header and line-marker tokens belong to no caption
    rest = tok.decode([i for i, m in zip(ids, text) if not m])
    assert rest == "<|im_start|>user\nFrames:\n -1:\n*+0:\n +1:<|im_end|>\n<|im_start|>assistant\n"


def test_score_probabilities_cover_the_scale(smollm2):
    builder = PromptBuilder(smollm2[0], [])
    assert builder.score_tokens[10] == (builder.probe_id, builder.encode("0")[0])  # "10" = "1" "0"
    first, second = np.zeros(len(smollm2[0])), np.zeros(len(smollm2[0]))
    first[builder.score_tokens[7][0]], first[builder.probe_id] = 0.2, 0.6  # 7, or "1" ...
    second[builder.encode("0")[0]] = 0.25  # ... followed by "0" a quarter of the time
    p = builder.score_probs(first, second)
    expected = np.zeros(10)
    expected[[6, 0, 9]] = [0.2, 0.6 * 0.75, 0.6 * 0.25]
    np.testing.assert_allclose(p, expected / expected.sum(), rtol=1e-6)


def test_fast_path_equals_plain_path(smollm2, real_windows):
    """The fast path on llmvs.decoder's own SmolLM2 against the plain path: transformers' `generate`."""
    from llmvs.llm import load_fast_llm

    tok, decoder, _, _ = load_fast_llm("smollm2", "float32", "cpu")
    builder = PromptBuilder(tok, resolve_exemplars("auto", "summe", 0, DATA))
    builder.check_split(real_windows[0])
    scorer = WindowScorer(decoder, builder, batch_size=4, reference=lambda: smollm2[1])
    plain = [scorer.plain(w) for w in real_windows]
    fast = scorer.fast(real_windows + real_windows[:2])  # repeated windows are computed once
    assert [r.path for r in fast] == ["fast"] * len(fast)
    for p, f in zip(plain + plain[:2], fast):
        assert p.answer == f.answer
        for part in ("q", "a", "q_mid", "a_mid"):
            x, y = getattr(p, part), getattr(f, part)
            assert x.shape == y.shape and np.abs(x - y).max() <= 1e-4 * np.abs(x).max(), part
        np.testing.assert_allclose(f.score_probs, p.score_probs, atol=1e-5)
        assert abs(p.score_probs.sum() - 1) < 1e-5
    # query = the query turn and the assistant header; answer = the generated tokens
    assert len(plain[2].q) == len(builder.encode(builder.query_text(real_windows[2])))
    assert len(plain[2].a) == len(builder.encode(plain[2].answer))


def test_prompts_stage_writes_arrow_shards(tmp_path, smollm2):
    import re

    caps = load_caption_json(shipped_captions_path("summe", data_dir=DATA))["Cooking"]["captions"][:10]
    cap_file = tmp_path / "captions.parquet"
    write_captions(cap_file, np.arange(0, 150, 15), caps, captioner="blip", video="video_8", n_frames=150, fps=15.0)
    out = tmp_path / "emb" / "video_8.arrow"
    argv = ["prompts", "--captions", str(cap_file), "--out", str(out), "--dataset", "summe", "--token-states",
            "--data-dir", str(DATA), "--batch-size", "4"]
    assert main(argv) == 0
    with pa.memory_map(str(out)) as src:
        table = pa.ipc.open_file(src).read_all()
    meta = {k.decode(): json.loads(v) for k, v in table.schema.metadata.items()}
    for name in FEATURE_COLUMNS:
        assert table.schema.field(name).type == pa.list_(pa.float16(), 576)
        assert meta["columns"][name]  # every column is described in the file
    assert meta["exemplars"][0].startswith("tvsum:") and len(meta["prompt_sha256"]) == 16
    assert meta["model"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct") and meta["mid_layer"] == "15 of 30"
    emb = read_embeddings(out)
    assert emb.frame_index.tolist() == list(range(0, 150, 15))
    assert emb.features("q").shape == emb.features("mid_c_mean").shape == (10, 576)
    # each answer's parsed score is the number in its text; the expected score is sum k p(k)
    answers = table.column("answer").to_pylist()
    digits = [re.fullmatch(r"Score: (\d+)", a) for a in answers]
    assert all(digits), answers
    assert emb.answer_score.tolist() == [float(m.group(1)) for m in digits] and meta["n_unparsed_answers"] == 0
    probs = np.asarray(table.column("score_probs").to_pylist())
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(emb.answer_expected, probs @ np.asarray(SCORES), rtol=1e-5)
    # pooled columns are the pooling of the token states they describe
    tokens = pa.parquet.read_table(out.with_suffix(".tokens.parquet")).to_pandas()
    assert len(tokens) == int(table.column("n_query_tokens").to_numpy().sum() + table.column("n_answer_tokens").to_numpy().sum())
    first_q = np.stack(tokens[(tokens.frame_index == 0) & (tokens.part == "q")].state.to_list()).astype(np.float32)
    np.testing.assert_allclose(emb.features("q")[0], first_q.max(0), rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(emb.features("q_mean")[0], first_q.mean(0), rtol=1e-2, atol=2e-3)
    assert not list(out.parent.glob("*.part"))
    # a rerun skips finished files
    mtime = out.stat().st_mtime_ns
    assert main(argv) == 0 and out.stat().st_mtime_ns == mtime


def test_title_prompt_names_each_windows_and_each_examples_own_title(tmp_path, smollm2):
    """`--title-prompt`: the instruction says a title comes first, every example names its own video's
    (cleaned) title, every query the benchmark video's; the caption columns still pool the captions only."""
    from llmvs.datasets import load_dataset
    from llmvs.prompt_builder import TITLE_INSTRUCTION
    from llmvs.titles import clean_title

    plain = resolve_exemplars("auto", "summe", 0, DATA)
    titled = resolve_exemplars("auto", "summe", 0, DATA, titles=True)
    tvsum = load_dataset("tvsum", DATA)
    for p, t in zip(plain, titled):  # the same windows and scores, each with its own title first
        title = clean_title(tvsum[p.id.split(":")[1]].title)
        assert t.text == f"Video: {title}\n{p.text}" and t.score == p.score
    window = make_window(["a man rides a bike", "a dog runs"], 0, title="Cooking")
    text, centre = PromptBuilder(smollm2[0], [], TITLE_INSTRUCTION).token_masks(window)
    ids = PromptBuilder(smollm2[0], []).encode(PromptBuilder(smollm2[0], []).query_text(window.text))
    assert smollm2[0].decode([i for i, m in zip(ids, text) if m]) == " a man rides a bike a dog runs"

    caps = load_caption_json(shipped_captions_path("summe", data_dir=DATA))["Cooking"]["captions"][:3]
    cap_file = tmp_path / "captions.parquet"
    write_captions(cap_file, np.arange(0, 45, 15), caps, captioner="blip", video="video_8", n_frames=45, fps=15.0)
    out = tmp_path / "video_8.arrow"
    assert main(["prompts", "--captions", str(cap_file), "--out", str(out), "--dataset", "summe", "--title-prompt",
                 "--data-dir", str(DATA)]) == 0
    meta = read_embeddings(out).meta
    assert (meta["title_prompt"], meta["title"], meta["title_source"]) == (True, "Cooking", "annotations")
    assert "whose title is given first" in TITLE_INSTRUCTION


def test_the_answer_format_probe_agrees_with_the_generated_answers(smollm2):
    """benchmarks/answer_format.py's one-pass check against `generate`'s own greedy answers."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from answer_format import answers_in_format, sample_windows

    tok, model, _ = smollm2
    builder = PromptBuilder(tok, resolve_exemplars("auto", "summe", 0, DATA))
    plain = WindowScorer(model, builder, max_new_tokens=4)
    windows = sample_windows("summe", 3)
    assert len(set(windows)) == 3 and windows == sample_windows("summe", 3)
    for w in windows:
        ok, n = answers_in_format(model, builder, w)
        assert ok == plain.plain(w).answer.startswith("Score: ")
        query = builder.encode(builder.query_text(w))
        assert n == len(builder.prefix_ids) + len(query) + len(builder.answer_prefix_ids) + 2
