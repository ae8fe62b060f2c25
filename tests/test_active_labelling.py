"""bench/active_labelling.py's selection part, for real: a tiny real CPM (a `cpm_core` preset at test size) scores
tiny images written here, as `cpm suggest` scores a folder; the three strategies then pick from the pool. Checks:
K distinct candidates each, uniform evenly spaced, suggest's picks rated more uncertain than the rest and not
neighbours only, and no val frame in the pool. No timing: independent of the machine's load."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cpm_core.estimator import PoseEstimator
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.skeleton import HAND_21
from cpm_core.spec import get_preset
from cpm_core.suggest import FrameScore

BENCH = Path(__file__).resolve().parents[1] / "bench" / "active_labelling.py"
VIDEO_FRAMES = 16
PHOTOS = 14
GAP = 3


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_active_labelling", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _hand(rng: np.random.Generator, size: int) -> list[float]:
    """21 joints spread like a hand (wrist low, five fingers of four joints fanning up), flattened COCO style."""
    wx, wy = rng.uniform(0.4, 0.6) * size, rng.uniform(0.75, 0.85) * size
    pts = [(wx, wy)]
    for f in range(5):
        angle = np.deg2rad(-60 + 30 * f + rng.uniform(-8, 8))
        for j in range(1, 5):
            r = (0.1 + 0.13 * j) * size
            pts.append((wx + r * np.sin(angle), wy - r * np.cos(angle)))
    return [float(v) for x, y in pts for v in (np.clip(x, 1, size - 2), np.clip(y, 1, size - 2), 2)]


def _write(folder: Path, name: str, items: list[tuple[str, int, np.ndarray]], rng) -> Path:
    """A COCO keypoints file of `items` (source, frame, image), one hand each, images written beside it."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for k, (source, frame, img) in enumerate(items):
        file = f"images/{name}_{k:03d}.png"
        cv2.imwrite(str(folder / file), img)
        images.append({"id": k + 1, "file_name": file, "width": img.shape[1], "height": img.shape[0],
                       "source": source, "frame": frame})
        anns.append({"id": k + 1, "image_id": k + 1, "category_id": 1, "keypoints": _hand(rng, img.shape[0]),
                     "num_keypoints": 21, "iscrowd": 0})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "hand", "keypoints": list(HAND_21.joints), "skeleton": []}]}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def _pool_items(rng: np.random.Generator, size: int = 72) -> list[tuple[str, int, np.ndarray]]:
    """A 'video' whose neighbouring frames look alike (a blob drifting on one texture) and photos that do not."""
    base = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3)).astype(np.uint8), (0, 0), 3)
    items = []
    for t in range(VIDEO_FRAMES):
        img = base.copy()
        cv2.circle(img, (10 + 3 * t, size // 2), 12, (40, 160, 220), -1)
        items.append(("clip.mp4", t, img))
    for p in range(PHOTOS):
        img = rng.integers(0, 255, (size, size, 3)).astype(np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 1 + p % 4)
        items.append((f"photos/p{p:02d}.jpg", 0, img))
    return items


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("al")
    pool = _write(folder, "pool", _pool_items(rng), rng)
    val_items = [(f"val/v{k}.jpg", 0, rng.integers(0, 255, (72, 72, 3)).astype(np.uint8)) for k in range(4)]
    val = _write(folder, "val", val_items, rng)
    return folder, pool, val


@pytest.fixture(scope="module")
def tiny_estimator():
    spec = get_preset("hand-rt-128x3").with_(name="tiny", input_size=64, stages=2, width=0.125, stride=8)
    return PoseEstimator(build_cpm(spec), ModelCard.for_spec(spec, trained=True, name="tiny"), warm_up=False)


@pytest.fixture(scope="module")
def scored(bench, data, tiny_estimator):
    _, pool_path, val_path = data
    pool = bench.load_pool(pool_path, [val_path])
    start = bench.start_subset(len(pool.frames), 4, seed=3)
    candidates = [f.index for f in pool.frames if f.index not in set(start)]
    scores = bench.score_candidates(tiny_estimator, pool, candidates)
    return pool, start, candidates, scores


def test_nothing_of_the_val_set_enters_the_pool(bench, data, scored):
    folder, pool_path, val_path = data
    pool, start, candidates, scores = scored
    val = json.loads(val_path.read_text())
    val_images = {str((folder / i["file_name"]).resolve()) for i in val["images"]}
    assert len(pool.frames) == VIDEO_FRAMES + PHOTOS
    assert not val_images & {f.image for f in pool.frames}
    assert not {i["source"] for i in val["images"]} & {f.source for f in pool.frames}
    assert set(scores) == set(candidates) and not set(start) & set(candidates)
    # a pool that holds a val image, or a frame of a val source, is refused
    doc = json.loads(pool_path.read_text())
    leaked = dict(doc, images=doc["images"] + [{**val["images"][0], "id": 999}],
                  annotations=doc["annotations"] + [{**val["annotations"][0], "id": 999, "image_id": 999}])
    (folder / "leaked.json").write_text(json.dumps(leaked))
    with pytest.raises(ValueError, match="val"):
        bench.load_pool(folder / "leaked.json", [val_path])
    same_source = dict(doc, images=[{**doc["images"][0], "source": val["images"][1]["source"]}] + doc["images"][1:])
    (folder / "same_source.json").write_text(json.dumps(same_source))
    with pytest.raises(ValueError, match="source"):
        bench.load_pool(folder / "same_source.json", [val_path])


@pytest.mark.parametrize("k", [3, 6, 10])
def test_each_strategy_picks_k_distinct_candidates(bench, scored, k):
    pool, start, candidates, scores = scored
    for strategy in bench.STRATEGIES:
        for seed in (0, 1):
            picks = bench.select(strategy, candidates, k, seed, scores, min_gap=GAP)
            assert len(picks) == k and len(set(picks)) == k, (strategy, seed, picks)
            assert set(picks) <= set(candidates), strategy
    with pytest.raises(ValueError):
        bench.select("random", candidates, len(candidates) + 1, 0)
    with pytest.raises(ValueError, match="scores"):
        bench.select("suggest", candidates, k, 0)


def test_uniform_is_evenly_spaced_and_random_is_nested(bench, scored):
    _, _, candidates, _ = scored
    n, k = len(candidates), 6
    for seed in (0, 1, 2):
        picks = bench.select("uniform", candidates, k, seed)
        positions = [candidates.index(p) for p in picks]
        gaps = np.diff(positions)
        assert set(gaps) <= {n // k, -(-n // k)}, positions  # evenly spaced over the pool's order
        assert positions[0] < -(-n // k) and positions[-1] >= n - -(-n // k)  # spans it
    assert bench.select("uniform", candidates, k, 0) != bench.select("uniform", candidates, k, 1)
    assert set(bench.select("random", candidates, 3, 5)) <= set(bench.select("random", candidates, 6, 5))
    assert bench.select("random", candidates, 6, 0) != bench.select("random", candidates, 6, 1)


def test_suggest_picks_the_uncertain_and_not_neighbours_only(bench, scored):
    pool, _, candidates, scores = scored
    values = np.array([scores[i].score for i in candidates])
    assert values.std() > 0  # the real model's scores tell frames apart
    for k in (4, 6):
        picks = bench.select("suggest", candidates, k, 0, scores, min_gap=GAP)
        rest = [i for i in candidates if i not in picks]
        assert np.mean([scores[i].score for i in picks]) > np.mean([scores[i].score for i in rest])
        video = sorted(pool.frames[i].frame for i in picks if pool.frames[i].is_video)
        assert all(b - a >= GAP for a, b in zip(video, video[1:])), video  # the time gap holds
        assert len(video) < k  # not the video's frames only


def test_suggest_spreads_over_a_run_of_uncertain_neighbours(bench, scored):
    """Whatever the tiny model thinks: when one video's consecutive frames score highest, the picks take at most
    one of every `GAP` of them and fill up from elsewhere."""
    pool, _, candidates, scores = scored
    rigged = {}
    for i in candidates:
        f = pool.frames[i]
        high = f.is_video and 4 <= f.frame < 12
        rigged[i] = FrameScore(f.source, f.frame, 0.9 - 0.01 * f.frame if high else 0.1 + 0.001 * i, {},
                               scores[i].thumb)
    picks = bench.select("suggest", candidates, 5, 0, rigged, min_gap=GAP)
    run = [pool.frames[i].frame for i in picks if pool.frames[i].is_video and 4 <= pool.frames[i].frame < 12]
    assert 1 <= len(run) <= -(-8 // GAP)
    assert pool.frames[picks[0]].frame == min(pool.frames[i].frame for i in candidates
                                              if pool.frames[i].is_video and pool.frames[i].frame >= 4)


def test_interval_and_paired_differences(bench):
    rng = np.random.default_rng(0)
    counts = np.full(64, 21)
    hits = rng.integers(5, 21, size=(2, 64))
    runs = [{"strategy": s, "k": 5, "seed": seed, "pck": float(hits[seed].sum() / counts.sum()),
             "hits": hits[seed].tolist(), "counts": counts.tolist(), "pick_score": 0.5}
            for s in bench.STRATEGIES for seed in (0, 1)]
    summary = bench.summarise(runs, [5], [0, 1], resamples=500)
    row = summary["rows"][0]
    assert row["ci95"][0] < row["mean"] < row["ci95"][1]
    assert np.isclose(row["mean"], np.mean(row["per_seed"]))
    assert all(d["diff"] == 0 and d["ci95"] == [0.0, 0.0] for d in summary["diffs"])
    assert "| suggest | 5 |" in bench.markdown(summary)
