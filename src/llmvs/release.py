"""The shipped scorer: the headline run fitted on every video of both benchmarks, with its model card.

`train_release` fits the same model as a split run on every SumMe and TVSum video (a seeded
validation subset still chooses the epoch): the default scorer of `llmvs summarize`. Its checkpoint's
`feature_schema` names what it reads: the LLM's states (model, hidden size, dtype, exemplar seed), or a
caption encoder's embeddings (`encoder` spec and weights, and `title` where it reads title columns:
then `llmvs summarize` runs no LLM, llmvs.scorer_inputs); the card names the columns. The workflow
builds it under `results/scorers/` (rule `build_scorer`); only the maintainer command
`snakemake release_scorer` (`make release`) copies it into the package (`llmvs/scorers/`).

    llmvs release-scorer --annotations A1 A2 --embeddings-dir E1 E2 --run-config keys.json --summary S --out X.pt --card X.md
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from llmvs import LlmvsError
from llmvs.datasets import DATASET_NAMES
from llmvs.run_config import TEST_SELECTIONS, TrainConfig, check_smooth_steps, model_config, reads_correlations

SCORER_FORMAT = "llmvs-scorer/2"  # a release checkpoint: a split checkpoint plus what it expects of its inputs
RELEASE_COMMAND = "make release"  # snakemake --cores all release_scorer


def _video_order(key: str):
    tail = key.rsplit("_", 1)[-1]
    return (0, int(tail), key) if tail.isdigit() else (1, 0, key)


def _same(metas: dict[str, dict], keys, get=lambda m, key: m.get(key)) -> dict:
    """Each key's value, which must be the same in every video's embeddings metadata."""
    out = {}
    for key in keys:
        seen = {json.dumps(get(m, key)) for m in metas.values()}
        if len(seen) > 1:
            raise LlmvsError(f"the embeddings mix {key} values {', '.join(sorted(seen))}: train on one setting")
        out[key] = get(metas[next(iter(metas))], key)
    return out


def _encoder_provenance(metas: dict[str, dict], input_dim: int, features) -> dict:
    """What features of a caption encoder (llmvs.encoders) came from: the encoder's spec (what `llmvs
    summarize` loads), model id and weights, its width, the columns and whether they read the title."""
    from llmvs.embeddings import TITLE_COLUMNS, feature_names, split_source

    columns = feature_names(features)
    out = _same(metas, ("model", "dims", "captioner"))
    enc = _same(metas, ("spec", "weights_sha256"), lambda m, key: (m.get("encoder") or {}).get(key))
    width = sum(1 if split_source(c)[1] in TITLE_COLUMNS else out["dims"] for c in columns)
    if width != input_dim:
        raise LlmvsError(f"features {columns} are {input_dim}-d, not {width}-d of {out['dims']}-d embeddings")
    return {"llm": None, "encoder": enc["spec"], "encoder_model": out["model"],
            "encoder_weights_sha256": enc["weights_sha256"], "dims": out["dims"], "columns": columns,
            "title": any(split_source(c)[1] in TITLE_COLUMNS for c in columns), "captioner": out["captioner"]}


def _embeddings_provenance(metas: dict[str, dict], input_dim: int, features) -> dict:
    """What the features came from, identical for every video: LLM id (the embeddings' `model`), hidden
    size, columns, dtype, captioner and exemplar seed; a scorer is only valid for states of that LLM.
    Embeddings of a caption encoder instead: see `_encoder_provenance`."""
    from llmvs.embeddings import feature_names

    if any("encoder" in m for m in metas.values()):
        return _encoder_provenance(metas, input_dim, features)
    columns = feature_names(features)
    out = _same(metas, ("model", "hidden_size", "dtype", "captioner", "exemplar_seed"))
    hidden = out["hidden_size"] or input_dim // len(columns)
    if hidden * len(columns) != input_dim:
        raise LlmvsError(f"features {columns} are {input_dim}-d, not {len(columns)} x the LLM's {hidden}-d states")
    return {"llm": out["model"], "hidden_size": int(hidden), "columns": columns, "dtype": out["dtype"],
            "captioner": out["captioner"], "exemplar_seed": out["exemplar_seed"]}


def run_results(summary_csv, run: str, datasets) -> dict[str, dict]:
    """The cross-validated row of `run` per dataset from an aggregate `summary.csv`."""
    import pandas as pd

    try:
        frame = pd.read_csv(summary_csv)
    except (OSError, ValueError) as err:
        raise LlmvsError(f"{summary_csv}: not a readable summary CSV ({err})") from None
    if not {"dataset", "row", "source"} <= set(frame.columns):
        raise LlmvsError(f"{summary_csv}: not a summary CSV (needs columns dataset, row, source)")
    out = {}
    for ds in datasets:
        rows = frame[(frame.row == run) & (frame.source == "measured") & (frame.dataset == ds)]
        if rows.empty:
            raise LlmvsError(f"{summary_csv}: no measured row for run {run!r} on {ds} (run the benchmark first)")
        out[ds] = rows.iloc[0].to_dict()
    return out


def train_release(sources, cfg: TrainConfig, out, card, summary, *, run: str = "llmvs", threads: int | None = None,
                  captioner_model: str | None = None, smooth_steps: float = 0.0) -> dict:
    """Fit the aggregator on every video of the given benchmarks: the scorer `llmvs summarize` ships with.

    `sources`: (annotations.parquet, embeddings folder, shots folder or None) per benchmark. A seeded
    `cfg.val_fraction` of each benchmark's videos is held out for checkpoint selection, as the split runs
    do; no video is left for testing, so the card quotes the run's cross-validated scores from `summary`
    (its summary.csv). `smooth_steps` (the run's evaluation key) is stored for `llmvs summarize` to apply.
    Writes `out` (.pt) and `card` (Markdown, with the .pt's sha256) together."""
    import hashlib

    import torch

    from llmvs.checkpoints import device, save_checkpoint
    from llmvs.datasets import read_annotations
    from llmvs.embeddings import load_video_embeddings, feature_matrix
    from llmvs.train import _evaluator, fit_models, step_shots, training_targets, validation_keys
    from llmvs.evaluation import tvsum_user_summaries
    from llmvs.io import atomic_path, write_text
    from llmvs.shots import read_shots

    if cfg.selection in TEST_SELECTIONS:
        raise LlmvsError(f"selection {cfg.selection} needs test videos, and the release scorer has none")
    smooth_steps = check_smooth_steps(smooth_steps)
    if cfg.val_fraction <= 0 and cfg.selection != "last":
        raise LlmvsError(f"selection {cfg.selection} needs validation videos (val_fraction > 0)")
    if threads:
        torch.set_num_threads(threads)
    parts = [(read_annotations(a), e, s) for a, e, s in sources]
    for (part, _, _), (source, _, _) in zip(parts, sources):
        if not part:
            raise LlmvsError(f"{source}: no videos")
    datasets = [next(iter(p.values())).dataset for p, _, _ in parts]
    if len(set(datasets)) < len(datasets):
        raise LlmvsError(f"a benchmark is given twice ({', '.join(datasets)})")
    results = run_results(summary, run, datasets)  # before training: the card needs them
    videos, feats, metas, shots, users = {}, {}, {}, {}, {}
    fit_keys, val_keys, counts = [], [], {}
    for (part, embeddings_dir, shots_dir), dataset in zip(parts, datasets):
        keys = sorted(part, key=_video_order)
        val = validation_keys(keys, cfg.val_fraction, cfg.val_seed)
        counts[dataset] = {"videos": len(keys), "fit": len(keys) - len(val), "val": len(val)}
        for k in keys:
            key, v = f"{dataset}:{k}", part[k]  # video_N names repeat across benchmarks
            emb = load_video_embeddings(embeddings_dir, v)
            videos[key], metas[key] = v, emb.meta
            feats[key] = feature_matrix(emb, cfg.features)
            (val_keys if k in val else fit_keys).append(key)
            # validation correlations are logged whatever the selection rule; a shot loss needs every shot
            if shots_dir and (k in val or cfg.loss == "shot_pearson"):
                shots[key] = read_shots(Path(shots_dir) / f"{k}.parquet", v.n_frames)
                if dataset == "tvsum" and k in val:
                    users[key] = tvsum_user_summaries(v.user_scores, shots[key], v.n_frames)
    if reads_correlations(cfg.selection) and any(videos[k].dataset == "summe" and k not in shots
                                                        for k in val_keys):
        raise LlmvsError(f"selection {cfg.selection} on SumMe needs shots (--shots-dir)")
    widths = sorted({x.shape[1] for x in feats.values()})
    if len(widths) > 1:
        raise LlmvsError(f"the embeddings have features of several widths {widths}: train on one LLM")
    input_dim = widths[0]
    provenance = _embeddings_provenance(metas, input_dim, cfg.features)

    dev = device()
    mcfg = model_config(cfg, input_dim)
    targets = {k: training_targets(videos[k], cfg.target) for k in feats}
    data = {"x": {k: torch.as_tensor(v, device=dev) for k, v in feats.items()},
            "y": {k: torch.as_tensor(v, device=dev) for k, v in targets.items()},
            "fit": fit_keys, "eval": {"val": val_keys},
            "shots": {k: torch.as_tensor(step_shots(videos[k].picks, c), device=dev) for k, c in shots.items()}}
    if cfg.loss == "shot_pearson" and len(shots) < len(videos):
        raise LlmvsError("loss shot_pearson needs every benchmark's shots (--shots-dir)")
    evaluate = _evaluator(videos, feats, targets, shots, users, per_dataset=list(counts), loss=cfg.loss)
    one = replace(cfg, seeds=1)  # the shipped scorer is one model (of `ensemble` members)
    kept, log = fit_models(one, mcfg, data, evaluate, dev, 0, f"release {run}")
    trained = kept[cfg.selection]
    selected = trained[0]["selected_epoch"]
    chosen = [next(r for r in log if r["member"] == m and r["epoch"] == e) for m, e in enumerate(selected)]
    ckpt = {"format": SCORER_FORMAT, "seeds": trained, "model_config": mcfg.to_dict(),
            "train_config": dict(one.__dict__), "selection": cfg.selection, "scoring": {"smooth_steps": smooth_steps},
            "run": run, "datasets": counts, "fit_keys": fit_keys, "val_keys": val_keys,
            "feature_schema": {"features": cfg.features, "input_dim": input_dim, **provenance,
                               "captioner_model": captioner_model}}
    data_bytes = save_checkpoint(ckpt)
    sha256 = hashlib.sha256(data_bytes).hexdigest()
    text = release_card(ckpt, Path(out).name, len(data_bytes), sha256, results, chosen)
    with atomic_path(out) as tmp:  # the card names the checkpoint's sha256: both land, or neither
        tmp.write_bytes(data_bytes)
        write_text(text, card)
    print(f"{out}: {len(fit_keys)} videos fitted, {len(val_keys)} for validation; selected epoch "
          f"{', '.join(map(str, selected))}; sha256 {sha256}")
    return ckpt


def _mean_std(row: dict, metric: str, digits: int) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or mean != mean:
        return "—"
    fmt = (lambda x: f"{x:.{digits}f}".replace("0.", ".", 1)) if digits == 3 else (lambda x: f"{x:.{digits}f}")
    return fmt(mean) + ("" if std is None or std != std else f" ± {fmt(std)}")


def _columns(fs: dict) -> str:
    """The feature columns a scorer reads, each with what it holds (the card's row)."""
    from llmvs.embeddings import TITLE_COLUMNS, describe, split_source
    from llmvs.encoders import COLUMNS

    def what(name):
        column = split_source(name)[1]
        if column == "qa":
            return "max over the query and answer tokens"
        if fs.get("encoder") and column in COLUMNS:
            return COLUMNS[column].format(id=fs["encoder_model"])
        return TITLE_COLUMNS.get(column) or describe(column)

    return ", ".join(f"`{c}` ({what(c)})" for c in fs["columns"])


def release_card(ckpt: dict, name: str, size: int, sha256: str, results: dict[str, dict], chosen: list[dict]) -> str:
    """The model card of a release checkpoint (Markdown)."""
    fs, tc = ckpt["feature_schema"], ckpt["train_config"]
    stem = Path(name).stem
    captioner = f"`{fs['captioner']}`" + (f" ({fs['captioner_model']})" if fs.get("captioner_model") else "")
    datasets = " and ".join(DATASET_NAMES.get(d, d) for d in ckpt["datasets"])
    lines = [f"# {stem}: the default scorer of `llmvs summarize`", ""]
    if fs.get("encoder"):
        lines += [f"The global aggregator of LLMVS, run `{ckpt['run']}`, reading a sentence encoder's embeddings of "
                  f"the captions instead of an LLM's states, trained on every video of {datasets}. `llmvs summarize` "
                  "uses it unless `--scorer FILE` or `--zero-shot` is given; with it no LLM runs: the captions go "
                  "through the same encoder (the `encode` stage's code)"
                  + (", with the video's title (`--title`, else the file name)." if fs["title"] else "."), "",
                  "| | |", "| --- | --- |", f"| file | `{name}`, {size:,} bytes, sha256 `{sha256}` |",
                  f"| embeddings | sentence encoder `{fs['encoder']}`: {fs['encoder_model']}, {fs['dims']}-d, weights "
                  f"sha256 `{fs['encoder_weights_sha256']}`; no LLM |",
                  f"| feature columns | {_columns(fs)}; input {fs['input_dim']} |",
                  "| title | " + ("read by the title columns" if fs["title"] else "not read") + " |",
                  f"| captioner | {captioner}, every 15th frame |", ""]
    else:
        lines += [
            f"The global aggregator of LLMVS (the only trained part; the LLM stays frozen), run `{ckpt['run']}`, "
            f"trained on every video of {datasets}. `llmvs summarize` uses it unless `--scorer FILE` or "
            "`--zero-shot` is given, and refuses it for another LLM.",
            "",
            "| | |",
            "| --- | --- |",
            f"| file | `{name}`, {size:,} bytes, sha256 `{sha256}` |",
            f"| LLM (embeddings `model`) | {fs['llm']} |",
            f"| LLM states | hidden size {fs['hidden_size']}, {fs['dtype'] or 'dtype not recorded'}; "
            f"input {fs['input_dim']} = {len(fs['columns'])} x {fs['hidden_size']} |",
            f"| feature columns | {_columns(fs)} |",
            f"| captioner | {captioner}, every 15th frame |",
            f"| in-context examples | the other benchmark's (user videos: TVSum's), seed {fs['exemplar_seed']} |",
            "",
        ]
    lines += [
        "## Training data",
        "",
        "| dataset | videos | fitted | validation (seeded, for checkpoint selection) |",
        "| --- | --- | --- | --- |",
    ]
    for ds, c in ckpt["datasets"].items():
        val = ", ".join(k.split(":", 1)[1] for k in ckpt["val_keys"] if k.startswith(f"{ds}:"))
        lines.append(f"| {DATASET_NAMES.get(ds, ds)} | {c['videos']} | {c['fit']} | {c['val']}: {val} |")
    model = ckpt["seeds"][0]
    sel = ", ".join(f"{e} of {tc['epochs']}" + (f" (validation loss {r['val_loss']:.4f})" if "val_loss" in r else "")
                    for e, r in zip(model["selected_epoch"], chosen))
    smooth = ckpt.get("scoring", {}).get("smooth_steps", 0.0)
    lines += ["", f"Selection: `{ckpt['selection']}`, epoch {sel}; seed {model['seed']}.", "",
              f"Scoring: the model's step scores are smoothed over time by a Gaussian of sigma {smooth:g} steps "
              "(the run's `smooth_steps`; `llmvs summarize` applies it)." if smooth else
              "Scoring: the model's step scores as they are (no smoothing).", "",
              "## Configuration", "",
              "The run's training keys (config.yaml `training` < `training_by_dataset` < `runs."
              f"{ckpt['run']}`), with every default:", "", "```json",
              json.dumps(tc, indent=1, sort_keys=True), "```", "",
              f"## Cross-validated results of run `{ckpt['run']}`", "",
              "The same run trained on each split's training videos and tested on its test videos (the benchmark "
              "protocol; mean ± std over the splits). This model has seen every benchmark video, so it has no test "
              "score of its own.", "",
              "| dataset | splits | Kendall τ | Spearman ρ | F1 % |", "| --- | --- | --- | --- | --- |"]
    for ds, r in results.items():
        lines.append(f"| {DATASET_NAMES.get(ds, ds)} | {int(r.get('n_splits') or 0)} | {_mean_std(r, 'tau', 3)} | "
                     f"{_mean_std(r, 'rho', 3)} | {_mean_std(r, 'f1', 1)} |")
    lines += ["", "## Rebuild", "", "From the repository root: `make run` builds it under `results/scorers/` (the "
              "benchmark stages run on the way; their LLM stage takes about an hour on a 2-core CPU), and the "
              "maintainer command below copies that build into the package:", "", "```bash", RELEASE_COMMAND, "```", "",
              "Snakemake rebuilds it when the run's keys change. Training is seeded: the same inputs on the same kind "
              "of machine give the same bytes (the sha256 above); another CPU kind computes other "
              + ("embeddings" if fs.get("encoder") else "LLM states") +
              " and trains another model (README: numbers across machines).", ""]
    return "\n".join(lines)


