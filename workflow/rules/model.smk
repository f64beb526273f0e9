rule train_split:
    conda:
        "../../envs/base.yaml"
    input:
        unpack(_train_inputs),
    output:
        model="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/model.pt",
        log_csv="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/train_log.csv",
        curve=report(
            "results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/train_curve.png",
            category="Training curves",
            subcategory="{dataset} {run}",
            labels={"setting": "{captioner}/{llm}", "split": "{split}"},
        ),
    log:
        "results/logs/train_split/{dataset}/{captioner}/{llm}/{run}/split{split}.log",
    benchmark:
        "results/benchmarks/train_split/{dataset}/{captioner}/{llm}/{run}/split{split}.tsv"
    params:
        embeddings_dir=_run_embeddings_dir,
        shots_dir="results/{dataset}/shots",
        run_config=lambda wc: train_config(config, wc.dataset, wc.run),
        upstream=lambda wc: lineage(config, wc.captioner, wc.llm, wc.run),  # see llmvs.workflow.lineage
        extra=_train_extra_args,
        out_dir=_run_dir,
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=config["gpus"].get("train", 0),
    shell:
        "llmvs train --annotations {input.annotations} --splits {input.splits:q} --split {wildcards.split}"
        " --embeddings-dir {params.embeddings_dir} --shots-dir {params.shots_dir} {params.extra}"
        " --run-config '{params.run_config}' --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"


rule evaluate_split:
    conda:
        "../../envs/base.yaml"
    input:
        unpack(_evaluate_inputs),
    output:
        scores="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/scores.parquet",
        metrics="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/metrics.csv",
    wildcard_constraints:
        run=_runs_except("ridge"),
    log:
        "results/logs/evaluate_split/{dataset}/{captioner}/{llm}/{run}/split{split}.log",
    params:
        method=lambda wc: run_method(config, wc.run),
        model=lambda wc, input: f"--model {input.model}" if "model" in input.keys() else "",
        extra=_evaluate_args,
        embeddings=lambda wc: f"--embeddings-dir {_run_embeddings_dir(wc)}",
        upstream=lambda wc: lineage(config, wc.captioner, wc.llm, wc.run, wc.dataset),
        smooth_steps=lambda wc: smooth_steps(config, wc.run),
        out_dir=_run_dir,
    resources:
        runtime=20,
        mem_mb=4000,
    shell:
        "llmvs evaluate --annotations {input.annotations} --splits {input.splits:q} --split {wildcards.split}"
        " --method {params.method} {params.model} {params.extra} {params.embeddings} --shots-dir results/{wildcards.dataset}/shots"
        " --smooth-steps {params.smooth_steps}"
        " --out-dir {params.out_dir} > {log} 2>&1"


# The `ridge` control: a closed-form ridge regression from a run's features to gtscore, its lambda and
# smoothing chosen on the split's validation videos, then scored on the test videos in one job.
rule fit_ridge:
    conda:
        "../../envs/base.yaml"
    input:
        annotations=lambda wc: _annotations(wc.dataset),
        splits=_splits,
        embeddings=_run_embeddings,
        shots=_shots,
    output:
        model="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/model.npz",
        scores="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/scores.parquet",
        metrics="results/{dataset}/runs/{captioner}/{llm}/{run}/split{split}/metrics.csv",
    wildcard_constraints:
        run=_runs_of("ridge"),
    log:
        "results/logs/fit_ridge/{dataset}/{captioner}/{llm}/{run}/split{split}.log",
    params:
        embeddings_dir=_run_embeddings_dir,
        features=lambda wc: " ".join(feature_list(config, wc.run)),
        upstream=lambda wc: lineage(config, wc.captioner, wc.llm, wc.run, wc.dataset),
        out_dir=_run_dir,
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "llmvs ridge --annotations {input.annotations} --splits {input.splits:q} --split {wildcards.split}"
        " --embeddings-dir {params.embeddings_dir} --features {params.features}"
        " --shots-dir results/{wildcards.dataset}/shots --out-dir {params.out_dir} > {log} 2>&1"
