rule prepare_model:
    conda:
        "../../envs/base.yaml"
    output:
        directory(os.path.join(MODELS_DIR, "{folder}")),
    log:
        "results/logs/prepare_model/{folder}.log",
    params:
        spec=lambda wc: MODEL_FOLDERS[wc.folder],
        models_dir=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "llmvs models prepare '{params.spec}' --models-dir {params.models_dir:q} > {log} 2>&1"


rule build_annotations:
    conda:
        "../../envs/base.yaml"
    input:
        lambda wc: annotation_files(wc.dataset, config["data_dir"]),
    output:
        "results/{dataset}/annotations.parquet",
    log:
        "results/logs/build_annotations/{dataset}.log",
    params:
        data_dir=config["data_dir"],
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "llmvs annotations --dataset {wildcards.dataset} --data-dir {params.data_dir:q} --out {output} > {log} 2>&1"


rule detect_shots:
    conda:
        "../../envs/base.yaml"
    input:
        captions=lambda wc: f"results/{wc.dataset}/captions/{config['shots'].get('captioner', 'blip')}/{wc.video}.parquet",
        annotations=rules.build_annotations.output,
    output:
        "results/{dataset}/shots/{video}.parquet",
    log:
        "results/logs/detect_shots/{dataset}/{video}.log",
    params:
        shot_seconds=config["shots"].get("shot_seconds", 4.0),
        min_shot_seconds=config["shots"].get("min_shot_seconds", 1.0),
    resources:
        runtime=5,
        mem_mb=1000,
    shell:
        "llmvs shots --captions {input.captions} --annotations {input.annotations} --video {wildcards.video}"
        " --shot-seconds {params.shot_seconds} --min-shot-seconds {params.min_shot_seconds}"
        " --out {output} > {log} 2>&1"
