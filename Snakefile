# llmvs: LLM-based video summarization (LLMVS, CVPR 2025) as a staged, resumable workflow.
#   snakemake --cores all                    # the embedded default on both benchmarks
#   snakemake --profile slurm --configfile presets/paper.yaml
from snakemake.utils import min_version, validate

from llmvs.workflow import (
    benchmark_video_file,
    caption_args,
    caption_source,
    estimate_message,
    llm_args,
    prompts_args,
    run_cells,
    run_method,
    train_config,
    user_captions,
    user_videos,
    video_keys,
)

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")

CAPTIONER, LLM = config["captioner"], config["llm"]
VIDEOS = {ds: video_keys(ds, config["data_dir"], config["splits"]) for ds in config["datasets"]}
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
    aggregate_metrics,
    human_baseline,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summarize.smk"


onstart:
    print(estimate_message(config, VIDEOS))


rule all:
    input:
        "results/summary.csv",
        "results/summary.png",
