"""Dataset statistics: how many images and instances, which joints are labelled, how big the boxes are.

Before training on a set one wants to know whether a joint is almost never visible or boxes are tiny; the
numbers come as a dict (for the app and tests) and as a plain-text table (for the command line).
"""

from __future__ import annotations

import numpy as np

from cpm_core.dataset.model import Dataset


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0}
    return {"min": float(values.min()), "median": float(np.median(values)), "mean": float(values.mean()),
            "max": float(values.max())}


def dataset_stats(dataset: Dataset) -> dict:
    """Counts and summaries of `dataset`.

    Keys: skeleton, num_joints, images, instances, images_without_instances, max_instances_per_image,
    joints (per joint: name, visible, occluded, absent, predicted), visibility (totals), bbox (count, empty,
    width/height/area summaries of non-empty boxes: min, median, mean, max), issues (count).
    """
    n = dataset.skeleton.num_joints
    vis_counts = np.zeros((n, 3), dtype=np.int64)
    pred_counts = np.zeros(n, dtype=np.int64)
    widths, heights = [], []
    empty_boxes = 0
    for _, inst in dataset.instances():
        if inst.num_joints == n:
            for v in (0, 1, 2):
                vis_counts[:, v] += inst.visibility == v
            pred_counts += inst.predicted
        _, _, w, h = inst.bbox
        if w > 0 and h > 0:
            widths.append(w)
            heights.append(h)
        else:
            empty_boxes += 1
    w_arr, h_arr = np.asarray(widths, dtype=np.float64), np.asarray(heights, dtype=np.float64)
    per_image = [len(s.instances) for s in dataset.samples]
    return {
        "skeleton": dataset.skeleton.name,
        "num_joints": n,
        "images": dataset.num_images,
        "instances": dataset.num_instances,
        "images_without_instances": sum(1 for k in per_image if k == 0),
        "max_instances_per_image": max(per_image, default=0),
        "joints": [
            {"name": name, "visible": int(vis_counts[j, 2]), "occluded": int(vis_counts[j, 1]),
             "absent": int(vis_counts[j, 0]), "predicted": int(pred_counts[j])}
            for j, name in enumerate(dataset.skeleton.joints)
        ],
        "visibility": {"visible": int(vis_counts[:, 2].sum()), "occluded": int(vis_counts[:, 1].sum()),
                       "absent": int(vis_counts[:, 0].sum())},
        "bbox": {"count": len(widths), "empty": empty_boxes, "width": _summary(w_arr), "height": _summary(h_arr),
                 "area": _summary(w_arr * h_arr)},
        "issues": len(dataset.issues),
    }


def format_stats(stats: dict) -> str:
    """A readable text table of `dataset_stats` output."""
    lines = [
        f"skeleton: {stats['skeleton']} ({stats['num_joints']} joints)",
        f"images: {stats['images']}  instances: {stats['instances']}  "
        f"images without instances: {stats['images_without_instances']}  "
        f"most instances in one image: {stats['max_instances_per_image']}",
    ]
    if stats.get("issues"):
        lines.append(f"skipped records (format issues): {stats['issues']}")
    name_w = max([len("joint")] + [len(j["name"]) for j in stats["joints"]])
    header = f"{'joint':<{name_w}}  {'visible':>8}  {'occluded':>8}  {'absent':>8}  {'predicted':>9}"
    lines += ["", header, "-" * len(header)]
    for j in stats["joints"]:
        lines.append(f"{j['name']:<{name_w}}  {j['visible']:>8}  {j['occluded']:>8}  {j['absent']:>8}  "
                     f"{j['predicted']:>9}")
    t = stats["visibility"]
    lines.append(f"{'total':<{name_w}}  {t['visible']:>8}  {t['occluded']:>8}  {t['absent']:>8}")
    b = stats["bbox"]
    lines += ["", f"boxes: {b['count']} (empty: {b['empty']})",
              f"{'px':<6}  {'min':>9}  {'median':>9}  {'mean':>9}  {'max':>9}"]
    for key in ("width", "height", "area"):
        s = b[key]
        lines.append(f"{key:<6}  {s['min']:>9.1f}  {s['median']:>9.1f}  {s['mean']:>9.1f}  {s['max']:>9.1f}")
    return "\n".join(lines)
