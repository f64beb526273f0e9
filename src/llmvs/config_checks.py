"""The config's checks that its schema cannot express, run when the DAG is built (one line each,
naming the key's path)."""

from __future__ import annotations

import json
from pathlib import Path

from llmvs import LlmvsError
from llmvs.h5_workflow import check_imports, check_reading, check_sources, imported, run_sources
from llmvs.workflow import _feature_list, benchmark_video_file, settings, train_config, video_keys


def check_config(config: dict, workflow_dir) -> None:
    """Checks the schema cannot express, at DAG-building time, naming the key's path; resolves the
    shipped `data_dir` against the workflow's own folder (so `--directory` works)."""
    data = Path(config["data_dir"]).expanduser()
    config["data_dir"] = str(data if data.is_absolute() else Path(workflow_dir) / data)
    for name in ("captioner", "llm"):
        pool = config[name + "s"]
        if config[name] not in pool:
            raise LlmvsError(f"config {name}: {config[name]!r} is not one of {name}s: {', '.join(pool) or '(none)'}")
    _check_inputs(config)
    for setting in config.get("compare", []):
        captioner, _, llm = setting.partition("/")
        if captioner not in config["captioners"] or llm not in config["llms"]:
            raise LlmvsError(f"config compare: {setting!r} must be <captioner>/<llm> from captioners and llms")
    llms = list(dict.fromkeys(llm for _, llm in settings(config)))
    check_imports(config, llms)  # and the names the embeddings sources reserve
    from llmvs.run_config import EVALUATION_KEYS, METHODS, RUN_KEYS, TrainConfig, check_smooth_steps

    known = set(TrainConfig.__dataclass_fields__)
    sources = [("training", config.get("training", {}), known)]
    sources += [(f"training_by_dataset.{ds}", keys, known) for ds, keys in config.get("training_by_dataset", {}).items()]
    sources += [(f"runs.{run}", spec, known | set(RUN_KEYS) | set(EVALUATION_KEYS)) for run, spec in config["runs"].items()]
    for where, keys, allowed in sources:
        unknown = sorted(set(keys) - allowed)
        if unknown:
            raise LlmvsError(f"config {where}.{unknown[0]}: unknown key (training keys: {', '.join(sorted(known))}; "
                             f"run keys: {', '.join(RUN_KEYS + EVALUATION_KEYS)})")
    for run, spec in config["runs"].items():
        method = spec.get("method", "model")
        if method not in METHODS:
            raise LlmvsError(f"config runs.{run}.method: unknown method {method!r} (expected one of {', '.join(METHODS)})")
        check_sources(config, run, llms)
        check_reading(config, run)
        if method == "feature" and (run_sources(config, run, config["llm"]) == [config["llm"]]
                                    or len(_feature_list(spec)) != 1):
            raise LlmvsError(f"config runs.{run}: method feature scores by one column of an encoder's embeddings "
                             "(set embeddings and one features column)")
        try:
            check_smooth_steps(spec.get("smooth_steps", 0.0))
        except LlmvsError as err:
            raise LlmvsError(f"config runs.{run}.{err}") from None
        for dataset in config["datasets"]:
            try:
                augments = json.loads(train_config(config, dataset, run)).get("augment", False)
            except LlmvsError as err:
                raise LlmvsError(f"config runs.{run} ({dataset}): {err}") from None
            if augments and run_sources(config, run, config["llm"]) != [config["llm"]]:
                raise LlmvsError(f"config runs.{run}.augment: the augmented setting reads the LLM's embeddings only")


def _check_inputs(config: dict) -> None:
    """Model folders and benchmark videos the configured setting needs, named by their config key."""
    from llmvs.model_store import parse_model_spec

    llm = config["llm"]
    named = [] if imported(config, llm) else [(f"llms.{llm}.model", config["llms"][llm]["model"])]
    captioner = config["captioners"][config["captioner"]]
    if captioner["backend"] != "import":
        if "model" not in captioner:
            raise LlmvsError(f"config captioners.{config['captioner']}: backend {captioner['backend']} needs a model")
        named.append((f"captioners.{config['captioner']}.model", captioner["model"]))
        for ds in config["datasets"]:
            folder = config.get("benchmark_videos", {}).get(ds)
            if not folder or not Path(folder).is_dir():
                raise LlmvsError(f"config benchmark_videos.{ds}: {folder or '(unset)'} is not a folder; set it to the "
                                 f"folder of the {ds} videos (README: Running on a cluster)")
            for key in video_keys(ds, config["data_dir"], config["splits"]):
                benchmark_video_file(config, ds, key)  # each video present, named as the dataset names it
    for key, spec in named:
        s = parse_model_spec(spec)
        if s.kind == "local" and not (Path(spec).expanduser() / "config.json").is_file():
            raise LlmvsError(f"config {key}: {spec} is not a model folder (no config.json); set a local Hugging "
                             "Face model folder or a hub id org/name[@revision]")
