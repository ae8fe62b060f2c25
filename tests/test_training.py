"""Training as a process: config, augmentation geometry, the port's loss, and real `cpm train` runs that
stream the JSON-lines protocol, stop cleanly on request, resume after a kill, and run under
MirroredStrategy on two logical CPU devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from run_configs import write_tiny_config

from cpm_core.skeleton import BODY_14, HAND_21
from training.config import AugmentConfig, load_config
from training.data import SubjectCache, make_pipeline
from training.events import parse_line
from training.loop import stage_l2

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, steps: int, **train) -> Path:
    return write_tiny_config(tmp_path / "run.toml", steps, train)


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(write_config(tmp_path, 5), ["train.steps=7", "augment.flip=true", "train.optimizer=rmsprop"])
    assert cfg.train.steps == 7 and cfg.augment.flip is True and cfg.train.optimizer == "rmsprop"
    assert cfg.output_dir == (tmp_path / "out").resolve()
    spec = cfg.model_spec(21)
    assert (spec.input_size, spec.stages, spec.stride) == (64, 2, 4)
    with pytest.raises(ValueError, match="unknown setting 'stepz'"):
        load_config(None, ["train.stepz=3"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps=")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize("skeleton", [HAND_21, BODY_14])
def test_augmented_targets_sit_on_the_warped_pixels(skeleton):
    """Draw each joint as a distinct bright dot; after rotation/scale/shift/flip, the target peak of joint j
    must sit on the dot that was joint j's (flip pairs swapped for the body)."""
    res, size = 96, 64
    j = skeleton.num_joints
    rng = np.random.default_rng(0)
    kp = rng.uniform(30, 66, (j, 2)).astype(np.float32)
    images, kps = [], []
    for joint in range(j):
        img = np.zeros((res, res, 3), np.uint8)
        x, y = np.round(kp[joint]).astype(int)
        img[y - 1:y + 2, x - 1:x + 2] = 255
        images.append(img)
        kps.append(kp)
    vis = np.full((j, j), 2, np.int32)
    cache = SubjectCache(np.stack(images), np.stack(kps), vis, [None] * j, np.ones(j), [""] * j, skeleton)
    aug = AugmentConfig(rotation=180, scale=(0.8, 1.2), translate=0.1, flip=True, brightness=0, contrast=0,
                        saturation=0, low_res=0, noise=0)
    ds = make_pipeline(cache, size, 4, j, aug, cache_scale=1.5, shuffle=False, repeat=False)
    images_b, targets, mask = next(iter(ds))
    perm = skeleton.flip_permutation()
    for i in range(j):
        img = images_b[i].numpy()[..., 0] + 0.5
        dot = np.array(np.unravel_index(np.argmax(img), img.shape))[::-1] * 1.0  # (x, y) of the bright dot
        hm = targets[i].numpy()
        # Joint i's dot became target channel i, or its flip partner's channel if the sample was flipped.
        peaks = {c: np.array(np.unravel_index(np.argmax(hm[..., c]), hm.shape[:2]))[::-1] * 4 + 1.5
                 for c in {i, perm[i]}}
        assert min(np.linalg.norm(p - dot) for p in peaks.values()) <= 4.5, (i, dot, peaks)
    assert mask.numpy().min() == 1.0


def test_stage_l2_is_the_ports_loss():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(2, 3, 4, 4, 5)).astype(np.float32)
    tgt = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
    mask = np.ones((2, 5), np.float32)
    mask[1, 2] = 0
    got = stage_l2(tf.constant(pred), tf.constant(tgt), tf.constant(mask), 2).numpy()
    diff = (pred - tgt[:, None]) * mask[:, None, None, None, :]
    np.testing.assert_allclose(got, (diff ** 2).sum(axis=(0, 2, 3, 4)) / 2 / 2, rtol=1e-5)


def _cpm(args: list[str], cwd: Path, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "training.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, **kw)


def _events(proc: subprocess.Popen, until=None, timeout: float = 120) -> list[dict]:
    out = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        ev = parse_line(line)
        assert ev is not None, f"non-protocol line on stdout: {line!r}"
        out.append(ev)
        if until and until(ev):
            break
        assert time.time() < deadline, "training took too long"
    return out


def test_train_streams_events_and_learns(tmp_path):
    proc = _cpm(["train", str(write_config(tmp_path, 40)), "--set", "train.eval_every=20"], ROOT)
    events = _events(proc)
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "checkpoint" in kinds and "eval" in kinds
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 20 and len(steps[0]["loss_per_stage"]) == 2
    assert np.mean([s["loss"] for s in steps[-3:]]) < np.mean([s["loss"] for s in steps[:3]])
    done = events[-1]
    model_dir = Path(done["model"])
    card = json.loads((model_dir / "card.json").read_text())
    assert card["trained"] and card["provenance"]["steps"] == 40 and "pck@0.2" in card["metrics"]
    # data named by folder and file, not by a path on the machine that trained it
    assert card["provenance"]["data"] == ["tiny_coco/tiny.json"] and "/" + "fixtures" not in card["description"]
    # the exported model decodes as its in-training evaluation did: DARK with the targets' sigma
    assert card["decoding"] == {"method": "dark", "blur_sigma": card["provenance"]["recipe"]["train"]["sigma"]}
    assert (tmp_path / "out" / "metrics.csv").read_text().count("\n") > 20


def test_stop_on_stdin_checkpoints_then_done(tmp_path):
    proc = _cpm(["train", str(write_config(tmp_path, 100000, checkpoint_every=100000, eval_every=0))], ROOT)
    first = _events(proc, until=lambda e: e["event"] == "step")
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    rest = _events(proc)
    proc.wait(timeout=60)
    assert proc.returncode == 0
    ckpt = [e for e in rest if e["event"] == "checkpoint"]
    assert ckpt and ckpt[-1]["reason"] == "stop"
    assert rest[-1]["event"] == "done" and rest[-1]["stopped"] is True
    assert rest[-1]["step"] >= first[-1]["step"]


def test_resume_after_kill_continues_from_checkpoint(tmp_path):
    cfg = write_config(tmp_path, 100000, eval_every=0)
    proc = _cpm(["train", str(cfg)], ROOT)
    events = _events(proc, until=lambda e: e["event"] == "checkpoint")
    proc.kill()
    proc.wait(timeout=30)
    saved = events[-1]["step"]
    assert saved == 10
    proc = _cpm(["train", str(cfg), "--resume", "--set", "train.steps=14"], ROOT)
    events = _events(proc)
    proc.wait(timeout=60)
    start = events[0]
    assert start["event"] == "start" and start["start_step"] == saved and start["resumed_from"].endswith("ckpt-10")
    assert [e["step"] for e in events if e["event"] == "step"] == [12, 14]
    assert events[-1]["event"] == "done" and events[-1]["step"] == 14


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    cfg = write_config(tmp_path, 6, strategy="mirrored", checkpoint_every=6, eval_every=0)
    script = (
        "import tensorflow as tf, sys\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from training.cli import main\n"
        f"sys.exit(main(['train', {str(cfg)!r}]))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, text=True, capture_output=True,
                         timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    events = [parse_line(line) for line in res.stdout.splitlines()]
    assert events[0]["replicas"] == 2 and events[0]["strategy"] == "mirrored"
    assert events[-1]["event"] == "done" and events[-1]["step"] == 6


def test_bad_config_reports_error_event(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[data]\ntrain = ["does/not/exist.json"]\n')
    proc = _cpm(["train", str(cfg)], ROOT)
    events = _events(proc)
    proc.wait(timeout=60)
    assert proc.returncode == 1
    assert events[-1]["event"] == "error" and "exist.json" in events[-1]["message"]


def test_weight_average_is_what_gets_exported(tmp_path):
    """With train.ema the exported model holds the moving average of the weights, not the last step's (both
    are in the final checkpoint: the model's variables and the optimiser's averages), and a short run's
    average is of its trained weights: the momentum ramps up, so the random start does not linger in it (with
    a fixed 0.998, 30 steps would leave 94% of the starting weights in the export)."""
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.weights import load_model, save_model
    from training.config import load_config as load
    from training.loop import make_optimizer, make_schedule

    cfg_path = write_config(tmp_path, 30)
    cfg = load(str(cfg_path), ["train.ema=0.998"])
    spec = cfg.model_spec(21)
    start = build_cpm(spec, "float32")
    save_model(start, ModelCard(spec=spec, skeleton=HAND_21), tmp_path / "start")
    proc = _cpm(["train", str(cfg_path), "--set", "train.ema=0.998", "--set", "train.eval_every=0",
                 "--set", f'model.init="{tmp_path / "start"}"'], ROOT)
    events = _events(proc)
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    exported, _ = load_model(events[-1]["model"])
    model = build_cpm(spec, "float32")
    optimizer = make_optimizer(cfg, make_schedule(cfg, cfg.train.steps))
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=model, optimizer=optimizer, step=step).restore(
        tf.train.latest_checkpoint(str(tmp_path / "out" / "checkpoints"))).expect_partial()
    assert int(step.numpy()) == 30
    averages = [v.numpy() for v in optimizer._model_variables_moving_average]
    raw = [v.numpy() for v in model.trainable_variables]
    got = [v.numpy() for v in exported.trainable_variables]
    assert all(np.allclose(g, a, atol=1e-6) for g, a in zip(got, averages))
    assert not all(np.allclose(g, r, atol=1e-6) for g, r in zip(got, raw))
    init = [v.numpy() for v in start.trainable_variables]

    def distance(a, b):
        return float(np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a, b))))

    # The average lies near the end of the path the weights took, not near its start.
    assert distance(got, init) > 0.6 * distance(raw, init), (distance(got, init), distance(raw, init))


def test_ema_momentum_ramps_up_to_its_target():
    from training.loop import ema_momentum

    assert ema_momentum(0.998, 0) == pytest.approx(0.1)
    assert ema_momentum(0.998, 90) == pytest.approx(0.91)
    assert ema_momentum(0.998, 10_000) == 0.998
    values = [ema_momentum(0.998, t) for t in range(0, 6000, 50)]
    assert values == sorted(values)


def test_random_erasing_paints_one_rectangle_of_the_asked_size():
    from training.data import _erase_rectangle

    tf.random.set_seed(3)
    sides = []
    for _ in range(20):
        out = _erase_rectangle(tf.zeros([100, 100, 3]), 0.4).numpy()
        painted = out.max(axis=-1) > 0
        ys, xs = np.nonzero(painted)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert painted.sum() == h * w  # one solid axis-aligned rectangle
        assert np.unique(out[painted].reshape(-1, 3), axis=0).shape[0] == 1  # in one colour
        sides += [h, w]
    assert 10 <= min(sides) and max(sides) <= 40 and max(sides) > 25


def test_part_crops_add_one_close_view_per_subject():
    """`data.part_crops`: each subject gains an entry cropped around one group of its joints (groups in turn),
    which fills the training crop as a top-down crop around only those joints would; labels stay."""
    from run_configs import TINY_COCO

    from training.data import build_cache, load_datasets

    ds = load_datasets([str(TINY_COCO)])
    plain = build_cache(ds, 64, 1.5, 1.6)
    fingers = ["thumb1", "thumb2", "thumb3", "thumb4"]
    cache = build_cache(ds, 64, 1.5, 1.6, part_crops=[fingers, [0, 5, 9]])
    n = len(plain)
    assert n == 4 and len(cache) == 2 * n  # every fixture hand has its thumb and palm labelled
    groups = [[1, 2, 3, 4], [0, 5, 9]]
    for k in range(n):
        full, part = 2 * k, 2 * k + 1
        np.testing.assert_array_equal(cache.images[full], plain.images[k])
        np.testing.assert_array_equal(cache.visibility[part], plain.visibility[k])  # labels kept
        pts = cache.keypoints[part][groups[k % 2]]
        extent = (pts.max(axis=0) - pts.min(axis=0)).max()
        assert extent == pytest.approx(64 / 1.5, abs=0.5)  # the group spans margin-1 of the training crop
        centre = (pts.max(axis=0) + pts.min(axis=0)) / 2
        np.testing.assert_allclose(centre, (cache.images.shape[1] - 1) / 2, atol=1.0)
    with pytest.raises(ValueError, match="no joint 'elbow'"):
        build_cache(ds, 64, 1.5, 1.6, part_crops=[["wrist", "elbow"]])
    with pytest.raises(ValueError, match="at least 2 joints"):
        build_cache(ds, 64, 1.5, 1.6, part_crops=[["wrist"]])
    with pytest.raises(ValueError, match="val_split"):
        load_config(None, ["data.part_crops=[[0, 1]]", "data.val_split=0.2"])
