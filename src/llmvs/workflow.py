"""Helpers the Snakefile calls: everything that is logic rather than wiring lives here."""

from __future__ import annotations

import json
from pathlib import Path

from llmvs import LlmvsError

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


RUN_KEYS = ("method", "datasets")  # run keys that are not training keys


def run_cells(config: dict) -> list[tuple[str, str, int]]:
    """Every (dataset, run, split) the default target evaluates; a run may name its datasets."""
    return [(ds, run, split) for ds in config["datasets"] for run, spec in config["runs"].items()
            if ds in spec.get("datasets", config["datasets"]) for split in config["splits"]]


def run_method(config: dict, run: str) -> str:
    if run not in config["runs"]:
        raise LlmvsError(f"unknown run {run!r}: config runs are {', '.join(config['runs'])}")
    return config["runs"][run].get("method", "model")


def train_config(config: dict, dataset: str, run: str) -> str:
    """JSON of the training keys for one dataset x run: training < training_by_dataset < run."""
    from llmvs.train import TrainConfig

    merged = {**config.get("training", {}), **config.get("training_by_dataset", {}).get(dataset, {}),
              **{k: v for k, v in config["runs"][run].items() if k not in RUN_KEYS}}
    TrainConfig.from_dict(merged)  # unknown or bad keys fail at DAG-building time, naming the key
    return json.dumps(merged, sort_keys=True)


def user_videos(videos_dir) -> dict[str, Path]:
    """name -> file for every video in the user's folder."""
    folder = Path(videos_dir)
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}


def caption_source(config: dict, captioner: str, dataset: str) -> str:
    spec = config["captioners"][captioner]
    return spec.get("source") or str(Path(config["data_dir"]) / "captions" / captioner / f"{dataset}_captions.json.gz")


def llm_args(spec: dict) -> str:
    """`--llm` and `--dtype` flags for one entry of `llms` (shared by prompts and summarize)."""
    return f"--llm '{spec['model']}' --dtype {spec.get('dtype', 'float32')}"


def prompts_args(spec: dict) -> str:
    """CLI flags of `llmvs prompts` for one entry of `llms`."""
    args = [llm_args(spec), f"--batch-size {spec.get('batch_size', 8)}", f"--max-new-tokens {spec.get('max_new_tokens', 8)}",
            f"--path {spec.get('path', 'fast')}"]
    if spec.get("token_states"):
        args.append("--token-states")
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


# Windows per second of the LLM stage with SmolLM2 on a 2-core CPU: bfloat16 as measured over the
# last 18 TVSum videos (README); float32 scaled from it by the prompts bench ratio (4.12 / 6.55).
CPU_WINDOWS_PER_S = {"float32": 3.5, "bfloat16": 5.5}


def estimate_message(config: dict, videos: dict[str, list[str]]) -> str:
    """One line saying how much LLM work is left and roughly how long it takes here."""
    import os

    from llmvs.datasets import load_dataset

    spec = config["llms"][config["llm"]]
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
    rate = CPU_WINDOWS_PER_S.get(spec.get("dtype", "float32"))
    if gpu or spec["model"] != "smollm2" or rate is None:  # no measured rate to go by
        return f"llmvs: {todo:,} caption windows to run through the LLM ({spec['model']})."
    rate *= max(1, (os.cpu_count() or 2) // 2)
    return (f"llmvs: {todo:,} caption windows to run through SmolLM2 on {os.cpu_count()} CPU cores: "
            f"about {todo / rate / 3600:.1f} h at ~{rate:.0f} windows/s, then a few minutes per training split.")
