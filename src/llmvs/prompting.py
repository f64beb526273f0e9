"""Local scoring by an LLM with in-context learning, capturing its final-norm hidden states.

For step t the captions of steps t-3 .. t+3 form the query (window w = 7, centred; near the ends
the window is truncated to the steps that exist, and the centre frame stays marked). The prompt is
instruction + 3 worked examples (a window and its centre frame's importance, 1-10) + the query;
the LLM answers greedily ("Score: N"). We keep the output of the final RMSNorm
(`hidden_states[-1]`) for the query tokens (q) and the generated answer tokens (a), max-pooled
over tokens, plus the answer text and its parsed score.

Two exact paths:
- `plain`: the full prompt per window, `generate` with hidden states, batch 1 (the reference);
- `fast`: the instruction + examples prefix is encoded once and its KV cache reused by every
  window; windows are batched by query length; the answer prefix "Score: " is fed with the query
  and checked against the model's own greedy choice, so usually one decode step remains; the LM
  head runs only where a next token is needed. Identical windows are computed once.

    llmvs prompts --captions results/summe/captions/blip/video_1.parquet --out video_1.arrow
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from llmvs import LlmvsError

WINDOW = 7
INSTRUCTION = (
    "You are an expert video editor. You read the captions of consecutive frames of a video, "
    "about half a second apart. The centre frame is marked with *. Rate how important the centre "
    "frame is for a short summary of the whole video, from 1 (unimportant) to 10 (essential). "
    "Answer with 'Score: N' only.")
ANSWER_PREFIX = "Score: "
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def window_indices(t: int, n_steps: int, window: int = WINDOW) -> range:
    """Steps of the window centred on t, truncated at the video's ends."""
    # parity: the paper does not say how edge windows are formed; truncation adds no fake captions
    half = window // 2
    return range(max(0, t - half), min(n_steps, t + half + 1))


def format_window(captions: list[str], t: int, window: int = WINDOW) -> str:
    lines = []
    for i in window_indices(t, len(captions), window):
        mark = "*" if i == t else " "
        lines.append(f"{mark}{i - t:+d}: {captions[i].strip()}")
    return "Frames:\n" + "\n".join(lines)


def parse_score(answer: str) -> float:
    """First number in the answer, or NaN when there is none."""
    m = _NUMBER.search(answer)
    return float(m.group()) if m else math.nan


@dataclass(frozen=True)
class Exemplar:
    id: str
    text: str
    score: int


def choose_exemplars(source: str, n: int = 3, seed: int = 0, window: int = WINDOW, data_dir=None) -> list[Exemplar]:
    """`n` worked examples from benchmark `source`, spread over the score range (low ... high).

    Taken from the *other* benchmark by default so no evaluation video leaks into the prompt.
    """
    from llmvs.datasets import load_caption_json, load_dataset, shipped_captions_path

    videos = load_dataset(source, data_dir)
    captions = load_caption_json(shipped_captions_path(source, data_dir=data_dir))
    rng = np.random.default_rng(seed)
    keys = sorted(videos, key=lambda k: int(k.split("_")[1]))
    out = []
    for centre in np.linspace(0.05, 0.95, n):  # narrow bands so the examples show the whole scale
        for _ in range(10_000):
            v = videos[keys[rng.integers(len(keys))]]
            t = int(rng.integers(window // 2, v.n_steps - window // 2))
            g = float(v.gtscore[t])
            if abs(g - centre) <= 0.05:
                caps = captions[v.caption_key]["captions"]
                out.append(Exemplar(f"{source}:{v.key}:{t}", format_window(caps, t, window), round(1 + 9 * g)))
                break
        else:
            raise LlmvsError(f"no {source} window with a score near {centre:.2f} for an example")
    rng.shuffle(out)
    return out


@dataclass
class WindowResult:
    q: np.ndarray  # [L_q, D] float32
    a: np.ndarray  # [L_a, D] float32
    answer: str
    n_answer_tokens: int = 0
    path: str = field(default="fast")


class PromptBuilder:
    """Renders prefix (instruction + examples) and query turns with the model's chat template."""

    def __init__(self, tokenizer, exemplars: list[Exemplar]):
        self.tok = tokenizer
        msgs = [{"role": "system", "content": INSTRUCTION}]
        for ex in exemplars:
            msgs += [{"role": "user", "content": ex.text},
                     {"role": "assistant", "content": f"{ANSWER_PREFIX}{ex.score}"}]
        self.prefix_messages = msgs
        if getattr(tokenizer, "chat_template", None):
            self.prefix_text = tokenizer.apply_chat_template(msgs, tokenize=False)
        else:  # a base model without a chat template: plain text turns
            self.prefix_text = INSTRUCTION + "\n\n" + "".join(
                f"{ex.text}\n{ANSWER_PREFIX}{ex.score}\n\n" for ex in exemplars)
        self.prefix_ids = self.encode(self.prefix_text)
        # the tokens before the number in "Score: 7": fed with the query, checked against the model
        self.answer_prefix_ids = self.encode(f"{ANSWER_PREFIX}7")[:-1]
        self.hash = hashlib.sha256(self.prefix_text.encode()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def query_text(self, window_text: str) -> str:
        """The text that follows the prefix: the query turn and the assistant header."""
        if getattr(self.tok, "chat_template", None):
            full = self.tok.apply_chat_template(
                self.prefix_messages + [{"role": "user", "content": window_text}],
                tokenize=False, add_generation_prompt=True)
            if not full.startswith(self.prefix_text):
                raise LlmvsError("the model's chat template does not render the examples as a fixed prefix")
            return full[len(self.prefix_text):]
        return f"{window_text}\n"

    def check_split(self, window_text: str) -> None:
        """The fast path needs tokens(prefix + query) == tokens(prefix) + tokens(query)."""
        q = self.query_text(window_text)
        if self.encode(self.prefix_text + q) != self.prefix_ids + self.encode(q):
            raise LlmvsError("prompt does not tokenize at the prefix/query boundary; use --path plain")


class WindowScorer:
    """Runs windows through the LLM and returns their final-norm states and answers."""

    def __init__(self, model, builder: PromptBuilder, max_new_tokens: int = 8, batch_size: int = 8):
        import torch

        self.torch = torch
        self.model, self.b = model, builder
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.device = next(model.parameters()).device
        self.eos = set(_eos_ids(model, builder.tok))
        self.pad = builder.tok.pad_token_id if builder.tok.pad_token_id is not None else min(self.eos)
        self._prefix_kv = None

    # -- reference path ------------------------------------------------------------------------
    def plain(self, window_text: str) -> WindowResult:
        torch = self.torch
        q_ids = self.b.encode(self.b.query_text(window_text))
        ids = torch.tensor([self.b.prefix_ids + q_ids], device=self.device)
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                      do_sample=False, output_hidden_states=True, return_dict_in_generate=True,
                                      pad_token_id=self.pad, eos_token_id=sorted(self.eos))
        start = len(self.b.prefix_ids)
        q = out.hidden_states[0][-1][0, start:].float()
        gen = out.sequences[0, ids.shape[1]:].tolist()
        answer = gen[: next((i for i, t in enumerate(gen) if t in self.eos), len(gen))]
        # the state of answer token k is computed when it is fed back, at generation step k + 1
        states = [out.hidden_states[k + 1][-1][0, -1] for k in range(len(answer)) if k + 1 < len(out.hidden_states)]
        if len(states) < len(answer):  # stopped at max_new_tokens: feed the last token once more
            full = torch.tensor([self.b.prefix_ids + q_ids + answer], device=self.device)
            with torch.no_grad():
                states.append(self.model.model(input_ids=full).last_hidden_state[0, -1])
        a = torch.stack(states).float() if states else q[-1:]
        return WindowResult(q.cpu().numpy(), a.cpu().numpy(), self.b.tok.decode(answer), len(answer), "plain")

    # -- shared-prefix fast path ---------------------------------------------------------------
    def _prefix_cache(self, batch: int):
        torch = self.torch
        from transformers import DynamicCache

        if self._prefix_kv is None:
            ids = torch.tensor([self.b.prefix_ids], device=self.device)
            cache = DynamicCache(config=self.model.config)
            with torch.no_grad():
                self.model.model(input_ids=ids, cache=cache, use_cache=True)
            self._prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]
        return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                                            for k, v in self._prefix_kv], config=self.model.config)

    def fast(self, window_texts: list[str], progress=None) -> list[WindowResult]:
        """Score many windows; results in input order. Identical windows are computed once.

        `progress` (a tqdm bar, optional) advances by the number of windows each batch covers.
        """
        from collections import Counter

        counts = Counter(window_texts)
        unique = list(counts)
        encoded = {w: self.b.encode(self.b.query_text(w)) for w in unique}
        order = sorted(unique, key=lambda w: len(encoded[w]))  # similar lengths -> little padding
        done: dict[str, WindowResult] = {}
        for i in range(0, len(order), self.batch_size):
            chunk = order[i:i + self.batch_size]
            for w, r in zip(chunk, self._fast_batch([encoded[w] for w in chunk])):
                done[w] = r if r is not None else self.plain(w)
            if progress is not None:
                progress.update(sum(counts[w] for w in chunk))
        return [done[w] for w in window_texts]

    def _fast_batch(self, queries: list[list[int]]) -> list[WindowResult | None]:
        torch = self.torch
        forced = self.b.answer_prefix_ids
        P, B, F = len(self.b.prefix_ids), len(queries), len(forced)
        rows = [q + forced for q in queries]
        lens = [len(r) for r in rows]
        L = max(lens)
        ids = torch.full((B, L), self.pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((B, P + L), dtype=torch.long, device=self.device)
        mask[:, :P] = 1
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.tensor(row)
            mask[r, P:P + len(row)] = 1
        pos = (P + torch.arange(L, device=self.device)).expand(B, L)
        cache = self._prefix_cache(B)
        head = self.model.get_output_embeddings()
        with torch.no_grad():
            h = self.model.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                                 use_cache=True).last_hidden_state
            results: list = [None] * B
            q_states, answers, a_states, pending = [], [], [], []
            ok = []
            for r in range(B):
                nq = len(queries[r])
                # the model's greedy choice at the last query token and at each forced token
                choice = head(h[r, nq - 1:lens[r]]).argmax(-1).tolist()
                ok.append(choice[:F] == forced)
                q_states.append(h[r, :nq])
                answers.append(list(forced))
                a_states.append([h[r, nq + j] for j in range(F)])
                pending.append(choice[F])
            active = [ok[r] and pending[r] not in self.eos and len(answers[r]) < self.max_new_tokens for r in range(B)]
            step = 0
            while any(active):
                feed = torch.tensor([[pending[r] if active[r] else self.pad] for r in range(B)], device=self.device)
                mask = torch.cat([mask, torch.tensor([[int(a)] for a in active], device=self.device)], dim=1)
                pos = torch.tensor([[P + lens[r] + step] for r in range(B)], device=self.device)
                hs = self.model.model(input_ids=feed, attention_mask=mask, position_ids=pos, cache=cache,
                                      use_cache=True).last_hidden_state[:, 0]
                nxt = head(hs).argmax(-1).tolist()
                for r in range(B):
                    if active[r]:
                        answers[r].append(pending[r])
                        a_states[r].append(hs[r])
                        pending[r] = nxt[r]
                        active[r] = pending[r] not in self.eos and len(answers[r]) < self.max_new_tokens
                step += 1
        for r in range(B):
            if ok[r]:
                a = torch.stack(a_states[r]).float()
                results[r] = WindowResult(q_states[r].float().cpu().numpy(), a.cpu().numpy(),
                                          self.b.tok.decode(answers[r]), len(answers[r]), "fast")
        return results


def _eos_ids(model, tok) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
    if tok.eos_token_id is not None:
        ids.append(tok.eos_token_id)
    if not ids:
        raise LlmvsError("the model defines no end-of-sequence token")
    return sorted(set(ids))


# --- the `prompts` stage ----------------------------------------------------------------------

OTHER = {"summe": "tvsum", "tvsum": "summe"}


def resolve_exemplars(spec: str, dataset: str | None, seed: int, data_dir=None) -> list[Exemplar]:
    """`auto` = the other benchmark (user videos: TVSum); `summe`/`tvsum`; `none`; or a JSON file
    `[{"id": ..., "text": ..., "score": N}, ...]`."""
    if spec == "none":
        return []
    if spec == "auto":  # parity: the paper samples its examples from (unspecified) annotated videos
        spec = OTHER.get(dataset or "", "tvsum")
    if spec in OTHER:
        return choose_exemplars(spec, seed=seed, data_dir=data_dir)
    try:
        items = json.loads(open(spec).read())
        return [Exemplar(str(e["id"]), str(e["text"]), int(e["score"])) for e in items]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LlmvsError(f"{spec}: not an exemplar file ({err})") from None


def _fixed_list(x: np.ndarray):
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float16).ravel(), pa.float16()), x.shape[1])


def embeddings_table(frame_index, results: list[WindowResult], metadata: dict):
    import pyarrow as pa

    q = np.stack([r.q.max(axis=0) for r in results])  # max-pool over tokens
    a = np.stack([r.a.max(axis=0) for r in results])
    table = pa.table({
        "frame_index": pa.array(frame_index, pa.int64()),
        "q": _fixed_list(q), "a": _fixed_list(a),
        "answer": pa.array([r.answer for r in results], pa.string()),
        "answer_score": pa.array([parse_score(r.answer) for r in results], pa.float32()),
        "n_query_tokens": pa.array([len(r.q) for r in results], pa.int32()),
        "n_answer_tokens": pa.array([len(r.a) for r in results], pa.int32()),
    })
    meta = {k.encode(): json.dumps(v).encode() for k, v in metadata.items()}
    return table.replace_schema_metadata(meta)


def write_arrow(table, out) -> None:
    import pyarrow as pa

    from llmvs.io import atomic_path

    with atomic_path(out) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1024)


def write_token_states(frame_index, results: list[WindowResult], out, row_group_size: int = 4096) -> None:
    """Token-level q/a states (float16) as Parquet, one row per token, bounded row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmvs.io import atomic_path

    rows = [(f, part, i, s) for f, r in zip(frame_index, results)
            for part, states in (("q", r.q), ("a", r.a)) for i, s in enumerate(states)]
    states = np.stack([s for *_, s in rows])
    table = pa.table({"frame_index": pa.array([int(f) for f, *_ in rows], pa.int64()),
                      "part": pa.array([p for _, p, _, _ in rows], pa.dictionary(pa.int8(), pa.string())),
                      "token": pa.array([i for _, _, i, _ in rows], pa.int32()),
                      "state": _fixed_list(states)})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def read_embeddings(path):
    """(frame_index, q [T, D], a [T, D], answer_score [T], metadata) from an embeddings .arrow file."""
    from pathlib import Path

    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise LlmvsError(f"{path}: missing embeddings (run the prompts stage)")
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
    except (pa.ArrowInvalid, OSError) as err:
        raise LlmvsError(f"{path}: not a readable Arrow file ({err})") from None
    def mat(col):
        arr = table.column(col).combine_chunks()
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), arr.type.list_size).astype(np.float32)
    meta = {k.decode(): json.loads(v) for k, v in (table.schema.metadata or {}).items()}
    return (table.column("frame_index").to_numpy(), mat("q"), mat("a"),
            table.column("answer_score").to_numpy(zero_copy_only=False), meta)


class PromptRunner:
    """Loads the LLM once and turns caption files into embedding files."""

    def __init__(self, llm: str = "smollm2", exemplars: str = "auto", dataset: str | None = None, seed: int = 0,
                 path: str = "fast", dtype: str = "float32", batch_size: int = 8, max_new_tokens: int = 8,
                 threads: int | None = None, data_dir=None):
        import torch

        from llmvs.llm import load_llm

        if path not in ("fast", "plain", "vllm"):
            raise LlmvsError(f"unknown prompts path {path!r}: fast, plain or vllm")
        if threads:
            torch.set_num_threads(threads)
        self.exemplars = resolve_exemplars(exemplars, dataset, seed, data_dir)
        if path == "vllm":
            from transformers import AutoTokenizer

            from llmvs.llm import resolve_llm

            folder, self.model_id = resolve_llm(llm)
            self.tok = AutoTokenizer.from_pretrained(folder)
            self.builder = PromptBuilder(self.tok, self.exemplars)
            self.scorer = VllmWindowScorer(folder, self.builder, max_new_tokens, dtype)
        else:
            self.tok, self.model, self.model_id = load_llm(llm, dtype)
            self.builder = PromptBuilder(self.tok, self.exemplars)
            self.scorer = WindowScorer(self.model, self.builder, max_new_tokens, batch_size)
        self.path, self.dtype, self.seed = path, dtype, seed

    def windows(self, captions: list[str]) -> list[str]:
        return [format_window(captions, t) for t in range(len(captions))]

    def run(self, captions_file, out, token_states=None) -> dict:
        from tqdm import tqdm

        from llmvs.captioning import read_captions

        frame_index, captions, cmeta = read_captions(captions_file)
        wins = self.windows(captions)
        if self.path in ("fast", "vllm"):
            self.builder.check_split(wins[0])
            with tqdm(total=len(wins), desc=f"prompts {cmeta.get('video', '')}", unit="window") as bar:
                results = self.scorer.fast(wins, progress=bar)
        else:
            results = [self.scorer.plain(w) for w in tqdm(wins, desc="prompts (plain)", unit="window")]
        scores = np.array([parse_score(r.answer) for r in results])
        meta = {"model": self.model_id, "prompt_sha256": self.builder.hash, "window": WINDOW,
                "window_edges": "truncated", "exemplars": [e.id for e in self.exemplars],
                "exemplar_seed": self.seed, "dtype": self.dtype, "path": self.path,
                "captioner": cmeta.get("captioner"), "video": cmeta.get("video"),
                "n_frames": cmeta.get("n_frames"), "fps": cmeta.get("fps"),
                "n_unparsed_answers": int(np.isnan(scores).sum()),
                "n_fallback_windows": sum(r.path == "plain" for r in results) if self.path == "fast" else 0,
                "backend": "vllm" if self.path == "vllm" else "transformers",
                "hidden_size": int(results[0].q.shape[1]), "states": "final RMSNorm output, max over tokens"}
        write_arrow(embeddings_table(frame_index, results, meta), out)
        if token_states:
            write_token_states(frame_index, results, token_states)
        return meta


class VllmWindowScorer:
    """The `vllm` backend: answers from a generation engine with prefix caching, then the final-norm
    token states of prompt + answer from a pooling engine (`token_embed`: last-layer states after the
    final norm; `use_activation=False` keeps them un-normalised). Same WindowResult contract as
    `WindowScorer`; vllm is imported only here."""

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

    def fast(self, window_texts: list[str], progress=None) -> list[WindowResult]:
        from vllm.inputs import TokensPrompt

        queries = [self.b.encode(self.b.query_text(w)) for w in window_texts]
        prompts = [TokensPrompt(prompt_token_ids=self.b.prefix_ids + q) for q in queries]
        outs = self.generator.generate(prompts, self.params, use_tqdm=progress is not None)
        answers = [list(o.outputs[0].token_ids) for o in outs]
        eos = {self.b.tok.eos_token_id}
        answers = [a[: next((i for i, t in enumerate(a) if t in eos), len(a))] for a in answers]
        full = [TokensPrompt(prompt_token_ids=self.b.prefix_ids + q + a) for q, a in zip(queries, answers)]
        states = self.encoder.encode(full, pooling_task="token_embed", use_tqdm=False)
        P, results = len(self.b.prefix_ids), []
        for q, a, s in zip(queries, answers, states):
            h = s.outputs.data.float().cpu().numpy()
            qa = h[P:P + len(q)]
            aa = h[P + len(q):P + len(q) + len(a)] if a else qa[-1:]
            results.append(WindowResult(qa, aa, self.b.tok.decode(a), len(a), "vllm"))
        if progress is not None:
            progress.update(len(window_texts))
        return results
