"""One table of dataset formats, and the entry points that use it: guess the format from a path, read it, write
any other.

`FORMAT_TABLE` holds one `DatasetFormat` per format: its name, the file suffixes it is stored under (or that it is a
folder), its reader and writer and a Qt-free dialog filter. The CLI (`cpm dataset convert --to/--from`), the
Annotate tab's export and the Train panel's format choice all list formats from it, so a format is added in one
place and shows up in all three; before, `read_dataset` / `write_dataset` were if/elif chains and the GUI kept its
own lists and filters beside them.

Format names: "coco" (a .json file), "labels" (the port's folder of <person>/labels.txt), "tfrecord" (ours),
"port-tfrecord" (the port's crops + heatmaps), "cmu-hand" (a folder of CMU hand JSONs beside their images),
"project" (an annotation project, *.cpmproj.json; read only: its confirmed frames).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cpm_core.dataset.cmu_hand import read_cmu_hand, write_cmu_hand
from cpm_core.dataset.coco import read_coco, write_coco
from cpm_core.dataset.issues import fatal
from cpm_core.dataset.model import Dataset
from cpm_core.dataset.port_labels import LABELS_NAME, read_labels, write_labels
from cpm_core.skeleton import HAND_21, Skeleton

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record", ".tfr")

# reader(path, strict=..., skeleton=..., order=...) -> Dataset; writer(dataset, path, **options)
Reader = Callable[..., Dataset]
Writer = Callable[..., None]


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format: what it is called, how it is stored, how it is read and written.

    `suffixes`: the file name endings of a file format, the first one the default for a new file (empty for a
    folder format). `needs_images`: which image files a writer copies or embeds, so `write_dataset` checks them
    first ("" none, "labelled" those of samples with instances, "all" every sample's)."""

    name: str
    title: str  # what a person calls it, e.g. "COCO keypoints"
    folder: bool  # stored as a folder (a file dialog cannot pick it)
    suffixes: tuple[str, ...] = ()
    reader: Reader | None = None
    writer: Writer | None = None
    needs_images: Literal["", "labelled", "all"] = ""
    marker: str = ""  # a folder format's file that a file dialog can pick to mean its folder (labels.txt)

    @property
    def readable(self) -> bool:
        return self.reader is not None

    @property
    def writable(self) -> bool:
        return self.writer is not None

    @property
    def default_suffix(self) -> str:
        """The suffix a new file of this format gets ("" for a folder format)."""
        return self.suffixes[0] if self.suffixes else ""

    @property
    def dialog_filter(self) -> str:
        """A file dialog's filter for this format ("COCO keypoints (*.json)"), Qt-free so any front end can use
        it; "" for a folder format."""
        if self.folder or not self.suffixes:
            return ""
        return f"{self.title} ({' '.join('*' + s for s in self.suffixes)})"


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
    entry = dataset_format(fmt)
    if entry.reader is None:
        raise ValueError(f"dataset format {fmt!r} cannot be read; readable: {', '.join(readable_formats())}")
    return entry.reader(path, strict=strict, skeleton=skeleton, order=order)


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
    entry = dataset_format(fmt)
    if entry.writer is None:
        raise ValueError(f"dataset format {fmt!r} cannot be written; writable: {', '.join(writable_formats())}")
    if entry.needs_images and options.get("images") != "none":
        dataset.check_image_paths()
        check_images_present(dataset, only_with_instances=entry.needs_images == "labelled")
    entry.writer(dataset, path, **options)


# ------------------------------------------------------------------ the table's readers and writers
# One signature each, so the table can hold them: readers take (path, strict, skeleton, order) and use what their
# format needs; TensorFlow and the project module are imported only when their format is used.
def _read_coco(path: str | os.PathLike, strict: bool, skeleton: Skeleton | None, order: str) -> Dataset:
    return read_coco(path, strict=strict)


def _read_labels(path: str | os.PathLike, strict: bool, skeleton: Skeleton | None, order: str) -> Dataset:
    return read_labels(path, skeleton=skeleton or HAND_21, order=order, strict=strict)


def _read_cmu_hand(path: str | os.PathLike, strict: bool, skeleton: Skeleton | None, order: str) -> Dataset:
    return read_cmu_hand(path, strict=strict)


def _read_tfrecord(path: str | os.PathLike, strict: bool, skeleton: Skeleton | None, order: str) -> Dataset:
    from cpm_core.dataset.tfrecord import read_tfrecord  # noqa: PLC0415 - imports TensorFlow

    return read_tfrecord(path, strict=strict, skeleton=skeleton)


def _read_port_tfrecord(path: str | os.PathLike, strict: bool, skeleton: Skeleton | None, order: str) -> Dataset:
    from cpm_core.dataset.tfrecord import read_port_tfrecord  # noqa: PLC0415 - imports TensorFlow

    return read_port_tfrecord(path, skeleton=skeleton or HAND_21, strict=strict)


def _read_project(path: str | os.PathLike, strict: bool, skeleton: Skeleton | None, order: str) -> Dataset:
    # An annotation project trains on what a person has labelled (confirmed frames) only.
    from cpm_core.dataset.project import AnnotationProject  # noqa: PLC0415 - project imports this module

    return AnnotationProject.load(path).to_dataset(only_labelled=True)


def _write_coco(dataset: Dataset, path: str | os.PathLike, **options: Any) -> None:
    write_coco(dataset, path, **options)


def _write_labels(dataset: Dataset, path: str | os.PathLike, **options: Any) -> None:
    _write_folder(Path(path), lambda folder: write_labels(dataset, folder, **options))


def _write_cmu_hand(dataset: Dataset, path: str | os.PathLike, **options: Any) -> None:
    _write_folder(Path(path), lambda folder: write_cmu_hand(dataset, folder, **options))


def _write_tfrecord(dataset: Dataset, path: str | os.PathLike, **options: Any) -> None:
    from cpm_core.dataset.tfrecord import write_tfrecord  # noqa: PLC0415 - imports TensorFlow

    write_tfrecord(dataset, path, **options)


def _write_port_tfrecord(dataset: Dataset, path: str | os.PathLike, **options: Any) -> None:
    from cpm_core.dataset.tfrecord import write_port_tfrecord  # noqa: PLC0415 - imports TensorFlow

    write_port_tfrecord(dataset, path, **options)


# The order is the order every list shows them in (CLI choices, the export dialog, the Train panel's combo).
FORMAT_TABLE: dict[str, DatasetFormat] = {f.name: f for f in (
    DatasetFormat("coco", "COCO keypoints", folder=False, suffixes=(".json",), reader=_read_coco,
                  writer=_write_coco),
    DatasetFormat("labels", "the port's labels.txt folders", folder=True, reader=_read_labels,
                  writer=_write_labels, needs_images="labelled", marker=LABELS_NAME),
    DatasetFormat("tfrecord", "TFRecord", folder=False, suffixes=TFRECORD_SUFFIXES, reader=_read_tfrecord,
                  writer=_write_tfrecord, needs_images="all"),
    DatasetFormat("port-tfrecord", "the port's TFRecord", folder=False, suffixes=TFRECORD_SUFFIXES,
                  reader=_read_port_tfrecord, writer=_write_port_tfrecord, needs_images="labelled"),
    DatasetFormat("cmu-hand", "CMU hand JSON folder", folder=True, reader=_read_cmu_hand, writer=_write_cmu_hand,
                  needs_images="labelled"),
    DatasetFormat("project", "Annotation project", folder=False, suffixes=(".cpmproj.json",),
                  reader=_read_project),
)}


def dataset_format(name: str) -> DatasetFormat:
    """The table's entry for `name`; ValueError naming the known formats if there is none."""
    try:
        return FORMAT_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown dataset format {name!r}; known: {', '.join(FORMAT_TABLE)}") from None


def readable_formats() -> list[str]:
    """Names of the formats `read_dataset` reads, in the table's order (read when called, not at import, so
    every list built from it follows the table)."""
    return [f.name for f in FORMAT_TABLE.values() if f.readable]


def writable_formats() -> list[str]:
    """Names of the formats `write_dataset` writes, in the table's order."""
    return [f.name for f in FORMAT_TABLE.values() if f.writable]


def open_filter(title: str = "Datasets") -> str:
    """A file dialog's filter for opening any readable dataset (every file format's suffixes and the folder
    formats' marker files, e.g. labels.txt), then "All files": the one filter the GUI's open dialogs share."""
    patterns: list[str] = []
    for entry in FORMAT_TABLE.values():
        if entry.readable:
            patterns += [f"*{s}" for s in entry.suffixes] + ([entry.marker] if entry.marker else [])
    # "*.cpmproj.json" adds nothing beside "*.json"
    kept = [p for p in dict.fromkeys(patterns)
            if not any(q != p and q.startswith("*") and p.endswith(q[1:]) for q in patterns)]
    return f"{title} ({' '.join(kept)});;All files (*)"


FORMATS = tuple(f.name for f in FORMAT_TABLE.values() if f.readable and f.writable)  # readable and writable
READ_ONLY_FORMATS = tuple(f.name for f in FORMAT_TABLE.values() if f.readable and not f.writable)  # "project"
