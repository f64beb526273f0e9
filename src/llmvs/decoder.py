"""The fast path's own Llama-style decoder and tokenizer, loaded without transformers.

The fast path (llmvs.window_scorer) runs the decoder layer by layer itself: it needs the layer
modules and the tokenizer, nothing of transformers' generation or loading machinery, whose imports
are most of a fresh job's start (docs/timings.md). `load_decoder(folder, dtype)` builds the same
modules, under the same parameter names and with the same arithmetic as transformers' Llama, Qwen2
and Mistral, straight from the folder's config.json and safetensors; `FolderTokenizer` reads its
tokenizer.json with `tokenizers` and renders its chat template with jinja2 as transformers does.
A layout it does not implement (rope scaling, sliding windows, q/k norms, another activation) gives
None, and the caller loads the model through transformers instead.

    tok = FolderTokenizer(folder); model = load_decoder(folder, "float32", "cpu")
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from llmvs import LlmvsError

# q/k/v/o biases of each layout; "config" reads config.json's attention_bias (Llama)
_ATTENTION_BIAS = {"llama": "config", "mistral": (False, False), "qwen2": (True, False)}


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), -1)


def apply_rotary(q, k, cos, sin):
    """Rotary position embedding of q, k [B, H, L, d] with cos, sin [B, L, d]."""
    cos, sin = cos[:, None], sin[:, None]
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class Linear(nn.Module):
    """nn.Linear without its random initialisation (the weights are always loaded)."""

    def __init__(self, n_in: int, n_out: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.bias = nn.Parameter(torch.empty(n_out)) if bias else None

    def forward(self, x):
        return nn.functional.linear(x, self.weight, self.bias)


class Embedding(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, dim))

    def forward(self, ids):
        return nn.functional.embedding(ids, self.weight)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)).to(dtype)


class Rotary(nn.Module):
    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self.register_buffer("inv_freq", self.frequencies("cpu"), persistent=False)

    def frequencies(self, device):
        return 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float, device=device) / self.head_dim))

    def forward(self, x, positions):
        freqs = positions[..., None].float() * self.inv_freq.to(x.device)
        emb = torch.cat((freqs, freqs), -1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c, qkv_bias: bool, o_bias: bool):
        super().__init__()
        self.head_dim = c.head_dim
        self.scaling = c.head_dim ** -0.5
        self.q_proj = Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=qkv_bias)
        self.k_proj = Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=qkv_bias)
        self.v_proj = Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=qkv_bias)
        self.o_proj = Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=o_bias)


class MLP(nn.Module):
    def __init__(self, c, bias: bool):
        super().__init__()
        self.gate_proj = Linear(c.hidden_size, c.intermediate_size, bias=bias)
        self.up_proj = Linear(c.hidden_size, c.intermediate_size, bias=bias)
        self.down_proj = Linear(c.intermediate_size, c.hidden_size, bias=bias)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, qkv_bias: bool, o_bias: bool, mlp_bias: bool):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c, qkv_bias, o_bias)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c, mlp_bias)


class Body(nn.Module):
    def __init__(self, c, qkv_bias: bool, o_bias: bool, mlp_bias: bool, theta: float):
        super().__init__()
        self.embed_tokens = Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(Layer(c, qkv_bias, o_bias, mlp_bias) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.rotary_emb = Rotary(c.head_dim, theta)


class Decoder(nn.Module):
    """The modules of a Llama-style causal LM (no forward of its own: the fast path runs the layers)."""

    def __init__(self, c, qkv_bias: bool, o_bias: bool, mlp_bias: bool, theta: float, eos):
        super().__init__()
        self.config, self.generation_config = c, SimpleNamespace(eos_token_id=eos)
        self.model = Body(c, qkv_bias, o_bias, mlp_bias, theta)
        self.lm_head = Linear(c.hidden_size, c.vocab_size, bias=False)

    def get_output_embeddings(self):
        return self.lm_head


def _layout(config: dict):
    """(q/k/v bias, o bias, mlp bias, rope theta) of a layout this module implements, else None."""
    kind = config.get("model_type")
    rope = config.get("rope_parameters") or {"rope_type": "default", "rope_theta": config.get("rope_theta", 10000.0)}
    if (kind not in _ATTENTION_BIAS or config.get("hidden_act", "silu") != "silu" or config.get("rope_scaling")
            or rope.get("rope_type", "default") != "default" or "rope_theta" not in rope
            or (config.get("sliding_window") and config.get("use_sliding_window", True))
            or any(t != "full_attention" for t in config.get("layer_types") or [])):
        return None
    bias = _ATTENTION_BIAS[kind]
    qkv_bias, o_bias = (config.get("attention_bias", False),) * 2 if bias == "config" else bias
    return bool(qkv_bias), bool(o_bias), bool(config.get("mlp_bias", False)), float(rope["rope_theta"])


def _weight_files(folder: Path) -> list[Path]:
    """The folder's safetensors files (none where it holds only other formats)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    return [folder / "model.safetensors"] if (folder / "model.safetensors").is_file() else []


def load_decoder(folder, dtype: str = "float32", device: str = "cpu") -> Decoder | None:
    """The folder's model as a `Decoder` in eval mode; None when its layout is not one implemented here
    or it has no safetensors weights."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    layout, files = _layout(config), _weight_files(folder)
    if layout is None or not files:
        return None
    c = SimpleNamespace(**config)
    c.head_dim = config.get("head_dim") or c.hidden_size // c.num_attention_heads
    c.num_key_value_heads = config.get("num_key_value_heads") or c.num_attention_heads
    c.rms_norm_eps = config.get("rms_norm_eps", 1e-6)  # transformers' default for these layouts
    generation = folder / "generation_config.json"
    eos = json.loads(generation.read_text()).get("eos_token_id") if generation.is_file() else None
    with torch.device("meta"):  # no memory and no random init: the weights are assigned below
        model = Decoder(c, *layout, eos=eos if eos is not None else config.get("eos_token_id"))
    state = {}
    for f in files:
        state.update({k: v.to(getattr(torch, dtype)) for k, v in load_file(f, device=device).items()
                      if not k.endswith("rotary_emb.inv_freq")})
    tied = bool(config.get("tie_word_embeddings", False))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise LlmvsError(f"{folder}: weights do not match its config.json "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    rotary = model.model.rotary_emb
    rotary.inv_freq = rotary.frequencies(device)
    return model.eval().requires_grad_(False)


def _token_text(token) -> str | None:
    return token.get("content") if isinstance(token, dict) else token


class FolderTokenizer:
    """A model folder's tokenizer.json and chat template, with the calls of transformers' tokenizers
    that the prompt builder and the scorers make."""

    SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")
    # the classes that use tokenizer.json as it is; model-specific ones (LlamaTokenizer, Qwen2Tokenizer, ...)
    # rebuild its normaliser or pre-tokenizer from tokenizer_config.json's flags
    VERBATIM = ("TokenizersBackend", "PreTrainedTokenizerFast")

    @classmethod
    def reads(cls, folder) -> bool:
        """Whether this class tokenizes the folder's text as transformers does."""
        folder = Path(folder)
        config = folder / "tokenizer_config.json"
        kind = json.loads(config.read_text()).get("tokenizer_class") if config.is_file() else None
        return (folder / "tokenizer.json").is_file() and kind in (None, *cls.VERBATIM)

    def __init__(self, folder):
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        self.special = {k: _token_text(config[k]) for k in self.SPECIAL if config.get(k) is not None}
        template = folder / "chat_template.jinja"
        self.chat_template = template.read_text() if template.is_file() else config.get("chat_template")
        if not isinstance(self.chat_template, (str, type(None))):
            raise LlmvsError(f"{config_file}: named chat templates are not supported; load it through transformers")
        self._compiled = None
        self.eos_token_id = self._id("eos_token")
        self.pad_token_id = self._id("pad_token")

    def _id(self, name: str) -> int | None:
        return self._tok.token_to_id(self.special[name]) if name in self.special else None

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict:
        enc = self._tok.encode(text, add_special_tokens=add_special_tokens)
        out = {"input_ids": enc.ids}
        if return_offsets_mapping:
            out["offset_mapping"] = enc.offsets
        return out

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = False) -> str:
        if tokenize or self.chat_template is None:
            raise LlmvsError("FolderTokenizer renders chat templates to text only, and needs one")
        if self._compiled is None:
            self._compiled = _compile_template(self.chat_template)
        return self._compiled.render(messages=messages, add_generation_prompt=add_generation_prompt, tools=None,
                                     documents=None, **self.special)


def _compile_template(template: str):
    """The template in the sandboxed environment transformers renders chat templates in."""
    from datetime import datetime

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)
