# llmvs: LLM-based video summarization (LLMVS, CVPR 2025) as a staged, resumable workflow.
#   snakemake --profile local                # the embedded default on both benchmarks
#   snakemake --profile slurm --configfile presets/paper.yaml
import os
import re
import sys

from snakemake.utils import min_version, validate

from llmvs import LlmvsError

from llmvs.config_checks import check_config
from llmvs.datasets import annotation_files, kts_path
from llmvs.h5_workflow import check_h5, googlenet_jobs, h5_files, import_jobs, imported
from llmvs.workflow import (
    benchmark_video_file,
    caption_args,
    caption_source,
    embedded_videos,
    encoder_args,
    encoder_jobs,
    estimate_message,
    exemplar_inputs,
    feature_list,
    lineage,
    llm_args,
    model_folders,
    model_input,
    prompts_args,
    run_augments,
    run_cells,
    run_encoder,
    run_method,
    scripts_first_on_path,
    settings,
    smooth_steps,
    train_config,
    uses_title,
    user_captions,
    user_videos,
    video_keys,
    video_steps,
)

min_version("9.0")
scripts_first_on_path()  # jobs call `llmvs`: `.venv/bin/snakemake` needs no activated environment


configfile: os.path.join(workflow.basedir, "config.yaml")


# every job's image under `--sdm apptainer` (build it first: containers/llmvs.def); unused otherwise
container: os.path.join(workflow.basedir, "containers", "llmvs.sif")


validate(config, "workflow/schemas/config.schema.yaml")
MODELS_DIR = os.environ.get("LLMVS_MODELS", "models")  # prepared models; jobs look there too
try:  # what the schema cannot say, checked before any job (one line naming the key, no traceback)
    check_config(config, workflow.basedir)  # also resolves data_dir against this folder
    SETTINGS = settings(config)  # (captioner, llm): the configured one first
    VIDEOS = {ds: video_keys(ds, config["data_dir"], config["splits"]) for ds in config["datasets"]}
    check_h5(config, VIDEOS)  # each eccv16 h5 holds these videos, as the same videos
    EMBEDDED = embedded_videos(config, VIDEOS)
    MODEL_FOLDERS = model_folders(config, MODELS_DIR)
except LlmvsError as err:
    sys.exit(f"llmvs: error: {err}")
USER_VIDEOS = user_videos(config["videos_dir"])
H5_FILES = h5_files(config)
IMPORTED = [c for c, spec in config["captioners"].items() if spec["backend"] == "import"]


wildcard_constraints:
    dataset="summe|tvsum",
    video=r"[^/]+",
    split=r"\d+",
    run="|".join(config["runs"]) or "none",
    captioner=r"[A-Za-z0-9_.-]+",
    llm=r"[A-Za-z0-9_.-]+",
    folder="|".join(map(re.escape, MODEL_FOLDERS)) or "none",


localrules:
    all,
    prepare_model,
    build_annotations,
    build_annotations_h5,
    import_captions,
    detect_shots,
    evaluate_split,
    human_baseline,
    aggregate_setting,
    combine_settings,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/h5.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summarize.smk"
include: "workflow/rules/release.smk"


onstart:
    print(estimate_message(config, EMBEDDED))


rule all:
    input:
        "results/summary.csv",
        "results/summary.png",
        # the scorer `llmvs summarize` ships with, rebuilt from this run (results/scorers/), when this
        # configuration is the one it is made from
        (
            rules.build_scorer.output
            if (config["captioner"], config["llm"]) == RELEASE_SETTING
            and set(config["datasets"]) == {"summe", "tvsum"}
            else []
        ),
