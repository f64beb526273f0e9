"""The `tfidf` control: caption features without any LLM, in the embeddings file format.

TF-IDF of each caption's words, reduced by LSA (truncated SVD) fitted on all captions of the
videos given (no labels), L2-normalised. Per step, as the LLM stage's text poolings:
`q_text` = element-wise max over the window's captions (w = 7, truncated at the ends) and `c` =
the centre caption. Trained through the same aggregator, this row shows what the LLM adds.

    llmvs tfidf --captions results/summe/captions/blip/*.parquet --out results/summe/embeddings/blip/tfidf/...
"""

from __future__ import annotations

import re

import numpy as np

from llmvs import LlmvsError

DIMS = 256


def _tokens(caption: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", caption.lower())


def lsa_vectors(documents: list[list[str]], dims: int = DIMS, seed: int = 0) -> np.ndarray:
    """[n_docs, dims] L2-normalised LSA vectors of tokenised captions (sublinear TF, smooth IDF)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import svds

    vocab = {w: i for i, w in enumerate(sorted({w for d in documents for w in d}))}
    rows, cols, vals = [], [], []
    for r, doc in enumerate(documents):
        words, counts = np.unique([vocab[w] for w in doc], return_counts=True) if doc else ([], [])
        rows += [r] * len(words)
        cols += list(words)
        vals += list(1 + np.log(counts))
    tf = csr_matrix((vals, (rows, cols)), shape=(len(documents), max(len(vocab), 1)), dtype=np.float64)
    df = np.bincount(cols, minlength=tf.shape[1])
    x = tf.multiply(np.log((1 + len(documents)) / (1 + df)) + 1).tocsr()
    k = min(dims, min(x.shape) - 1)
    if k < 1:
        raise LlmvsError("too few captions or words for an LSA basis")
    rng = np.random.default_rng(seed)
    u, s, _ = svds(x, k=k, v0=rng.standard_normal(min(x.shape)), solver="arpack")
    order = np.argsort(-s)
    u = u[:, order]
    # a singular vector's sign is an accident of the solver's arithmetic (another start vector or another
    # CPU's kernels flip about half of them), and `q_text` takes maxima, which a flip changes: fix each
    # sign so that the vector's largest entry is positive
    u *= np.sign(u[np.abs(u).argmax(0), np.arange(k)])
    z = (u * s[order]).astype(np.float32)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return np.pad(z, ((0, 0), (0, dims - k)))


def window_features(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """`q_text` (max over each step's window) and `c` (the step itself) from per-caption vectors."""
    from llmvs.prompt_builder import window_indices

    n = len(vectors)
    q_text = np.stack([vectors[list(window_indices(t, n))].max(axis=0) for t in range(n)])
    return {"q_text": q_text, "c": vectors.copy()}


def run_tfidf(captions_files: list, outs: list, dims: int = DIMS) -> None:
    """The `tfidf` stage: one LSA basis over every caption given, one Arrow file per video."""
    from llmvs.captioning import read_captions
    from llmvs.embeddings import features_table, write_arrow

    if len(captions_files) != len(outs):
        raise LlmvsError(f"{len(captions_files)} --captions files for {len(outs)} --out files")
    videos = [read_captions(f) for f in captions_files]
    docs = [_tokens(c) for _, caps, _ in videos for c in caps]
    vectors = lsa_vectors(docs, dims)
    start = 0
    for (frame_index, caps, meta), out in zip(videos, outs):
        vec = vectors[start:start + len(caps)]
        start += len(caps)
        columns = {
            "q_text": "max over the window's captions of their TF-IDF/LSA vectors",
            "c": "TF-IDF/LSA vector of the centre caption",
        }
        table = features_table(frame_index, window_features(vec), {
            "model": f"tfidf-lsa{dims}", "captioner": meta.get("captioner"), "video": meta.get("video"),
            "n_frames": meta.get("n_frames"), "fps": meta.get("fps"), "n_captions_fitted": len(docs),
            "columns": columns})
        write_arrow(table, out)
