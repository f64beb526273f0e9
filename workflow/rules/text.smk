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


rule caption_frames:
    conda:
        lambda wc: "../../envs/vllm.yaml" if config["captioners"][wc.captioner]["backend"] == "vllm" else "../../envs/base.yaml"
    input:
        lambda wc: (
            [f"results/{wc.dataset}/frames/{wc.video}.parquet"]
            if _uses_frames(wc)
            else [f"results/{wc.dataset}/annotations.parquet", caption_source(config, wc.captioner, wc.dataset)]
        ),
    output:
        "results/{dataset}/captions/{captioner}/{video}.parquet",
    log:
        "results/logs/caption_frames/{dataset}/{captioner}/{video}.log",
    benchmark:
        "results/benchmarks/caption_frames/{dataset}/{captioner}/{video}.tsv"
    params:
        backend=lambda wc: config["captioners"][wc.captioner]["backend"],
        args=lambda wc: caption_args(config, wc.captioner, wc.dataset, wc.video),
    resources:
        runtime=60,
        mem_mb=4000,
        gpu=lambda wc: config["gpus"].get("captions", 0) if _uses_frames(wc) else 0,
    shell:
        "llmvs captions --backend {params.backend} {params.args} --captioner {wildcards.captioner}"
        " --out {output} > {log} 2>&1"


rule embed_windows:
    conda:
        "../../envs/base.yaml"
    input:
        "results/{dataset}/captions/{captioner}/{video}.parquet",
    output:
        "results/{dataset}/embeddings/{captioner}/{llm}/{video}.arrow",
    log:
        "results/logs/embed_windows/{dataset}/{captioner}/{llm}/{video}.log",
    benchmark:
        "results/benchmarks/embed_windows/{dataset}/{captioner}/{llm}/{video}.tsv"
    params:
        llm=lambda wc: prompts_args(config["llms"][wc.llm]),
        exemplars=config["exemplars"],
        seed=config.get("exemplar_seed", 0),
        data_dir=config["data_dir"],
    threads: 2
    resources:
        runtime=120,
        mem_mb=6000,
        gpu=config["gpus"].get("prompts", 0),
    shell:
        "llmvs prompts --captions {input} --out {output} --dataset {wildcards.dataset} {params.llm}"
        " --exemplars {params.exemplars} --seed {params.seed} --data-dir {params.data_dir}"
        " --threads {threads} > {log} 2>&1"
