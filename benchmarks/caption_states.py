"""Experiment: the LLM as a sentence encoder, every caption through it on its own (no window, no prompt).

Inside a window prompt a caption's states are dominated by what is the same in every window (the
template, the neighbouring captions): pooled window states of adjacent steps have cosine ~.998
(docs/tried.md). Here each distinct caption is encoded once, after a fixed "Frame:" lead-in (so the
first-token attention sink is not a caption token), and its tokens' states are averaged — at the
final RMSNorm and after the middle layer (unit RMS per token). Per step, in the embeddings file
format of the LLM stage: `q_text` = element-wise max over the window's caption vectors (w = 7),
`q_text_mean` their mean, `c` = the centre caption's vector; `mid_*` the same from layer L/2.

Writes results/<dataset>/embeddings/<captioner>/<llm>-captions/<video>.arrow, which
`validation_sweep.py` reads for options whose encoder is "captions" (docs/tried.md has the rows).

    python benchmarks/caption_states.py --results results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

LEAD_IN = "Frame:"
COLUMNS = {
    "q_text": "max over the window's captions of each caption's own mean token state; final RMSNorm",
    "q_text_mean": "mean over the window's captions of each caption's own mean token state; final RMSNorm",
    "c": "the centre caption's own mean token state; final RMSNorm",
    "mid_q_text": "max over the window's captions of each caption's own mean token state; layer L/2, unit RMS",
    "mid_q_text_mean": "mean over the window's captions of each caption's own mean token state; layer L/2, unit RMS",
    "mid_c": "the centre caption's own mean token state; layer L/2, unit RMS",
}


def encode_captions(tok, model, captions: list[str], batch_size: int = 64, progress=None) -> dict[str, np.ndarray]:
    """{"final", "mid"}: [n, D] float32 mean token states of each caption, encoded alone."""
    import torch

    from llmvs import LlmvsError
    from llmvs.window_scorer import unit_rms

    lead = tok.encode(LEAD_IN, add_special_tokens=False)
    ids = [tok.encode(" " + c.strip(), add_special_tokens=False) for c in captions]
    if any(len(i) == 0 for i in ids):
        raise LlmvsError("an empty caption has no tokens to encode")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    mid = model.config.num_hidden_layers // 2
    device = next(model.parameters()).device
    dim = model.config.hidden_size
    out = {"final": np.zeros((len(ids), dim), np.float32), "mid": np.zeros((len(ids), dim), np.float32)}
    order = np.argsort([len(i) for i in ids], kind="stable")  # similar lengths share a batch: little padding
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = len(lead) + max(len(ids[r]) for r in rows)
        batch = torch.full((len(rows), width), pad, dtype=torch.long)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        span = torch.zeros((len(rows), width, 1))
        for j, r in enumerate(rows):
            n = len(lead) + len(ids[r])
            batch[j, :n] = torch.tensor(lead + ids[r])
            attn[j, :n] = 1
            span[j, len(lead):n] = 1
        with torch.no_grad():
            hs = model.model(input_ids=batch.to(device), attention_mask=attn.to(device),
                             output_hidden_states=True).hidden_states
        span = span.to(device)
        count = span.sum(1)
        for name, h in (("final", hs[-1].float()), ("mid", unit_rms(hs[mid]))):
            out[name][rows] = ((h * span).sum(1) / count).cpu().numpy()
        if progress is not None:
            progress(len(rows))
    return out


def window_columns(final: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    """Every column of COLUMNS for one video from its per-step caption vectors."""
    from llmvs.prompt_builder import window_indices
    from llmvs.tfidf import window_features  # q_text (window max) and c, as the TF-IDF control's

    cols = {}
    for layer, vec in (("", final), ("mid_", mid)):
        cols.update({f"{layer}{k}": v for k, v in window_features(vec).items()})
        cols[f"{layer}q_text_mean"] = np.stack([vec[list(window_indices(t, len(vec)))].mean(axis=0)
                                                for t in range(len(vec))])
    return cols


def run_caption_states(captions_files: list, outs: list, llm: str = "smollm2", dtype: str = "float32",
                       threads: int | None = None, batch_size: int = 64) -> None:
    """The stage: each distinct caption of the videos given encoded once, one Arrow file per video."""
    from tqdm import tqdm

    from llmvs.captioning import read_captions
    from llmvs.embeddings import features_table, write_arrow
    from llmvs.llm import load_llm

    if threads:
        import torch

        torch.set_num_threads(threads)
    videos = [read_captions(f) for f in captions_files]
    distinct = sorted({c for _, caps, _ in videos for c in caps})
    tok, model, model_id = load_llm(llm, dtype)
    with tqdm(total=len(distinct), desc="captions", unit="caption", mininterval=5) as bar:
        states = encode_captions(tok, model, distinct, batch_size, progress=bar.update)
    where = {c: i for i, c in enumerate(distinct)}
    for (frame_index, caps, meta), out in zip(videos, outs):
        rows = [where[c] for c in caps]
        table = features_table(frame_index, window_columns(states["final"][rows], states["mid"][rows]), {
            "model": model_id, "dtype": dtype, "captioner": meta.get("captioner"), "video": meta.get("video"),
            "n_frames": meta.get("n_frames"), "fps": meta.get("fps"), "lead_in": LEAD_IN, "columns": COLUMNS})
        write_arrow(table, out)


def main() -> int:
    from llmvs import LlmvsError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="pipeline results folder (captions in, embeddings out)")
    p.add_argument("--captioner", default="blip")
    p.add_argument("--llm", default="smollm2")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    for ds in ("summe", "tvsum"):
        caps = sorted((Path(a.results) / ds / "captions" / a.captioner).glob("*.parquet"))
        if not caps:
            raise LlmvsError(f"{Path(a.results) / ds / 'captions' / a.captioner}: no caption files")
        out = Path(a.results) / ds / "embeddings" / a.captioner / f"{a.llm}-captions"
        out.mkdir(parents=True, exist_ok=True)
        run_caption_states(caps, [out / f"{c.stem}.arrow" for c in caps], a.llm, a.dtype, a.threads)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
