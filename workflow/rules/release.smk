# The scorer `llmvs summarize` uses by default, committed inside the package with its model card:
# the headline run (config `headline`) fitted on every SumMe and TVSum video of the blip/smollm2
# setting, a seeded 20 % of each held out to choose the epoch. Reruns when the run's keys change.
#   snakemake --cores all release_scorer


rule release_scorer:
    conda:
        "../../envs/base.yaml"
    input:
        annotations=[_annotations(ds) for ds in RELEASE_DATASETS],
        embeddings=_release_files("results/{dataset}/embeddings/{captioner}/{llm}/{video}.arrow"),
        shots=_release_files("results/{dataset}/shots/{video}.parquet"),
        summary="results/summaries/{}/{}/summary.csv".format(*RELEASE_SETTING),
    output:
        model="src/llmvs/scorers/{}-{}.pt".format(*RELEASE_SETTING),
        card="src/llmvs/scorers/{}-{}.md".format(*RELEASE_SETTING),
    log:
        "results/logs/release_scorer.log",
    benchmark:
        "results/benchmarks/release_scorer.tsv"
    params:
        run=config["headline"],
        run_config=lambda wc: release_config(config),
        embeddings_dirs=[_embeddings_dir(ds, *RELEASE_SETTING) for ds in RELEASE_DATASETS],
        shots_dirs=[f"results/{ds}/shots" for ds in RELEASE_DATASETS],
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
        gpu=config["gpus"].get("train", 0),
    shell:
        "llmvs release-scorer --annotations {input.annotations} --embeddings-dir {params.embeddings_dirs}"
        " --shots-dir {params.shots_dirs} --run {params.run} --run-config '{params.run_config}'"
        " --summary {input.summary} --threads {threads} --out {output.model} --card {output.card} > {log} 2>&1"
