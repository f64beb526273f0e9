"""The fast path's own decoder and tokenizer (llmvs.decoder) against transformers on the same folders."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA
from llmvs import LlmvsError
from llmvs.datasets import load_caption_json, shipped_captions_path
from llmvs.decoder import FolderTokenizer, load_decoder
from llmvs.prompt_builder import INSTRUCTION, TITLE_INSTRUCTION, PromptBuilder, format_window, resolve_exemplars


@pytest.fixture(scope="module")
def smollm2_folder():
    from llmvs.llm import resolve_llm

    return resolve_llm("smollm2")[0]


@pytest.fixture(scope="module")
def windows():
    caps = load_caption_json(shipped_captions_path("tvsum", data_dir=DATA))["AwmHb44_ouw"]["captions"]  # video_1
    return [format_window(caps, t, title=title) for t in (0, 3, 200, len(caps) - 1) for title in (None, "Tires")]


def test_folder_tokenizer_renders_and_tokenizes_as_transformers(smollm2_folder, windows):
    from transformers import AutoTokenizer

    ref, tok = AutoTokenizer.from_pretrained(smollm2_folder), FolderTokenizer(smollm2_folder)
    assert (len(tok), tok.eos_token_id, tok.pad_token_id) == (len(ref), ref.eos_token_id, ref.pad_token_id)
    for titles, instruction in ((False, INSTRUCTION), (True, TITLE_INSTRUCTION)):
        exemplars = resolve_exemplars("auto", "summe", 0, DATA, titles=titles)
        ours, theirs = PromptBuilder(tok, exemplars, instruction), PromptBuilder(ref, exemplars, instruction)
        assert (ours.prefix_text, ours.prefix_ids, ours.score_tokens) == (
            theirs.prefix_text, theirs.prefix_ids, theirs.score_tokens)
        for w in windows:
            query = theirs.query_text(w)
            assert ours.query_text(w) == query
            a = tok(query, add_special_tokens=False, return_offsets_mapping=True)
            b = ref(query, add_special_tokens=False, return_offsets_mapping=True)
            assert a["input_ids"] == b["input_ids"]
            assert [tuple(o) for o in a["offset_mapping"]] == [tuple(o) for o in b["offset_mapping"]]
            assert tok.decode(a["input_ids"]) == ref.decode(b["input_ids"]) == query


def test_model_specific_tokenizer_classes_are_left_to_transformers(tmp_path, smollm2_folder):
    """LlamaTokenizer, Qwen2Tokenizer and the like rebuild tokenizer.json's normaliser from their flags."""
    assert FolderTokenizer.reads(smollm2_folder)  # TokenizersBackend: tokenizer.json as it is
    config = json.loads((smollm2_folder / "tokenizer_config.json").read_text())
    shutil.copy(smollm2_folder / "tokenizer.json", tmp_path)
    for kind, reads in (("PreTrainedTokenizerFast", True), ("LlamaTokenizer", False), ("Qwen2Tokenizer", False)):
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": kind}))
        assert FolderTokenizer.reads(tmp_path) is reads, kind
    (tmp_path / "tokenizer.json").unlink()
    assert not FolderTokenizer.reads(tmp_path)


def test_smollm2_decoder_gives_transformers_states(smollm2_folder):
    """Every hidden state and the logits of a real prompt, layer by layer, through both models."""
    import torch
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    model = load_decoder(smollm2_folder)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as config.json says
    builder = PromptBuilder(FolderTokenizer(smollm2_folder), resolve_exemplars("auto", "summe", 0, DATA))
    ids = torch.tensor([builder.prefix_ids])
    with torch.no_grad():
        out = ref(ids, output_hidden_states=True)
        x = model.model.embed_tokens(ids)
        cos, sin = model.model.rotary_emb(x, torch.arange(ids.shape[1])[None])
        rcos, rsin = ref.model.rotary_emb(x, torch.arange(ids.shape[1])[None])
        assert torch.equal(cos, rcos) and torch.equal(sin, rsin)
        assert torch.equal(x, out.hidden_states[0])
        for layer, rlayer in zip(model.model.layers, ref.model.layers):
            for name in ("input_layernorm", "post_attention_layernorm", "mlp"):
                assert torch.equal(getattr(layer, name)(x), getattr(rlayer, name)(x)), name
        assert torch.equal(model.model.norm(out.hidden_states[-2]), ref.model.norm(out.hidden_states[-2]))
        assert torch.equal(model.lm_head(out.hidden_states[-1]), out.logits)


def _tiny_qwen2(folder, smollm2_folder, **config):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = FolderTokenizer(smollm2_folder)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, use_sliding_window=False, sliding_window=64,
                      eos_token_id=tok.eos_token_id, **config)
    model = Qwen2ForCausalLM(cfg).eval()
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(smollm2_folder / name, folder / name)
    return model


def test_own_qwen2_decoder_in_the_fast_path_gives_transformers_states(tmp_path, smollm2_folder, windows):
    """Qwen2 (q/k/v biases, an untied output layer, a sliding window it does not use) loaded by llmvs.decoder:
    the fast path's batched forward over the shared prefix gives transformers' states of prefix + query, and
    the windows whose greedy answer does not start with "Score: " (all of a random model's) go to the
    plain path through the transformers model."""
    import torch

    from llmvs.window_scorer import WindowScorer, is_llama_style

    ref = _tiny_qwen2(tmp_path, smollm2_folder, tie_word_embeddings=False)
    model = load_decoder(tmp_path)
    assert is_llama_style(model) and model.model.layers[0].self_attn.q_proj.bias is not None
    assert model.model.layers[0].self_attn.o_proj.bias is None
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    builder = PromptBuilder(FolderTokenizer(tmp_path), resolve_exemplars("auto", "summe", 0, DATA))
    scorer = WindowScorer(model, builder, max_new_tokens=3, batch_size=4, reference=lambda: ref)
    queries = [builder.encode(builder.query_text(w)) for w in windows]
    lens = torch.tensor([len(q) for q in queries])
    ids = torch.full((len(queries), int(lens.max())), builder.tok.pad_token_id)
    for r, q in enumerate(queries):
        ids[r, :len(q)] = torch.tensor(q)
    P = len(builder.prefix_ids)
    with torch.no_grad():
        h, mid = scorer._forward(ids, lens, scorer._prefix_states(), kv_out=[], slots=ids.shape[1])
        for r, q in enumerate(queries):
            states = ref(torch.tensor([builder.prefix_ids + q]), output_hidden_states=True).hidden_states
            torch.testing.assert_close(h[r, :len(q)], states[-1][0, P:], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(mid[r, :len(q)], states[scorer.mid][0, P:], rtol=1e-4, atol=1e-5)
    for w, f in zip(windows[:2], scorer.fast(windows[:2])):
        p = scorer.plain(w)
        assert f.path == "plain" and (f.answer, f.q.tolist()) == (p.answer, p.q.tolist())
    assert scorer.generator() is ref


def test_layouts_the_decoder_does_not_implement_load_through_transformers(tmp_path, smollm2_folder):
    _tiny_qwen2(tmp_path, smollm2_folder)
    config = json.loads((tmp_path / "config.json").read_text())
    assert load_decoder(tmp_path) is not None
    for change in ({"use_sliding_window": True, "sliding_window": 64}, {"layer_types": ["sliding_attention"] * 2},
                   {"model_type": "qwen3"}, {"hidden_act": "gelu"},
                   {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}):
        (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
        assert load_decoder(tmp_path) is None, change
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(LlmvsError, match=r"weights do not match its config.json \(missing \['model.layers.2"):
        load_decoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").rename(tmp_path / "other.safetensors")
    assert load_decoder(tmp_path) is None  # no safetensors: transformers reads the other formats


def test_a_fast_prompts_worker_starts_without_importing_transformers():
    code = ("import sys; from llmvs.llm_stage import PromptRunner; "
            f"r = PromptRunner('smollm2', 'auto', 'summe', 0, 'fast', 'float32', data_dir={str(DATA)!r}); "
            "r.scorer._prefix_states(); "
            "print(type(r.model).__name__, sorted(m for m in ('transformers', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "Decoder []"


def test_a_layout_left_to_transformers_is_resolved_and_warned_about_once(tmp_path, smollm2_folder, monkeypatch,
                                                                         capsys):
    import llmvs.machine
    from llmvs.llm import load_fast_llm

    _tiny_qwen2(tmp_path, smollm2_folder)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "use_sliding_window": True, "sliding_window": 64}))
    monkeypatch.setattr(llmvs.machine, "native_bfloat16", lambda: False)
    tok, model, _, reference = load_fast_llm(str(tmp_path), "bfloat16", "cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM" and reference is None
    assert capsys.readouterr().err.count("no native bfloat16") == 1
