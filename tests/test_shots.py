import numpy as np
import pytest

from llmvs import LlmvsError
from llmvs.datasets import load_caption_json, shipped_captions_path
from llmvs.shots import caption_features, detect_shots
from conftest import DATA


def test_shots_cut_at_an_obvious_scene_change():
    captions = ["a man cooking in a kitchen"] * 20 + ["a dog running on a beach"] * 20
    picks = np.arange(0, 600, 15)
    cps = detect_shots(caption_features(captions), 600, picks, fps=30.0, shot_seconds=10)
    assert len(cps) == 2
    assert cps.tolist() == [[0, 299], [300, 599]]


def test_benchmark_shots_tile_videos_with_sensible_lengths(summe):
    captions = load_caption_json(shipped_captions_path("summe", data_dir=DATA))
    lengths = []
    for v in summe.values():
        cps = detect_shots(caption_features(captions[v.caption_key]["captions"]), v.n_frames, v.picks, v.fps)
        assert cps[0, 0] == 0 and cps[-1, 1] == v.n_frames - 1
        assert np.all(cps[1:, 0] == cps[:-1, 1] + 1)
        seconds = (cps[:, 1] - cps[:, 0] + 1) / v.fps
        # every shot spans >= 1 s of steps; only the video's final, partial step can be shorter
        assert seconds[:-1].min() >= 1.0 - 1e-9
        lengths.append(seconds.mean())
    assert 2.0 <= np.mean(lengths) <= 5.0


def test_short_video_is_one_shot_and_bad_features_raise():
    assert detect_shots(np.ones((2, 3)), 30, [0, 15], fps=30).tolist() == [[0, 29]]
    with pytest.raises(LlmvsError, match="shape"):
        detect_shots(np.ones((3, 3)), 30, [0, 15], fps=30)
    with pytest.raises(LlmvsError, match="NaN"):
        detect_shots(np.full((2, 3), np.nan), 30, [0, 15], fps=30)
