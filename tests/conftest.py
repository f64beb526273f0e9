import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

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
