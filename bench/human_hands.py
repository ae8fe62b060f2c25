"""The default hand model on hands labelled by people, not by MediaPipe (issue #17 items 4 and 6).

    nice -n 15 python bench/human_hands.py [--model DIR] [--out runs/human_hands] [--data ../shared/data/labelled]
                                           [--orientations palm,label,search] [--no-hands] [--no-draw]

Why: every hand set the model trains and validates on (`hand_pseudo`, `hand_more`) carries MediaPipe's machine
labels, so its PCK measures agreement with MediaPipe, teacher mistakes included. This bench scores it against
hands that people labelled, and asks again how much the app's pipeline (the palm detector's angle and side) loses
against the labels' own angle and side (`bench/palm_gap.py` measured that gap on machine labels only).

Sources (`../shared/data/labelled/`, copied from mmpose's tests/data, Apache-2.0 for mmpose's files; each dataset's
own terms apply to its labels and images):
- COCO-WholeBody (Jin et al., ECCV 2020; its labels under the COCO-WholeBody project's terms, the COCO images under
  their Flickr licences, listed in the JSON's `licenses`):
  `coco_body/test_coco_wholebody.json`, 4 val2017 images. Every person's `lefthand_kpts` / `righthand_kpts`
  where `*hand_valid` is true and at least `MIN_JOINTS` joints have a confidence > 0. Its hand order (wrist,
  then thumb, index, middle, ring, little, base to tip) is ours. Two hands (000000197388.jpg) carry confidences
  0.04-0.37 instead of 1 / 2; kept, with `source_min_confidence`. Its "left hand" is the person's left; written as
  `handedness` "Left" / "Right" (the person's own hand, not MediaPipe's mirrored-input convention).
- InterHand2.6M (Moon et al., ECCV 2020; CC BY-NC 4.0: research only): `interhand/`, 4 images (2 of them two
  interacting hands) with the `data`, `camera` and `joint_3d` JSONs. The 3D joints (world, mm) are projected as
  mmpose's InterHand2DDataset does: camera = R (world - campos), pixel = focal * (x / z, y / z) + princpt. Its 42
  joints are the right hand (0-20) then the left (21-41), each thumb first, every finger tip to base, wrist last;
  reordered to ours by `INTERHAND_TO_OURS`. A hand is kept where its wrist is valid and >= `MIN_JOINTS` joints
  are; InterHand's `joint_valid` says "annotated", not "visible in this view": occluded joints stay labelled.
- Both: the box is the labelled joints' extent, as in every shared hand set (the crop and PCK@0.2's norm depend on
  it); COCO-WholeBody's own hand box is kept as `source_box`. Images are referenced by absolute path.

Writes `OUT/coco_wholebody.json`, `OUT/interhand.json`, `OUT/both.json` (COCO keypoints, the `categories` entry
of `hand_pseudo`), then runs `training.evaluate.evaluate` with orientation palm (the app's pipeline), label (the
labels' angle and side: the oracle) and search (the model alone) on each, and prints PCK@0.2 with its 95% interval
(the project's block bootstrap) and the gap label - palm. `evaluate` does not report the palm detector's side, so
the side count comes from `bench/palm_gap.py`'s `measure` (the palm's hint at the labelled crop against the labels'
side), with a per-hand list that also counts, in images with two or more hands, the pipeline's joints lying nearer
another hand than this one (it posed the neighbour). Also writes `OUT/check_*.png` (every converted hand drawn on
its image: how the InterHand projection was checked by eye) and `OUT/results.json`.

Measured with the default hand model (hand default v3, hand-rt-128x3; float32, busy 2-core Xeon, load 5, 49 s):

    set              hands  palm PCK@0.2 (95%)   label PCK@0.2 (95%)   search PCK@0.2 (95%)   label-palm
    coco_wholebody      10  0.290 (0.21-0.38)    0.295 (0.22-0.36)     0.276 (0.20-0.36)      +0.005
    interhand            6  0.603 (0.38-0.84)    0.619 (0.47-0.79)     0.429 (0.15-0.64)      +0.016
    both                16  0.408 (0.29-0.56)    0.417 (0.30-0.56)     0.333 (0.24-0.43)      +0.009
    palm found for 6 of 16 hands (3 of 10 COCO-WholeBody, 3 of 6 InterHand), its side wrong for 1.

Read with care: 16 hands, intervals 0.2-0.5 wide. The COCO-WholeBody hands are 10-24 px (gloved skiers, a batter)
and far from the training data; the palm detector finds a palm on 3 of them, so "palm" is mostly "search" there.
On the two interacting InterHand pairs the pipeline posed the other hand: the clasped left hand (image69148, no palm
found) gets 16 of 21 joints nearer the right hand's (PCK 0.000, labels' angle and side 0.381); in the praying pair
(image44669) the palm found in the right hand's crop is the left hand's, 17 joints land on the left hand, and the
PCK (0.571) stays up only because the two hands overlap. The label - palm gap (+0.009) is small because on these
hands the labels' angle and side do not help much either: neither is what is lost here.

`--teacher` (on by default where ../shared has it) adds MediaPipe's landmark model in the same pipeline. Measured
(session 11, the CPM on its packed int8 graph): both sets, palm 0.533 (0.30-0.78) for the teacher against 0.390
(0.27-0.54); InterHand 0.937 against 0.587; COCO-WholeBody 0.290 against 0.271. The CPM trails most on two hands
touching, which the teacher poses well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/: bench/training.py would shadow the training package
if str(ROOT / "bench") not in sys.path:
    sys.path.append(str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LABELLED = ROOT.parent / "shared" / "data" / "labelled"
MIN_JOINTS = 6
# Ours (wrist, thumb1..4, index1..4, ..., little1..4; 1 = base) from InterHand's per-hand order (thumb4..thumb1,
# index4..index1, ..., little4..little1, wrist): ours[i] = interhand[INTERHAND_TO_OURS[i]].
INTERHAND_TO_OURS = [20] + [4 * f + 3 - k for f in range(5) for k in range(4)]
INTERHAND_FILES = ("test_interhand2.6m_data.json", "test_interhand2.6m_camera.json", "test_interhand2.6m_joint_3d.json")
WHOLEBODY_FILE = "test_coco_wholebody.json"
SETS = ("coco_wholebody", "interhand", "both")


def hand_category() -> dict:
    """The COCO category of our 21-joint hand, as `hand_pseudo/val.json` has it."""
    from cpm_core.dataset.coco import category_from_skeleton
    from cpm_core.skeleton import HAND_21

    return category_from_skeleton(HAND_21)


def _extent(kp: np.ndarray, labelled: np.ndarray) -> list[float]:
    xy = kp[labelled]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]


def _annotation(kp: np.ndarray, labelled: np.ndarray, extras: dict) -> dict:
    """A COCO hand annotation (ids filled in later): labelled joints v = 2, others 0 at (0, 0)."""
    flat: list[float] = []
    for (x, y), lab in zip(kp, labelled):
        flat += [round(float(x), 2), round(float(y), 2), 2] if lab else [0, 0, 0]
    box = _extent(kp, labelled)
    return {"category_id": 1, "keypoints": flat, "num_keypoints": int(labelled.sum()), "bbox": box,
            "area": round(box[2] * box[3], 2), "iscrowd": 0, **extras}


def _document(images: list[dict], annotations: list[dict], description: str) -> dict:
    """A COCO keypoints document with ids 1, 2, ... (sources' own ids kept as `source_*_id`)."""
    remap = {}
    for n, img in enumerate(images, start=1):
        remap[img["id"]] = n
        img["id"] = n
    for n, ann in enumerate(annotations, start=1):
        ann["id"] = n
        ann["image_id"] = remap[ann["image_id"]]
    return {"info": {"description": description}, "images": images, "annotations": annotations,
            "categories": [hand_category()]}


def wholebody_hands(json_path: str | Path, image_dir: str | Path | None = None, min_joints: int = MIN_JOINTS) -> dict:
    """COCO-WholeBody's valid hands with >= `min_joints` joints of confidence > 0, as a 21-joint COCO document."""
    json_path = Path(json_path)
    image_dir = Path(image_dir) if image_dir is not None else json_path.parent
    doc = json.loads(json_path.read_text())
    images = {img["id"]: img for img in doc["images"]}
    out_images: dict[int, dict] = {}
    annotations = []
    for ann in doc["annotations"]:
        for side in ("left", "right"):
            if not ann.get(f"{side}hand_valid"):
                continue
            raw = np.asarray(ann[f"{side}hand_kpts"], np.float64).reshape(21, 3)
            labelled = raw[:, 2] > 0
            if labelled.sum() < min_joints:
                continue
            img = images[ann["image_id"]]
            out_images.setdefault(img["id"], {
                "id": img["id"], "file_name": str((image_dir / img["file_name"]).resolve()),
                "width": img["width"], "height": img["height"], "source": "coco_wholebody",
                "source_image_id": img["id"]})
            annotations.append({"image_id": img["id"], **_annotation(raw[:, :2], labelled, {
                "handedness": side.capitalize(), "source": "coco_wholebody", "source_ann_id": ann["id"],
                "source_box": [round(float(v), 2) for v in ann[f"{side}hand_box"]],
                "source_min_confidence": round(float(raw[labelled, 2].min()), 3)})})
    return _document(list(out_images.values()), annotations,
                     f"COCO-WholeBody hands (human labels) from {json_path.name}, {MIN_JOINTS}+ joints")


def project(world: np.ndarray, camrot: np.ndarray, campos: np.ndarray, focal: np.ndarray,
            princpt: np.ndarray) -> np.ndarray:
    """World points (N, 3) to pixels (N, 2): camera = R (world - campos), then the pinhole (no distortion)."""
    cam = (np.asarray(camrot, np.float64) @ (np.asarray(world, np.float64) - np.asarray(campos, np.float64)).T).T
    return cam[:, :2] / cam[:, 2:3] * np.asarray(focal, np.float64) + np.asarray(princpt, np.float64)


def interhand_hands(folder: str | Path, min_joints: int = MIN_JOINTS) -> dict:
    """InterHand2.6M's hands (right and left of every image) projected to 2D, as a 21-joint COCO document."""
    folder = Path(folder)
    data, cameras, joints = (json.loads((folder / name).read_text()) for name in INTERHAND_FILES)
    images = {img["id"]: img for img in data["images"]}
    out_images: dict[int, dict] = {}
    annotations = []
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        cap, cam, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
        c = cameras[cap]
        xy = project(np.asarray(joints[cap][frame]["world_coord"]), c["camrot"][cam], c["campos"][cam],
                     c["focal"][cam], c["princpt"][cam])
        valid = np.asarray(ann["joint_valid"], np.float64).reshape(42) > 0
        for side, first in (("Right", 0), ("Left", 21)):
            order = [first + i for i in INTERHAND_TO_OURS]
            labelled = valid[order] & valid[first + 20]  # no wrist, no hand (as mmpose: the root decides)
            if labelled.sum() < min_joints:
                continue
            out_images.setdefault(img["id"], {
                "id": img["id"], "file_name": str((folder / img["file_name"]).resolve()),
                "width": img["width"], "height": img["height"], "source": "interhand2.6m",
                "source_image_id": img["id"], "seq_name": img.get("seq_name"), "camera": cam})
            annotations.append({"image_id": img["id"], **_annotation(xy[order], labelled, {
                "handedness": side, "hand_type": ann.get("hand_type"), "source": "interhand2.6m",
                "source_ann_id": ann["id"]})})
    return _document(list(out_images.values()), annotations,
                     "InterHand2.6M hands (3D human-verified labels projected to 2D), right and left per image")


def merge(*docs: dict) -> dict:
    """One document with every image and hand of `docs` (renumbered)."""
    images, annotations = [], []
    for k, doc in enumerate(docs):
        images += [dict(img, id=(k, img["id"])) for img in doc["images"]]
        annotations += [dict(ann, image_id=(k, ann["image_id"])) for ann in doc["annotations"]]
    return _document(images, annotations, "; ".join(d["info"]["description"] for d in docs))


def write_sets(out: str | Path, labelled: str | Path = LABELLED) -> dict[str, Path]:
    """Convert both sources and write coco_wholebody.json, interhand.json and both.json into `out`."""
    out, labelled = Path(out), Path(labelled)
    out.mkdir(parents=True, exist_ok=True)
    docs = {"coco_wholebody": wholebody_hands(labelled / "coco_body" / WHOLEBODY_FILE),
            "interhand": interhand_hands(labelled / "interhand")}
    docs["both"] = merge(docs["coco_wholebody"], docs["interhand"])
    paths = {}
    for name, doc in docs.items():
        paths[name] = out / f"{name}.json"
        paths[name].write_text(json.dumps(doc, indent=1) + "\n")
    return paths


def draw_checks(path: str | Path, out: str | Path, scale: int = 2) -> list[Path]:
    """Every image of a written set with its hands drawn (joints numbered, the wrist big, the box): the way to see
    that a conversion puts the joints on the fingers."""
    import cv2

    from cpm_core.dataset.formats import read_dataset
    from cpm_core.skeleton import HAND_21

    ds = read_dataset(path)
    written = []
    for sample in ds.samples:
        img = cv2.imread(str(ds.image_path(sample)))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        for inst in sample.instances:
            colour = (0, 0, 255) if inst.extras.get("handedness") == "Right" else (255, 128, 0)
            kp = inst.keypoints * scale
            lab = inst.visibility > 0
            for a, b in HAND_21.limbs:
                if lab[a] and lab[b]:
                    cv2.line(img, tuple(np.round(kp[a]).astype(int)), tuple(np.round(kp[b]).astype(int)), colour, 1)
            for j in np.flatnonzero(lab):
                p = tuple(np.round(kp[j]).astype(int))
                cv2.circle(img, p, 5 if j == 0 else 2, (0, 255, 0) if j == 0 else colour, -1)
                if j in (0, 4, 8, 12, 16, 20):
                    cv2.putText(img, str(j), (p[0] + 3, p[1] - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255))
            x, y, w, h = (np.asarray(inst.bbox) * scale).round().astype(int)
            cv2.rectangle(img, (x, y), (x + w, y + h), (200, 200, 200), 1)
        target = Path(out) / f"check_{Path(path).stem}_{Path(sample.image).stem}.png"
        cv2.imwrite(str(target), img)
        written.append(target)
    return written


def per_hand(model: str, path: Path) -> list[dict]:
    """One row per hand of the written set `path`: its source fields, box size, and from bench/palm_gap.py's
    `measure` whether the palm detector found a palm in the labelled crop (the same look `evaluate`'s palm
    orientation takes: `palm_hint` on 1.25 x the crop), the side it gave against the labels' side, and the hand's
    PCK@0.2 in the pipeline (= evaluate's palm orientation) and with the labels' angle and side."""
    from palm_gap import measure

    from cpm_core.dataset.formats import read_dataset

    ds = read_dataset(path)
    hands = [(s, inst) for s in ds.samples for inst in s.instances if inst.num_labelled >= 3]
    rows = measure(model, str(path))
    if len(rows) != len(hands):
        raise RuntimeError(f"palm_gap measured {len(rows)} hands, the set has {len(hands)}")
    nearer = other_hand_joints(model, path)
    out = []
    for (sample, inst), row, other in zip(hands, rows, nearer, strict=True):
        if Path(row["image"]).name != Path(sample.image).name:
            raise RuntimeError(f"hand order differs: {row['image']} vs {sample.image}")
        out.append({"source": inst.extras.get("source"), "image": Path(sample.image).name,
                    "handedness": inst.extras.get("handedness"), "hand_type": inst.extras.get("hand_type"),
                    "box_px": round(max(inst.bbox[2], inst.bbox[3]), 1), "palm_found": "palm_mirror" in row,
                    "palm_side_wrong": "palm_mirror" in row and row["palm_mirror"] != row["label_mirror"],
                    "pck_palm": row["pipeline"], "pck_label": row["label"], "joints_nearer_other_hand": other})
    return out


def other_hand_joints(model: str, path: Path) -> list[int | None]:
    """Per hand (in `per_hand`'s order), in images with more than one hand: how many of the pipeline's joints
    (`search_upright` with the palm detector in the labelled crop, as `evaluate --orientation palm`) lie nearer the
    same joint of another hand of the image than to this hand's own; None for a hand alone in its image. Many
    means the pipeline posed the neighbour: two hands in one crop that the palm detector does not separate."""
    from cpm_core.estimator import PoseEstimator
    from cpm_core.preprocess import CropBox
    from cpm_core.upright import default_palm_detector, search_upright
    from training.data import iter_subjects, load_datasets

    est = PoseEstimator.from_path(model, precision="float32", warm_up=False)
    palm = default_palm_detector()
    margin = float((est.card.provenance or {}).get("crop_margin") or 1.6)
    out: list[int | None] = []
    for sample, frame, usable in iter_subjects(load_datasets([str(path)]), 3):
        for inst in usable:
            others = [o for o in sample.instances if o is not inst]
            if not others:
                out.append(None)
                continue
            x, y, w, h = inst.bbox
            pred = search_upright(est, frame, CropBox.around(x, y, x + w, y + h, margin), palm=palm).keypoints[:, :2]
            own = np.linalg.norm(pred - inst.keypoints, axis=1)
            nearest_other = np.min([np.linalg.norm(pred - o.keypoints, axis=1) for o in others], axis=0)
            lab = inst.visibility > 0
            out.append(int(((nearest_other < own) & lab).sum()))
    return out


def run(model: str, paths: dict[str, Path], orientations: list[str], hands: bool = True) -> dict:
    """`evaluate` on every set and orientation; with `hands`, the per-hand rows of the combined set."""
    from training.evaluate import evaluate

    results: dict = {name: {o: evaluate(model, path, orientation=o) for o in orientations}
                     for name, path in paths.items()}
    if hands:
        results["hands"] = per_hand(model, paths["both"])
    return results


def teacher_table(model: str, paths: dict[str, Path], teacher: str | Path) -> str:
    """MediaPipe's landmark model (`teacher`, bench/pipeline.py's TeacherEstimator: same crops, palm searches and
    mapping back) beside the CPM as the app runs it (its packed int8 graph when the folder has one), with the
    labels' angle and with the palm detector's: on hands labelled by people, not by MediaPipe itself."""
    from pipeline import TeacherEstimator

    from cpm_core.dataset.formats import read_dataset
    from cpm_core.estimator import PoseEstimator
    from training.evaluate import collect_predictions, score

    cpm = PoseEstimator.from_path(model, warm_up=False)
    rows = {"teacher": TeacherEstimator(teacher, 2, like=cpm), f"cpm ({cpm.runtime.name})": cpm}
    margin = float((cpm.card.provenance or {}).get("crop_margin") or 1.6)
    lines = [f"{'set':<16} {'model':<22} {'palm PCK@0.2 (95%)':<22}  {'label PCK@0.2 (95%)':<22}"]
    for name in SETS:
        ds = read_dataset(paths[name])
        for label, est in rows.items():
            cells = []
            for orientation in ("palm", "label"):
                a = collect_predictions(est, ds, margin, 3, orientation=orientation)
                r = score(a["pred"], a["gt"], a["labelled"], a["norm"], cpm.card.skeleton.joints)
                cells.append(f"{r['pck']:.3f} ({r['pck_ci95'][0]:.2f}-{r['pck_ci95'][1]:.2f})")
            lines.append(f"{name:<16} {label:<22} {cells[0]:<22}  {cells[1]:<22}")
    return "\n".join(lines)


def table(results: dict, orientations: list[str]) -> str:
    def cell(r: dict) -> str:
        low, high = r["pck_ci95"]
        return f"{r['pck']:.3f} ({low:.2f}-{high:.2f})"

    head = f"{'set':<16} {'hands':>5}  " + "  ".join(f"{o + ' PCK@0.2 (95%)':<22}" for o in orientations)
    gap = "label" in orientations and "palm" in orientations
    lines = [head + ("  label-palm" if gap else "")]
    for name in SETS:
        res = results[name]
        line = f"{name:<16} {res[orientations[0]]['subjects']:>5}  " + "  ".join(
            f"{cell(res[o]):<22}" for o in orientations)
        if gap:
            line += f"  {res['label']['pck'] - res['palm']['pck']:+.3f}"
        lines.append(line)
    hands = results.get("hands")
    if hands:
        lines += ["", "palm detector (evaluate does not expose it; bench/palm_gap.py's measure, the same palm look):"]
        for src in ("coco_wholebody", "interhand2.6m", None):
            sub = [h for h in hands if src is None or h["source"] == src]
            found = [h for h in sub if h["palm_found"]]
            lines.append(f"  {src or 'both':<16} palm found for {len(found)} of {len(sub)} hands (the others: "
                         f"search), its side wrong for {sum(h['palm_side_wrong'] for h in found)}")
        lines += ["", f"{'source':<15} {'image':<17} {'hand':<5} {'type':<11} {'box px':>6}  {'palm':<10} "
                  f"{'PCK palm':>8} {'label':>6}  joints nearer another hand (of 21, palm pipeline)"]
        for h in hands:
            palm = ("side wrong" if h["palm_side_wrong"] else "found") if h["palm_found"] else "none"
            other = h.get("joints_nearer_other_hand")
            lines.append(f"{h['source']:<15} {h['image']:<17} {h['handedness']:<5} {h['hand_type'] or '-':<11} "
                         f"{h['box_px']:>6.1f}  {palm:<10} {h['pck_palm']:>8.3f} {h['pck_label']:>6.3f}  "
                         f"{'-' if other is None else other}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "resources" / "models" / "hand_default"))
    p.add_argument("--out", default=str(ROOT / "runs" / "human_hands"))
    p.add_argument("--data", default=str(LABELLED), help="the labelled/ folder (coco_body/, interhand/)")
    p.add_argument("--orientations", default="palm,label,search")
    p.add_argument("--no-hands", action="store_true", help="skip the per-hand rows (palm found, its side)")
    p.add_argument("--no-draw", action="store_true", help="skip the check_*.png drawings")
    teacher = ROOT.parent / "shared" / "data" / "teachers" / "hand_landmark_full.tflite"
    p.add_argument("--teacher", default=str(teacher) if teacher.exists() else "",
                   help="MediaPipe's hand_landmark_full.tflite: print it beside the CPM as the app runs it ('' skips)")
    args = p.parse_args(argv)
    from machine import describe_machine

    orientations = [o.strip() for o in args.orientations.split(",") if o.strip()]
    print(f"machine: {describe_machine()}")
    start = time.perf_counter()
    paths = write_sets(args.out, args.data)
    if not args.no_draw:
        for name in ("coco_wholebody", "interhand"):
            draw_checks(paths[name], args.out)
    results = run(args.model, paths, orientations, hands=not args.no_hands)
    print(f"model: {args.model}; sets written to {args.out}; crop margin {results['both'][orientations[0]]['margin']:g}"
          f", min joints {results['both'][orientations[0]]['min_joints']}, float32")
    print(table(results, orientations))
    if args.teacher:
        print("\nbeside MediaPipe's landmark model in the same pipeline (the CPM on the runtime the app uses):")
        print(teacher_table(args.model, paths, args.teacher))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    (Path(args.out) / "results.json").write_text(json.dumps(
        {**{n: {o: {k: r[o][k] for k in ("pck", "pck_ci95", "ci_block", "subjects", "epe_px")} for o in r}
            for n, r in results.items() if n in SETS}, "hands": results.get("hands")}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
