rule train_split:
    conda:
        "../../envs/train.yaml"
    input:
        annotations=rules.build_annotations.output,
        splits=lambda wc: f"{config['data_dir']}/splits/{wc.dataset}_splits.json",
        embeddings=_all_embeddings,
        shots=_shots,
    output:
        model="results/{dataset}/runs/{run}/split{split}/model.pt",
        log_csv="results/{dataset}/runs/{run}/split{split}/train_log.csv",
        curve="results/{dataset}/runs/{run}/split{split}/train_curve.png",
    log:
        "results/logs/train_split/{dataset}/{run}/split{split}.log",
    benchmark:
        "results/benchmarks/train_split/{dataset}/{run}/split{split}.tsv"
    params:
        embeddings_dir=_embeddings_dir,
        shots_dir="results/{dataset}/shots",
        run_config=lambda wc: train_config(config, wc.dataset, wc.run),
        out_dir="results/{dataset}/runs/{run}/split{split}",
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=config["gpus"].get("train", 0),
    shell:
        "llmvs train --annotations {input.annotations} --splits {input.splits} --split {wildcards.split}"
        " --embeddings-dir {params.embeddings_dir} --shots-dir {params.shots_dir}"
        " --run-config '{params.run_config}' --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"


rule evaluate_split:
    conda:
        "../../envs/train.yaml"
    input:
        unpack(_evaluate_inputs),
    output:
        scores="results/{dataset}/runs/{run}/split{split}/scores.parquet",
        metrics="results/{dataset}/runs/{run}/split{split}/metrics.csv",
    log:
        "results/logs/evaluate_split/{dataset}/{run}/split{split}.log",
    params:
        method=lambda wc: run_method(config, wc.run),
        model=lambda wc, input: f"--model {input.model}" if "model" in input.keys() else "",
        embeddings=lambda wc: f"--embeddings-dir {_embeddings_dir(wc)}",
        out_dir="results/{dataset}/runs/{run}/split{split}",
    resources:
        runtime=20,
        mem_mb=4000,
    shell:
        "llmvs evaluate --annotations {input.annotations} --splits {input.splits} --split {wildcards.split}"
        " --method {params.method} {params.model} {params.embeddings} --shots-dir results/{wildcards.dataset}/shots"
        " --out-dir {params.out_dir} > {log} 2>&1"
