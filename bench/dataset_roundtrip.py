"""Round-trip the shared hand_pseudo labels through our formats and report what survives.

    PYTHONPATH=. python bench/dataset_roundtrip.py [COCO.json ...]

COCO -> own TFRecord -> COCO must be lossless (positions, visibility, bbox, extras, sizes, file names);
COCO -> labels.txt -> COCO keeps positions and boxes to the printed 2 decimals (exact for these labels,
which have 2 decimals) and which joints are labelled, and loses extras (score, handedness, area).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from cpm_core.dataset import dataset_differences, read_dataset, write_dataset

DEFAULT = ["/work/shared/data/hand_pseudo/train.json", "/work/shared/data/hand_pseudo/val.json"]


def _report(name: str, diffs: list[str], seconds: float) -> None:
    verdict = "LOSSLESS" if not diffs else f"{len(diffs)} differences, e.g. {diffs[:3]}"
    print(f"  {name:<38} {verdict}  ({seconds:.1f} s)")


def main(paths: list[str]) -> int:
    failures = 0
    for src in paths:
        ds = read_dataset(src)
        print(f"{src}: {ds.num_images} images, {ds.num_instances} instances, skeleton {ds.skeleton.name}, "
              f"{len(ds.issues)} issues")
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            # The record holds the image files' bytes; writing COCO from it puts them beside the JSON under the
            # same relative names, so names and bytes can be compared with the source.
            write_dataset(ds, Path(tmp) / "set.tfrecord", "tfrecord")
            back = read_dataset(Path(tmp) / "set.tfrecord")
            write_dataset(back, Path(tmp) / "via_tfrecord.json", "coco")
            again = read_dataset(Path(tmp) / "via_tfrecord.json")
            diffs = dataset_differences(ds, back) + dataset_differences(ds, again)
            diffs += [f"{s0.image}: image bytes differ" for s0, s1 in zip(ds.samples, again.samples, strict=True)
                      if ds.image_path(s0).read_bytes() != again.image_path(s1).read_bytes()]
            same_doc = json.loads(Path(src).read_text()) == json.loads((Path(tmp) / "via_tfrecord.json").read_text())
            _report("COCO -> own TFRecord -> COCO", diffs, time.perf_counter() - t)
            print(f"  {'':<38} (written JSON equal to the source JSON, ids and all: {same_doc})")
            failures += bool(diffs)

            t = time.perf_counter()
            write_dataset(ds, Path(tmp) / "labels", "labels", images="link")
            lab = read_dataset(Path(tmp) / "labels")
            write_dataset(lab, Path(tmp) / "labels" / "via_labels.json", "coco")
            again = read_dataset(Path(tmp) / "labels" / "via_labels.json")
            core = dataset_differences(ds, again, images=False, sample_extras=False, extras=False, by_name=True)
            _report("COCO -> labels -> COCO (positions, vis, bbox)", core, time.perf_counter() - t)
            lost_extras = sum(1 for _, i in ds.instances() if i.extras)
            occluded = sum(int((i.visibility == 1).sum()) for _, i in ds.instances())
            print(f"  {'':<38} lost: extras of {lost_extras} instances, per-image extras; "
                  f"occluded joints in source: {occluded}")
            failures += bool(core)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or DEFAULT))
