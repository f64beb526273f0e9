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


# --- the KTS count rule ---------------------------------------------------------------------

def _segments(lengths, centres, noise, seed=0):
    """Steps of a piecewise-constant signal (one centre per segment, plus Gaussian noise), picks every 15 frames."""
    rng = np.random.default_rng(seed)
    x = np.repeat(centres, lengths, axis=0)
    x = x + noise * rng.standard_normal(x.shape)
    picks = np.arange(len(x), dtype=np.int64) * 15
    return x, picks, len(x) * 15


def _kts_by_brute_force(x, min_size):
    """cpd_auto's choice from a plain O(m n^2) dynamic programme: penalty -> change points (step indices)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    cost = np.full((n + 1, n + 1), np.inf)  # cost[s, e]: scatter of steps s..e-1
    for s in range(n):
        for e in range(s + min_size, n + 1):
            cost[s, e] = ((x[s:e] - x[s:e].mean(axis=0)) ** 2).sum()
    best, back = [cost[0]], []  # best[m][e]: least scatter of steps 0..e-1 with m change points
    for m in range(1, n // min_size):
        options = best[-1][:, None] + cost  # [last change point t, e]
        back.append(options.argmin(axis=0))
        best.append(options.min(axis=0))

    def choose(penalty):
        scores = [b[n] / n + (penalty * m / (2 * n) * (np.log(n / m) + 1) if m else 0) for m, b in enumerate(best)]
        m, e, bkps = int(np.argmin(scores)), n, []
        for k in range(m, 0, -1):
            e = int(back[k - 1][e])
            bkps.append(e)
        return sorted(bkps)

    return choose


@pytest.mark.parametrize("kind", ["one-hot", "random unit vectors"])
def test_kts_rule_finds_the_change_points_and_their_number(kind):
    lengths = [7, 12, 5, 20, 9, 15, 4, 11]
    if kind == "one-hot":
        centres, noise = np.eye(len(lengths), 12), 0.0
    else:
        centres = np.random.default_rng(1).standard_normal((len(lengths), 16))
        centres, noise = centres / np.linalg.norm(centres, axis=1, keepdims=True), 0.02
    x, picks, n_frames = _segments(lengths, centres, noise)
    cps = detect_shots(x, n_frames, picks, fps=30.0, count="kts")
    starts = 15 * np.cumsum([0] + lengths[:-1])
    assert cps[:, 0].tolist() == starts.tolist()
    assert cps[-1, 1] == n_frames - 1


def test_kts_rule_is_the_argmin_of_cpd_autos_criterion():
    # noisy segments, two of them alike: as the penalty grows the count falls through intermediate values, and
    # at every step of a fine sweep the rule must give what a brute force over all segmentations gives
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((6, 8))
    centres[3] = centres[2] + 0.3 * rng.standard_normal(8)
    x, picks, n_frames = _segments([6, 9, 4, 8, 10, 5], centres, 0.35, seed=4)
    for min_shot_seconds in (0.0, 1.0, 2.0):
        min_size = max(1, int(np.ceil(min_shot_seconds / 0.5)))  # steps are 0.5 s
        choose = _kts_by_brute_force(x, min_size)
        counts = set()
        for penalty in np.geomspace(0.05, 20, 150):
            cps = detect_shots(x, n_frames, picks, fps=30.0, min_shot_seconds=min_shot_seconds, count="kts",
                               penalty=penalty)
            assert (cps[1:, 0] // 15).tolist() == choose(penalty), (min_shot_seconds, penalty)
            assert np.diff(cps[:, 0]).min(initial=n_frames) >= 15 * min_size
            counts.add(len(cps))
        assert len(counts) >= 4  # not a trivial sweep: several counts between one shot and many


@pytest.mark.parametrize("n", [50, 200, 800])
def test_kts_rule_on_pure_noise(n):
    # One static shot: a fixed direction plus isotropic noise. The rule keeps m = 0 while the penalty outweighs
    # what extra cuts save; on unit-norm rows this holds when the scatter per step (here ~0.1) is well under
    # penalty / 2 (at m = n - 1 the scatter is 0 and the penalty ~penalty / 2): exactly one shot.
    rng = np.random.default_rng(n)
    direction = rng.standard_normal(32)
    x = direction / np.linalg.norm(direction) + rng.standard_normal((n, 32)) * np.sqrt(0.1 / 32)
    picks = np.arange(n) * 15
    assert detect_shots(x, n * 15, picks, fps=30.0, count="kts").tolist() == [[0, n * 15 - 1]]
    # Isotropic unit-norm noise has a scatter of ~1 per step, above penalty / 2: the rule then cuts at every
    # step it may (min 1 s = 2 steps here). The penalty has to match the features' within-shot spread.
    noise = rng.standard_normal((n, 32))
    assert len(detect_shots(noise, n * 15, picks, fps=30.0, count="kts", min_shot_seconds=0)) == n
    assert len(detect_shots(noise, n * 15, picks, fps=30.0, count="kts", penalty=4.0)) == 1


def test_fixed_count_is_the_default_and_unchanged():
    import ruptures as rpt

    rng = np.random.default_rng(5)
    x, picks, n_frames = _segments([30, 50, 40], rng.standard_normal((3, 10)), 0.5)
    cps = detect_shots(x, n_frames, picks, fps=30.0)  # 120 steps of 0.5 s: 60 s, 15 shots of >= 2 steps
    bkps = rpt.KernelCPD(kernel="linear", min_size=2).fit(x).predict(n_bkps=14)[:-1]
    assert cps[:, 0].tolist() == [0, *(15 * np.array(bkps)).tolist()]
    assert detect_shots(x, n_frames, picks, fps=30.0, count="fixed").tolist() == cps.tolist()
    with pytest.raises(LlmvsError, match="'fixed' or 'kts'"):
        detect_shots(x, n_frames, picks, fps=30.0, count="auto")
