# The field's h5 files (config `h5`, llms with `import`; logic in llmvs.h5_workflow):
# an eccv16 h5 gives its dataset's annotations (gtscore, user summaries; its change points: detect_shots)
# and the `googlenet` embeddings of the runs vision and text_vision; the authors' released LLM states
# become an LLM setting's embeddings, one import job per benchmark.


rule build_annotations_h5:
    conda:
        "../../envs/base.yaml"
    input:
        data=lambda wc: annotation_files(wc.dataset, config["data_dir"]),
        h5=lambda wc: H5_FILES[wc.dataset],
    output:
        "results/{dataset}/annotations.parquet",
    wildcard_constraints:
        dataset="|".join(H5_FILES) or "none",
    log:
        "results/logs/build_annotations/{dataset}.log",
    params:
        data_dir=config["data_dir"],
    resources:
        runtime=10,
        mem_mb=4000,
    shell:
        "llmvs annotations --dataset {wildcards.dataset} --data-dir {params.data_dir:q} --h5 {input.h5:q}"
        " --out {output} > {log} 2>&1"


for _captioner, _llm in SETTINGS:
    for _job in import_jobs(config, EMBEDDED, _captioner, _llm):

        rule:
            name:
                _job["name"]
            conda:
                "../../envs/base.yaml"
            input:
                prompt=_job["prompt"],
                gen=_job["gen"],
                data=annotation_files(_job["dataset"], config["data_dir"]),
            output:
                [f"{_job['out_dir']}/{video}.arrow" for video in _job["videos"]],
            log:
                f"results/logs/import_states/{_job['name']}.log",
            benchmark:
                f"results/benchmarks/import_states/{_job['name']}.tsv"
            params:
                dataset=_job["dataset"],
                videos=" ".join(_job["videos"]),
                llm=_job["llm"],
                data_dir=lambda wc: config["data_dir"],
                out_dir=lambda wc, output: os.path.dirname(output[0]),
            resources:
                runtime=30,
                mem_mb=8000,
            shell:
                "llmvs import-states --prompt {input.prompt:q} --gen {input.gen:q} --dataset {params.dataset}"
                " --keys {params.videos} --llm '{params.llm}' --data-dir {params.data_dir:q}"
                " --out-dir {params.out_dir} > {log} 2>&1"


for _captioner in dict.fromkeys(c for c, _ in SETTINGS):
    for _job in googlenet_jobs(config, EMBEDDED, _captioner):

        rule:
            name:
                _job["name"]
            conda:
                "../../envs/base.yaml"
            input:
                h5=_job["h5"],
                annotations=_annotations(_job["dataset"]),
            output:
                [f"{_job['out_dir']}/{video}.arrow" for video in _job["videos"]],
            log:
                f"results/logs/encode/{_job['name']}.log",
            benchmark:
                f"results/benchmarks/encode/{_job['name']}.tsv"
            params:
                videos=" ".join(_job["videos"]),
                out_dir=lambda wc, output: os.path.dirname(output[0]),
            resources:
                runtime=10,
                mem_mb=4000,
            shell:
                "llmvs h5-features --h5 {input.h5:q} --annotations {input.annotations} --keys {params.videos}"
                " --out-dir {params.out_dir} > {log} 2>&1"
