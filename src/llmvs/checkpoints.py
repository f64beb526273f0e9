"""Trained scorers as files: save and load a checkpoint, score a video's features with it.

A checkpoint (`model.pt` of a split, or a release scorer) holds one model per trained seed, each the
mean of its ensemble members, with the aggregator's configuration and the run's training keys.
Evaluation and `llmvs summarize` read checkpoints through this module only; neither imports the
trainer.

    models, ckpt = load_scorers("results/tvsum/runs/blip/smollm2/llmvs/split0/model.pt")
    scores = checkpoint_scores(models[0], ckpt, x, scorer=path, features=arrow_path, smooth_steps=12)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmvs import LlmvsError


def device():
    """CUDA whenever present, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict(model, x: np.ndarray) -> np.ndarray:
    """One video's step scores [T] from its features [T, D], in eval mode without gradients."""
    import torch

    dev = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x, device=dev)[None]).float()[0].cpu().numpy()


def smooth_scores(scores: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of one video's step scores over time (sigma in steps; 0 = unchanged).

    sigma is capped at a quarter of the video's steps: a wider kernel would turn a short clip's scores
    into a ramp between its two ends (no benchmark video is that short for sigma <= 16: >= 64 steps)."""
    from scipy.ndimage import gaussian_filter1d

    if not sigma >= 0:
        raise LlmvsError(f"smooth_steps must be >= 0 (sigma in steps), not {sigma!r}")
    sigma = min(sigma, len(scores) / 4)
    return gaussian_filter1d(scores, sigma, mode="nearest") if sigma > 0 else scores


def checkpoint_scores(model, ckpt: dict, x: np.ndarray, *, scorer, features, smooth_steps: float = 0.0) -> np.ndarray:
    """A trained model's step scores for one video, smoothed over time by `smooth_steps` (an evaluation
    setting: the weights do not depend on it). `scorer` and `features` (the files `ckpt` and `x` came
    from) name both when their widths differ."""
    expected = ckpt["model_config"]["input_dim"]
    if x.shape[1] != expected:
        raise LlmvsError(f"{features}: {x.shape[1]}-d features, but {scorer} was trained on {expected}-d ones "
                         "(use the scorer of the same LLM and features)")
    return smooth_scores(predict(model, x), smooth_steps)


def save_checkpoint(ckpt: dict) -> bytes:
    """The bytes torch.save writes for `ckpt`, identical for identical contents: through a buffer,
    because a file target puts its own (temporary, random) name inside the zip archive."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def load_scorers(path, selection: str | None = None):
    """(one model per trained seed, in eval mode — the mean of its members where it has several —,
    checkpoint). `selection`: the models a rule other than the run's own chose in the same training
    (kept with `llmvs train --also-select`); None or the run's own rule: the run's models."""
    import torch

    from llmvs.aggregator import Ensemble, GlobalAggregator, ModelConfig

    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing model checkpoint (run the train stage)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        config = ModelConfig(**ckpt["model_config"])
        entries = ckpt["seeds"]
        if selection not in (None, ckpt["selection"]):
            kept = ckpt.get("also_selected", {})
            if selection not in kept:
                held = ", ".join([ckpt["selection"], *kept])
                raise LlmvsError(f"{path}: no models selected by {selection} (it holds {held}; "
                                 f"train with --also-select {selection})")
            entries = kept[selection]
        models = []
        for trained in entries:
            members = []
            for state in trained["state_dicts"]:
                m = GlobalAggregator(config)
                m.load_state_dict(state)
                members.append(m)
            models.append(Ensemble(members).to(device()).eval())
    except (OSError, RuntimeError, KeyError, TypeError, EOFError) as err:
        raise LlmvsError(f"{path}: not a readable llmvs checkpoint ({str(err).splitlines()[0]})") from None
    return models, ckpt


def load_model(path):
    """(the checkpoint's first seed's model in eval mode, checkpoint): a release scorer has one."""
    models, ckpt = load_scorers(path)
    return models[0], ckpt
