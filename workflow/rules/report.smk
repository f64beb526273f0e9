rule human_baseline:
    conda:
        "../../envs/base.yaml"
    input:
        lambda wc: [f for ds in config["datasets"] for f in annotation_files(ds, config["data_dir"])],
    output:
        "results/human.csv",
    log:
        "results/logs/human_baseline.log",
    params:
        datasets=" ".join(config["datasets"]),
        data_dir=config["data_dir"],
    shell:
        "llmvs human --datasets {params.datasets} --data-dir {params.data_dir:q} --out {output} > {log} 2>&1"


rule aggregate_setting:
    conda:
        "../../envs/base.yaml"
    input:
        metrics=_setting_metrics,
        human=rules.human_baseline.output,
    output:
        metrics="results/summaries/{captioner}/{llm}/metrics.csv",
        summary="results/summaries/{captioner}/{llm}/summary.csv",
        plot="results/summaries/{captioner}/{llm}/summary.png",
        machine="results/summaries/{captioner}/{llm}/machine.json",
    log:
        "results/logs/aggregate_setting/{captioner}/{llm}.log",
    params:
        uses_title=" ".join(r for r in config["runs"] if uses_title(config, r)),
        readings=_readings,
    shell:
        "llmvs aggregate --metrics {input.metrics} --human {input.human} --uses-title {params.uses_title}"
        " --readings {params.readings}"
        " --out-dir results/summaries/{wildcards.captioner}/{wildcards.llm} > {log} 2>&1"


rule combine_settings:
    conda:
        "../../envs/base.yaml"
    input:
        [f"results/summaries/{captioner}/{llm}/summary.csv" for captioner, llm in SETTINGS],
    output:
        summary=report("results/summary.csv", category="Results", labels={"table": "all settings"}),
        plot=report("results/summary.png", category="Results", labels={"figure": "all settings"}),
        machine="results/machine.json",
    log:
        "results/logs/combine_settings.log",
    shell:
        "llmvs aggregate --combine {input} --out-dir results > {log} 2>&1"
