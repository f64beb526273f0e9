"""The `vllm` backend of the LLM stage: the same `WindowResult` contract as `llmvs.window_scorer`.

Answers come from a generation engine with prefix caching; the final-norm token states of prompt +
answer from a pooling engine (`token_embed`: last-layer states after the final norm;
`use_activation=False` keeps them un-normalised); p(score = 1..10) from the prompt log-probabilities
of "Score: " + the probe token (top 20 candidates per position; a score outside them counts 0).
vLLM exposes no middle-layer states, so the `mid_*` columns are absent from its files (the file's
metadata lists the columns it has). vllm is imported only here.
"""

from __future__ import annotations

import math

import numpy as np

from llmvs import LlmvsError
from llmvs.prompt_builder import PromptBuilder
from llmvs.window_scorer import WindowResult

TOP_LOGPROBS = 20


class VllmWindowScorer:
    def __init__(self, model_dir, builder: PromptBuilder, max_new_tokens: int = 8, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.4):
        try:
            from vllm import LLM, SamplingParams
            from vllm.config import PoolerConfig
        except ImportError:
            raise LlmvsError("the vllm backend needs vLLM: use the envs/vllm.yaml environment") from None
        self.b = builder
        common = {"model": str(model_dir), "dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization}
        self.generator = LLM(enable_prefix_caching=True, **common)
        states = PoolerConfig(task="token_embed", use_activation=False)  # raw states, not L2-normalised
        self.encoder = LLM(runner="pooling", pooler_config=states, **common)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        self.probe_params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=TOP_LOGPROBS)

    def _score_probs(self, prompt_logprobs, vocab: int) -> np.ndarray:
        """p(score) from the last one or two positions' top log-probabilities."""
        def dist(entry):
            p = np.zeros(vocab, np.float64)
            for token, lp in (entry or {}).items():
                p[token] = math.exp(getattr(lp, "logprob", lp))
            return p
        probe = self.b.probe_id is not None
        first = dist(prompt_logprobs[-2] if probe else prompt_logprobs[-1])
        return self.b.score_probs(first, dist(prompt_logprobs[-1]) if probe else None)

    def fast(self, window_texts: list[str], progress=None) -> list[WindowResult]:
        from vllm.inputs import TokensPrompt

        b = self.b
        queries = [b.encode(b.query_text(w)) for w in window_texts]
        prompts = [TokensPrompt(prompt_token_ids=b.prefix_ids + q) for q in queries]
        outs = self.generator.generate(prompts, self.params, use_tqdm=progress is not None)
        answers = [list(o.outputs[0].token_ids) for o in outs]
        eos = {b.tok.eos_token_id}
        answers = [a[: next((i for i, t in enumerate(a) if t in eos), len(a))] for a in answers]
        tail = b.answer_prefix_ids + ([b.probe_id] if b.probe_id is not None else [])
        probes = self.generator.generate([TokensPrompt(prompt_token_ids=b.prefix_ids + q + tail) for q in queries],
                                         self.probe_params, use_tqdm=False)
        full = [TokensPrompt(prompt_token_ids=b.prefix_ids + q + a) for q, a in zip(queries, answers)]
        states = self.encoder.encode(full, pooling_task="token_embed", use_tqdm=False)
        P, results = len(b.prefix_ids), []
        vocab = len(b.tok)
        for q, a, s, pr in zip(queries, answers, states, probes):
            h = s.outputs.data.float().cpu().numpy()
            qa = h[P:P + len(q)]
            aa = h[P + len(q):P + len(q) + len(a)] if a else qa[-1:]
            results.append(WindowResult(qa, aa, b.tok.decode(a), len(a), "vllm",
                                        score_probs=self._score_probs(pr.prompt_logprobs, vocab)))
        if progress is not None:
            progress.update(len(window_texts))
        return results
