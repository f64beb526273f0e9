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
    wildcard_constraints:  # a dataset with an eccv16 h5: build_annotations_h5 (h5.smk)
        dataset="|".join(ds for ds in ("summe", "tvsum") if ds not in H5_FILES) or "none",
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
        unpack(_shots_inputs),
    output:
        "results/{dataset}/shots/{video}.parquet",
    log:
        "results/logs/detect_shots/{dataset}/{video}.log",
    params:
        args=_shots_args,
    resources:
        runtime=5,
        mem_mb=1000,
    shell:
        "llmvs shots {params.args} --annotations {input.annotations} --video {wildcards.video}"
        " --out {output} > {log} 2>&1"
