"""`cpm quantise MODEL --calibration TRAIN --check DATA`: pack a checked int8 graph into a model folder.

The int8 TFLite graph (post-training, weights and activations) is the fastest runtime for the plain-convolution
models on every CPU measured (bench/runtimes.py), but quantisation can cost accuracy, and by how much depends on
the model. So it is measured here, once, by the app's own pipeline on labelled data:

1. Calibrate on up to 128 real crops of `--calibration` (a training set: crops cut as the app cuts them).
2. Run the float model (TensorFlow float32) and the int8 graph on every subject of `--check` with the model's
   default orientation (for the hand model: the palm detector's angle and side, as in the app), and compare
   PCK@0.2. The rule, fixed here before any model is quantised: the int8 graph is packed only if it loses at most
   `--max-loss` (default 0.01, one PCK point, the efficient-CPM issue's rule) on the check set. The check set
   should be training data too: the validation sets stay the measure of the model, not of its runtime.
3. Write `int8.tflite` into the model folder and the check into the card's `packaged_runtimes` section (file
   and weights sha256, both PCKs, the data), each file atomically; the estimator then uses it by default
   (`cpm_core.packaged_runtimes`). A failed check writes nothing and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

CHECK_RULE = 0.01  # PCK@0.2 the int8 graph may lose against float32 on the check set


def quantise_model(model_path: str | Path, calibration: str | Path, check: str | Path, max_loss: float = CHECK_RULE,
                   max_subjects: int | None = None, log=None, write: bool = True) -> dict:
    """Quantise, check and (if the check passes and `write`) pack; returns the check's numbers and whether it was
    packed. Raises ValueError for a folder that is not a CPM Studio model."""
    import tensorflow as tf

    from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
    from cpm_core.dataset.formats import read_dataset
    from cpm_core.estimator import PoseEstimator
    from cpm_core.model_card import ModelCard
    from cpm_core.orientation import model_chirality, model_orientation
    from cpm_core.packaged_runtimes import INT8_FILE, file_sha256
    from cpm_core.runtimes import TFLiteRuntime, tflite_bytes
    from cpm_core.weights import load_model
    from cpm_core.weights.own_format import CARD_FILE, WEIGHTS_FILE
    from training.evaluate import collect_predictions, score
    from training.export import CALIBRATION_CROPS, calibration_crops
    from training.loop import dataset_names

    folder = Path(model_path)
    if not (folder.is_dir() and (folder / CARD_FILE).exists() and (folder / WEIGHTS_FILE).exists()):
        raise ValueError(f"{model_path}: not a CPM Studio model folder (with {CARD_FILE} and {WEIGHTS_FILE})")
    weights_hash = file_sha256(folder / WEIGHTS_FILE)
    model, card = load_model(folder)
    say = log or (lambda m: None)
    say(f"calibrating on {CALIBRATION_CROPS} crops of {calibration}")
    crops = calibration_crops(card, calibration, CALIBRATION_CROPS)
    data = tflite_bytes(model, card, "int8", crops)
    margin = float(card.provenance.get("crop_margin") or 1.6)
    min_joints = int(((card.provenance.get("recipe") or {}).get("data") or {}).get("min_joints", 1))
    orientation = "none" if model_orientation(card) != "upright" else (
        "palm" if model_chirality(card) == "canonical" else "search")
    ds = read_dataset(check)
    if max_subjects:
        ds.samples = ds.samples[:max_subjects]
    scores = {}
    for name, estimator in (("float32", PoseEstimator(model, card, warm_up=False, precision="float32")),
                            ("int8", PoseEstimator(model, card, warm_up=False,
                                                   runtime=TFLiteRuntime(data, "int8")))):
        say(f"checking {name} on {check} ({orientation} orientation)")
        arrays = collect_predictions(estimator, ds, margin, min_joints, orientation=orientation)
        scores[name] = score(arrays["pred"], arrays["gt"], arrays["labelled"], arrays["norm"], card.skeleton.joints)
    loss = scores["float32"]["pck"] - scores["int8"]["pck"]
    result = {"runtime": "tflite-int8", "file": INT8_FILE, "sha256": hashlib.sha256(data).hexdigest(),
              "weights_sha256": weights_hash, "bytes": len(data),
              "check": {"dataset": dataset_names([str(check)])[0], "subjects": scores["int8"]["subjects"],
                        "orientation": orientation, "pck@0.2_float32": round(scores["float32"]["pck"], 4),
                        "pck@0.2_int8": round(scores["int8"]["pck"], 4), "max_loss": max_loss,
                        "calibration": dataset_names([str(calibration)])[0],
                        "calibration_crops": int(len(crops)), "tensorflow": tf.__version__},
              "passed": bool(loss <= max_loss), "packed": False}
    if result["passed"] and write:
        atomic_write_bytes(folder / INT8_FILE, data)
        card = ModelCard.read(folder / CARD_FILE)  # the file's own card: nothing load_model filled in
        card.packaged_runtimes = {"tflite-int8": {k: result[k] for k in ("file", "sha256", "weights_sha256")}
                                  | {"check": result["check"], "made_by": "cpm quantise"}}
        atomic_write_text(folder / CARD_FILE, card.to_json())
        result["packed"] = True
    return result


def register(subparsers) -> None:
    p = subparsers.add_parser("quantise", help="pack a PCK-checked int8 graph into a model folder (faster runtime)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a CPM Studio model folder")
    p.add_argument("--calibration", required=True, metavar="DATASET", help="training set to take 128 crops from")
    p.add_argument("--check", required=True, metavar="DATASET",
                   help="labelled set to compare float32 and int8 PCK on (training data, not a validation set)")
    p.add_argument("--max-loss", type=float, default=CHECK_RULE,
                   help=f"PCK@0.2 the int8 graph may lose (default {CHECK_RULE})")
    p.add_argument("--max-images", type=int, default=None, help="check on the first N images only")
    p.add_argument("--dry-run", action="store_true", help="measure only; write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        res = quantise_model(args.model, args.calibration, args.check, args.max_loss, args.max_images,
                             log=lambda m: print(m, file=sys.stderr), write=not args.dry_run)
    except Exception as exc:
        print(f"cpm quantise: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    c = res["check"]
    print(f"PCK@0.2 on {c['dataset']} ({c['subjects']} subjects, {c['orientation']}): float32 "
          f"{c['pck@0.2_float32']:.4f}, int8 {c['pck@0.2_int8']:.4f} (may lose {c['max_loss']:g})")
    if not res["passed"]:
        print(f"cpm quantise: the int8 graph loses more than {c['max_loss']:g}; nothing written", file=sys.stderr)
        return 1
    print(f"packed {Path(args.model) / res['file']} ({res['bytes'] / 1e6:.1f} MB)" if res["packed"]
          else "passed (dry run: nothing written)")
    return 0
