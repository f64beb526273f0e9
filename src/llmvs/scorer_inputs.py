"""What `llmvs summarize` computes for its scorer: the LLM's window states, or a caption encoder's embeddings.

A scorer reads the features named by its checkpoint's `feature_schema` (llmvs.release). A scorer
trained on the LLM's states (no `encoder` in its schema; every split checkpoint) needs the LLM stage
and is refused for another LLM. A scorer trained on a sentence encoder's embeddings of the captions
(schema `encoder`, e.g. `minilm`) needs no LLM: the captions go through the `encode` stage's own code
(llmvs.encoders.run_encode), with the video's title where the scorer reads title columns (`--title`,
else the file name).

    encoder = check_encoder_scorer(path, ckpt)             # None: an LLM scorer (check_scorer then)
    path, stage = step_features(work, captions, encoder=encoder, ...)
"""

from __future__ import annotations

from pathlib import Path

from llmvs import LlmvsError


def llm_states(llm: str) -> tuple[str, int]:
    """(model id, hidden size) of an LLM spec, read from its config without loading the weights."""
    from transformers import AutoConfig

    from llmvs.llm import resolve_llm

    folder, model_id = resolve_llm(llm)
    cfg = AutoConfig.from_pretrained(folder)
    return model_id, int(cfg.get_text_config().hidden_size)


def check_scorer(path, ckpt: dict, model_id: str, hidden: int) -> None:
    """Refuse, before the LLM runs, a scorer trained on another LLM's states (size, columns or model)."""
    from llmvs.embeddings import FEATURE_COLUMNS, feature_names

    mc, fs = ckpt["model_config"], ckpt.get("feature_schema", {})
    columns = feature_names(mc["features"])
    fix = f"pass --scorer FILE trained with {model_id}, or --zero-shot"
    if mc["input_dim"] != len(columns) * hidden:
        per = fs.get("hidden_size") or (mc["input_dim"] // len(columns) if mc["input_dim"] % len(columns) == 0 else 0)
        what = f"{per}-d LLM states" if per else f"{mc['input_dim']}-d features"
        raise LlmvsError(f"{path}: trained on {what}, but this LLM ({model_id}) gives {hidden}-d states: {fix}")
    unknown = [c for c in columns if c != "qa" and c not in FEATURE_COLUMNS]
    if unknown:
        raise LlmvsError(f"{path}: reads feature column(s) {', '.join(unknown)}, which the LLM stage does not "
                         f"write: {fix}")
    if fs.get("llm") and fs["llm"] != model_id:
        raise LlmvsError(f"{path}: trained on the states of {fs['llm']}, but this LLM is {model_id}: {fix}")


def check_encoder_scorer(path, ckpt: dict) -> str | None:
    """The encoder spec a scorer reads (None: it reads LLM states), checked before anything runs: the
    encoder resolves offline to the weights the scorer was trained on, and every column is one the
    `encode` stage writes."""
    from llmvs.embeddings import TITLE_COLUMNS, feature_names, split_source
    from llmvs.encoders import COLUMNS, resolve_encoder

    fs = ckpt.get("feature_schema", {})
    spec = fs.get("encoder")
    if not spec:
        return None
    unknown = [c for c in feature_names(fs["features"]) if split_source(c)[1] not in (*COLUMNS, *TITLE_COLUMNS)]
    if unknown:
        raise LlmvsError(f"{path}: reads column(s) {', '.join(unknown)}, which the encode stage does not write")
    try:
        info = resolve_encoder(spec)[1]
    except LlmvsError as err:
        raise LlmvsError(f"{path}: reads embeddings of encoder {spec!r}, which is not available here: {err}") from None
    want, got = fs.get("encoder_weights_sha256"), info.get("weights_sha256")
    if want and got != want:
        raise LlmvsError(f"{path}: trained on embeddings of {fs.get('encoder_model')} (weights sha256 {want}), but "
                         f"encoder {spec!r} here has weights sha256 {got}")
    return spec


def step_features(work: Path, captions_file, *, encoder: str | None, reads_title: bool, title: str | None,
                  llm: str, exemplars: str, exemplar_seed: int, dtype: str, threads: int | None) -> tuple[Path, dict]:
    """(features file, what was read) for the captions: the encoder's embeddings when `encoder` is given
    (the title only where the scorer reads it), else the LLM stage's states and answers."""
    from llmvs.embeddings import read_embeddings

    if encoder:
        from llmvs.encoders import run_encode

        out = work / "encoder.arrow"  # no embeddings.arrow: no LLM ran
        run_encode([captions_file], [out], encoder, titles=None if title is None else [title], threads=threads)
        meta = read_embeddings(out).meta
        said = {k: meta.get(k) for k in ("title", "title_query", "title_source")} if reads_title else None
        return out, {"embeddings": "encoder", "encoder": encoder, "model": meta["model"], "title": said,
                     "exemplars": []}
    from llmvs.llm_stage import PromptRunner

    out = work / "embeddings.arrow"
    runner = PromptRunner(llm, exemplars, None, exemplar_seed, "fast", dtype, threads=threads)
    runner.run(captions_file, out)
    return out, {"embeddings": "llm", "model": runner.model_id, "title": None,
                 "exemplars": [e.id for e in runner.exemplars]}


def features_read(read: dict, columns) -> str:
    """One line naming what the scores were computed from (summary.json `features_read`, the page);
    `columns` None: the LLM's own answers (zero-shot)."""
    title = read.get("title")
    if columns is None:
        return f"the LLM's answers ({read['model']})"
    what = "the LLM's states" if read["embeddings"] == "llm" else "sentence embeddings of the captions"
    line = f"{what} ({read['model']}): {', '.join(columns)}"
    return line + (f"; title {title['title_query']!r} ({title['title_source']})" if title else "")
