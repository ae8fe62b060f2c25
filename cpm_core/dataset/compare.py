"""Dataset comparison: what differs between two datasets, in words, for tests and round-trip checks.

A bare `==` on datasets would hide where a conversion lost data; a list of differences says which image,
which instance and which field, and lets callers ignore what a format is known not to keep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cpm_core.dataset.model import Dataset, Instance


def _json_equal(a: object, b: object) -> bool:
    """Extras compare like JSON values: 3 == 3.0, tuples == lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (a != a and b != b)  # NaN == NaN here
    return a == b


def instance_differences(
    a: Instance,
    b: Instance,
    atol: float = 0.0,
    bbox_atol: float | None = None,
    visibility: bool = True,
    extras: bool = True,
    predicted: bool = True,
    absent_positions: bool = True,
) -> list[str]:
    """Differences between two instances. `absent_positions=False` ignores where absent joints sit."""
    out = []
    if a.num_joints != b.num_joints:
        return [f"{a.num_joints} vs {b.num_joints} joints"]
    mask = np.ones(a.num_joints, dtype=bool)
    if not absent_positions:
        mask = (a.visibility > 0) | (b.visibility > 0)
    if not np.allclose(a.keypoints[mask], b.keypoints[mask], rtol=0.0, atol=atol, equal_nan=True):
        worst = float(np.nanmax(np.abs(a.keypoints[mask] - b.keypoints[mask]), initial=0.0))
        out.append(f"keypoints differ (max {worst:.6g} > atol {atol})")
    if visibility and not np.array_equal(a.visibility, b.visibility):
        out.append(f"visibility {a.visibility.tolist()} vs {b.visibility.tolist()}")
    if not visibility and not np.array_equal(a.visibility > 0, b.visibility > 0):
        out.append("labelled joints differ")
    tol = atol if bbox_atol is None else bbox_atol
    if not np.allclose(a.bbox, b.bbox, rtol=0.0, atol=tol):
        out.append(f"bbox {a.bbox} vs {b.bbox}")
    if predicted and not np.array_equal(a.predicted, b.predicted):
        out.append(f"predicted {a.predicted.tolist()} vs {b.predicted.tolist()}")
    if extras and not _json_equal(a.extras, b.extras):
        out.append(f"extras {a.extras} vs {b.extras}")
    return out


def dataset_differences(
    a: Dataset,
    b: Dataset,
    atol: float = 0.0,
    bbox_atol: float | None = None,
    images: bool = True,
    sizes: bool = True,
    sample_extras: bool = True,
    skeleton: bool = True,
    by_name: bool = False,
    **instance_options: bool,
) -> list[str]:
    """Human-readable differences between two datasets, sample by sample in order (empty list: equal).

    `by_name=True` pairs samples by image file name instead of by position, for formats that regroup samples
    (labels.txt sorts them by person folder). `images=False` ignores image paths, `sizes=False` width/height,
    `sample_extras=False` per-image extras; the remaining options go to `instance_differences`.
    """
    out = []
    if skeleton and a.skeleton.joints != b.skeleton.joints:
        out.append(f"skeletons differ: {a.skeleton.name} vs {b.skeleton.name}")
    if a.num_images != b.num_images:
        out.append(f"{a.num_images} vs {b.num_images} images")
    pairs = list(zip(a.samples, b.samples, strict=False))
    if by_name:
        names_b = {Path(s.image).name: s for s in b.samples}
        if len(names_b) != len(b.samples):
            out.append("image file names are not unique; cannot pair samples by name")
        pairs = [(s, names_b[Path(s.image).name]) for s in a.samples if Path(s.image).name in names_b]
        out.extend(f"{s.image}: no image of that name in the other dataset" for s in a.samples
                   if Path(s.image).name not in names_b)
    for i, (sa, sb) in enumerate(pairs):
        where = f"sample {i} ({sa.image})"
        if images and sa.image != sb.image:
            out.append(f"{where}: image {sa.image!r} vs {sb.image!r}")
        if sizes and (sa.width, sa.height) != (sb.width, sb.height):
            out.append(f"{where}: size {sa.width}x{sa.height} vs {sb.width}x{sb.height}")
        if sample_extras and not _json_equal(sa.extras, sb.extras):
            out.append(f"{where}: extras {sa.extras} vs {sb.extras}")
        if len(sa.instances) != len(sb.instances):
            out.append(f"{where}: {len(sa.instances)} vs {len(sb.instances)} instances")
            continue
        for k, (ia, ib) in enumerate(zip(sa.instances, sb.instances, strict=True)):
            out.extend(f"{where} instance {k}: {d}"
                       for d in instance_differences(ia, ib, atol=atol, bbox_atol=bbox_atol, **instance_options))
    return out
