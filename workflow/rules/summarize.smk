# Your own videos: every file in `videos_dir` -> results/videos/<name>/summary.mp4 (+ csv, png, json).
# Captions come from <name>.csv / <name>.json in summarize.captions_dir (default: videos_dir).
# Scores: the scorer shipped in the package (summarize.scorer: shipped), a model.pt, or zero_shot.
#   snakemake --cores all summarize_videos


rule summarize_video:
    conda:
        "../../envs/base.yaml"
    input:
        video=lambda wc: str(USER_VIDEOS[wc.video]),
        captions=lambda wc: user_captions(config, wc.video),
        scorer=_scorer,
    output:
        video="results/videos/{video}/summary.mp4",
        shots="results/videos/{video}/shots.csv",
        scores="results/videos/{video}/scores.csv",
        timeline=report("results/videos/{video}/timeline.png", category="Your videos", labels={"video": "{video}"}),
        page="results/videos/{video}/summary.html",
        summary="results/videos/{video}/summary.json",
    log:
        "results/logs/summarize_video/{video}.log",
    benchmark:
        "results/benchmarks/summarize_video/{video}.tsv"
    params:
        scorer=_scorer_args,
        shipped_sha256=_shipped_sha256,
        llm=lambda wc: llm_args(config["llms"][config["llm"]]),
        budget=config.get("summarize", {}).get("budget", 0.15),
    threads: 2
    resources:
        runtime=120,
        mem_mb=6000,
        gpu=config["gpus"].get("prompts", 0),
    shell:
        "llmvs summarize {input.video:q} --captions {input.captions:q} {params.scorer} {params.llm}"
        " --budget {params.budget} --threads {threads} --out results/videos/{wildcards.video} > {log} 2>&1"


rule summarize_videos:
    input:
        expand("results/videos/{video}/summary.mp4", video=list(USER_VIDEOS)),
