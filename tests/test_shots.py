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


# --- the benchmark's KTS shots (shipped) ----------------------------------------------------

def test_shipped_kts_shots_tile_every_benchmark_video(summe, tvsum):
    from llmvs.datasets import kts_path, load_change_points

    # counts and extremes as data/SOURCES.md states them (read from the source file, not from this code)
    for videos, n_shots, shortest, longest in ((summe, 744, 7, 2133), (tvsum, 2373, 10, 997)):
        dataset = next(iter(videos.values())).dataset
        shots = load_change_points(kts_path(dataset, DATA), videos)
        assert set(shots) == set(videos)
        lengths = np.concatenate([c[:, 1] - c[:, 0] + 1 for c in shots.values()])
        assert (len(lengths), lengths.min(), lengths.max()) == (n_shots, shortest, longest)
        for key, cps in shots.items():
            assert cps[0, 0] == 0 and cps[-1, 1] == videos[key].n_frames - 1
    assert load_change_points(kts_path("tvsum", DATA), tvsum)["video_1"][:3].tolist() == [[0, 32], [33, 63], [64, 101]]


def _kts_copy(tmp_path, edit):
    import gzip
    import json

    from llmvs.datasets import kts_path

    with gzip.open(kts_path("summe", DATA), "rt") as f:
        data = json.load(f)
    edit(data["videos"])
    path = tmp_path / "kts_change_points.json"
    path.write_text(json.dumps(data))
    return path


def test_kts_shots_that_do_not_tile_or_disagree_with_the_annotations_fail(tmp_path, summe):
    from llmvs.datasets import load_change_points

    def gap(videos):
        videos["Air_Force_One"]["change_points"][1][0] += 1

    def frames(videos):
        videos["Cooking"]["n_frames"] += 1

    with pytest.raises(LlmvsError, match=r"video_1 \(Air_Force_One\): change points do not tile its 4494 frames "
                                         r"\(shots must be contiguous"):
        load_change_points(_kts_copy(tmp_path, gap), summe)
    with pytest.raises(LlmvsError, match=r"video_8 \(Cooking\) has 1287 frames there, but 1286 in the annotations"):
        load_change_points(_kts_copy(tmp_path, frames), summe)
    with pytest.raises(LlmvsError, match=r"no change points for video_2 \(Base_jumping\)"):
        load_change_points(_kts_copy(tmp_path, lambda v: v.pop("Base_jumping")), summe)
