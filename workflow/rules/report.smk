rule human_baseline:
    conda:
        "../../envs/base.yaml"
    output:
        "results/human.csv",
    log:
        "results/logs/human_baseline.log",
    params:
        datasets=" ".join(config["datasets"]),
        data_dir=config["data_dir"],
    shell:
        "llmvs human --datasets {params.datasets} --data-dir {params.data_dir} --out {output} > {log} 2>&1"


rule aggregate_metrics:
    conda:
        "../../envs/base.yaml"
    input:
        metrics=[
            f"results/{dataset}/runs/{run}/split{split}/metrics.csv"
            for dataset, run, split in run_cells(config)
        ],
        human=rules.human_baseline.output,
    output:
        metrics="results/metrics.csv",
        summary="results/summary.csv",
        plot="results/summary.png",
    log:
        "results/logs/aggregate_metrics.log",
    shell:
        "llmvs aggregate --metrics {input.metrics} --human {input.human} --out-dir results > {log} 2>&1"
