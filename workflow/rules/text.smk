rule decode_frames:
    conda:
        "../../envs/base.yaml"
    input:
        lambda wc: benchmark_video_file(config, wc.dataset, wc.video),
    output:
        "results/{dataset}/frames/{video}.parquet",
    log:
        "results/logs/decode_frames/{dataset}/{video}.log",
    benchmark:
        "results/benchmarks/decode_frames/{dataset}/{video}.tsv"
    resources:
        runtime=20,
        mem_mb=2000,
    shell:
        "llmvs frames {input:q} --out {output} > {log} 2>&1"


rule import_captions:
    conda:
        "../../envs/base.yaml"
    input:
        annotations=lambda wc: _annotations(wc.dataset),
        source=lambda wc: caption_source(config, wc.captioner, wc.dataset),
    output:
        "results/{dataset}/captions/{captioner}/{video}.parquet",
    wildcard_constraints:
        captioner="|".join(map(re.escape, IMPORTED)) or "none",
    log:
        "results/logs/import_captions/{dataset}/{captioner}/{video}.log",
    params:
        args=lambda wc: caption_args(config, wc.captioner, wc.dataset, wc.video),
    resources:
        runtime=5,
        mem_mb=1000,
    shell:
        "llmvs captions --backend import {params.args} --captioner {wildcards.captioner} --out {output} > {log} 2>&1"


rule caption_frames:
    conda:
        lambda wc: "../../envs/vllm.yaml" if config["captioners"][wc.captioner]["backend"] == "vllm" else "../../envs/base.yaml"
    input:
        frames="results/{dataset}/frames/{video}.parquet",
        model=lambda wc: model_input(config["captioners"][wc.captioner]["model"], MODELS_DIR),
    output:
        "results/{dataset}/captions/{captioner}/{video}.parquet",
    wildcard_constraints:
        captioner="|".join(map(re.escape, set(config["captioners"]) - set(IMPORTED))) or "none",
    log:
        "results/logs/caption_frames/{dataset}/{captioner}/{video}.log",
    benchmark:
        "results/benchmarks/caption_frames/{dataset}/{captioner}/{video}.tsv"
    params:
        backend=lambda wc: config["captioners"][wc.captioner]["backend"],
        args=lambda wc: caption_args(config, wc.captioner, wc.dataset, wc.video),
    threads: 4
    resources:
        runtime=60,
        mem_mb=16000,
        gpu=config["gpus"].get("captions", 0),
    shell:
        "llmvs captions --backend {params.backend} {params.args} --captioner {wildcards.captioner}"
        " --out {output} > {log} 2>&1"


# The LLM stage: one job per video (the model loads in seconds; on a cluster, the profile's `groups`
# submits several videos per allocation). Rerun it with `snakemake --forcerun prompts`.
rule prompts:
    conda:
        lambda wc: "../../envs/vllm.yaml" if config["llms"][wc.llm].get("path") == "vllm" else "../../envs/base.yaml"
    input:
        captions="results/{dataset}/captions/{captioner}/{video}.parquet",
        exemplars=lambda wc: exemplar_inputs(config, wc.dataset),
        model=lambda wc: model_input(config["llms"][wc.llm]["model"], MODELS_DIR),
    output:
        "results/{dataset}/embeddings/{captioner}/{llm}/{video}.arrow",
    wildcard_constraints:  # LLMs we run; imported states come from import_states_* (h5.smk)
        llm="|".join(re.escape(llm) for llm in config["llms"] if not imported(config, llm)) or "none",
    log:
        "results/logs/prompts/{dataset}/{captioner}/{llm}/{video}.log",
    benchmark:
        "results/benchmarks/prompts/{dataset}/{captioner}/{llm}/{video}.tsv"
    params:
        llm=lambda wc: prompts_args(config["llms"][wc.llm]),
        exemplars=config["exemplars"],
        seed=config.get("exemplar_seed", 0),
        data_dir=config["data_dir"],
    threads: lambda wc: config["llms"][wc.llm].get("threads", 1)
    priority: 20  # the long pole: start it first, so trainings fill the cores beside it
    resources:
        runtime=lambda wc, attempt: attempt * (30 + video_steps(config, wc.dataset, wc.video) // 30),  # minutes
        mem_mb=lambda wc, attempt: attempt * config["llms"][wc.llm].get("mem_mb", 4000),
        gpu=config["gpus"].get("prompts", 0),
    shell:
        "llmvs prompts --captions {input.captions} --out {output} --dataset {wildcards.dataset} {params.llm}"
        " --exemplars {params.exemplars} --seed {params.seed} --data-dir {params.data_dir:q}"
        " --threads {threads} > {log} 2>&1"


# Caption features without an LLM: the `tfidf` control (one LSA basis per benchmark) and the sentence
# encoders of `encoders` (loaded once per benchmark), one job per benchmark, named encode_<encoder>_...
for _captioner in dict.fromkeys(c for c, _ in SETTINGS):
    for _job in encoder_jobs(config, EMBEDDED, _captioner):

        rule:
            name:
                _job["name"]
            conda:
                "../../envs/base.yaml"
            input:
                captions=expand(
                    "results/{dataset}/captions/{captioner}/{video}.parquet",
                    dataset=_job["dataset"],
                    captioner=_captioner,
                    video=_job["videos"],
                ),
                annotations=_annotations(_job["dataset"]),
            output:
                expand(
                    "results/{dataset}/embeddings/{captioner}/{encoder}/{video}.arrow",
                    dataset=_job["dataset"],
                    captioner=_captioner,
                    encoder=_job["encoder"],
                    video=_job["videos"],
                ),
            log:
                f"results/logs/encode/{_job['name']}.log",
            benchmark:
                f"results/benchmarks/encode/{_job['name']}.tsv"
            params:
                command=encoder_args(config, _job["encoder"], _job["dataset"]),
            threads: 1
            resources:
                runtime=30,
                mem_mb=4000,
            shell:
                "llmvs {params.command} --captions {input.captions} --out {output} > {log} 2>&1"
