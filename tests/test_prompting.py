import json
import math

import numpy as np
import pyarrow as pa
import pytest

from conftest import DATA
from llmvs.captioning import write_captions
from llmvs.cli import main
from llmvs.datasets import load_caption_json, shipped_captions_path
from llmvs.prompting import (PromptBuilder, WindowScorer, choose_exemplars, format_window, parse_score,
                             read_embeddings, resolve_exemplars, window_indices)


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


def test_fast_path_equals_plain_path(smollm2, real_windows):
    tok, model, _ = smollm2
    builder = PromptBuilder(tok, resolve_exemplars("auto", "summe", 0, DATA))
    builder.check_split(real_windows[0])
    scorer = WindowScorer(model, builder, batch_size=4)
    plain = [scorer.plain(w) for w in real_windows]
    fast = scorer.fast(real_windows + real_windows[:2])  # repeated windows are computed once
    assert [r.path for r in fast] == ["fast"] * len(fast)
    for p, f in zip(plain + plain[:2], fast):
        assert p.answer == f.answer
        assert p.q.shape == f.q.shape and p.a.shape == f.a.shape
        assert np.abs(p.q - f.q).max() <= 1e-3 * np.abs(p.q).max()
        assert np.abs(p.a - f.a).max() <= 1e-3 * np.abs(p.a).max()
    # query = the query turn and the assistant header; answer = the generated tokens
    assert len(plain[2].q) == len(builder.encode(builder.query_text(real_windows[2])))
    assert len(plain[2].a) >= 3  # "Score", ":", " ", digit(s)


def test_prompts_stage_writes_arrow_shards(tmp_path, smollm2):
    caps = load_caption_json(shipped_captions_path("summe", data_dir=DATA))["Cooking"]["captions"][:10]
    cap_file = tmp_path / "captions.parquet"
    write_captions(cap_file, np.arange(0, 150, 15), caps, captioner="blip", video="video_8", n_frames=150, fps=15.0)
    out = tmp_path / "emb" / "video_8.arrow"
    argv = ["prompts", "--captions", str(cap_file), "--out", str(out), "--dataset", "summe", "--token-states",
            "--data-dir", str(DATA), "--batch-size", "4"]
    assert main(argv) == 0
    with pa.memory_map(str(out)) as src:
        table = pa.ipc.open_file(src).read_all()
    assert table.schema.field("q").type == pa.list_(pa.float16(), 576)
    assert table.schema.field("a").type == pa.list_(pa.float16(), 576)
    meta = {k.decode(): json.loads(v) for k, v in table.schema.metadata.items()}
    assert meta["exemplars"][0].startswith("tvsum:") and len(meta["prompt_sha256"]) == 16
    assert meta["model"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    frame_index, q, a, scores, _ = read_embeddings(out)
    assert frame_index.tolist() == list(range(0, 150, 15))
    assert q.shape == a.shape == (10, 576) and np.isfinite(q).all()
    assert np.isfinite(scores).sum() + meta["n_unparsed_answers"] == 10
    tokens = pa.parquet.read_table(out.with_suffix(".tokens.parquet"))
    assert tokens.num_rows == int(table.column("n_query_tokens").to_numpy().sum() + table.column("n_answer_tokens").to_numpy().sum())
    assert not list(out.parent.glob("*.part"))
    # a rerun skips finished files
    mtime = out.stat().st_mtime_ns
    assert main(argv) == 0 and out.stat().st_mtime_ns == mtime
