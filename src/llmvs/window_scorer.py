"""Running caption windows through a transformers causal LLM, keeping its hidden states.

For every window: the greedy answer ("Score: N"), the output of the final RMSNorm
(`hidden_states[-1]`) at every query and answer token, the same tokens' states after the middle
layer (`hidden_states[L // 2]`, each token scaled to unit RMS so float16 storage is safe), and
p(score = 1..10) read from the next-token distributions after "Score: ".

Two paths with the same contract:
- `plain`: the full prompt per window through `generate`, batch 1 (the reference);
- `fast`: for Llama-style decoders (transformers' modules or llmvs.decoder's, which need no
  transformers import until a window falls back to `plain`). The instruction + examples prefix is
  encoded once and its keys/values are shared by every window without being copied per row
  (attention to the prefix is one batched matmul over all rows); windows are batched by length
  under a token budget; the answer prefix "Score: " (and the first digit of "10") is fed with the
  query and checked against the model's own greedy choice, so usually one decode step remains; the
  LM head runs only where a next token is needed. Identical windows are computed once. Equal to
  `plain` to ~1e-6 in float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmvs import LlmvsError
from llmvs.decoder import apply_rotary
from llmvs.prompt_builder import PromptBuilder


@dataclass
class WindowResult:
    q: np.ndarray  # [L_q, D] final-norm states of the query tokens
    a: np.ndarray  # [L_a, D] final-norm states of the answer tokens
    answer: str
    n_answer_tokens: int = 0
    path: str = field(default="fast")
    q_mid: np.ndarray | None = None  # [L_q, D] middle-layer states, unit RMS per token
    a_mid: np.ndarray | None = None
    score_probs: np.ndarray | None = None  # [10] p(score = 1..10) after "Score: "


def _cpu_flash():
    """PyTorch's fused CPU attention that also returns the log-sum-exp (None where absent)."""
    try:
        import torch

        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    except (ImportError, AttributeError, RuntimeError):
        return None


_CPU_FLASH = _cpu_flash()


def unit_rms(x):
    """Scale each token's state to unit root-mean-square (a parameter-free RMSNorm)."""
    x = x.float()
    return x * x.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt()


def eos_ids(model, tok) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    if tok.eos_token_id is not None:
        ids.append(tok.eos_token_id)
    if not ids:
        raise LlmvsError("the model defines no end-of-sequence token")
    return sorted(set(ids))


def is_llama_style(model) -> bool:
    """The fast path reuses the layers' own modules; it needs the Llama decoder layout."""
    body = getattr(model, "model", None)
    layers = getattr(body, "layers", None)
    if layers is None or not hasattr(body, "rotary_emb") or not hasattr(body, "norm"):
        return False
    a = layers[0].self_attn
    cfg = model.config  # Qwen2 names a sliding window it does not use (use_sliding_window: false)
    sliding = getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True)
    return all(hasattr(a, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and hasattr(layers[0], "mlp") \
        and not sliding and not hasattr(a, "q_norm")


class WindowScorer:
    """Scores windows with a Llama-style causal LM; see the module docstring for the two paths."""

    def __init__(self, model, builder: PromptBuilder, max_new_tokens: int = 8, batch_size: int = 16,
                 token_budget: int = 2048, reference=None):
        """`model`: a transformers causal LM, or llmvs.decoder's `Decoder` (fast path only) with
        `reference`, a callable that loads the same weights through transformers for the windows the
        fast path hands to the plain path."""
        import torch

        self.torch = torch
        self.model, self.b = model, builder
        self._reference, self._reference_model = reference, None
        self.max_new_tokens, self.batch_size, self.token_budget = max_new_tokens, batch_size, token_budget
        self.device = next(model.parameters()).device
        self.eos = set(eos_ids(model, builder.tok))
        self.pad = builder.tok.pad_token_id if builder.tok.pad_token_id is not None else min(self.eos)
        self.n_layers = model.config.num_hidden_layers
        self.mid = self.n_layers // 2
        self._prefix = None
        self.fast_ok = is_llama_style(model)

    # -- reference path ------------------------------------------------------------------------
    def generator(self):
        """The transformers model that `plain` generates with (loaded on first use beside a `Decoder`)."""
        if hasattr(self.model, "generate"):
            return self.model
        if self._reference_model is None:
            if self._reference is None:
                raise LlmvsError("the plain path needs the transformers model: pass `reference`")
            self._reference_model = self._reference()
        return self._reference_model

    def plain(self, window_text: str) -> WindowResult:
        torch = self.torch
        b = self.b
        model = self.generator()
        q_ids = b.encode(b.query_text(window_text))
        ids = torch.tensor([b.prefix_ids + q_ids], device=self.device)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                 do_sample=False, output_hidden_states=True, return_dict_in_generate=True,
                                 pad_token_id=self.pad, eos_token_id=sorted(self.eos))
        start = len(b.prefix_ids)
        q = out.hidden_states[0][-1][0, start:]
        q_mid = out.hidden_states[0][self.mid][0, start:]
        gen = out.sequences[0, ids.shape[1]:].tolist()
        answer = gen[: next((i for i, t in enumerate(gen) if t in self.eos), len(gen))]
        # the state of answer token k is computed when it is fed back, at generation step k + 1
        steps = [out.hidden_states[k + 1] for k in range(len(answer)) if k + 1 < len(out.hidden_states)]
        states = [s[-1][0, -1] for s in steps]
        mids = [s[self.mid][0, -1] for s in steps]
        if len(states) < len(answer):  # stopped at max_new_tokens: feed the last token once more
            full = torch.tensor([b.prefix_ids + q_ids + answer], device=self.device)
            with torch.no_grad():
                hs = model.model(input_ids=full, output_hidden_states=True).hidden_states
            states.append(hs[-1][0, -1])
            mids.append(hs[self.mid][0, -1])
        a = torch.stack(states) if states else q[-1:]
        a_mid = torch.stack(mids) if mids else q_mid[-1:]
        return WindowResult(q.float().cpu().numpy(), a.float().cpu().numpy(), b.tok.decode(answer), len(answer),
                            "plain", unit_rms(q_mid).cpu().numpy(), unit_rms(a_mid).cpu().numpy(),
                            self._plain_score_probs(q_ids))

    def _plain_score_probs(self, q_ids: list[int]) -> np.ndarray:
        torch = self.torch
        probe = self.b.probe_id
        tail = [probe] if probe is not None else []
        ids = torch.tensor([self.b.prefix_ids + q_ids + self.b.answer_prefix_ids + tail], device=self.device)
        with torch.no_grad():
            logits = self.generator()(input_ids=ids).logits[0].float()
        p = logits.softmax(-1).cpu().numpy()
        return self.b.score_probs(p[-1 - len(tail)], p[-1] if tail else None)

    # -- shared-prefix fast path ---------------------------------------------------------------
    def fast(self, window_texts: list[str], progress=None) -> list[WindowResult]:
        """Score many windows; results in input order. Identical windows are computed once.

        `progress` (a tqdm bar, optional) advances by the number of windows each batch covers.
        """
        from collections import Counter

        if not self.fast_ok:
            raise LlmvsError(f"the fast path needs a Llama-style decoder ({type(self.model).__name__} is not); "
                             "use --path plain")
        counts = Counter(window_texts)
        unique = list(counts)
        encoded = {w: self.b.encode(self.b.query_text(w)) for w in unique}
        order = sorted(unique, key=lambda w: len(encoded[w]))  # similar lengths -> little padding
        done: dict[str, WindowResult] = {}
        extra = len(self.b.answer_prefix_ids) + 1
        i = 0
        while i < len(order):  # batches of at most batch_size rows and token_budget padded tokens
            j = i + 1
            while (j < len(order) and j - i < self.batch_size
                   and (j - i + 1) * (len(encoded[order[j]]) + extra) <= self.token_budget):
                j += 1
            chunk = order[i:j]
            for w, r in zip(chunk, self._fast_batch([encoded[w] for w in chunk])):
                done[w] = r if r is not None else self.plain(w)
            if progress is not None:
                progress.update(sum(counts[w] for w in chunk))
            i = j
        return [done[w] for w in window_texts]

    def _prefix_states(self):
        """Keys/values of the shared prefix per layer, [H_kv, P, d] each (computed once)."""
        if self._prefix is None:
            torch = self.torch
            ids = torch.tensor([self.b.prefix_ids], device=self.device)
            kv = []
            self._forward(ids, torch.tensor([len(self.b.prefix_ids)]), None, kv_out=kv, slots=ids.shape[1])
            self._prefix = [(k[0], v[0]) for k, v in kv]
        return self._prefix

    def _attend(self, q, prefix, k, v, mask):
        """Softmax attention of q [B, H, L, d] over the shared prefix and the rows' own keys.

        The prefix ([H_kv, P, d], not expanded per row) is scored for all rows in one matmul; the
        own keys k, v [B, H_kv, S, d] under mask [B, L, S]."""
        torch = self.torch
        B, H, L, d = q.shape
        Hkv = k.shape[1]
        g = H // Hkv
        qg = q.reshape(B, Hkv, g * L, d)
        scale = self.model.model.layers[0].self_attn.scaling
        m = mask[:, None, None, :, :].expand(B, Hkv, g, L, mask.shape[-1]).reshape(B, Hkv, g * L, -1)
        if _CPU_FLASH is not None and q.device.type == "cpu":
            # fused attention per part (never materialises the scores), merged by their log-sum-exp
            bias = torch.zeros(m.shape, dtype=q.dtype).masked_fill_(~m, float("-inf"))[:, :1]
            out, lse = _CPU_FLASH(qg, k, v, attn_mask=bias, scale=scale)
            if prefix is not None:
                kp, vp = prefix
                qp = qg.transpose(0, 1).reshape(1, Hkv, B * g * L, d)
                op, lp = _CPU_FLASH(qp, kp[None], vp[None], scale=scale)
                op = op[0].view(Hkv, B, g * L, d).transpose(0, 1)
                lp = lp[0].view(Hkv, B, g * L).transpose(0, 1)
                total = torch.logaddexp(lse, lp)
                out = (out.float() * (lse - total).exp()[..., None]
                       + op.float() * (lp - total).exp()[..., None]).to(q.dtype)
            return out.reshape(B, H, L, d)
        parts = []
        if prefix is not None:
            kp, vp = prefix
            P = kp.shape[1]
            sp = torch.matmul(qg.transpose(0, 1).reshape(Hkv, B * g * L, d), kp.transpose(1, 2))
            parts.append(sp.view(Hkv, B, g * L, P).transpose(0, 1))
        so = torch.matmul(qg, k.transpose(2, 3))  # [B, Hkv, g*L, S]
        parts.append(so.masked_fill(~m, float("-inf")))
        w = (torch.cat(parts, -1) * scale).float().softmax(-1).to(q.dtype)
        out = torch.matmul(w[..., -so.shape[-1]:], v)
        if prefix is not None:
            wp = w[..., :P].transpose(0, 1).reshape(Hkv, B * g * L, P)
            out = out + torch.matmul(wp, vp).view(Hkv, B, g * L, d).transpose(0, 1)
        return out.reshape(B, H, L, d)

    def _forward(self, ids, valid, prefix, kv_out=None, kv_in=None, slots=None, offset=None):
        """Run tokens `ids` [B, L] through the decoder.

        New tokens are written into the rows' own key/value buffers at slots `offset + arange(L)`
        (offset [B], default 0) and attend to the prefix plus own slots < `valid` [B] and causally
        among themselves. Returns (final-norm states, middle-layer states), both [B, L, D]."""
        torch = self.torch
        body = self.model.model
        B, L = ids.shape
        P = 0 if prefix is None else prefix[0][0].shape[1]
        offset = torch.zeros(B, dtype=torch.long, device=self.device) if offset is None else offset
        slot = offset[:, None] + torch.arange(L, device=self.device)  # [B, L] own slots of the new tokens
        pos = P + slot
        S = slots
        keys = torch.arange(S, device=self.device)
        mask = (keys[None, None, :] <= slot[:, :, None]) & (keys[None, None, :] < valid[:, None, None])
        mask |= keys[None, None, :] == slot[:, :, None]  # a token always sees itself
        x = body.embed_tokens(ids)
        cos, sin = body.rotary_emb(x, pos)
        rows = torch.arange(B, device=self.device)[:, None]
        mid = None
        for i, layer in enumerate(body.layers):
            att = layer.self_attn
            h = layer.input_layernorm(x)
            q = att.q_proj(h).view(B, L, -1, att.head_dim).transpose(1, 2)
            k = att.k_proj(h).view(B, L, -1, att.head_dim).transpose(1, 2)
            v = att.v_proj(h).view(B, L, -1, att.head_dim).transpose(1, 2)
            q, k = apply_rotary(q, k, cos, sin)
            if kv_in is not None:
                kb, vb = kv_in[i]
            else:
                kb = k.new_zeros(B, k.shape[1], S, att.head_dim)
                vb = torch.zeros_like(kb)
                if kv_out is not None:
                    kv_out.append((kb, vb))
            kb[rows, :, slot] = k.transpose(1, 2)
            vb[rows, :, slot] = v.transpose(1, 2)
            o = self._attend(q, None if prefix is None else prefix[i], kb, vb, mask)
            x = x + att.o_proj(o.transpose(1, 2).reshape(B, L, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            if i + 1 == self.mid:
                mid = x
        return body.norm(x), mid

    def _fast_batch(self, queries: list[list[int]]) -> list[WindowResult | None]:
        torch = self.torch
        b = self.b
        forced, probe = b.answer_prefix_ids, b.probe_id
        F = len(forced)
        tail = forced + ([probe] if probe is not None else [])
        rows = [q + tail for q in queries]
        B = len(rows)
        lens = torch.tensor([len(r) for r in rows], device=self.device)
        L = int(lens.max())
        S = L + self.max_new_tokens
        ids = torch.full((B, L), self.pad, dtype=torch.long, device=self.device)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.tensor(row)
        prefix = self._prefix_states()
        head = self.model.get_output_embeddings()
        kv: list = []
        with torch.no_grad():
            h, hm = self._forward(ids, lens, prefix, kv_out=kv, slots=S)
            nq = [len(q) for q in queries]
            # greedy choice and distribution at the last query token, each forced token and the probe
            at = torch.tensor([[n - 1 + j for j in range(len(tail) + 1)] for n in nq], device=self.device)
            logits = head(h[torch.arange(B)[:, None], at]).float()
            choice = logits.argmax(-1).tolist()
            probs = logits.softmax(-1).cpu().numpy()
            answers, a_states, a_mid, pending, slot, ok = [], [], [], [], [], []
            for r in range(B):
                ok.append(choice[r][:F] == forced)
                answers.append(list(forced))
                a_states.append([h[r, nq[r] + j] for j in range(F)])
                a_mid.append([hm[r, nq[r] + j] for j in range(F)])
                digit, at_slot = choice[r][F], nq[r] + F
                if probe is not None and digit == probe:  # the probe slot already holds its state
                    answers[r].append(digit)
                    a_states[r].append(h[r, at_slot])
                    a_mid[r].append(hm[r, at_slot])
                    digit, at_slot = choice[r][F + 1], at_slot + 1
                pending.append(digit)
                slot.append(at_slot)
            active = [ok[r] and pending[r] not in self.eos and len(answers[r]) < self.max_new_tokens for r in range(B)]
            while any(active):
                feed = torch.tensor([[pending[r] if active[r] else self.pad] for r in range(B)], device=self.device)
                at_slot = torch.tensor(slot, device=self.device)
                hs, hms = self._forward(feed, at_slot + 1, prefix, kv_in=kv, slots=S, offset=at_slot)
                nxt = head(hs[:, 0]).argmax(-1).tolist()
                for r in range(B):
                    if active[r]:
                        answers[r].append(pending[r])
                        a_states[r].append(hs[r, 0])
                        a_mid[r].append(hms[r, 0])
                        pending[r], slot[r] = nxt[r], slot[r] + 1
                        active[r] = pending[r] not in self.eos and len(answers[r]) < self.max_new_tokens
        results: list = [None] * B
        for r in range(B):
            if ok[r]:
                sp = b.score_probs(probs[r][F], probs[r][F + 1] if probe is not None else None)
                results[r] = WindowResult(
                    h[r, :nq[r]].float().cpu().numpy(), torch.stack(a_states[r]).float().cpu().numpy(),
                    b.tok.decode(answers[r]), len(answers[r]), "fast",
                    unit_rms(hm[r, :nq[r]]).cpu().numpy(), unit_rms(torch.stack(a_mid[r])).cpu().numpy(), sp)
        return results
