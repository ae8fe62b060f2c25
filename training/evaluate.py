"""`cpm eval MODEL DATASET [--out DIR] [--margin M]`: top-down accuracy of a model on a labelled dataset.

Each labelled subject is cropped around its box (`CropBox.around(box, margin)`; margin default: the model
card's `provenance.crop_margin`, else 1.6), the crops run through `PoseEstimator` in batches, and the joints
are mapped back to image pixels. Reported per joint and overall: PCK@0.2 normalised by the longer side of
the subject's box, and the end-point error in image pixels; `--out` also gets `eval.json` (every number),
`pck_curve.csv` and `pck_curve.png` (PCK against the threshold).

Matches the PCK that `cpm train` writes into the card for the same val set: training evaluates on crops of
margin x box (the central part of its subject cache), normalised by the box's longer side in crop pixels
(input size / margin), the same subjects (>= `data.min_joints` labelled joints, read from the card's recipe)
and float32 inference. The only difference is resampling: training cuts the crop out of a cache image that
was itself resampled (two bilinear steps), this command cuts it from the image once, so a joint lying right
at the 0.2 threshold can flip; expect agreement within about one joint in a hundred.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np


def collect_predictions(estimator, ds, margin: float, min_joints: int, batch: int = 16, log=None,
                        orientation: str = "none", angle_offset: float = 0.0) -> dict:
    """Run the estimator on every subject with >= min_joints labelled joints. Returns arrays pred (N, J, 2)
    and gt (N, J, 2) in image pixels, labelled (N, J), norm (N,) = longer box side, and the image names.

    `orientation`: "none" (axis-aligned crops), "search" (the model finds each subject's angle and side
    itself, as on a video's first frame without a detector), "palm" (the palm detector's keypoints give angle
    and side inside the labelled crop, searching where it finds no palm: what the app does on a first frame)
    or "label" (the labelled angle and side: an oracle that shows what perfect ones would give, never the
    headline number). `angle_offset`: degrees added to every crop's angle ("none" and "label" only), to
    measure how much the PCK depends on the exact angle."""
    from cpm_core.orientation import label_angle, label_mirror, model_chirality
    from cpm_core.preprocess import CropBox
    from cpm_core.upright import default_palm_detector, search_upright
    from training.data import iter_subjects

    if orientation not in ("none", "search", "palm", "label"):
        raise ValueError(f"orientation must be none, search, palm or label, got {orientation!r}")
    if angle_offset and orientation not in ("none", "label"):
        raise ValueError("an angle offset applies to the 'none' and 'label' orientations only (the others "
                         "choose their own angle)")
    palm = None
    if orientation == "palm":
        palm = default_palm_detector()
        if palm is None:
            raise ValueError("orientation 'palm' needs the bundled palm detector, which cannot be loaded here")
    canonical = model_chirality(estimator.card) == "canonical"
    preds, gts, labs, norms, names = [], [], [], [], []
    pending: list = []

    def flush() -> None:
        if not pending:
            return
        if orientation in ("search", "palm"):
            results = [search_upright(estimator, p[0], p[1], palm=palm) for p in pending]
        else:
            if orientation == "label":
                skel = estimator.card.skeleton
                for k, (frame, box, inst, name) in enumerate(pending):
                    angle = label_angle(inst.keypoints, inst.visibility > 0, skel) or 0.0
                    mirror = canonical and bool(label_mirror(inst.keypoints, inst.visibility > 0, skel, angle))
                    pending[k] = (frame, CropBox(box.cx, box.cy, box.side, angle + angle_offset, mirror), inst, name)
            elif angle_offset:
                for k, (frame, box, inst, name) in enumerate(pending):
                    pending[k] = (frame, CropBox(box.cx, box.cy, box.side, box.angle + angle_offset), inst, name)
            results = estimator.predict_batch([p[0] for p in pending], [p[1] for p in pending],
                                              batch_size=batch)
        for (_, _, inst, name), res in zip(pending, results):
            preds.append(res.keypoints[:, :2])
            gts.append(inst.keypoints)
            labs.append(inst.visibility > 0)
            norms.append(max(inst.bbox[2], inst.bbox[3], 1.0))
            names.append(name)
        pending.clear()

    for sample, frame, usable in iter_subjects(ds, min_joints, log):
        for inst in usable:
            x, y, w, h = inst.bbox
            pending.append((frame, CropBox.around(x, y, x + w, y + h, margin), inst, str(sample.image)))
        if len(pending) >= 4 * batch:
            flush()
    flush()
    if not preds:
        raise ValueError(f"no subjects with >= {min_joints} labelled joints in the dataset")
    return {"pred": np.stack(preds), "gt": np.stack(gts), "labelled": np.stack(labs),
            "norm": np.asarray(norms, np.float64), "images": names}


def score(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, norm: np.ndarray, joints, threshold: float = 0.2):
    from cpm_core.metrics import end_point_error, pck, pck_confidence_interval, pck_curve

    per_joint, mean = pck(pred, gt, labelled, norm, threshold)
    low, high, block = pck_confidence_interval(pred, gt, labelled, norm, threshold)
    epe_joint, epe = end_point_error(pred, gt, labelled)
    thresholds, curve = pck_curve(pred, gt, labelled, norm)

    def clean(v: float) -> float | None:
        return None if not math.isfinite(float(v)) else float(v)

    return {"threshold": threshold, "pck": clean(mean), "pck_ci95": [clean(low), clean(high)], "ci_block": block,
            "epe_px": clean(epe),
            "per_joint": [{"joint": j, "pck": clean(p), "epe_px": clean(e), "labelled": int(n)}
                          for j, p, e, n in zip(joints, per_joint, epe_joint, labelled.sum(axis=0))],
            "curve": {"thresholds": [float(t) for t in thresholds], "pck": [clean(v) for v in curve]},
            "subjects": int(len(pred)), "labelled_joints": int(labelled.sum())}


def write_outputs(result: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cpm_core.atomic_io import atomic_output, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "eval.json", out / "pck_curve.csv", out / "pck_curve.png"]
    atomic_write_text(paths[0], json.dumps(result, indent=2))
    curve = result["curve"]
    with atomic_output(paths[1]) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["threshold", "pck"])
        for t, v in zip(curve["thresholds"], curve["pck"]):
            w.writerow([f"{t:.3f}", "" if v is None else f"{v:.5f}"])
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.plot(curve["thresholds"], [np.nan if v is None else v for v in curve["pck"]], lw=2)
    ax.axvline(result["threshold"], color="grey", ls="--", lw=1)
    ax.set_xlabel("threshold (fraction of the box's longer side)")
    ax.set_ylabel("PCK")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{result.get('model_name', '')}: PCK@{result['threshold']:g} = {result['pck'] or 0:.3f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(paths[2]) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return paths


def evaluate(model_path: str | Path, dataset_path: str | Path, margin: float | None = None,
             min_joints: int | None = None, precision: str = "float32", batch: int = 16, log=None,
             orientation: str = "auto", angle_offset: float = 0.0, runtime: str = "tensorflow") -> dict:
    """PCK of a model on a labelled set. `runtime`: 'tensorflow' (at `precision`) or 'packaged' (the checked
    int8 graph packed in the model folder, `cpm quantise`: what the app runs when it is there)."""
    from cpm_core.dataset.formats import read_dataset
    from cpm_core.estimator import PoseEstimator
    from cpm_core.orientation import model_chirality, model_orientation
    from cpm_core.weights import load_model

    model, card = load_model(model_path)
    prov = card.provenance
    if margin is None:
        margin = float(prov.get("crop_margin") or 1.6)
    if min_joints is None:
        min_joints = int(((prov.get("recipe") or {}).get("data") or {}).get("min_joints", 1))
    ds = read_dataset(dataset_path)
    if ds.skeleton.num_joints != card.spec.num_joints:
        raise ValueError(f"the model predicts {card.spec.num_joints} joints, the dataset has "
                         f"{ds.skeleton.num_joints}")
    if runtime == "packaged":
        from cpm_core.estimator import packaged_files
        from cpm_core.runtimes import packaged_int8

        files = packaged_files(model_path, card)
        int8 = packaged_int8(files["tflite-int8"], card) if "tflite-int8" in files else None
        if int8 is None:
            raise ValueError(f"{model_path}: no usable packaged int8 graph (make one with `cpm quantise`)")
        estimator = PoseEstimator(model, card, warm_up=False, runtime=int8)
        precision = "int8"
    elif runtime == "tensorflow":
        estimator = PoseEstimator(model, card, warm_up=False, precision=precision)
    else:
        raise ValueError(f"runtime must be tensorflow or packaged, got {runtime!r}")
    if orientation == "auto":
        orientation = "none" if model_orientation(card) != "upright" else (
            "palm" if model_chirality(card) == "canonical" else "search")
    arrays = collect_predictions(estimator, ds, margin, min_joints, batch, log, orientation, angle_offset)
    result = score(arrays["pred"], arrays["gt"], arrays["labelled"], arrays["norm"], card.skeleton.joints)
    result.update({"model": str(model_path), "model_name": card.name, "dataset": str(dataset_path),
                   "margin": margin, "min_joints": min_joints, "precision": precision, "orientation": orientation,
                   "angle_offset": float(angle_offset),
                   "card_pck": card.metrics.get("pck@0.2")})
    return result


CARD_KEYS = {  # which card metrics an evaluation replaces, by how crops were turned
    "label": ("pck@0.2_label_angle", "pck_per_joint_label_angle"),
    "search": ("pck@0.2_model_alone", None),
}


def update_card(model_path: str | Path, result: dict, default_orientation: bool) -> Path:
    """Write an evaluation into the model card (atomically): the headline PCK, per-joint PCK and EPE when the
    crops were turned the way the model is used (`default_orientation`), else the oracle / model-alone keys.
    A dataset other than the card's own validation set (`provenance.val`) gets its own entry in
    `metrics.evaluations` ("<set> (<orientation>)", with per-joint PCK and interval) and changes no headline.

    Why: the card is what `cpm eval` is checked against and what the app shows; after a change to the pipeline
    (cropping, orientation) its numbers are re-measured, not edited by hand."""
    import math

    from cpm_core.atomic_io import atomic_write_text
    from cpm_core.model_card import ModelCard
    from cpm_core.weights.own_format import CARD_FILE

    folder = Path(model_path)
    card_path = folder / CARD_FILE if folder.is_dir() else folder
    if card_path.name != CARD_FILE or not card_path.exists():
        raise ValueError(f"{model_path}: --update-card needs a CPM Studio model folder (with {CARD_FILE})")
    card = ModelCard.read(card_path)
    per_joint = {r["joint"]: (None if r["pck"] is None or not math.isfinite(r["pck"]) else round(r["pck"], 4))
                 for r in result["per_joint"]}
    if result.get("angle_offset"):
        raise ValueError("an evaluation with an angle offset is a diagnostic; it does not go into the card")
    m = card.metrics
    ci = [None if v is None else round(v, 4) for v in result.get("pck_ci95") or (None, None)]
    from training.loop import dataset_names

    name = dataset_names([str(result["dataset"])])[0]
    own_val = card.provenance.get("val")
    if own_val and name not in own_val:
        # Another set than the one the card's numbers are on (e.g. a second validation set): it gets its own
        # entry, with its per-joint PCK, and leaves the headline alone.
        which = f"{name} ({result.get('orientation') or 'none'})"
        m.setdefault("evaluations", {})[which] = {
            "dataset": name, "orientation": result.get("orientation"), "pck@0.2": round(result["pck"], 4),
            "ci95": ci, "ci_block": result.get("ci_block"), "subjects": result["subjects"],
            "margin": result["margin"], "precision": result["precision"], "pck_per_joint": per_joint}
        atomic_write_text(card_path, card.to_json())
        return card_path
    if default_orientation:
        m["pck@0.2_ci95"] = ci
        m["pck@0.2"] = round(result["pck"], 4)
        m["pck_per_joint"] = per_joint
        m["epe_px"] = None if result["epe_px"] is None else round(result["epe_px"], 2)
        m["val_subjects"] = result["subjects"]
        if result.get("orientation") not in (None, "none"):
            m["orientation"] = result["orientation"]
    else:
        if result["orientation"] not in CARD_KEYS:
            raise ValueError(f"orientation {result['orientation']!r} has no place in the card")
        key, joints_key = CARD_KEYS[result["orientation"]]
        m[key] = round(result["pck"], 4)
        if joints_key:
            m[joints_key] = per_joint
    which = "headline" if default_orientation else result["orientation"]
    m.setdefault("evaluations", {})[which] = {"dataset": name,
                                              "pck@0.2": round(result["pck"], 4),
                                              "ci95": ci, "ci_block": result.get("ci_block"),
                                              "margin": result["margin"], "precision": result["precision"]}
    atomic_write_text(card_path, card.to_json())
    return card_path


def format_table(result: dict) -> str:
    lines = [f"{'joint':<16} {'PCK@' + format(result['threshold'], 'g'):>8} {'EPE px':>8} {'n':>5}"]
    for row in result["per_joint"]:
        p = "-" if row["pck"] is None else f"{row['pck']:.3f}"
        e = "-" if row["epe_px"] is None else f"{row['epe_px']:.2f}"
        lines.append(f"{row['joint']:<16} {p:>8} {e:>8} {row['labelled']:>5}")
    mean_p = "-" if result["pck"] is None else f"{result['pck']:.4f}"
    mean_e = "-" if result["epe_px"] is None else f"{result['epe_px']:.2f}"
    lines.append(f"{'mean':<16} {mean_p:>8} {mean_e:>8} {result['labelled_joints']:>5}")
    low, high = result.get("pck_ci95") or (None, None)
    if low is not None and high is not None:
        lines.append(f"95% interval of the mean PCK: {low:.3f} to {high:.3f} (bootstrap over runs of "
                     f"{result['ci_block']} consecutive subjects: this data cannot tell the PCK from values inside it)")
    lines.append(f"{result['subjects']} subjects, crop margin {result['margin']:g}, "
                 f"orientation {result.get('orientation', 'none')}"
                 + (f" turned {result['angle_offset']:+g} degrees" if result.get("angle_offset") else "")
                 + (f"; the card says PCK@0.2 {result['card_pck']}" if result.get("card_pck") is not None else ""))
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="PCK and EPE of a model on a labelled dataset",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="weights in any format load_model reads")
    p.add_argument("dataset", help="labelled dataset in any supported format")
    p.add_argument("--out", default=None, help="folder for eval.json, pck_curve.csv and pck_curve.png")
    p.add_argument("--margin", type=float, default=None, help="crop side / box side (default: the card's)")
    p.add_argument("--min-joints", type=int, default=None,
                   help="skip subjects with fewer labelled joints (default: the card's training recipe, else 1)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "auto"), default="float32")
    p.add_argument("--runtime", choices=("tensorflow", "packaged"), default="tensorflow",
                   help="tensorflow (at --precision), or packaged: the int8 graph `cpm quantise` packed into the "
                        "model folder, which the app runs when it is there")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--orientation", choices=("auto", "palm", "search", "label", "none"), default="auto",
                   help="crop angle and side: auto (palm for canonical-chirality models, search for other "
                        "upright ones, else none), palm (the palm detector's keypoints, search where it finds "
                        "none), search (the model alone), label (the labels: an oracle, for diagnosis), none "
                        "(axis-aligned)")
    p.add_argument("--angle-offset", type=float, default=0.0,
                   help="degrees added to every crop's angle (with --orientation label or none): how much the PCK "
                        "depends on the exact angle; never written into the card")
    p.add_argument("--update-card", action="store_true",
                   help="write the result into the model card (headline PCK with the default orientation, else "
                        "the label-angle or model-alone numbers); for re-measuring after a pipeline change")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate(args.model, args.dataset, args.margin, args.min_joints, args.precision, args.batch,
                          log=lambda m: print(m, file=sys.stderr), orientation=args.orientation,
                          angle_offset=args.angle_offset, runtime=args.runtime)
    except Exception as exc:
        print(f"cpm eval: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(format_table(result))
    if args.update_card:
        try:
            path = update_card(args.model, result, default_orientation=args.orientation == "auto")
        except (OSError, ValueError) as exc:
            print(f"cpm eval: cannot update the card: {exc}", file=sys.stderr)
            return 1
        print(f"updated {path}")
    if args.out:
        for path in write_outputs(result, Path(args.out)):
            print(f"wrote {path}")
    return 0
