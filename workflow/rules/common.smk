# Input functions shared by the rule files (the logic they call lives in llmvs.workflow).
import json
import shlex

from llmvs.datasets import OTHER_BENCHMARK
from llmvs.h5_workflow import h5_files, reading_args, reading_label, run_sources
from llmvs.summarize import SHIPPED_SCORER, file_sha256
from llmvs.workflow import RELEASE_DATASETS, RELEASE_SETTING, also_select, release_config, release_source, training_run


def scaled_by_attempt(base):
    """A resource that grows with each retry (`retries:` in the Slurm profile)."""
    return lambda wildcards, attempt: base * attempt


def _annotations(dataset):
    return f"results/{dataset}/annotations.parquet"


def _splits(wc):
    return f"{config['data_dir']}/splits/{wc.dataset}_splits.json"


def _embeddings_dir(dataset, captioner, encoder):
    return f"results/{dataset}/embeddings/{captioner}/{encoder}"


def _run_embeddings_dirs(wc):
    return [_embeddings_dir(wc.dataset, wc.captioner, s) for s in run_sources(config, wc.run, wc.llm)]


def _run_embeddings_dir(wc):
    """The folder(s) a run reads, in order (several: `llmvs train/evaluate --embeddings-dir A B`)."""
    return " ".join(_run_embeddings_dirs(wc))


def _run_embeddings(wc):
    return expand("{d}/{video}.arrow", d=_run_embeddings_dirs(wc), video=VIDEOS[wc.dataset])


def _shots(wc):
    return expand("results/{dataset}/shots/{video}.parquet", dataset=wc.dataset, video=VIDEOS[wc.dataset])


def _shots_inputs(wc):
    """A benchmark video's shots: the KTS change points (`shots: {source: kts}`, the default) of the
    dataset's eccv16 h5 when `h5` gives one, else the shipped ones; or change points detected on its
    captions (`source: captions`)."""
    shots = config["shots"]
    if shots.get("source", "kts") == "kts" and wc.dataset in h5_files(config):
        return {"annotations": _annotations(wc.dataset), "h5": h5_files(config)[wc.dataset]}
    if shots.get("source", "kts") == "kts":
        return {"annotations": _annotations(wc.dataset), "change_points": str(kts_path(wc.dataset, config["data_dir"]))}
    captioner = shots.get("captioner", "blip")
    return {"annotations": _annotations(wc.dataset), "captions": f"results/{wc.dataset}/captions/{captioner}/{wc.video}.parquet"}


def _shots_args(wc, input):
    if "change_points" in input.keys():
        return f"--change-points {shlex.quote(input.change_points)}"
    if "h5" in input.keys():
        return f"--h5 {shlex.quote(input.h5)}"
    shots = config["shots"]
    return (f"--captions {input.captions} --shot-seconds {shots.get('shot_seconds', 4.0)}"
            f" --min-shot-seconds {shots.get('min_shot_seconds', 1.0)}")


def _run_dir(wc, run=None):
    """The split folder of the wildcards' run, or of `run` in the same setting and split."""
    return f"results/{wc.dataset}/runs/{wc.captioner}/{wc.llm}/{run or wc.run}/split{wc.split}"


def _train_inputs(wc):
    inputs = {
        "annotations": _annotations(wc.dataset),
        "splits": _splits(wc),
        "embeddings": _run_embeddings(wc),
        "shots": _shots(wc),
    }
    if run_augments(config, wc.dataset, wc.run):  # the other benchmark's videos join the fitting set
        other = OTHER_BENCHMARK[wc.dataset]
        encoder = run_encoder(config, wc.run, wc.llm)
        inputs["extra_annotations"] = _annotations(other)
        inputs["extra_embeddings"] = expand(
            "{d}/{video}.arrow", d=_embeddings_dir(other, wc.captioner, encoder), video=EMBEDDED[other]
        )
    return inputs


def _train_extra_args(wc, input):
    """The other benchmark of an augmented run; the selections kept for runs this training serves."""
    kept = also_select(config, wc.dataset, wc.run)
    args = [f"--also-select {' '.join(kept)}"] if kept else []
    if "extra_annotations" in input.keys():
        other = OTHER_BENCHMARK[wc.dataset]
        encoder = run_encoder(config, wc.run, wc.llm)
        args += [f"--extra-annotations {input.extra_annotations}",
                 f"--extra-embeddings-dir {_embeddings_dir(other, wc.captioner, encoder)}"]
    return " ".join(args)


def _evaluate_inputs(wc):
    method = run_method(config, wc.run)
    inputs = {"annotations": _annotations(wc.dataset), "splits": _splits(wc), "shots": _shots(wc)}
    if method == "model":  # an as_authors run reads the models its headline's training kept for it
        inputs["model"] = f"{_run_dir(wc, training_run(config, wc.dataset, wc.run))}/model.pt"
    if method not in ("random", "oracle"):
        inputs["embeddings"] = _run_embeddings(wc)
    return inputs


def _evaluate_args(wc):
    """`--features` of a feature run, the reading flags of an as_authors run."""
    feature = f"--features {feature_list(config, wc.run)[0]}" if run_method(config, wc.run) == "feature" else ""
    return " ".join(a for a in (feature, reading_args(config, wc.run)) if a)


def _readings(wc):
    """RUN=READING for every run not read honestly (summary.csv's column reading)."""
    selections = lambda run: [json.loads(train_config(config, ds, run)).get("selection") for ds in config["datasets"]]
    labels = {run: reading_label(config, run, selections(run)) for run in config["runs"]}
    return " ".join(f"{run}={label}" for run, label in labels.items() if label != "honest")


def _runs_of(method):
    """A wildcard pattern of the runs with this method ("none" matches no run name in use)."""
    return "|".join(r for r in config["runs"] if run_method(config, r) == method) or "none"


def _runs_except(method):
    return "|".join(r for r in config["runs"] if run_method(config, r) != method) or "none"


def _setting_metrics(wc):
    return [
        f"results/{dataset}/runs/{wc.captioner}/{wc.llm}/{run}/split{split}/metrics.csv"
        for dataset, run, split in run_cells(config)
    ]


def _scorer(wc):
    scorer = config.get("summarize", {}).get("scorer", "shipped")
    return [] if scorer in ("zero_shot", "shipped") else [scorer]


def _scorer_args(wc, input):
    scorer = config.get("summarize", {}).get("scorer", "shipped")
    return {"zero_shot": "--zero-shot", "shipped": ""}.get(scorer, f"--scorer {input.scorer}")


def _shipped_sha256(wc):
    """A new shipped scorer reruns the summaries (a params change), without being an input: as an
    input, a fresh checkout would rebuild it, and every benchmark stage before it."""
    shipped = config.get("summarize", {}).get("scorer", "shipped") == "shipped"
    return file_sha256(SHIPPED_SCORER) if shipped and SHIPPED_SCORER.exists() else ""


def _release_files(pattern):
    """An input function: `pattern` for every video of both benchmarks in the shipped scorer's setting
    (`source`: the embeddings folder its headline run reads)."""
    from llmvs.datasets import load_dataset

    captioner, llm = RELEASE_SETTING
    return lambda wc: [
        pattern.format(dataset=ds, video=v, captioner=captioner, llm=llm, source=release_source(config))
        for ds in RELEASE_DATASETS
        for v in load_dataset(ds, config["data_dir"])
    ]
