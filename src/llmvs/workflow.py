"""Helpers the Snakefile calls: everything that is logic rather than wiring lives here."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from llmvs import LlmvsError
from llmvs.datasets import OTHER_BENCHMARK
from llmvs.h5_workflow import h5_files, imported, llm_lineage, run_datasets, run_sources

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def video_keys(dataset: str, data_dir, splits: list[int]) -> list[str]:
    """The videos the chosen splits use (train and test), in `video_N` order."""
    from llmvs.datasets import load_splits

    all_splits = load_splits(dataset, data_dir)
    bad = [s for s in splits if not 0 <= s < len(all_splits)]
    if bad:
        raise LlmvsError(f"{dataset}: no split(s) {bad} (the splits file has {len(all_splits)})")
    keys = {k for s in splits for k in all_splits[s]["train_keys"] + all_splits[s]["test_keys"]}
    return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))




def model_folders(config: dict, models_dir) -> dict[str, str]:
    """Prepared folder name -> spec of every model the configured settings load (hub ids, smollm2)."""
    from llmvs.model_store import prepared_dir

    specs = [config["llms"][llm]["model"] for _, llm in settings(config) if not imported(config, llm)]
    specs += [config["captioners"][c]["model"] for c, _ in settings(config)
              if config["captioners"][c]["backend"] != "import"]
    return {prepared_dir(s, models_dir).name: s for s in specs if prepared_dir(s, models_dir) is not None}


def model_input(spec: str, models_dir) -> str:
    """The folder a job loads: the prepared folder of a hub id / smollm2 (made by `prepare_model`),
    or the local folder itself."""
    from llmvs.model_store import prepared_dir

    prepared = prepared_dir(spec, models_dir)
    return str(prepared if prepared is not None else Path(spec).expanduser())


def scripts_first_on_path() -> None:
    """Put the scripts folder of the running Python (the environment Snakemake was started from) first on
    PATH, so jobs find its `llmvs` without an activated environment; a conda job's own environment is
    still put before it."""
    scripts = os.path.dirname(sys.executable)
    path = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p and p != scripts]
    if scripts:
        os.environ["PATH"] = os.pathsep.join([scripts, *path])


def settings(config: dict) -> list[tuple[str, str]]:
    """(captioner, llm) pairs the default target reports: the configured one, then `compare`."""
    out = [(config["captioner"], config["llm"])]
    for s in config.get("compare", []):
        pair = tuple(s.split("/", 1))
        if pair not in out:
            out.append(pair)
    return out


def run_cells(config: dict) -> list[tuple[str, str, int]]:
    """Every (dataset, run, split) the default target evaluates; a run may name its datasets, and a run
    reading an h5's features exists only where an h5 is given."""
    return [(ds, run, split) for ds in config["datasets"] for run in config["runs"]
            if ds in run_datasets(config, run) for split in config["splits"]]


def run_method(config: dict, run: str) -> str:
    if run not in config["runs"]:
        raise LlmvsError(f"unknown run {run!r}: config runs are {', '.join(config['runs'])}")
    return config["runs"][run].get("method", "model")


def run_encoder(config: dict, run: str, llm: str) -> str:
    """Whose embeddings a run reads in setting `llm`: the LLM's, the `tfidf` control's or a caption
    encoder's (an entry of `encoders`), for a run reading one source (see h5_workflow.run_sources)."""
    sources = run_sources(config, run, llm)
    if len(sources) != 1:
        raise LlmvsError(f"run {run!r} reads several embeddings ({', '.join(sources)})")
    return sources[0]


def _feature_list(spec: dict) -> list:
    features = spec.get("features", "qa")
    return [features] if isinstance(features, str) else list(features)


def feature_list(config: dict, run: str) -> list[str]:
    """The embedding column(s) a run reads (`features`, default qa)."""
    return _feature_list(config["runs"][run])


def uses_title(config: dict, run: str) -> bool:
    """Whether a run's scores read the video's title (TVSum's task definition; most published rows do not)."""
    return any(str(f).startswith("title_") for f in _feature_list(config["runs"][run]))


def encoder_jobs(config: dict, videos: dict[str, list[str]], captioner: str) -> list[dict]:
    """One job per benchmark and caption encoder some run reads (`tfidf`: its LSA basis spans the
    benchmark's captions; a sentence encoder loads once per job)."""
    used = dict.fromkeys(s for run in config["runs"] for s in run_sources(config, run, config["llm"])
                         if s in ("tfidf", *config.get("encoders", {})))
    return [{"name": _rule_name("encode", encoder, captioner, ds), "encoder": encoder, "dataset": ds, "videos": keys}
            for encoder in used for ds, keys in videos.items()]


def encoder_args(config: dict, encoder: str, dataset: str) -> str:
    """The `llmvs` command (stage and flags) that writes an encoder's embeddings of a benchmark."""
    if encoder == "tfidf":
        return "tfidf"
    return f"encode --encoder '{config['encoders'][encoder]['model']}' --annotations results/{dataset}/annotations.parquet"


def run_augments(config: dict, dataset: str, run: str) -> bool:
    return bool(json.loads(train_config(config, dataset, run)).get("augment", False))


def train_config(config: dict, dataset: str, run: str) -> str:
    """JSON of the training keys for one dataset x run: training < training_by_dataset < run."""
    from llmvs.run_config import EVALUATION_KEYS, RUN_KEYS, TrainConfig

    merged = {**config.get("training", {}), **config.get("training_by_dataset", {}).get(dataset, {}),
              **{k: v for k, v in config["runs"][run].items() if k not in RUN_KEYS + EVALUATION_KEYS}}
    if config["runs"][run].get("reading") == "as_authors":  # the epoch with the best test rho on rank 0's shard
        merged["selection"] = "shard_rho"
    TrainConfig.from_dict(merged)  # unknown or bad keys and values fail at DAG-building time, naming the key
    return json.dumps(merged, sort_keys=True)


def training_run(config: dict, dataset: str, run: str) -> str:
    """The run whose training job makes a trained run's models on `dataset`: the run itself, or for a run
    read as_authors, the first run read honestly (its selection reads no test videos) with the same
    embeddings and training keys: its training passes through every epoch the as_authors reading chooses
    from (the seeds fix the trajectory, the selection rule only which epoch is kept), so it keeps that epoch
    too instead of a second training. Adding, removing or changing such a run changes that training's
    arguments, so Snakemake reruns it (with the same models of its own)."""
    from llmvs.run_config import TEST_SELECTIONS

    spec = config["runs"][run]
    if run_method(config, run) != "model" or spec.get("reading") != "as_authors":
        return run

    def keys(name):  # (the selection rule, the other training keys)
        merged = json.loads(train_config(config, dataset, name))
        return merged.pop("selection", "val_loss"), merged

    _, mine = keys(run)
    for other, o in config["runs"].items():
        if (other != run and run_method(config, other) == "model" and o.get("reading", "honest") == "honest"
                and dataset in run_datasets(config, other) and o.get("embeddings") == spec.get("embeddings")):
            selection, theirs = keys(other)
            if selection not in TEST_SELECTIONS and theirs == mine:
                return other
    return run


def also_select(config: dict, dataset: str, run: str) -> list[str]:
    """Selection rules the training of `run` on `dataset` keeps beside its own, for the runs it trains for."""
    return ["shard_rho"] if any(other != run and dataset in run_datasets(config, other)
                                and training_run(config, dataset, other) == run for other in config["runs"]) else []


def smooth_steps(config: dict, run: str) -> float:
    """The run's evaluation key `smooth_steps` (0: its scores as they are)."""
    return float(config["runs"][run].get("smooth_steps", 0.0))


def lineage(config: dict, captioner: str, llm: str, run: str, dataset: str | None = None) -> str:
    """JSON of the configuration upstream of a run's job: what made the features it reads, source by source
    (the captioner where captions are read; the LLM's output-affecting flags and exemplars, or its imported
    files; an encoder's entry), the eccv16 h5 when one is given and, given the dataset, a trained run's
    training keys; "{}" for runs that read no features (random, oracle) without an h5.

    Rules record it as a parameter so that a change upstream reruns the job itself: Snakemake does not
    rebuild a missing intermediate file (deleted when its job failed or was killed) while the files
    made from it look up to date, and would keep results of the old configuration. Resources (threads,
    memory) are left out: they change no output."""
    method = run_method(config, run)
    h5 = h5_files(config)  # an eccv16 h5 gives the targets, user summaries and shots of its dataset
    h5 = {"h5": h5.get(dataset) if dataset else h5} if h5 and (dataset is None or dataset in h5) else {}
    if method in ("random", "oracle"):
        return json.dumps(h5, sort_keys=True)
    sources = run_sources(config, run, llm)
    encoders = [s for s in sources if s in config.get("encoders", {})]
    reads_captions = [s for s in sources if s == "tfidf" or s in encoders or (s == llm and not imported(config, llm))]
    out: dict = {"captioner": config["captioners"][captioner]} if reads_captions else {}
    for source in sources:
        if source == llm and imported(config, llm):
            out.update(llm_lineage(config, llm))
        elif source == llm:
            out.update(llm=prompts_args(config["llms"][llm]), exemplars=config["exemplars"],
                       exemplar_seed=config.get("exemplar_seed", 0))
        elif source in encoders:
            out["encoder" if len(encoders) == 1 else f"encoder.{source}"] = config["encoders"][source]
    out.update(h5)
    if method == "model" and dataset is not None:
        out["training"] = json.loads(train_config(config, dataset, run))
    return json.dumps(out, sort_keys=True)


def embedded_videos(config: dict, videos: dict[str, list[str]]) -> dict[str, list[str]]:
    """Videos whose embeddings some run reads: the evaluated ones, plus every video of the other
    benchmark when a run trains in the augmented setting."""
    out = {ds: list(keys) for ds, keys in videos.items()}
    for ds in config["datasets"]:
        for run in config["runs"]:
            if run_method(config, run) == "model" and run_augments(config, ds, run) and OTHER_BENCHMARK[ds] not in out:
                out[OTHER_BENCHMARK[ds]] = video_keys(OTHER_BENCHMARK[ds], config["data_dir"], [0, 1, 2, 3, 4])
    return out


def video_steps(config: dict, dataset: str, video: str) -> int:
    """Steps (LLM windows) of one benchmark video: sizes the LLM job's run time."""
    from llmvs.datasets import load_dataset

    return load_dataset(dataset, config["data_dir"])[video].n_steps


def _rule_name(*parts) -> str:
    return "_".join(re.sub(r"\W", "_", str(p)) for p in parts)


def user_videos(videos_dir) -> dict[str, Path]:
    """name -> file for every video in the user's folder."""
    folder = Path(videos_dir)
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}


def caption_source(config: dict, captioner: str, dataset: str) -> str:
    spec = config["captioners"][captioner]
    return spec.get("source") or str(Path(config["data_dir"]) / "captions" / captioner / f"{dataset}_captions.json.gz")


def exemplar_inputs(config: dict, dataset: str) -> list[str]:
    """Files the prompts stage reads for its in-context examples (`exemplars: auto|summe|tvsum`)."""
    from llmvs.datasets import annotation_files, shipped_captions_path

    spec = config["exemplars"]
    source = OTHER_BENCHMARK.get(dataset, "tvsum") if spec == "auto" else spec
    if source == "none":
        return []
    if source not in OTHER_BENCHMARK:
        return [source]  # an exemplars JSON file
    return [str(p) for p in annotation_files(source, config["data_dir"])] + [
        str(shipped_captions_path(source, data_dir=config["data_dir"]))]


def llm_args(spec: dict) -> str:
    """`--llm` and `--dtype` flags for one entry of `llms` (shared by prompts and summarize)."""
    from llmvs.llm_stage import PROMPTS_DEFAULTS

    if "import" in spec or "model" not in spec:
        raise LlmvsError("an LLM whose states are imported cannot run on new captions: set llm to one with a model")
    return f"--llm '{spec['model']}' --dtype {spec.get('dtype', PROMPTS_DEFAULTS['dtype'])}"


def prompts_args(spec: dict) -> str:
    """CLI flags of `llmvs prompts` for one entry of `llms` (what it leaves out: llm_stage.PROMPTS_DEFAULTS)."""
    from llmvs.llm_stage import PROMPTS_DEFAULTS

    d = {**PROMPTS_DEFAULTS, **spec}
    args = [llm_args(spec), f"--batch-size {d['batch_size']}", f"--max-new-tokens {d['max_new_tokens']}",
            f"--token-budget {d['token_budget']}", f"--path {d['path']}"]
    if spec.get("token_states"):
        args.append("--token-states")
    if spec.get("title_prompt"):
        args.append("--title-prompt")
    return " ".join(args)


def caption_args(config: dict, captioner: str, dataset: str, video: str) -> str:
    """CLI flags of `llmvs captions` for a benchmark video."""
    spec = config["captioners"][captioner]
    if spec["backend"] == "import":
        return (f"--annotations results/{dataset}/annotations.parquet --video {video} "
                f"--source '{caption_source(config, captioner, dataset)}'")
    return f"--frames results/{dataset}/frames/{video}.parquet --model '{spec['model']}' --batch-size {spec.get('batch_size', 8)}"


def benchmark_video_file(config: dict, dataset: str, video: str) -> str:
    """The benchmark video file for `video_N`, from `benchmark_videos[dataset]` (name or YouTube id)."""
    from llmvs.datasets import load_dataset

    folder = config.get("benchmark_videos", {}).get(dataset)
    if not folder:
        raise LlmvsError(f"set benchmark_videos.{dataset} to the folder of the {dataset} videos "
                         "(needed by captioners that read frames)")
    name = load_dataset(dataset, config["data_dir"])[video].name
    for stem, path in user_videos(folder).items():
        if stem in (name, name.replace(" ", "_")):
            return str(path)
    raise LlmvsError(f"{folder}: no video file named {name!r} for {dataset} {video}")


def user_captions(config: dict, video: str) -> str:
    """The captions file of a user video: <name>.csv or <name>.json in summarize.captions_dir."""
    folder = Path(config.get("summarize", {}).get("captions_dir") or config["videos_dir"])
    for suffix in (".csv", ".json"):
        path = folder / f"{video}{suffix}"
        if path.exists():
            return str(path)
    raise LlmvsError(f"{folder}: no captions for {video} ({video}.csv with frame_index,caption or {video}.json)")


# Windows per second of one one-thread SmolLM2 worker of the LLM stage (fast path): float32 on a 2-core
# AVX2 CPU (llmvs bench prompts); bfloat16 as measured where the CPU computes it natively (AVX-512 BF16)
# and where it does not (emulated: docs/timings.md)
WORKER_WINDOWS_PER_S = {"float32": 1.9, "bfloat16": 4.3, "bfloat16-emulated": 0.23}


def estimate_message(config: dict, videos: dict[str, list[str]]) -> str:
    """One line saying how much LLM work is left and roughly how long it takes here."""
    from llmvs.datasets import load_dataset
    from llmvs.machine import native_bfloat16

    spec = config["llms"][config["llm"]]
    if imported(config, config["llm"]):
        return f"llmvs: the LLM states are the authors' files (llms.{config['llm']}.import): no LLM runs here."
    todo = 0
    for dataset, keys in videos.items():
        dataset_videos = load_dataset(dataset, config["data_dir"])
        folder = Path("results") / dataset / "embeddings" / config["captioner"] / config["llm"]
        todo += sum(dataset_videos[k].n_steps for k in keys if not (folder / f"{k}.arrow").exists())
    if not todo:
        return "llmvs: all LLM embeddings are done; the remaining stages take minutes."
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = False
    dtype = spec.get("dtype", "float32")
    rate = WORKER_WINDOWS_PER_S.get(dtype + ("" if dtype != "bfloat16" or native_bfloat16() else "-emulated"))
    if gpu or spec["model"] != "smollm2" or rate is None:  # no measured rate to go by
        return f"llmvs: {todo:,} caption windows to run through the LLM ({spec['model']})."
    rate *= max(1, (os.cpu_count() or 1) // spec.get("threads", 1))
    return (f"llmvs: {todo:,} caption windows to run through SmolLM2 on {os.cpu_count()} CPU cores: "
            f"about {todo / rate / 3600:.1f} h at ~{rate:.1f} windows/s, then the trainings.")


RELEASE_SETTING = ("blip", "smollm2")  # the captioner and LLM of the scorer shipped in llmvs/scorers/
RELEASE_DATASETS = ("summe", "tvsum")  # it is fitted on every video of both


def release_source(config: dict) -> str:
    """The embeddings folder the shipped scorer reads: the LLM's, or a caption encoder's (`summarize` computes
    those for a user's video without the LLM; tfidf's LSA basis and GoogLeNet exist for benchmark videos only)."""
    run = config.get("headline", "llmvs")
    sources = run_sources(config, run, config["llm"]) if run_method(config, run) == "model" else []
    if len(sources) != 1 or sources[0] not in (config["llm"], *config.get("encoders", {})):
        raise LlmvsError(f"config headline: run {run!r} trains no scorer on LLM states or on a caption encoder's "
                         "embeddings (an entry of `encoders`)")
    return RELEASE_SETTING[1] if sources[0] == config["llm"] else sources[0]


def release_config(config: dict) -> str:
    """JSON of the training keys of the `headline` run for the shipped scorer: one model fitted on both
    benchmarks, so the keys the results table used must agree between them."""
    run = config.get("headline", "llmvs")
    release_source(config)
    keys = {ds: json.loads(train_config(config, ds, run)) for ds in RELEASE_DATASETS}
    differ = sorted(k for k in set(keys["summe"]) | set(keys["tvsum"]) if keys["summe"].get(k) != keys["tvsum"].get(k))
    if differ:
        raise LlmvsError(f"config headline: run {run!r} trains with other {', '.join(differ)} on summe than on tvsum; "
                         "the shipped scorer is one model for both")
    return json.dumps(keys["summe"], sort_keys=True)
