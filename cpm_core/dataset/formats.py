"""One entry point for all dataset formats: guess the format from a path, read it, write any other.

Format names: "coco" (a .json file), "labels" (the port's folder of <person>/labels.txt), "tfrecord" (ours),
"port-tfrecord" (the port's crops + heatmaps), "cmu-hand" (a folder of CMU hand JSONs beside their images).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cpm_core.dataset.cmu_hand import read_cmu_hand, write_cmu_hand
from cpm_core.dataset.coco import read_coco, write_coco
from cpm_core.dataset.issues import fatal
from cpm_core.dataset.model import Dataset
from cpm_core.dataset.port_labels import LABELS_NAME, read_labels, write_labels
from cpm_core.skeleton import HAND_21, Skeleton

FORMATS = ("coco", "labels", "tfrecord", "port-tfrecord", "cmu-hand")  # readable and writable
READ_ONLY_FORMATS = ("project",)  # annotation projects (*.cpmproj.json) are read as datasets
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record", ".tfr")


def _head(path: Path, n: int = 4096) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(n).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _json_kind(path: Path) -> str | None:
    head = _head(path)
    if '"hand_pts' in head:
        return "cmu-hand"
    if '"annotations"' in head or '"images"' in head or '"categories"' in head:
        return "coco"
    return None


def guess_format(path: str | os.PathLike) -> str:
    """The format name of `path`, from its name and a peek at its contents; DatasetFormatError if unclear."""
    p = Path(path)
    if p.is_file():
        suffix = p.suffix.lower()
        if p.name.endswith(".cpmproj.json"):
            return "project"
        if suffix == ".json":
            return _json_kind(p) or "coco"
        if p.name == LABELS_NAME:
            return "labels"
        if suffix in TFRECORD_SUFFIXES:
            from cpm_core.dataset.tfrecord import peek_tfrecord_kind  # noqa: PLC0415 - imports TensorFlow

            return peek_tfrecord_kind(p) or "tfrecord"
        raise fatal(p, "cannot tell the dataset format from this file's name; give the format explicitly")
    if p.is_dir():
        if any(p.glob(f"*/{LABELS_NAME}")):
            return "labels"
        jsons = sorted(p.rglob("*.json"))
        kinds = {j: _json_kind(j) for j in jsons[:50]}
        if any(k == "cmu-hand" for k in kinds.values()):
            return "cmu-hand"
        if any(k == "coco" for k in kinds.values()):
            raise fatal(p, "this folder holds COCO JSON files; name the file to read")
        raise fatal(p, f"no <person>/{LABELS_NAME} or CMU hand JSON files in this folder")
    raise fatal(p, "no such file or folder")


def read_dataset(
    path: str | os.PathLike,
    fmt: str | None = None,
    strict: bool = False,
    skeleton: Skeleton | None = None,
    order: str = "yx",
) -> Dataset:
    """Read any supported format (guessed when `fmt` is None).

    `skeleton` is used where the file does not name one (labels, port-tfrecord; default HAND_21); `order` is
    the labels.txt coordinate order ("yx" or "xy"). Skipped records are on the result's `issues`.
    """
    fmt = fmt or guess_format(path)
    if fmt == "coco":
        return read_coco(path, strict=strict)
    if fmt == "labels":
        return read_labels(path, skeleton=skeleton or HAND_21, order=order, strict=strict)
    if fmt == "cmu-hand":
        return read_cmu_hand(path, strict=strict)
    if fmt == "tfrecord":
        from cpm_core.dataset.tfrecord import read_tfrecord  # noqa: PLC0415 - imports TensorFlow

        return read_tfrecord(path, strict=strict, skeleton=skeleton)
    if fmt == "port-tfrecord":
        from cpm_core.dataset.tfrecord import read_port_tfrecord  # noqa: PLC0415 - imports TensorFlow

        return read_port_tfrecord(path, skeleton=skeleton or HAND_21, strict=strict)
    if fmt == "project":
        # An annotation project trains on what a person has labelled (confirmed frames) only.
        from cpm_core.dataset.project import AnnotationProject  # noqa: PLC0415 - project imports this module

        return AnnotationProject.load(path).to_dataset(only_labelled=True)
    raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")


class MissingImageError(FileNotFoundError):
    """Images the dataset names that are not there: an export that needs their pixels cannot be made."""


def check_images_present(dataset: Dataset, only_with_instances: bool) -> None:
    """Raise `MissingImageError` naming the first missing image file (and how many are missing) before a writer
    starts. Why: the writers met the missing file halfway, failed with a bare "[Errno 2]" and left the folders
    and files written so far behind."""
    missing = [s for s in dataset.samples if s.data is None and (s.instances or not only_with_instances)
               and not dataset.image_path(s).is_file()]
    if missing:
        first = dataset.image_path(missing[0])
        more = f" (and {len(missing) - 1} more of {len(dataset.samples)} images)" if len(missing) > 1 else ""
        raise MissingImageError(f"{first}: image not found (named {missing[0].image!r} in the dataset){more}; "
                                "nothing was written")


def _created_since(folder: Path, before: set[str]) -> list[Path]:
    return [p for p in folder.rglob("*") if str(p) not in before]


def _write_folder(path: Path, write: Any) -> None:
    """Run `write(folder)` for a folder output so that a failure leaves nothing of it behind.

    A new folder is written under a temporary sibling name and renamed into place when complete. Into an existing
    folder (adding to it), files are written in place, each atomically; on failure the files and folders this
    write added are removed again, and what was there before is left as it was."""
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return
    before = {str(p) for p in path.rglob("*")}
    try:
        write(path)
    except BaseException:
        added = _created_since(path, before)
        for p in sorted(added, key=lambda q: len(q.parts), reverse=True):  # files and sub-folders, deepest first
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                else:
                    p.unlink()
        raise


def write_dataset(dataset: Dataset, path: str | os.PathLike, fmt: str, **options: Any) -> None:
    """Write `dataset` as `fmt`; `options` go to the format's writer (e.g. order="xy" for labels, size=64
    for port-tfrecord).

    Formats that copy or embed image files (labels, cmu-hand, both TFRecords) first check that every file-backed
    image lies inside `dataset.root` (`Dataset.check_image_paths`) and exists (`check_images_present`), so a
    refused export writes nothing. Folder outputs are written so that a failure midway leaves none of the new
    output behind (`_write_folder`); file outputs are written atomically by their writers.
    """
    if fmt in ("labels", "cmu-hand", "tfrecord", "port-tfrecord") and options.get("images") != "none":
        dataset.check_image_paths()
        check_images_present(dataset, only_with_instances=fmt != "tfrecord")
    if fmt == "coco":
        write_coco(dataset, path, **options)
    elif fmt == "labels":
        _write_folder(Path(path), lambda folder: write_labels(dataset, folder, **options))
    elif fmt == "cmu-hand":
        _write_folder(Path(path), lambda folder: write_cmu_hand(dataset, folder, **options))
    elif fmt == "tfrecord":
        from cpm_core.dataset.tfrecord import write_tfrecord  # noqa: PLC0415 - imports TensorFlow

        write_tfrecord(dataset, path, **options)
    elif fmt == "port-tfrecord":
        from cpm_core.dataset.tfrecord import write_port_tfrecord  # noqa: PLC0415 - imports TensorFlow

        write_port_tfrecord(dataset, path, **options)
    else:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")
