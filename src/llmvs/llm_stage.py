"""The `prompts` stage: caption files in, one embeddings Arrow file per video out.

The LLM is loaded once per process and scores every window of every video given (so one job can
cover many videos); a video whose output exists is skipped, so a killed job resumes where it
stopped. Prompt building lives in `llmvs.prompt_builder`, the scorers in `llmvs.window_scorer`
(transformers: `plain` and `fast`) and `llmvs.vllm_scorer`, the file format in `llmvs.embeddings`.

    llmvs prompts --captions results/summe/captions/blip/video_1.parquet --out video_1.arrow
"""

from __future__ import annotations

import numpy as np

from llmvs import LlmvsError
from llmvs.prompt_builder import (INSTRUCTION, TITLE_INSTRUCTION, WINDOW, PromptBuilder, make_window, parse_score,
                                  resolve_exemplars)

PATHS = ("fast", "plain", "vllm")
# the LLM stage's settings when an `llms` entry or `llmvs prompts` does not give them
PROMPTS_DEFAULTS = {"path": "fast", "dtype": "float32", "batch_size": 16, "token_budget": 2048, "max_new_tokens": 8}


class PromptRunner:
    """Loads the LLM once and turns caption files into embedding files."""

    def __init__(self, llm: str = "smollm2", exemplars: str = "auto", dataset: str | None = None, seed: int = 0,
                 path: str = PROMPTS_DEFAULTS["path"], dtype: str = PROMPTS_DEFAULTS["dtype"],
                 batch_size: int = PROMPTS_DEFAULTS["batch_size"], max_new_tokens: int = PROMPTS_DEFAULTS["max_new_tokens"],
                 threads: int | None = None, data_dir=None, token_budget: int = PROMPTS_DEFAULTS["token_budget"],
                 title_prompt: bool = False):
        import torch

        from llmvs.llm import load_fast_llm, load_llm

        if path not in PATHS:
            raise LlmvsError(f"unknown prompts path {path!r}: {', '.join(PATHS)}")
        if threads:
            torch.set_num_threads(threads)
        self.exemplars = resolve_exemplars(exemplars, dataset, seed, data_dir, titles=title_prompt)
        self.title_prompt, self.dataset, self.data_dir = title_prompt, dataset, data_dir
        instruction = TITLE_INSTRUCTION if title_prompt else INSTRUCTION
        if path == "vllm":
            from transformers import AutoTokenizer

            from llmvs.llm import resolve_llm
            from llmvs.vllm_scorer import VllmWindowScorer

            folder, self.model_id = resolve_llm(llm)
            self.tok = AutoTokenizer.from_pretrained(folder)
            self.builder = PromptBuilder(self.tok, self.exemplars, instruction)
            self.scorer = VllmWindowScorer(folder, self.builder, max_new_tokens, dtype)
            self.mid_layer = None
        else:
            from llmvs.window_scorer import WindowScorer

            if path == "fast":
                self.tok, self.model, self.model_id, reference = load_fast_llm(llm, dtype)
            else:
                (self.tok, self.model, self.model_id), reference = load_llm(llm, dtype), None
            self.builder = PromptBuilder(self.tok, self.exemplars, instruction)
            self.scorer = WindowScorer(self.model, self.builder, max_new_tokens, batch_size, token_budget, reference)
            self.mid_layer = f"{self.scorer.mid} of {self.scorer.n_layers}"
        self.path, self.dtype, self.seed = path, dtype, seed

    def score(self, captions: list[str], desc: str = "prompts", title: str | None = None):
        """(window results, token masks) for every step of one video (`title`: the title-conditioned prompt)."""
        from tqdm import tqdm

        windows = [make_window(captions, t, title=title) for t in range(len(captions))]
        texts = [w.text for w in windows]
        masks = [self.builder.token_masks(w) for w in windows]
        with tqdm(total=len(texts), desc=desc, unit="window", mininterval=2) as bar:
            if self.path == "plain":
                results = []
                for t in texts:
                    results.append(self.scorer.plain(t))
                    bar.update(1)
            else:
                self.builder.check_split(texts[0])
                results = self.scorer.fast(texts, progress=bar)
        for r, (text_mask, _) in zip(results, masks):
            if len(text_mask) != len(r.q):
                raise LlmvsError(f"token masks cover {len(text_mask)} tokens, the query has {len(r.q)}")
        return results, masks

    def title(self, captions_file, meta: dict, given: str | None) -> tuple[str | None, str | None]:
        """(cleaned title, where it came from) for the title-conditioned prompt; (None, None) without it."""
        if not self.title_prompt:
            return None, None
        from llmvs.titles import clean_title, video_title

        videos = None
        if self.dataset in ("summe", "tvsum"):
            from llmvs.datasets import load_dataset

            videos = load_dataset(self.dataset, self.data_dir)
        title, source = video_title(meta, captions_file, given, videos)
        return clean_title(title), source

    def run(self, captions_file, out, token_states=None, title: str | None = None) -> dict:
        from llmvs.captioning import read_captions
        from llmvs.embeddings import embeddings_table, write_arrow, write_token_states

        frame_index, captions, cmeta = read_captions(captions_file)
        query_title, title_source = self.title(captions_file, cmeta, title)
        results, masks = self.score(captions, f"prompts {cmeta.get('video', '')}", query_title)
        scores = np.array([parse_score(r.answer) for r in results])
        meta = {"model": self.model_id, "prompt_sha256": self.builder.hash, "window": WINDOW,
                "window_edges": "truncated", "exemplars": [e.id for e in self.exemplars],
                "exemplar_seed": self.seed, "dtype": self.dtype, "path": self.path,
                "captioner": cmeta.get("captioner"), "video": cmeta.get("video"),
                "n_frames": cmeta.get("n_frames"), "fps": cmeta.get("fps"),
                "n_unparsed_answers": int(np.isnan(scores).sum()),
                "n_fallback_windows": sum(r.path == "plain" for r in results) if self.path == "fast" else 0,
                "backend": "vllm" if self.path == "vllm" else "transformers",
                "hidden_size": int(results[0].q.shape[1]), "mid_layer": self.mid_layer,
                **({"title_prompt": True, "title": query_title, "title_source": title_source} if self.title_prompt else {})}
        write_arrow(embeddings_table(frame_index, results, masks, meta), out)
        if token_states:
            write_token_states(frame_index, results, token_states)
        return meta
