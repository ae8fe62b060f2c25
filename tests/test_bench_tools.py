"""The benchmarks' measuring tools, checked without timing anything: the TensorFlow matmul ceiling per precision,
the training step bench/inference.py times, and the teacher that bench/pipeline.py runs in place of the CPM."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TEACHER = SHARED / "teachers" / "hand_landmark_full.tflite"
VIDEO = SHARED / "media" / "hand" / "handpose3d_cam0.mp4"


def _bench_module(name: str):
    """A bench script as a module. bench/ goes at the end of the path (its scripts import `machine`): first, its
    training.py would shadow the training package."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    key = f"bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_tf_matmul_ceiling_is_a_positive_rate_per_precision(precision: str) -> None:
    rate = _bench_module("inference").tf_matmul_gflops(precision, n=128, budget_s=0.05, max_repeats=3)
    assert np.isfinite(rate) and rate > 0


def test_tf_matmul_ceiling_rejects_unknown_precision() -> None:
    with pytest.raises(KeyError):
        _bench_module("inference").tf_matmul_gflops("float16", n=64)


def test_training_step_runs_the_loops_loss_and_learns(tiny_spec) -> None:
    """The timed step is a real training step: finite loss that falls on its fixed batch (Adam at the loop's
    learning rate), built as the loop builds the spec (batch norm only when the spec asks for it)."""
    bench = _bench_module("inference")
    step, model = bench.make_train_step(tiny_spec, "float32", batch=2)
    losses = [float(step().numpy()) for _ in range(6)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert model.count_params() > 0
    assert not any("batch_norm" in layer.__class__.__name__.lower() for layer in model.layers)
    _, bn_model = bench.make_train_step(tiny_spec.with_(batch_norm=True), "float32", batch=2)
    assert any(layer.__class__.__name__ == "BatchNormalization" for layer in bn_model.layers)


@pytest.mark.skipif(not (TEACHER.exists() and VIDEO.exists()), reason="shared teacher model or video missing")
def test_teacher_runs_the_bare_rows_follower_and_returns_21_joints_in_frame_pixels() -> None:
    from cpm_core.preprocess import CropBox
    from cpm_core.sources import VideoReader
    from cpm_core.upright import UprightFollower

    teacher = _bench_module("pipeline").TeacherEstimator(TEACHER, threads=1)
    assert teacher.size == 224
    with VideoReader(VIDEO) as reader:
        frames = [reader.read().image for _ in range(3)]
    # A crop away from the frame's origin: joints must come back in frame pixels, inside the crop.
    box = CropBox(500.0, 300.0, 360.0)
    r = teacher.predict(frames[0], box)
    assert r.keypoints.shape == (21, 3) and np.isfinite(r.keypoints).all()
    assert 0.0 <= r.keypoints[0, 2] <= 1.0
    inside = np.abs(r.keypoints[:, :2] - [box.cx, box.cy]).max(axis=1) <= box.side / 2 + 1
    assert inside.mean() > 0.8
    assert r.crop.size == 224 and r.heatmaps.size == 0
    follower = UprightFollower(teacher)
    assert follower.upright and follower.palm is not None  # the bare row's searches, palm detector included
    for frame in frames:
        out = follower.predict(frame)
        assert out.keypoints.shape == (21, 3) and np.isfinite(out.keypoints).all()


def test_teacher_hand_labels_writes_a_coco_set_our_readers_take(tmp_path) -> None:
    """bench/teacher_hand_labels.py on a committed hand photo with the committed lite teacher: one labelled hand
    with 21 joints in the photo, paths relative to the JSON (the photo stays where it is), read back by the
    training reader; an unreadable image is reported and skipped, and a duplicate box is dropped."""
    from training.data import load_datasets

    fixtures = Path(__file__).resolve().parent / "fixtures"
    photo = fixtures / "media" / "hand.jpg"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    mod = _bench_module("teacher_hand_labels")
    categories = [{"id": 1, "name": "hand", "supercategory": "hand", "skeleton": [],
                   "keypoints": [f"j{i}" for i in range(21)]}]
    said: list[str] = []
    out = tmp_path / "labels" / "hands.json"
    out.parent.mkdir()
    counts = mod.write_labels(out, [photo, broken], fixtures / "teachers" / "hand_landmark_lite.tflite",
                              categories, log=said.append)
    assert counts == {"images_looked_at": 2, "images": 1, "hands": 1}
    assert any("broken.jpg" in s for s in said)
    ds = load_datasets([str(out)])
    (sample,) = ds.samples
    (inst,) = sample.instances
    assert Path(sample.image).resolve() == photo.resolve()
    assert inst.keypoints.shape == (21, 2) and (inst.visibility == 2).sum() >= 15
    assert mod._duplicate(np.array([0, 0, 10, 10]), np.array([1, 1, 11, 11]))
    assert mod._duplicate(np.array([0, 0, 10, 10]), np.array([2, 2, 8, 8]))  # one inside the other
    assert not mod._duplicate(np.array([0, 0, 10, 10]), np.array([8, 8, 18, 18]))
