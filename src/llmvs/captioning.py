"""The `captions` stage: one sentence per sampled frame, one Parquet per video.

Backends:
- `import`: captions someone already made, from a JSON in the shipped format
  (`{video: {"picks": [...], "captions": [...]}}` or one video's `{"picks", "captions"}`) or a CSV
  with columns `frame_index,caption`; checked against the video's picks.
- `transformers`: an HF image-to-text / LLaVA-style model, prompt "Provide a detailed one-sentence
  description", greedy, at most 77 new tokens, batched; a captioner that takes no text prompt (BLIP)
  captions unconditionally with beam search 5 and at most 50 tokens, as the shipped BLIP captions were made.
- `vllm`: the same prompt served by vLLM (LLaVA-1.5-7B or any vLLM vision-language model);
  vllm is imported only here and lives in its own environment (envs/vllm.yaml).

Models of both are a local folder or a hub id (`org/name[@revision]`) prepared beforehand with
`llmvs models prepare` (llmvs.model_store); jobs never download.

Output columns: frame_index, caption; file metadata: captioner, video, n_frames, fps.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from llmvs import LlmvsError

PROMPT = "Provide a detailed one-sentence description"
MAX_NEW_TOKENS = 77
UNPROMPTED_BEAMS, UNPROMPTED_MAX_LENGTH = 5, 50  # BLIP's settings for the shipped captions (data/SOURCES.md)


def _check_captions(source, picks: np.ndarray, frame_index, captions) -> None:
    if len(captions) != len(picks):
        raise LlmvsError(f"{source}: {len(captions)} captions for {len(picks)} sampled frames")
    if not np.array_equal(np.asarray(frame_index, np.int64), picks):
        raise LlmvsError(f"{source}: caption frame indices do not match the sampled frames (0, 15, 30, ...)")
    empty = [int(f) for f, c in zip(frame_index, captions) if not isinstance(c, str) or not c.strip()]
    if empty:
        raise LlmvsError(f"{source}: missing caption for frame(s) {empty[:5]}")


def read_caption_file(path, picks: np.ndarray, key: str | None = None) -> list[str]:
    """Captions for one video from a JSON (shipped format) or CSV file, validated against `picks`."""
    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: captions file not found")
    if path.suffix.lower() == ".csv":
        try:  # utf-8-sig: spreadsheet programs often start the file with a byte-order mark
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header, rows = reader.fieldnames, list(reader)
        except UnicodeDecodeError as err:
            raise LlmvsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        if not header:
            raise LlmvsError(f"{path}: empty file (expected CSV columns frame_index,caption)")
        if not {"frame_index", "caption"} <= set(header):
            raise LlmvsError(f"{path}: expected CSV columns frame_index,caption, found {','.join(header)}")
        if not rows:
            raise LlmvsError(f"{path}: no caption rows after the header")
        try:
            frame_index = [int(r["frame_index"]) for r in rows]
        except (TypeError, ValueError):
            raise LlmvsError(f"{path}: frame_index must be integers") from None
        captions = [r["caption"] for r in rows]
    else:
        from llmvs.datasets import load_caption_json

        data = load_caption_json(path)
        if not isinstance(data, dict):
            raise LlmvsError(f"{path}: not a caption JSON file (expected an object, got a {type(data).__name__})")
        if "captions" not in data:
            if key not in data:
                raise LlmvsError(f"{path}: no captions for video {key!r}")
            data = data[key]
        if not isinstance(data, dict) or not isinstance(data.get("captions"), list):
            raise LlmvsError(f"{path}: the entry for video {key!r} has no \"captions\" list")
        captions = data["captions"]
        frame_index = data.get("picks", list(picks[: len(captions)]))
    _check_captions(path, picks, frame_index, captions)
    return captions


def write_captions(out, frame_index, captions, *, captioner: str, video: str, n_frames: int, fps: float) -> None:
    from llmvs.io import write_parquet

    table = pa.table({"frame_index": pa.array(frame_index, pa.int64()), "caption": pa.array(captions, pa.string())})
    write_parquet(table, out, metadata={"captioner": captioner, "video": video, "n_frames": n_frames, "fps": fps})


def read_captions(path) -> tuple[np.ndarray, list[str], dict]:
    """(frame_index, captions, metadata) from a captions Parquet."""
    from llmvs.io import read_parquet, table_metadata

    table = read_parquet(path, "captions")
    if not {"frame_index", "caption"} <= set(table.column_names):
        raise LlmvsError(f"{path}: not a captions file (needs frame_index, caption)")
    return table.column("frame_index").to_numpy(), table.column("caption").to_pylist(), table_metadata(table)


def frame_images(frames_table) -> list:
    """The JPEG frames of a frames Parquet as RGB PIL images."""
    from PIL import Image

    return [Image.open(io.BytesIO(b)).convert("RGB") for b in frames_table.column("jpeg").to_pylist()]


def vlm_prompt(proc) -> str:
    """The processor's own chat prompt with one image, else the LLaVA-1.5 conversation format."""
    image_token = getattr(proc, "image_token", "<image>")
    if getattr(proc, "chat_template", None):
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        try:
            prompt = proc.apply_chat_template(msgs, add_generation_prompt=True)
            if image_token in prompt:
                return prompt
        except Exception:  # a text-only template (no image parts): use the LLaVA-1.5 format
            pass
    return f"USER: {image_token}\n{PROMPT} ASSISTANT:"


def _model_dir(model) -> Path:
    """The folder of a captioning model: a local folder, or a hub id prepared with `llmvs models prepare`."""
    from llmvs.model_store import resolve_model

    return resolve_model(str(model))


def takes_prompt(proc) -> bool:
    """Whether a captioner reads a text prompt: a chat template or an image placeholder token (LLaVA);
    BLIP has neither, and text given to it would be continued as the start of the caption."""
    return bool(getattr(proc, "chat_template", None) or getattr(proc, "image_token", None))


def caption_transformers(images, model_dir, batch_size: int = 8, max_new_tokens: int | None = None,
                         device: str | None = None, num_beams: int | None = None) -> list[str]:
    """Captions from a local HF vision-language model: a LLaVA-style model answers PROMPT greedily
    (at most 77 new tokens); a captioner without a prompt (BLIP) captions unconditionally, with
    beam search 5 and at most 50 tokens. `max_new_tokens` / `num_beams` override either."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = _model_dir(model_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    proc = AutoProcessor.from_pretrained(model_dir)
    # weights in the checkpoint's own dtype (transformers' default "auto": float16 for LLaVA), loaded shard
    # by shard straight onto the device: on a GPU a 7B captioner never needs 14 GB of host memory
    model = AutoModelForImageTextToText.from_pretrained(model_dir, device_map=device).eval()
    tok = getattr(proc, "tokenizer", proc)
    tok.padding_side = "left"  # batched generation continues every row from its last real token
    prompt = vlm_prompt(proc) if takes_prompt(proc) else None
    if prompt is None:
        limit = {"max_new_tokens": max_new_tokens} if max_new_tokens else {"max_length": UNPROMPTED_MAX_LENGTH}
        beams = num_beams or UNPROMPTED_BEAMS
    else:
        limit, beams = {"max_new_tokens": max_new_tokens or MAX_NEW_TOKENS}, num_beams or 1
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="captions", unit="batch"):
        batch = images[i:i + batch_size]
        if prompt is None:
            inputs = proc(images=batch, return_tensors="pt").to(device)
        else:
            inputs = proc(images=batch, text=[prompt] * len(batch), return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            gen = model.generate(**inputs, **limit, num_beams=beams, do_sample=False)
        # a prompt comes back in front of the answer; BLIP's output starts with its own start token
        new = gen[:, inputs["input_ids"].shape[1]:] if "input_ids" in inputs else gen
        out += [t.strip() for t in proc.batch_decode(new, skip_special_tokens=True)]
    return out


def caption_vllm(images, model_dir, max_new_tokens: int = MAX_NEW_TOKENS, dtype: str = "auto") -> list[str]:
    """Greedy captions served by vLLM (lazy import: vllm lives in its own environment)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise LlmvsError("the vllm captioner needs vLLM: use the envs/vllm.yaml environment") from None
    from transformers import AutoProcessor

    model_dir = _model_dir(model_dir)
    prompt = vlm_prompt(AutoProcessor.from_pretrained(model_dir))  # the same prompt as the transformers backend
    llm = LLM(model=str(model_dir), dtype=dtype, limit_mm_per_prompt={"image": 1})
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    outs = llm.generate([{"prompt": prompt, "multi_modal_data": {"image": im}} for im in images], params)
    return [o.outputs[0].text.strip() for o in outs]


def run_captions(out, backend: str, *, frames=None, annotations=None, video=None, source=None,
                 model_dir=None, captioner: str | None = None, batch_size: int = 8) -> None:
    """The `captions` stage for one video."""
    from llmvs.io import read_parquet, table_metadata

    if backend == "import":
        if annotations:
            from llmvs.datasets import read_annotations

            videos = read_annotations(annotations)
            if video not in videos:
                raise LlmvsError(f"{annotations}: no video {video!r}")
            v = videos[video]
            picks, n_frames, fps, key = v.picks, v.n_frames, v.fps, v.caption_key
        elif frames:
            table = read_parquet(frames, "frames")
            meta = table_metadata(table)
            picks, n_frames, fps, key = table.column("frame_index").to_numpy(), meta["n_frames"], meta["fps"], video
        else:
            raise LlmvsError("captions --backend import needs --annotations/--video or --frames")
        if not source:
            raise LlmvsError("captions --backend import needs --source FILE")
        caps = read_caption_file(source, picks, key)
        write_captions(out, picks, caps, captioner=captioner or f"import:{Path(source).name}",
                       video=video or Path(frames).stem, n_frames=n_frames, fps=fps)
        return
    if backend not in ("transformers", "vllm"):
        raise LlmvsError(f"unknown captions backend {backend!r}: import, transformers or vllm")
    if not frames or not model_dir:
        raise LlmvsError(f"captions --backend {backend} needs --frames and --model")
    table = read_parquet(frames, "frames")
    meta = table_metadata(table)
    images = frame_images(table)
    caps = (caption_transformers(images, model_dir, batch_size) if backend == "transformers"
            else caption_vllm(images, model_dir))
    write_captions(out, table.column("frame_index").to_numpy(), caps, captioner=captioner or Path(model_dir).name,
                   video=meta.get("video", Path(frames).stem), n_frames=meta["n_frames"], fps=meta["fps"])
