"""`cpm export MODEL OUT --format savedmodel|tflite|onnx|own [--float16 | --int8 --calibration DATA]`: a trained
CPM for other runtimes.

Exported graphs take **uint8 BGR pixels** (N, S, S, 3), S = the card's input size, the crops exactly as OpenCV
reads them, and normalise inside (x * scale + offset, channel order from the model card), so a consumer never
has to know the normalisation. Output: float32 heatmaps of every stage, (N, stages, h, w, joints + 1).

- savedmodel: `tf.saved_model.save` of a tf.Module whose `serve` (also the `serving_default` signature) is a
  tf.function with that fixed input signature (batch dimension free). The model card is copied to
  `OUT/card.json`.
- tflite: converted FROM the exported SavedModel: it is loaded back with `tf.saved_model.load` and its
  serving signature converted (`TFLiteConverter.from_concrete_functions` with the loaded object as trackable).
  Both shortcuts drop the weights with Keras 3 in TF 2.21: converting the Keras model's own concrete functions,
  and `from_saved_model(path)`, which keeps the variables as READ_VARIABLE ops without values (NaN output).
  `--float16` stores the weights as float16 (half the file, heatmaps within ~1e-2). `--int8 --calibration
  DATASET` quantises weights and activations to int8 (post-training), scaled on up to 128 real crops of the
  dataset's subjects, cut as the model sees them (its crop margin; upright models turned upright by their
  labels). Use a training set, never the set you evaluate on. It is checked on held-out crops of that set
  (random pixels saturate int8 ranges set on real crops) with a loose tolerance, 15% of the heatmaps' peak;
  what counts is the PCK it loses (`python bench/runtimes.py`).
  The card is written beside it as `OUT.card.json`.
- onnx: converted by `tf2onnx` (opset 17) from the same serving function; input "images", output "heatmaps";
  run with ONNX Runtime. Card beside it as `OUT.card.json`.
- own: CPM Studio's model folder (weights + card), e.g. to turn a port .pkl into our format.

After every export the result is loaded back and run on random crops against the Keras model; the maximum
absolute heatmap difference is printed (and the command fails when it exceeds the tolerance).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

FORMATS = ("savedmodel", "tflite", "onnx", "own")
# int8: relative to the heatmaps' largest magnitude (a trained model's peak is ~1). Quantised to 256 levels through
# 3+ stages, the default hand model moved by 0.07-0.08 on real crops (bench/runtimes.py); a broken conversion
# moves by about the peak itself.
TOLERANCE = {"float32": 1e-4, "float16": 5e-2, "int8": 0.15}
CALIBRATION_CROPS = 128


def _module(model, card):
    from cpm_core.runtimes import serving_module

    return serving_module(model, card)


def calibration_crops(card, dataset: str | Path, count: int = CALIBRATION_CROPS, seed: int = 0,
                      skip: int = 0) -> np.ndarray:
    """Up to `count` uint8 crops (N, S, S, 3) of a dataset's labelled subjects, cut as the model is used: the
    card's crop margin around each box, turned upright by the labels for upright models (mirrored to the
    model's side for canonical-chirality ones). Images are drawn in a seeded order; `skip` leaves out the first
    ones drawn (the bench takes its held-out parity crops that way). Int8 calibration needs crops that look like
    what the model will see: random pixels would scale every activation for noise."""
    import copy

    from cpm_core.dataset.formats import read_dataset
    from cpm_core.orientation import label_angle, label_mirror, model_chirality, model_orientation
    from cpm_core.preprocess import CropBox, CropTransform
    from training.data import iter_subjects

    ds = read_dataset(dataset)
    if ds.skeleton.num_joints != card.spec.num_joints:
        raise ValueError(f"{dataset}: {ds.skeleton.num_joints} joints, the model predicts {card.spec.num_joints}")
    margin = float((card.provenance or {}).get("crop_margin") or 1.6)
    upright = model_orientation(card) == "upright"
    canonical = model_chirality(card) == "canonical"
    order = np.random.default_rng(seed).permutation(len(ds.samples))
    subset = copy.copy(ds)
    subset.samples = [ds.samples[i] for i in order]
    crops: list[np.ndarray] = []
    seen = 0
    for _, frame, usable in iter_subjects(subset, 3):
        for inst in usable:
            seen += 1
            if seen <= skip:
                continue
            x, y, w, h = inst.bbox
            box = CropBox.around(x, y, x + w, y + h, margin)
            if upright:
                labelled = inst.visibility > 0
                angle = label_angle(inst.keypoints, labelled, ds.skeleton) or 0.0
                mirror = canonical and bool(label_mirror(inst.keypoints, labelled, ds.skeleton, angle))
                box = CropBox(box.cx, box.cy, box.side, angle, mirror)
            crops.append(CropTransform(box, card.spec.input_size).apply(frame))
            if len(crops) >= count:
                return np.stack(crops)
    if not crops:
        raise ValueError(f"{dataset}: no subject with >= 3 labelled joints to calibrate on")
    return np.stack(crops)


def keras_heatmaps(model, card, images: np.ndarray) -> np.ndarray:
    return np.asarray(model(card.normalisation.apply(images), training=False), np.float32)


def save_savedmodel(model, card, out: Path, force: bool = False) -> Path:
    """Written to a temporary sibling and renamed into place; an existing `out` is replaced only if it is empty
    or an export of ours, or with `force` (it used to be deleted whatever it held)."""
    import tempfile

    import tensorflow as tf

    from cpm_core.atomic_io import atomic_write_text
    from cpm_core.weights.own_format import SAVEDMODEL_ENTRIES, check_output_folder, replace_folder

    check_output_folder(out, SAVEDMODEL_ENTRIES, force)
    module = _module(model, card)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        atomic_write_text(tmp / "card.json", card.to_json())
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_tflite(model, card, out: Path, float16: bool = False, calibration: np.ndarray | None = None) -> Path:
    """TFLite file (float32; float16 weights; int8 when `calibration` crops are given) and its card beside it.
    The conversion (from the SavedModel loaded back) is `cpm_core.runtimes.tflite_bytes`, shared with
    `PoseEstimator(runtime="tflite")`."""
    from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
    from cpm_core.runtimes import tflite_bytes

    quantise = "int8" if calibration is not None else "float16" if float16 else "float32"
    data = tflite_bytes(model, card, quantise, calibration)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    atomic_write_text(out.with_name(out.name + ".card.json"), card.to_json())
    return out


def save_onnx(model, card, out: Path) -> Path:
    """ONNX file (tf2onnx, opset 17) and its card beside it."""
    from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text
    from cpm_core.runtimes import onnx_bytes

    try:
        data = onnx_bytes(model, card)
    except ImportError as exc:
        raise ImportError(f"--format onnx needs tf2onnx and onnxruntime (pip install tf2onnx onnxruntime): {exc}"
                          ) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    atomic_write_text(out.with_name(out.name + ".card.json"), card.to_json())
    return out


def run_savedmodel(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return loaded.serve(tf.constant(images, tf.uint8))["heatmaps"].numpy()


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    from cpm_core.runtimes import TFLiteRuntime

    return TFLiteRuntime(Path(path).read_bytes(), threads=2).run(images)


def run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    from cpm_core.runtimes import OnnxRuntime

    return OnnxRuntime(Path(path).read_bytes(), threads=2).run(images)


def export_model(model_path: str | Path, out: str | Path, fmt: str, float16: bool = False,
                 check_images: int = 2, seed: int = 0, int8: bool = False,
                 calibration: str | Path | None = None, force: bool = False) -> dict:
    """Export and check; returns {"format", "path", "max_abs_diff", "tolerance", "shape", "float16", "int8"}.

    int8 exports are checked on real crops (the calibration set's, after the ones used to calibrate) as well
    as random ones: quantisation ranges come from real crops, so random pixels are not what it must get right."""
    from cpm_core.weights import load_model, save_model

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
    if float16 and fmt != "tflite":
        raise ValueError("--float16 applies to --format tflite only")
    if int8 and (fmt != "tflite" or float16):
        raise ValueError("--int8 applies to --format tflite only, without --float16")
    if int8 != (calibration is not None):
        raise ValueError("--int8 needs --calibration DATASET (a training set's labels), and --calibration --int8")
    out = Path(out)
    if fmt in ("savedmodel", "own"):  # before the slow part: a user's folder is refused at once (unless force)
        from cpm_core.weights.own_format import OWN_ENTRIES, SAVEDMODEL_ENTRIES, check_output_folder

        check_output_folder(out, SAVEDMODEL_ENTRIES if fmt == "savedmodel" else OWN_ENTRIES, force)
    model, card = load_model(model_path)
    s = card.spec.input_size
    images = np.random.default_rng(seed).integers(0, 256, (check_images, s, s, 3), dtype=np.uint8)
    crops = None
    if int8:
        crops = calibration_crops(card, calibration, CALIBRATION_CROPS + check_images, seed)
        if len(crops) > check_images:  # held-out real crops: random pixels saturate int8 ranges set on real ones
            images, crops = crops[-check_images:], crops[:-check_images]
    want = keras_heatmaps(model, card, images)
    if fmt == "savedmodel":
        save_savedmodel(model, card, out, force)
        got = run_savedmodel(out, images)
    elif fmt == "tflite":
        save_tflite(model, card, out, float16, crops)
        got = run_tflite(out, images)
    elif fmt == "onnx":
        save_onnx(model, card, out)
        got = run_onnx(out, images)
    else:
        save_model(model, card, out, force=force)
        reloaded, card2 = load_model(out)
        got = keras_heatmaps(reloaded, card2, images)
    if got.shape != want.shape:
        raise ValueError(f"exported model gives heatmaps of shape {got.shape}, the Keras model {want.shape}")
    tol = TOLERANCE["int8" if int8 else "float16" if float16 else "float32"]
    if int8:
        tol *= float(np.abs(want).max())
    return {"format": fmt, "path": str(out), "max_abs_diff": float(np.abs(got - want).max()), "tolerance": tol,
            "shape": list(got.shape), "float16": float16, "int8": int8}


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model as SavedModel, TFLite, ONNX or our own format",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="weights in any format load_model reads (model folder, .pkl, checkpoint)")
    p.add_argument("out", help="output folder (savedmodel, own) or file (tflite, onnx)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="savedmodel")
    p.add_argument("--float16", action="store_true", help="tflite: float16 weights")
    p.add_argument("--int8", action="store_true", help="tflite: int8 weights and activations (needs --calibration)")
    p.add_argument("--calibration", metavar="DATASET",
                   help="int8: labelled dataset (a training set, never the evaluation set) to take crops from")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("--force", action="store_true",
                   help="savedmodel / own: replace OUT even if it is a folder of other files (they are deleted)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        res = export_model(args.model, args.out, args.fmt, args.float16, int8=args.int8,
                           calibration=args.calibration, force=args.force)
    except Exception as exc:
        print(f"cpm export: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    ok = res["max_abs_diff"] <= res["tolerance"]
    if args.json:
        print(json.dumps({**res, "ok": ok}))
    else:
        kind = " (float16)" if res["float16"] else " (int8)" if res["int8"] else ""
        print(f"exported {res['format']}{kind} to {res['path']}")
        print(f"parity vs Keras: max |heatmap diff| = {res['max_abs_diff']:.3g} over {tuple(res['shape'])} "
              f"(tolerance {res['tolerance']:g}): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 2
