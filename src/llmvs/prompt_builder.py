"""Prompt building for the LLM stage: caption windows, worked examples, the chat-template prompt.

For step t the captions of steps t-3 .. t+3 form the query (window w = 7, centred; near the ends
the window is truncated to the steps that exist, and the centre frame stays marked). The prompt is
instruction + 3 worked examples (a window and its centre frame's importance, 1-10) + the query;
the LLM answers "Score: N".

`PromptBuilder` renders the prefix (instruction + examples, identical for every window) and the
query turn with the model's own chat template, and maps the caption text of a window to the query
tokens that carry it (from the tokenizer's character offsets), so the stage can pool over the
caption tokens only (`q_text`) or over the centre caption only (`c`).

    w = make_window(captions, t); b = PromptBuilder(tokenizer, exemplars); b.token_masks(w)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from llmvs import LlmvsError
from llmvs.datasets import OTHER_BENCHMARK

WINDOW = 7
INSTRUCTION = (
    "You are an expert video editor. You read the captions of consecutive frames of a video, "
    "about half a second apart. The centre frame is marked with *. Rate how important the centre "
    "frame is for a short summary of the whole video, from 1 (unimportant) to 10 (essential). "
    "Answer with 'Score: N' only.")
# the title-conditioned prompt (`--title-prompt`): each window (and each example) first names its video's
# title, as TVSum's annotators rated each shot given the title
TITLE_INSTRUCTION = INSTRUCTION.replace("consecutive frames of a video,", "consecutive frames of a video whose title "
                                        "is given first,").replace("the whole video", "a video with that title")
ANSWER_PREFIX = "Score: "
SCORES = tuple(range(1, 11))  # the scale the instruction asks for
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def window_indices(t: int, n_steps: int, window: int = WINDOW) -> range:
    """Steps of the window centred on t, truncated at the video's ends."""
    # parity: the paper does not say how edge windows are formed; truncation adds no fake captions
    half = window // 2
    return range(max(0, t - half), min(n_steps, t + half + 1))


@dataclass(frozen=True)
class Window:
    """A window's text and the character spans [start, end) of its captions; `centre` indexes `spans`."""

    text: str
    spans: tuple[tuple[int, int], ...]
    centre: int


def make_window(captions: list[str], t: int, window: int = WINDOW, title: str | None = None) -> Window:
    """The query text of step t: (with `title`, a "Video: <title>" line, then) the window's captions."""
    text, spans, centre = (f"Video: {title}\n" if title else "") + "Frames:", [], 0
    for i in window_indices(t, len(captions), window):
        mark = "*" if i == t else " "
        text += f"\n{mark}{i - t:+d}: "
        caption = captions[i].strip()
        if i == t:
            centre = len(spans)
        spans.append((len(text), len(text) + len(caption)))
        text += caption
    return Window(text, tuple(spans), centre)


def format_window(captions: list[str], t: int, window: int = WINDOW, title: str | None = None) -> str:
    return make_window(captions, t, window, title).text


def parse_score(answer: str) -> float:
    """First number in the answer, or NaN when there is none."""
    m = _NUMBER.search(answer)
    return float(m.group()) if m else math.nan


@dataclass(frozen=True)
class Exemplar:
    id: str
    text: str
    score: int


def choose_exemplars(source: str, n: int = 3, seed: int = 0, window: int = WINDOW, data_dir=None,
                     titles: bool = False) -> list[Exemplar]:
    """`n` worked examples from benchmark `source`, spread over the score range (low ... high); with
    `titles`, each names its own video's title (the same windows and scores either way).

    Taken from the *other* benchmark by default so no evaluation video leaks into the prompt.
    """
    from llmvs.datasets import load_caption_json, load_dataset, shipped_captions_path
    from llmvs.titles import clean_title

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
                title = clean_title(v.title) if titles else None
                out.append(Exemplar(f"{source}:{v.key}:{t}", format_window(caps, t, window, title), round(1 + 9 * g)))
                break
        else:
            raise LlmvsError(f"no {source} window with a score near {centre:.2f} for an example")
    rng.shuffle(out)
    return out


def resolve_exemplars(spec: str, dataset: str | None, seed: int, data_dir=None, titles: bool = False) -> list[Exemplar]:
    """`auto` = the other benchmark (user videos: TVSum); `summe`/`tvsum`; `none`; or a JSON file
    `[{"id": ..., "text": ..., "score": N}, ...]` (its texts as given). `titles`: see choose_exemplars."""
    if spec == "none":
        return []
    if spec == "auto":  # parity: the paper samples its examples from (unspecified) annotated videos
        spec = OTHER_BENCHMARK.get(dataset or "", "tvsum")
    if spec in OTHER_BENCHMARK:
        return choose_exemplars(spec, seed=seed, data_dir=data_dir, titles=titles)
    try:
        items = json.loads(open(spec).read())
        return [Exemplar(str(e["id"]), str(e["text"]), int(e["score"])) for e in items]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LlmvsError(f"{spec}: not an exemplar file ({err})") from None


class PromptBuilder:
    """Renders prefix (instruction + examples) and query turns with the model's chat template."""

    def __init__(self, tokenizer, exemplars: list[Exemplar], instruction: str = INSTRUCTION):
        self.tok = tokenizer
        msgs = [{"role": "system", "content": instruction}]
        for ex in exemplars:
            msgs += [{"role": "user", "content": ex.text},
                     {"role": "assistant", "content": f"{ANSWER_PREFIX}{ex.score}"}]
        self.prefix_messages = msgs
        if getattr(tokenizer, "chat_template", None):
            self.prefix_text = tokenizer.apply_chat_template(msgs, tokenize=False)
        else:  # a base model without a chat template: plain text turns
            self.prefix_text = instruction + "\n\n" + "".join(
                f"{ex.text}\n{ANSWER_PREFIX}{ex.score}\n\n" for ex in exemplars)
        self.prefix_ids = self.encode(self.prefix_text)
        # the tokens before the number in "Score: 7": fed with the query, checked against the model
        self.answer_prefix_ids = self.encode(f"{ANSWER_PREFIX}7")[:-1]
        self.score_tokens = self._score_tokens()
        self.hash = hashlib.sha256(self.prefix_text.encode()).hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _score_tokens(self) -> dict[int, tuple[int, ...]] | None:
        """Score -> its tokens after the answer prefix, when every score is one token or a second
        token after one shared first token (e.g. "1" "0" for 10); else None (no expected score)."""
        forced = self.answer_prefix_ids
        out = {}
        for k in SCORES:
            ids = self.encode(f"{ANSWER_PREFIX}{k}")
            if ids[:len(forced)] != forced or not 1 <= len(ids) - len(forced) <= 2:
                return None
            out[k] = tuple(ids[len(forced):])
        firsts = {ids[0] for ids in out.values() if len(ids) == 2}
        singles = [ids[0] for ids in out.values() if len(ids) == 1]
        if len(firsts) > 1 or len(set(singles)) != len(singles):
            return None
        return out

    @property
    def probe_id(self) -> int | None:
        """The shared first token of the two-token scores (fed once so their second token is scored)."""
        two = [ids[0] for ids in (self.score_tokens or {}).values() if len(ids) == 2]
        return two[0] if two else None

    def score_probs(self, first, second=None) -> np.ndarray:
        """p(score = 1..10) from the next-token distribution after the answer prefix (`first`) and,
        for two-token scores, after the probe token (`second`); renormalised over the scale."""
        if self.score_tokens is None:
            return np.full(len(SCORES), np.nan, np.float32)
        probe = self.probe_id
        second_mass = sum(second[ids[1]] for ids in self.score_tokens.values() if len(ids) == 2) if probe is not None else 0
        p = []
        for ids in self.score_tokens.values():
            if len(ids) == 2:
                p.append(first[ids[0]] * second[ids[1]])
            elif ids[0] == probe:  # "1" followed by anything but "0"
                p.append(first[ids[0]] * (1 - second_mass))
            else:
                p.append(first[ids[0]])
        p = np.asarray(p, np.float64)
        return (p / p.sum()).astype(np.float32) if p.sum() > 0 else np.full(len(SCORES), np.nan, np.float32)

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

    def token_masks(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks over the query tokens: (any caption's text, the centre caption's text).

        A token belongs to a caption when its character offsets overlap the caption's span, so a
        word's leading space goes with the word and the line markers (" -3:", "*+0:"), the header
        and the chat-template tokens belong to neither."""
        query = self.query_text(window.text)
        at = query.find(window.text)
        if at < 0:
            raise LlmvsError("the model's chat template changes the window text; caption spans are unknown")
        enc = self.tok(query, add_special_tokens=False, return_offsets_mapping=True)
        offsets = np.asarray(enc["offset_mapping"], np.int64).reshape(-1, 2)
        text = np.zeros(len(offsets), bool)
        centre = np.zeros(len(offsets), bool)
        for i, (s, e) in enumerate(window.spans):
            hit = (offsets[:, 0] < at + e) & (offsets[:, 1] > at + s)
            text |= hit
            if i == window.centre:
                centre |= hit
        return text, centre
