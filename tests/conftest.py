import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

# Snakemake rules run `llmvs`: make the test interpreter's environment the one they find first.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def summe():
    from llmvs.datasets import load_dataset

    return load_dataset("summe", DATA)


@pytest.fixture(scope="session")
def tvsum():
    from llmvs.datasets import load_dataset

    return load_dataset("tvsum", DATA)
