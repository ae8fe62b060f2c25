"""`cpm eval`: top-down PCK/EPE on the tiny fixture, consistent with cpm_core.metrics and with the PCK that
`cpm train` wrote into the card for the same val set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from run_configs import TINY_COCO, write_tiny_config

from cpm_core.dataset.formats import read_dataset
from cpm_core.metrics import end_point_error, pck
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.skeleton import HAND_21
from cpm_core.spec import ModelSpec
from cpm_core.weights import save_model
from training.events import parse_line

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def cpm(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], cwd=ROOT, env=ENV, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    off = {"rotation": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "brightness": 0.0, "contrast": 0.0,
           "saturation": 0.0, "low_res": 0.0, "noise": 0.0}
    cfg = write_tiny_config(tmp / "run.toml", 150, {"lr": 0.002, "log_every": 10, "eval_every": 0,
                                                    "checkpoint_every": 100}, augment=off)
    res = cpm("train", str(cfg))
    assert res.returncode == 0, res.stderr[-2000:]
    return Path([parse_line(x) for x in res.stdout.splitlines()][-1]["model"])


def test_eval_writes_outputs_consistent_with_metrics(trained_model, tmp_path):
    # float32 like the training run, so the two evaluations differ only by the crop resampling
    res = cpm("eval", str(trained_model), str(TINY_COCO), "--out", str(tmp_path / "ev"), "--precision", "float32")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "mean" in res.stdout and "thumb" in res.stdout.lower()
    for name in ("eval.json", "pck_curve.csv", "pck_curve.png"):
        assert (tmp_path / "ev" / name).stat().st_size > 0
    assert (tmp_path / "ev" / "pck_curve.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((tmp_path / "ev" / "eval.json").read_text())
    card = json.loads((trained_model / "card.json").read_text())
    assert result["margin"] == 1.5 and result["subjects"] == 4  # the card's crop margin, all 4 fixture hands
    # Same PCK as the card's, which `cpm train` computed on its own crops of the same subjects: at most one
    # of the 82 labelled joints may flip at the threshold from resampling differences.
    assert result["labelled_joints"] == 82 and card["metrics"]["pck@0.2"] > 0  # a trained, non-trivial model
    assert abs(result["pck"] - card["metrics"]["pck@0.2"]) <= 1 / 82 + 1e-9, (result["pck"], card["metrics"])
    rows = (tmp_path / "ev" / "pck_curve.csv").read_text().splitlines()
    assert rows[0] == "threshold,pck" and len(rows) == 52
    curve = result["curve"]["pck"]
    assert all(a <= b for a, b in zip(curve, curve[1:]))  # non-decreasing in the threshold
    assert curve[20] == pytest.approx(result["pck"])  # threshold 0.20


def test_update_card_writes_what_eval_measured(trained_model, tmp_path):
    """`--update-card` re-measures the card: afterwards the card's headline equals what `cpm eval` prints, the
    write is atomic (a whole card), and a non-folder model is refused without touching anything."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    card_path = model / "card.json"
    card = json.loads(card_path.read_text())
    card["metrics"]["pck@0.2"] = 0.123  # stale
    card_path.write_text(json.dumps(card))
    res = cpm("eval", str(model), str(TINY_COCO), "--precision", "float32", "--update-card")
    assert res.returncode == 0, res.stderr[-2000:]
    printed = float([line.split()[1] for line in res.stdout.splitlines() if line.startswith("mean")][0])
    after = json.loads(card_path.read_text())
    assert after["metrics"]["pck@0.2"] == pytest.approx(printed, abs=1e-4) != 0.123
    assert set(after["metrics"]["pck_per_joint"]) == set(HAND_21.joints)
    # named by folder and file, not by a path on the machine that evaluated
    assert after["metrics"]["evaluations"]["headline"]["dataset"] == "tiny_coco/tiny.json"
    low, high = after["metrics"]["pck@0.2_ci95"]
    assert low <= after["metrics"]["pck@0.2"] <= high and low < high  # 4 subjects: a wide interval
    assert f"95% interval of the mean PCK: {low:.3f} to {high:.3f}" in res.stdout
    assert after["spec"] == card["spec"] and after["skeleton"] == card["skeleton"]  # nothing else changed
    before = card_path.read_text()
    res = cpm("eval", str(model / "weights.weights.h5"), str(TINY_COCO), "--update-card")
    assert res.returncode != 0 and card_path.read_text() == before


def test_update_card_with_another_set_adds_an_entry_and_keeps_the_headline(trained_model, tmp_path):
    """A second validation set goes into `metrics.evaluations` under its own name and orientation, with its
    per-joint PCK; the headline (measured on the card's own val set) stays as it was."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    card_path = model / "card.json"
    card = json.loads(card_path.read_text())
    card["provenance"]["val"] = ["some_other/val.json"]
    card_path.write_text(json.dumps(card))
    res = cpm("eval", str(model), str(TINY_COCO), "--precision", "float32", "--update-card")
    assert res.returncode == 0, res.stderr[-2000:]
    after = json.loads(card_path.read_text())
    assert after["metrics"]["pck@0.2"] == card["metrics"]["pck@0.2"]
    assert after["metrics"]["pck_per_joint"] == card["metrics"]["pck_per_joint"]
    entry = after["metrics"]["evaluations"]["tiny_coco/tiny.json (none)"]
    printed = float([line.split()[1] for line in res.stdout.splitlines() if line.startswith("mean")][0])
    assert entry["pck@0.2"] == pytest.approx(printed, abs=1e-4) and entry["subjects"] == 4
    assert set(entry["pck_per_joint"]) == set(HAND_21.joints)


def test_eval_numbers_are_cpm_core_metrics(tmp_path):
    """An untrained model, evaluated in-process: the reported numbers are cpm_core.metrics on the predictions
    mapped back to image pixels."""
    from cpm_core.estimator import PoseEstimator
    from training.evaluate import collect_predictions, evaluate

    spec = ModelSpec(name="u", input_size=64, stages=2, num_joints=21, stride=8, width=0.125)
    path = save_model(build_cpm(spec), ModelCard(spec=spec, skeleton=HAND_21), tmp_path / "m")
    result = evaluate(path, TINY_COCO, margin=2.0)
    ds = read_dataset(TINY_COCO)
    est = PoseEstimator.from_path(path, warm_up=False, precision="float32")
    arr = collect_predictions(est, ds, 2.0, 1)
    insts = [i for s in ds.samples for i in s.instances]
    np.testing.assert_allclose(arr["gt"], np.stack([i.keypoints for i in insts]))
    np.testing.assert_allclose(arr["norm"], [max(i.bbox[2], i.bbox[3]) for i in insts])
    per_joint, mean = pck(arr["pred"], arr["gt"], arr["labelled"], arr["norm"], 0.2)
    _, epe = end_point_error(arr["pred"], arr["gt"], arr["labelled"])
    assert result["pck"] == pytest.approx(mean) and result["epe_px"] == pytest.approx(epe)
    assert [r["pck"] for r in result["per_joint"]] == pytest.approx(list(per_joint))
    # Predictions lie inside each subject's crop (2 x box), in image pixels.
    centre = np.stack([[i.bbox[0] + i.bbox[2] / 2, i.bbox[1] + i.bbox[3] / 2] for i in insts])
    assert (np.abs(arr["pred"] - centre[:, None]).max(axis=(1, 2)) <= arr["norm"] + 1).all()


def test_eval_rejects_a_mismatched_dataset(tmp_path, capsys):
    from training.cli import main

    spec = ModelSpec(name="b", input_size=64, stages=2, num_joints=14, stride=8, width=0.125)
    path = save_model(build_cpm(spec), ModelCard.for_spec(spec), tmp_path / "m")
    assert main(["eval", str(path), str(TINY_COCO)]) == 1
    assert "14 joints" in capsys.readouterr().err


def test_an_upright_canonical_run_scores_itself_as_cpm_eval_does(tmp_path):
    """A run on canonical crops (upright, thumb side left): the card's headline is the palm-detector pipeline
    that `cpm eval` runs by default, the model-alone search and the label-angle oracle sit beside it, and
    `cpm eval` reproduces each of them."""
    off = {"rotation": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "brightness": 0.0, "contrast": 0.0,
           "saturation": 0.0, "low_res": 0.0, "noise": 0.0}
    cfg = write_tiny_config(tmp_path / "run.toml", 60, {"eval_every": 0, "checkpoint_every": 100}, augment=off)
    res = cpm("train", str(cfg), "--set", 'data.orientation="upright"', "--set", 'data.chirality="canonical"')
    assert res.returncode == 0, res.stderr[-2000:]
    model = Path([parse_line(x) for x in res.stdout.splitlines()][-1]["model"])
    card = json.loads((model / "card.json").read_text())
    assert card["provenance"]["orientation"] == "upright" and card["provenance"]["chirality"] == "canonical"
    metrics = card["metrics"]
    assert metrics["orientation"] == "palm"
    for key in ("pck@0.2", "pck@0.2_model_alone", "pck@0.2_label_angle"):
        assert 0.0 <= metrics[key] <= 1.0
    for how, key in (("auto", "pck@0.2"), ("search", "pck@0.2_model_alone"), ("label", "pck@0.2_label_angle")):
        out = tmp_path / how
        res = cpm("eval", str(model), str(TINY_COCO), "--orientation", how, "--out", str(out))
        assert res.returncode == 0, res.stderr[-2000:]
        result = json.loads((out / "eval.json").read_text())
        assert result["orientation"] == ("palm" if how == "auto" else how)
        tolerance = 1e-4 if how != "label" else 1 / 82 + 1e-9  # label: training's own crops, resampled once more
        assert abs(result["pck"] - metrics[key]) <= tolerance, (how, result["pck"], metrics)


def test_angle_offset_turns_every_crop_and_stays_out_of_the_card(trained_model, tmp_path):
    """`--angle-offset` (a diagnostic: how much the PCK hangs on the exact angle) turns the crops the estimator
    is given, and is refused where the angle is the pipeline's own or where it would reach the card."""
    import shutil

    from training.evaluate import collect_predictions

    class Recorder:  # the estimator's interface as collect_predictions uses it, keeping the boxes it is given
        def __init__(self, card):
            self.card, self.boxes = card, []

        def predict_batch(self, frames, boxes, batch_size):
            from types import SimpleNamespace

            self.boxes += boxes
            return [SimpleNamespace(keypoints=np.zeros((21, 3))) for _ in boxes]

    card = ModelCard.read(trained_model / "card.json")
    ds = read_dataset(TINY_COCO)
    plain, turned = Recorder(card), Recorder(card)
    collect_predictions(plain, ds, 1.5, 1, orientation="label")
    collect_predictions(turned, ds, 1.5, 1, orientation="label", angle_offset=30.0)
    assert len(plain.boxes) == 4
    for a, b in zip(plain.boxes, turned.boxes):
        assert b.angle == pytest.approx(a.angle + 30.0) and (b.cx, b.cy, b.side) == (a.cx, a.cy, a.side)
    with pytest.raises(ValueError, match="angle offset"):
        collect_predictions(plain, ds, 1.5, 1, orientation="search", angle_offset=30.0)

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    before = (model / "card.json").read_text()
    res = cpm("eval", str(model), str(TINY_COCO), "--angle-offset", "90")
    assert res.returncode == 0 and "turned +90 degrees" in res.stdout, res.stderr[-2000:]
    res = cpm("eval", str(model), str(TINY_COCO), "--angle-offset", "90", "--update-card")
    assert res.returncode == 1 and "diagnostic" in res.stderr and (model / "card.json").read_text() == before
