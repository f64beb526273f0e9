"""Image features of sampled frames, for the eccv16 `features` field (`llmvs export-h5`).

The field's convention is GoogLeNet pool5 (1024-d, ImageNet weights). Two kinds of model spec:
- `torchvision:<weights>` (e.g. `torchvision:GoogLeNet_Weights.IMAGENET1K_V1`, or an architecture
  name such as `torchvision:googlenet` for its default weights): the model with its classifier head
  removed, i.e. the pooled features (GoogLeNet: pool5). Needs torchvision, which must match the
  installed torch (it cannot be installed beside this machine's CPU torch); torchvision downloads
  the weights into $TORCH_HOME the first time, so run once where the network is reachable.
- a transformers image model by hub id (prepared once with `llmvs models prepare`) or local folder:
  its pooled output (`pooler_output`, or `get_image_features` for CLIP-like models, else the mean
  of the last hidden states).

    enc = load_image_encoder("google/vit-base-patch16-224"); feats = encode_jpegs(enc, jpegs)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

from llmvs import LlmvsError

TORCHVISION = "torchvision:"


@dataclass(frozen=True)
class ImageEncoder:
    id: str                                 # what the features came from, for provenance
    encode: Callable[[list], np.ndarray]    # RGB PIL images -> float32 [n, D]


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _torchvision_encoder(spec: str) -> ImageEncoder:
    name = spec[len(TORCHVISION):]
    try:
        import torch
        import torchvision.models as tvm
    except ImportError:
        raise LlmvsError(f"{spec}: torchvision is not installed (it must match the installed torch); use a "
                         "transformers image model (hub id or folder) instead") from None
    try:
        if "." in name:  # a weights name: find the architecture those weights belong to
            weights = tvm.get_weight(name)
            arch = next(m for m in tvm.list_models() if tvm.get_model_weights(m) is type(weights))
        else:
            arch, weights = name, tvm.get_model_weights(name).DEFAULT
        model = tvm.get_model(arch, weights=weights)
    except (ValueError, KeyError, StopIteration) as err:
        raise LlmvsError(f"{spec}: not a torchvision model or weights name ({err})") from None
    for head in ("fc", "heads", "head", "classifier"):  # drop the classifier: the pooled features remain
        if hasattr(model, head):
            setattr(model, head, torch.nn.Identity())
            break
    device = _device()
    model = model.eval().to(device)
    transform = weights.transforms()

    def encode(images):
        with torch.no_grad():
            x = torch.stack([transform(im) for im in images]).to(device)
            return model(x).reshape(len(images), -1).float().cpu().numpy()

    return ImageEncoder(f"torchvision:{arch}/{weights}", encode)


def _pooled(out):
    """The pooled output of a transformers vision model's forward (or get_image_features) result."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled
    hidden = out.last_hidden_state
    return hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)  # conv maps / token sequences


def _transformers_encoder(spec: str, models_dir=None) -> ImageEncoder:
    import torch
    from transformers import AutoImageProcessor, AutoModel

    from llmvs.model_store import describe_model, resolve_model

    folder = resolve_model(spec, models_dir)
    try:
        proc = AutoImageProcessor.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as err:
        raise LlmvsError(f"{folder}: not a transformers image model ({' '.join(str(err).split())[:200]})") from None
    device = _device()
    model = model.eval().to(device)

    def encode(images):
        pixels = proc(images=images, return_tensors="pt")["pixel_values"].to(device)
        with torch.no_grad():
            out = model.get_image_features(pixel_values=pixels) if hasattr(model, "get_image_features") \
                else model(pixel_values=pixels)
        return _pooled(out).reshape(len(images), -1).float().cpu().numpy()

    return ImageEncoder(describe_model(spec, folder), encode)


def load_image_encoder(spec: str, models_dir=None) -> ImageEncoder:
    """An encoder for `torchvision:<weights or architecture>` or a transformers hub id / folder."""
    spec = str(spec)
    return _torchvision_encoder(spec) if spec.startswith(TORCHVISION) else _transformers_encoder(spec, models_dir)


def encode_jpegs(encoder: ImageEncoder, jpegs: list[bytes], batch_size: int = 32, desc: str = "") -> np.ndarray:
    """float32 [n, D] features of JPEG frames, decoded a batch at a time (a long video's frames never
    sit in memory all at once as images)."""
    from PIL import Image
    from tqdm import tqdm

    parts = []
    for start in tqdm(range(0, len(jpegs), batch_size), desc=f"features {desc}", unit="batch", mininterval=2):
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in jpegs[start:start + batch_size]]
        parts.append(encoder.encode(images))
    feats = np.concatenate(parts).astype(np.float32)
    if not np.isfinite(feats).all():
        raise LlmvsError(f"{desc}: the image model {encoder.id} gave NaN/inf features")
    return feats
