"""Machine hand labels on images that have none, by the rules `../shared/data/hand_more` was labelled with.

    python bench/teacher_hand_labels.py OUT.json INPUT [INPUT ...] [--teacher hand_landmark_full.tflite]
        [--skip PREFIX ...]

INPUT is an image file or a COCO JSON whose images are looked at (their own labels, e.g. a body set's, are not
used). Why: the hand model's gap is people and places it has not seen (issue #17: 0.93-0.94 on its training hands
with the labels' angle and side, 0.815 on four unseen sources), and every hand set in `../shared/data` is already
in its training data. The body sets show other people (a woman with a dog outdoors, a dancer, a basketball
player, a lab recording, ...) whose hands nobody labelled; this labels them with the same teacher and rules.

The labelling follows `hand_more/README.md` (MediaPipe 0.10.14 Hands on photos, static mode, model complexity 1):
the palm detector on the letterboxed frame (threshold 0.5, weighted NMS; no tiles), the best two palms, MediaPipe's
hand crop from each (2.6 x the palm box, shifted towards the fingers, turned upright), `hand_landmark_full` on it
at 224 px, kept when hand presence >= 0.5, the handedness score max(p, 1 - p) >= 0.8 and the longer side of the
joints' box >= 40 px; duplicates of one hand (box IoU > 0.5 or one box > 70% inside another) are dropped, the
better presence kept. Joints outside the frame get visibility 0 at (0, 0), the rest 2. Paths are stored relative
to OUT's folder.

Checked against the data's own labels (2026-12-02): on every 8th image of `hand_more/train2.json` (134 hands) it
found 130, their joints a median 0.6% of the hand's box from the stored labels (p90 1.6%): the same labels.
Run on the body sets' new people (2026-12-02):

    python bench/teacher_hand_labels.py /tmp/new_people.json ../shared/data/body_more/train.json \
        ../shared/data/body_pseudo/train.json ../shared/data/media/hand/hamer_test{2,3,4}.jpg \
        ../shared/data/media/seed/roger.png --skip rf100_handgestures_a_ sam2_bedroom_ temugeb_bodypose3d_

(the skipped sources are already hand training sources) looked at 361 images and kept 10 hands on 9: full-body
frames hold hands of 20-40 px, under the data's 40-px rule or without a confident handedness. So the body sets add
no useful variety of hands; none was trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# The project root before bench/ (which Python puts first for a script): bench/training.py would shadow the
# training package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from cpm_core.atomic_io import atomic_write_text  # noqa: E402
from cpm_core.dataset.coco import category_from_skeleton  # noqa: E402
from cpm_core.detection.nms import iou_matrix  # noqa: E402
from cpm_core.detection.palm import PalmDetector  # noqa: E402
from cpm_core.preprocess import CropTransform  # noqa: E402
from cpm_core.skeleton import HAND_21  # noqa: E402
from training.teachers import KeypointTeacher  # noqa: E402

MIN_PRESENCE = 0.5
MIN_HANDEDNESS = 0.8
MIN_SIDE = 40.0
MAX_HANDS = 2


class HandTeacher(KeypointTeacher):
    """`training.teachers.KeypointTeacher` (MediaPipe's landmark model) that also reads the handedness output."""

    def __init__(self, path: str | Path, num_threads: int = 2):
        super().__init__(path, num_threads)
        outs = {o["name"]: o["index"] for o in self.interpreter.get_output_details()}
        if "Identity_2" not in outs:
            raise ValueError(f"{path}: not a MediaPipe hand landmark model (no handedness output Identity_2)")
        self._handedness = outs["Identity_2"]

    def __call__(self, crop_bgr: np.ndarray) -> tuple[np.ndarray, float, float]:
        """A crop of the model's input size -> joints in crop pixels, presence, probability of a right hand."""
        xy, presence = self._run(np.ascontiguousarray(crop_bgr[..., ::-1], np.float32) / 255.0)
        right = float(self.interpreter.get_tensor(self._handedness).ravel()[0])
        return xy.astype(np.float64), presence, right


def _box(xy: np.ndarray) -> np.ndarray:
    return np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()])


def _duplicate(a: np.ndarray, b: np.ndarray) -> bool:
    """Box IoU > 0.5, or more than 70% of either box inside the other."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
    return iou_matrix(a, b)[0, 0] > 0.5 or inter / area_a > 0.7 or inter / area_b > 0.7


def label_frame(frame: np.ndarray, palm: PalmDetector, teacher: HandTeacher) -> list[dict]:
    """The hands kept in one BGR frame: keypoints (21, 3) in frame pixels with visibility, score, handedness."""
    h, w = frame.shape[:2]
    kept: list[dict] = []
    for det in palm.detect(frame)[:MAX_HANDS]:  # best first; MediaPipe's max_num_hands
        tr = CropTransform(det.crop, teacher.input_size)
        xy_crop, presence, right = teacher(tr.apply(frame))
        if presence < MIN_PRESENCE or max(right, 1.0 - right) < MIN_HANDEDNESS:
            continue
        xy = tr.to_frame(xy_crop)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        if inside.sum() < 3:
            continue
        box = _box(xy[inside])
        if max(box[2] - box[0], box[3] - box[1]) < MIN_SIDE:
            continue
        hand = {"xy": xy, "inside": inside, "box": box, "presence": presence,
                "handedness": "Right" if right >= 0.5 else "Left", "score": max(right, 1.0 - right)}
        clash = [k for k in kept if _duplicate(k["box"], box)]
        if clash:
            if all(k["presence"] < presence for k in clash):
                kept = [k for k in kept if k not in clash] + [hand]
            continue
        kept.append(hand)
    return kept


def _inputs(paths: list[str], skip: list[str]) -> list[Path]:
    """Image files, in order, from image paths and COCO JSONs; names starting with a `skip` prefix left out."""
    images: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            images += [(path.parent / im["file_name"]) for im in doc.get("images", [])]
        else:
            images.append(path)
    return [i for i in images if not any(i.name.startswith(s) for s in skip)]


def write_labels(out: str | Path, images: list[Path], teacher_path: str | Path, categories: list[dict],
                 log=print) -> dict:
    """Label every image and write a COCO keypoints JSON to `out` (atomically); returns the counts."""
    out = Path(out)
    palm = PalmDetector(tiles=False)  # MediaPipe's own single letterboxed pass, as the data's labels were made
    teacher = HandTeacher(teacher_path)
    doc_images, annotations = [], []
    for n, image in enumerate(images, 1):
        frame = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if frame is None:
            log(f"{image}: not a readable image, skipped")
            continue
        hands = label_frame(frame, palm, teacher)
        if not hands:
            continue
        image_id = len(doc_images) + 1
        doc_images.append({"id": image_id, "file_name": os.path.relpath(image.resolve(), out.parent.resolve()),
                           "width": int(frame.shape[1]), "height": int(frame.shape[0])})
        for hand in hands:
            kp = [[float(x), float(y), 2] if ok else [0.0, 0.0, 0] for (x, y), ok in zip(hand["xy"], hand["inside"])]
            x0, y0, x1, y1 = (float(v) for v in hand["box"])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "keypoints": [round(v, 2) for k in kp for v in k],
                                "num_keypoints": int(hand["inside"].sum()),
                                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                                "area": round((x1 - x0) * (y1 - y0), 2), "iscrowd": 0,
                                "handedness": hand["handedness"], "score": round(hand["score"], 3)})
        if n % 100 == 0:
            log(f"{n}/{len(images)} images, {len(annotations)} hands")
    doc = {"info": {"description": "machine hand labels (bench/teacher_hand_labels.py: MediaPipe palm detector + "
                                   f"{Path(teacher_path).name}, hand_more's rules)"},
           "images": doc_images, "annotations": annotations, "categories": categories}
    atomic_write_text(out, json.dumps(doc))
    return {"images_looked_at": len(images), "images": len(doc_images), "hands": len(annotations)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("inputs", nargs="+", help="image files or COCO JSONs whose images to label")
    p.add_argument("--teacher", default="../shared/data/teachers/hand_landmark_full.tflite")
    p.add_argument("--skip", nargs="*", default=[], help="leave out images whose file name starts with these")
    args = p.parse_args(argv)
    try:
        counts = write_labels(args.out, _inputs(args.inputs, args.skip), args.teacher,
                              [category_from_skeleton(HAND_21)])
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
