"""The field's h5 files and the authors' reading in the workflow: config checks, jobs, the googlenet stage.

- `h5: {summe: path, tvsum: path}` (eccv16 files): `check_h5` pins, before any job, every video the
  splits use to its group (by `video_name` on SumMe, by `n_frames` on both); the annotations and shots
  stages then read the files (`llmvs annotations --h5`, `llmvs shots --h5`), and `googlenet_embeddings`
  (`llmvs h5-features`, one job per benchmark) writes their `features` as embeddings files with one
  column, `googlenet`.
- A run's `embeddings` may name several sources, e.g. `[llm, googlenet]` (`llm`: the setting's LLM):
  `run_sources` resolves them, `check_sources` pins each feature column to exactly one of them, and
  train/evaluate read the folders in that order. Runs that read `googlenet` exist only for the datasets
  that have an h5 (`run_datasets`): without one they have no job and no row.
- `llms: {<name>: {import: {summe: {prompt, gen}, tvsum: ...}}}`: the authors' released states, imported
  by one `llmvs import-states` job per benchmark (`import_jobs`) instead of the LLM stage.
- `reading: as_authors` (a run key): how the published numbers were most likely read (`reading_args`).

    sources = run_sources(config, "text_vision", "smollm2")   # ["smollm2", "googlenet"]
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from llmvs import LlmvsError

GOOGLENET = "googlenet"  # the embeddings source of an eccv16 h5's features
LLM_SOURCE = "llm"  # in a run's `embeddings`: the setting's LLM
STATES_FILES = {"prompt": "user_prompt_pool.h5", "gen": "gen_pool.h5"}
INFO_FILES = {"summe": "summe-info.derived.tsv", "tvsum": "ydata-tvsum50-info.derived.tsv"}


# --- eccv16 h5 files ------------------------------------------------------------------------

def h5_files(config: dict) -> dict[str, str]:
    """dataset -> its eccv16 h5 (as given: relative paths are read from the working directory)."""
    return {ds: path for ds, path in (config.get("h5") or {}).items() if ds in config["datasets"]}


def _info(dataset: str, data_dir) -> dict[str, SimpleNamespace]:
    """key -> name and frame count from the shipped info table: cheap enough for every DAG build."""
    from llmvs.datasets import _read_tsv

    name = "video_name" if dataset == "summe" else "video_id"
    rows = _read_tsv(Path(data_dir) / dataset / INFO_FILES[dataset])
    return {r["h5_key_assumed"]: SimpleNamespace(dataset=dataset, key=r["h5_key_assumed"], name=r[name],
                                                 n_frames=int(r["n_frames"])) for r in rows}


def check_h5(config: dict, videos: dict[str, list[str]]) -> None:
    """Each configured h5 holds every video the splits use, as the same video (SumMe `video_name`, and
    `n_frames`: the 50 TVSum lengths are distinct) — the mapping is checked, not assumed. The other
    fields are checked by the annotations job (llmvs.h5.read_eccv16)."""
    from llmvs.h5 import _check_identity, _int, _open

    for ds, path in h5_files(config).items():
        if not Path(path).is_file():
            raise LlmvsError(f"config h5.{ds}: {path} is not a file; set it to the eccv16 h5 of {ds} "
                             f"(eccv16_dataset_{ds}_google_pool5.h5)")
        info = _info(ds, config["data_dir"])
        with _open(path) as f:
            for key in videos[ds]:
                where = f"config h5.{ds}: {path}: {key}"
                if key not in f or "n_frames" not in f[key]:
                    raise LlmvsError(f"{where}: no such group with n_frames ({info[key].name}; the configured "
                                     "splits use it)")
                _check_identity(where, f[key], info[key], info, _int(where, "n_frames", f[key]["n_frames"][()]))


def googlenet_embeddings(h5, annotations, out_dir, keys=None) -> list[Path]:
    """The `h5-features` stage: `out_dir/{video_N}.arrow` with the h5's `features` as column `googlenet`,
    each group checked against `annotations` (which video, frames, picks); returns the written files."""
    from llmvs.datasets import read_annotations
    from llmvs.embeddings import IMAGE_COLUMNS, features_table, write_arrow
    from llmvs.h5 import read_eccv16

    videos = read_annotations(annotations)
    keys = list(keys) if keys else list(videos)
    unknown = [k for k in keys if k not in videos]
    if unknown:
        raise LlmvsError(f"{annotations}: no video {unknown[0]!r}")
    dataset = videos[keys[0]].dataset
    groups = read_eccv16(h5, dataset, keys=keys, videos=videos)
    written = []
    for key in keys:
        g = groups[key]
        if g.features is None:
            raise LlmvsError(f"{h5}: {key} ({videos[key].name}) has no features")
        # float16 in the file, as every embeddings column: pool5 values are small and >= 0, so ~3 digits
        meta = {"model": "GoogLeNet pool5 (the eccv16 h5 features)", "source": str(h5), "h5_key": key, "video": key,
                "n_frames": g.n_frames, "hidden_size": int(g.features.shape[1]), "exemplar_seed": None,
                "columns": {GOOGLENET: IMAGE_COLUMNS[GOOGLENET]}}
        out = Path(out_dir) / f"{key}.arrow"
        write_arrow(features_table(g.picks, {GOOGLENET: g.features}, meta), out)
        written.append(out)
    return written


def googlenet_jobs(config: dict, videos: dict[str, list[str]], captioner: str) -> list[dict]:
    """One `h5-features` job per dataset with an h5, when some run reads `googlenet`."""
    if not any(GOOGLENET in run_sources(config, run, config["llm"]) and run_datasets(config, run)
               for run in config["runs"]):
        return []
    return [{"name": f"encode_{GOOGLENET}_{_safe(captioner)}_{ds}", "dataset": ds, "h5": path, "videos": videos[ds],
             "out_dir": f"results/{ds}/embeddings/{captioner}/{GOOGLENET}"}
            for ds, path in h5_files(config).items() if ds in videos]


# --- embeddings sources of a run ------------------------------------------------------------

def run_sources(config: dict, run: str, llm: str) -> list[str]:
    """The embeddings a run reads in setting `llm`, in order: its `embeddings` (a name or a list; `llm`
    stands for the setting's LLM), by default the LLM's."""
    spec = config["runs"][run].get("embeddings") or llm
    return [llm if s == LLM_SOURCE else s for s in ([spec] if isinstance(spec, str) else spec)]


def source_columns(config: dict, source: str) -> tuple[str, ...] | None:
    """The feature columns a source's embeddings files hold (None: not a source of this config)."""
    from llmvs.embeddings import FEATURE_COLUMNS, IMAGE_COLUMNS, TITLE_COLUMNS

    if source in config["llms"]:
        return ("q", "a", "qa") if "import" in config["llms"][source] else (*FEATURE_COLUMNS, "qa")
    if source == "tfidf":
        return ("q_text", "c")
    if source in config.get("encoders", {}):
        return ("q_text", "c", *TITLE_COLUMNS)
    if source == GOOGLENET:
        return tuple(IMAGE_COLUMNS)
    return None


def check_sources(config: dict, run: str, llms: list[str]) -> None:
    """A run's `embeddings` are known sources, and each of its feature columns is in exactly one of them
    (in every setting's LLM), so train and evaluate know which folder each column comes from."""
    from llmvs.embeddings import feature_names, needed_columns, split_source

    spec = config["runs"][run]
    method = spec.get("method", "model")
    for llm in llms:
        sources = run_sources(config, run, llm)
        for s in sources:
            if source_columns(config, s) is None or (s in config["llms"] and s != llm):
                raise LlmvsError(f"config runs.{run}.embeddings: {s!r} must be one of tfidf, {GOOGLENET}, an entry "
                                 f"of encoders, or the llm ({llm}, also written `{LLM_SOURCE}`)")
        if len(set(sources)) != len(sources):
            raise LlmvsError(f"config runs.{run}.embeddings: {sources} names a source twice")
        if len(sources) > 1 and method != "model":
            raise LlmvsError(f"config runs.{run}.embeddings: only a trained model (method model) reads several")
        if method not in ("model", "ridge", "feature"):
            continue
        for name in feature_names(spec.get("features", "qa")):
            prefix = split_source(name)[0]
            have = [s for s in sources if set(needed_columns(name)) <= set(source_columns(config, s))
                    and prefix in (None, s)]  # a prefix names the source: `minilm:q_text`
            if len(have) != 1:
                raise LlmvsError(f"config runs.{run}.features: {name!r} is in {len(have) or 'none'} of its embeddings "
                                 f"({', '.join(have or sources)}); each column must come from exactly one")


def run_datasets(config: dict, run: str) -> list[str]:
    """The datasets a run is evaluated on: its `datasets` (default all); a run reading `googlenet` only
    where an h5 is given."""
    spec = config["runs"][run]
    out = [ds for ds in config["datasets"] if ds in spec.get("datasets", config["datasets"])]
    if GOOGLENET in run_sources(config, run, config["llm"]):
        out = [ds for ds in out if ds in h5_files(config)]
    return out


# --- the authors' released LLM states -------------------------------------------------------

def imported(config: dict, llm: str) -> dict | None:
    """The `import` entry of an LLM whose states are the authors' files (None for an LLM we run)."""
    return config["llms"].get(llm, {}).get("import")


def check_imports(config: dict, llms: list[str]) -> None:
    """Every imported LLM of the reported settings has both files for each dataset, and no run reads what
    the files lack (the LLM's answers); no LLM or encoder takes a name the embeddings sources reserve."""
    for pool in ("llms", "encoders"):
        reserved = sorted({GOOGLENET, LLM_SOURCE, "tfidf"} & set(config.get(pool, {})))
        if reserved:
            raise LlmvsError(f"config {pool}.{reserved[0]}: a name the embeddings sources reserve "
                             f"(tfidf, {GOOGLENET}, {LLM_SOURCE})")
    for llm in llms:
        spec = imported(config, llm)
        if spec is None:
            continue
        for ds in config["datasets"]:
            for part, name in STATES_FILES.items():
                path = (spec.get(ds) or {}).get(part)
                if not path or not Path(path).is_file():
                    raise LlmvsError(f"config llms.{llm}.import.{ds}.{part}: {path or '(unset)'} is not a file; set "
                                     f"it to the authors' {name} of {ds} (README: The field's h5 files and the "
                                     "authors' states)")
        for run, rspec in config["runs"].items():
            if rspec.get("method") in ("zero_shot", "zero_shot_expected") and run_datasets(config, run):
                raise LlmvsError(f"config runs.{run}: the imported states of {llm} hold no answers to score by; "
                                 "give it `datasets: []` (presets/official-states.yaml)")


def import_jobs(config: dict, videos: dict[str, list[str]], captioner: str, llm: str) -> list[dict]:
    """One `import-states` job per benchmark for an imported LLM."""
    from llmvs.h5 import AUTHORS_LLM

    spec = imported(config, llm)
    if spec is None:
        return []
    return [{"name": f"import_states_{_safe(llm)}_{_safe(captioner)}_{ds}", "dataset": ds, "videos": keys,
             "prompt": spec[ds]["prompt"], "gen": spec[ds]["gen"], "llm": config["llms"][llm].get("model", AUTHORS_LLM),
             "out_dir": f"results/{ds}/embeddings/{captioner}/{llm}"}
            for ds, keys in videos.items() if ds in spec]


def llm_lineage(config: dict, llm: str) -> dict:
    """What of an imported LLM's entry changes its embeddings: the files and the model they name."""
    from llmvs.h5 import AUTHORS_LLM

    return {"llm": {"import": imported(config, llm), "model": config["llms"][llm].get("model", AUTHORS_LLM)}}


# --- the authors' reading -------------------------------------------------------------------

def check_reading(config: dict, run: str) -> None:
    from llmvs.run_config import READINGS

    spec = config["runs"][run]
    reading, method = spec.get("reading", "honest"), spec.get("method", "model")
    if reading not in READINGS:
        raise LlmvsError(f"config runs.{run}.reading: {reading!r} is not one of {', '.join(READINGS)}")
    if reading == "as_authors" and method == "ridge":
        raise LlmvsError(f"config runs.{run}.reading: the ridge control has no as_authors reading")
    if reading == "as_authors" and "selection" in spec:
        raise LlmvsError(f"config runs.{run}.selection: reading as_authors selects by the rank-0 shard's test rho "
                         "(shard_rho); leave selection out")
    if "checkpoints" in spec and not (reading == "as_authors" and method == "random"):
        raise LlmvsError(f"config runs.{run}.checkpoints: only the as_authors random control draws checkpoints")
    if not isinstance(spec.get("checkpoints", 1), int) or spec.get("checkpoints", 1) < 1:
        raise LlmvsError(f"config runs.{run}.checkpoints: a whole number >= 1, not {spec['checkpoints']!r}")


def reading_args(config: dict, run: str) -> str:
    """`llmvs evaluate` flags of a run's reading ("" for the honest one)."""
    from llmvs.run_config import AUTHORS_EVALUATIONS

    spec = config["runs"][run]
    if spec.get("reading", "honest") != "as_authors":
        return ""
    draws = f" --checkpoints {spec.get('checkpoints', AUTHORS_EVALUATIONS)}" if spec.get("method") == "random" else ""
    return "--reading as_authors" + draws


def reading_label(config: dict, run: str, selections: list[str]) -> str:
    """How a results row reads its test videos: as_authors, test_rho (the epoch chosen on the test split:
    the authors' protocol, not a result) or honest. `selections`: the run's selection per dataset."""
    if config["runs"][run].get("reading", "honest") == "as_authors":
        return "as_authors"
    return "test_rho" if "test_rho" in selections else "honest"


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", str(name))

