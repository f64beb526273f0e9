import json

import numpy as np
import pytest

from conftest import DATA
from llmvs import LlmvsError
from llmvs.captioning import read_caption_file, read_captions, run_captions
from llmvs.datasets import write_annotations
from test_video import sample_clip


def test_import_shipped_captions_for_a_benchmark_video(tmp_path):
    ann = tmp_path / "annotations.parquet"
    write_annotations("summe", ann, DATA)
    out = tmp_path / "video_1.parquet"
    run_captions(out, "import", annotations=ann, video="video_1",
                 source=DATA / "captions" / "blip" / "summe_captions.json.gz", captioner="blip")
    frame_index, captions, meta = read_captions(out)
    assert len(captions) == 300 and frame_index[:3].tolist() == [0, 15, 30]
    assert meta["captioner"] == "blip" and meta["n_frames"] == 4494
    assert captions[0] == "an airplane taking off from an airport runway"


def test_caption_files_are_validated(tmp_path):
    picks = np.arange(0, 60, 15)
    csv_file = tmp_path / "c.csv"
    csv_file.write_text("frame_index,caption\n0,a\n15,b\n30,c\n45,d\n")
    assert read_caption_file(csv_file, picks) == ["a", "b", "c", "d"]
    csv_file.write_text("frame_index,caption\n0,a\n15,b\n30,c\n")
    with pytest.raises(LlmvsError, match="3 captions for 4 sampled frames"):
        read_caption_file(csv_file, picks)
    csv_file.write_text("frame_index,caption\n0,a\n15,b\n31,c\n45,d\n")
    with pytest.raises(LlmvsError, match="do not match"):
        read_caption_file(csv_file, picks)
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"picks": [0, 15, 30, 45], "captions": ["a", " ", "c", "d"]}))
    with pytest.raises(LlmvsError, match="missing caption for frame"):
        read_caption_file(js, picks)
    with pytest.raises(LlmvsError, match="not found"):
        read_caption_file(tmp_path / "nope.csv", picks)


def _tiny_llava(folder):
    """A randomly initialised LLaVA (CLIP tower + 2-layer Llama) with SmolLM2's tokenizer: real
    machinery, meaningless captions."""
    from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from llmvs.llm import resolve_llm

    tok = AutoTokenizer.from_pretrained(resolve_llm("smollm2")[0])
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vcfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=224, patch_size=14)
    tcfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg = LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_id=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-2, vision_feature_select_strategy="default")
    LlavaForConditionalGeneration(cfg).save_pretrained(folder)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 224},
                                                             crop_size={"height": 224, "width": 224}),
                          tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, image_token="<image>")
    proc.save_pretrained(folder)


def test_transformers_backend_with_a_tiny_random_llava(tmp_path):
    import torch

    from llmvs.video import decode_frames

    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-llava-random"
    _tiny_llava(model_dir)
    frames = tmp_path / "bikes.parquet"
    decode_frames(sample_clip("bikes.mp4"), frames)
    out = tmp_path / "captions.parquet"
    run_captions(out, "transformers", frames=frames, model_dir=model_dir, batch_size=4)
    frame_index, captions, meta = read_captions(out)
    assert frame_index.tolist() == list(range(0, 250, 15))
    assert meta["captioner"] == "tiny-llava-random"  # random weights: the text is meaningless
    assert len(captions) == 17 and all(len(c.strip()) > 20 for c in captions)
    # each caption is what the model writes for that frame alone: batching (frames 0 and 4 share
    # a batch of 4, frame 16 is alone in the last one) changes nothing, and the text is decoded whole
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from llmvs.captioning import MAX_NEW_TOKENS, frame_images, vlm_prompt
    from llmvs.io import read_parquet

    proc = AutoProcessor.from_pretrained(model_dir)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
    images = frame_images(read_parquet(frames))
    for i in (0, 4, 16):
        inputs = proc(images=images[i], text=vlm_prompt(proc), return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        new_tokens = gen[0, inputs["input_ids"].shape[1]:]
        assert captions[i] == proc.decode(new_tokens, skip_special_tokens=True).strip()
        assert len(new_tokens) == MAX_NEW_TOKENS  # random weights never say end-of-text: 77 tokens each


def test_vllm_backend_reports_a_missing_install(tmp_path):
    from llmvs.captioning import caption_vllm

    pytest.importorskip("PIL")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(LlmvsError, match="envs/vllm.yaml"):
            caption_vllm([], tmp_path)
    else:
        pytest.skip("vllm is installed; the opt-in vllm test covers it")
