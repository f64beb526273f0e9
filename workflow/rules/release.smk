# The scorer `llmvs summarize` uses by default: the headline run (config `headline`) fitted on every
# SumMe and TVSum video of the blip/smollm2 setting, a seeded 20 % of each held out to choose the epoch;
# it reads that run's embeddings: the LLM's, or a caption encoder's (then `summarize` runs no LLM).
# `build_scorer` (part of `all`) writes it under results/scorers/; `llmvs summarize --scorer` takes it
# from there. Only the maintainer command `release_scorer` copies it into the package (llmvs/scorers/):
#   snakemake --cores all release_scorer      (make release)


rule build_scorer:
    conda:
        "../../envs/base.yaml"
    input:
        annotations=[_annotations(ds) for ds in RELEASE_DATASETS],
        embeddings=_release_files("results/{dataset}/embeddings/{captioner}/{source}/{video}.arrow"),
        shots=_release_files("results/{dataset}/shots/{video}.parquet"),
        summary="results/summaries/{}/{}/summary.csv".format(*RELEASE_SETTING),
    output:
        model="results/scorers/{}-{}.pt".format(*RELEASE_SETTING),
        card="results/scorers/{}-{}.md".format(*RELEASE_SETTING),
    log:
        "results/logs/build_scorer.log",
    benchmark:
        "results/benchmarks/build_scorer.tsv"
    params:
        run=config["headline"],
        run_config=lambda wc: release_config(config),
        smooth_steps=lambda wc: smooth_steps(config, config["headline"]),  # lazy: a config may lack the headline
        embeddings_dirs=lambda wc: [
            _embeddings_dir(ds, RELEASE_SETTING[0], release_source(config)) for ds in RELEASE_DATASETS
        ],
        shots_dirs=[f"results/{ds}/shots" for ds in RELEASE_DATASETS],
    threads: 1
    resources:
        runtime=120,
        mem_mb=8000,
        gpu=config["gpus"].get("train", 0),
    shell:
        "llmvs release-scorer --annotations {input.annotations} --embeddings-dir {params.embeddings_dirs}"
        " --shots-dir {params.shots_dirs} --run {params.run} --run-config '{params.run_config}'"
        " --smooth-steps {params.smooth_steps} --summary {input.summary} --threads {threads}"
        " --out {output.model} --card {output.card} > {log} 2>&1"


rule release_scorer:
    input:
        model=rules.build_scorer.output.model,
        card=rules.build_scorer.output.card,
    output:  # the package in this workflow's own source tree
        model=os.path.join(workflow.basedir, "src", "llmvs", "scorers", "{}-{}.pt".format(*RELEASE_SETTING)),
        card=os.path.join(workflow.basedir, "src", "llmvs", "scorers", "{}-{}.md".format(*RELEASE_SETTING)),
    log:
        "results/logs/release_scorer.log",
    shell:
        "cp {input.model:q} {output.model:q} && cp {input.card:q} {output.card:q} 2> {log}"
