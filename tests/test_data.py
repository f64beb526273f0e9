import gzip
import hashlib

import numpy as np
import pytest

from conftest import DATA
from llmvs import LlmvsError
from llmvs.datasets import load_caption_json, load_splits, shipped_captions_path


def test_shipped_files_match_their_checksums():
    lines = (DATA / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 34
    for line in lines:
        digest, rel = line.split("  ", 1)
        data = (DATA / rel).read_bytes()
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        assert hashlib.sha256(data).hexdigest() == digest, rel


def test_summe_ground_truth(summe):
    assert len(summe) == 25
    v = summe["video_1"]
    assert (v.name, v.n_frames, v.fps, v.n_steps) == ("Air_Force_One", 4494, 25.0, 300)
    assert v.user_summaries.shape == (15, 4494)
    assert np.array_equal(v.picks[:3], [0, 15, 30])
    assert v.gtscore.min() >= 0 and v.gtscore.max() <= 1
    assert sum(x.n_frames for x in summe.values()) == 109_820
    assert sum(len(x.user_scores) for x in summe.values()) == 390


def test_tvsum_ground_truth(tvsum):
    assert len(tvsum) == 50
    v = tvsum["video_1"]
    assert (v.name, v.n_frames, v.n_steps) == ("AwmHb44_ouw", 10597, 707)
    assert v.user_scores.shape == (20, 10597)
    assert v.user_scores.min() == 1 and v.user_scores.max() == 5
    assert v.gtscore.min() == 0 and v.gtscore.max() == 1
    assert sum(x.n_frames for x in tvsum.values()) == 352_353
    with gzip.open(DATA / "tvsum" / "ydata-tvsum50-anno.tsv.gz", "rt") as f:  # parsed apart, in plain Python
        total = sum(int(x) for line in f for x in line.rstrip("\n").split("\t")[2].split(","))
    assert sum(int(x.user_scores.sum(dtype=np.int64)) for x in tvsum.values()) == total


@pytest.mark.parametrize("bad", ["1,2,x,4", "1,2,,4", "1,2,7,4"])
def test_tvsum_score_that_is_not_1_to_5_names_the_line(tmp_path, bad):
    from llmvs.datasets import _tvsum_annotations

    path = tmp_path / "anno.tsv"
    path.write_text(f"AwmHb44_ouw\tVT\t1,2,3,4\nAwmHb44_ouw\tVT\t{bad}\n")
    with pytest.raises(LlmvsError, match=r"anno.tsv: line 2 \(AwmHb44_ouw\) holds a score that is not an integer"):
        _tvsum_annotations(path)


@pytest.mark.parametrize("name", ["summe", "tvsum"])
def test_keys_match_captions_and_splits(name, summe, tvsum):
    videos = summe if name == "summe" else tvsum
    captions = load_caption_json(shipped_captions_path(name, data_dir=DATA))
    assert {v.caption_key for v in videos.values()} == set(captions)
    for v in videos.values():
        entry = captions[v.caption_key]
        assert entry["picks"] == v.picks.tolist()
        assert len(entry["captions"]) == v.n_steps
    splits = load_splits(name, DATA)
    assert len(splits) == 5
    for s in splits:
        assert set(s["train_keys"]) | set(s["test_keys"]) == set(videos)
        assert len(s["test_keys"]) == len(videos) // 5


def test_missing_data_dir_names_the_file(tmp_path):
    from llmvs.datasets import load_dataset

    with pytest.raises(LlmvsError, match="summe-info.derived.tsv: missing"):
        load_dataset("summe", tmp_path)
    with pytest.raises(LlmvsError, match="unknown dataset"):
        load_dataset("youtube", tmp_path)
