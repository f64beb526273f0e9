"""Video titles as a query: which title a video has, how it is cleaned, and the TF-IDF title cosine.

TVSum is title-based summarization: its annotators rated each frame's importance knowing the
video's title. A title comes from the annotations (`Video.title`: the TVSum info file's titles,
SumMe's video names), else from the user (`--title`), else from the video's file name.

`clean_title` makes a title a plain query: it repairs UTF-8 text that was decoded as Latin-1
("ViÃ±a" -> "Viña"), turns `_` into spaces (SumMe names, file names), removes whatever stands in
brackets ()[]{} with the brackets, then digits, `#` and double quotes, and squeezes spaces. In the
TVSum titles brackets hold channel names and tags ("[Davidsfarm]", "(KCI)", "(Official)", a phone
number); digits and `#` are episode numbers, dates and years ("#1306", "9/15/11", "2014") that
match no caption.

    sims = tfidf_title_similarity([captions_of_video], [clean_title(title)])[0]   # float32 [T]
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")
_REMOVED = re.compile(r'[0-9#()\[\]{}"]')  # digits, #, unpaired brackets, double quotes


def _repair_mojibake(text: str) -> str:
    """UTF-8 bytes read as Latin-1 (the TVSum info file's "Å\\xa0KODA"), decoded back; other text unchanged."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def clean_title(title: str) -> str:
    """The title as a query (see the module docstring); may be empty."""
    text = _repair_mojibake(str(title)).replace("_", " ")
    return " ".join(_REMOVED.sub(" ", _BRACKETED.sub(" ", text)).split())


def video_title(meta: dict, captions_file, given: str | None = None, videos: dict | None = None) -> tuple[str, str]:
    """(title, where it came from) for one captions file: `given` (the user's), the annotations'
    `videos[meta["video"]].title`, else the video's name (the captions' `video`, or the file's stem)."""
    if given is not None:
        return given, "argument"
    key = meta.get("video")
    if videos and key in videos and videos[key].title:
        return videos[key].title, "annotations"
    return (key or Path(captions_file).stem), "file name"


def _tokens(text: str) -> list[str]:
    from llmvs.tfidf import _tokens as tokens  # the tfidf control's tokenizer: the same words

    return tokens(text)


def _tfidf_rows(docs: list[list[str]], vocab: dict[str, int], idf: np.ndarray):
    """L2-normalised sublinear TF-IDF rows (csr) of tokenised texts; words outside `vocab` are dropped."""
    from scipy.sparse import csr_matrix

    rows, cols, vals = [], [], []
    for r, doc in enumerate(docs):
        ids = [vocab[w] for w in doc if w in vocab]
        if ids:
            words, counts = np.unique(ids, return_counts=True)
            rows += [r] * len(words)
            cols += words.tolist()
            vals += (1 + np.log(counts)).tolist()
    x = csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)), dtype=np.float64)
    x = x.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return csr_matrix(x.multiply(1 / np.maximum(norms, 1e-12)[:, None]))


def tfidf_title_similarity(captions: list[list[str]], titles: list[str]) -> list[np.ndarray]:
    """Per video, float32 [T]: cosine between each caption's TF-IDF vector and its title's.

    Vocabulary and IDF come from every caption given (one document per caption, no labels), weighted
    as the tfidf control weights them (1 + log tf, smooth idf); title words no caption uses cannot
    match and are dropped. A title with no caption word gives zeros (no ranking)."""
    docs = [[_tokens(c) for c in caps] for caps in captions]
    flat = [d for video in docs for d in video]
    vocab = {w: i for i, w in enumerate(sorted({w for d in flat for w in d}))}
    df = np.zeros(len(vocab))
    for d in flat:
        df[[vocab[w] for w in set(d)]] += 1
    idf = np.log((1 + len(flat)) / (1 + df)) + 1
    out = []
    for video, title in zip(docs, titles):
        x = _tfidf_rows(video, vocab, idf)
        t = _tfidf_rows([_tokens(title)], vocab, idf)
        out.append(np.asarray((x @ t.T).todense()).ravel().astype(np.float32))
    return out
