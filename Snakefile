# llmvs: LLM-based video summarization (LLMVS, CVPR 2025) as a staged, resumable workflow.
#   snakemake --profile local                # the embedded default on both benchmarks
#   snakemake --profile slurm --configfile presets/paper.yaml
import os

from snakemake.utils import min_version, validate

from llmvs.datasets import annotation_files
from llmvs.workflow import (
    benchmark_video_file,
    caption_args,
    caption_source,
    check_config,
    embedded_videos,
    estimate_message,
    exemplar_inputs,
    llm_args,
    llm_batches,
    prompts_args,
    run_augments,
    run_cells,
    run_encoder,
    run_method,
    settings,
    tfidf_jobs,
    train_config,
    user_captions,
    user_videos,
    video_keys,
)

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")
check_config(config, workflow.basedir)  # nested keys, and data_dir relative to this folder

SETTINGS = settings(config)  # (captioner, llm): the configured one first
VIDEOS = {ds: video_keys(ds, config["data_dir"], config["splits"]) for ds in config["datasets"]}
EMBEDDED = embedded_videos(config, VIDEOS)
USER_VIDEOS = user_videos(config["videos_dir"])


wildcard_constraints:
    dataset="summe|tvsum",
    video=r"[^/]+",
    split=r"\d+",
    run="|".join(config["runs"]) or "none",
    captioner=r"[A-Za-z0-9_.-]+",
    llm=r"[A-Za-z0-9_.-]+",


localrules:
    all,
    build_annotations,
    caption_frames,
    detect_shots,
    evaluate_split,
    human_baseline,
    aggregate_setting,
    combine_settings,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summarize.smk"


onstart:
    print(estimate_message(config, EMBEDDED))


rule all:
    input:
        "results/summary.csv",
        "results/summary.png",
