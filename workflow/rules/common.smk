# Input functions shared by the rule files (the logic they call lives in llmvs.workflow).
def _uses_frames(wc):
    return config["captioners"][wc.captioner]["backend"] != "import"


def _embeddings_dir(wc):
    return f"results/{wc.dataset}/embeddings/{CAPTIONER}/{LLM}"


def _all_embeddings(wc):
    return expand("{d}/{video}.arrow", d=_embeddings_dir(wc), video=VIDEOS[wc.dataset])


def _shots(wc):
    return expand("results/{dataset}/shots/{video}.parquet", dataset=wc.dataset, video=VIDEOS[wc.dataset])


def _evaluate_inputs(wc):
    method = run_method(config, wc.run)
    inputs = {
        "annotations": f"results/{wc.dataset}/annotations.parquet",
        "splits": f"{config['data_dir']}/splits/{wc.dataset}_splits.json",
        "shots": _shots(wc),
    }
    if method == "model":
        inputs["model"] = f"results/{wc.dataset}/runs/{wc.run}/split{wc.split}/model.pt"
    if method in ("model", "zero_shot"):
        inputs["embeddings"] = _all_embeddings(wc)
    return inputs


def _scorer(wc):
    scorer = config.get("summarize", {}).get("scorer", "zero_shot")
    return [] if scorer == "zero_shot" else [scorer]
