"""`cpm dataset ...` subcommands: convert between formats, print statistics, extract frames from a video.

`register(subparsers)` adds them to the `cpm` parser; each sets `func(args) -> exit code`. Failures print one
line naming the file on stderr and return 2; skipped records are listed as warnings and do not fail a run
unless --strict.
"""

from __future__ import annotations

import argparse
import json
import sys

from cpm_core.dataset.check import register_check
from cpm_core.dataset.formats import read_dataset, readable_formats, writable_formats, write_dataset
from cpm_core.dataset.frames import METHODS, extract_frames
from cpm_core.dataset.issues import DatasetFormatError
from cpm_core.dataset.model import Dataset
from cpm_core.dataset.stats import dataset_stats, format_stats
from cpm_core.skeleton import get_skeleton

MAX_WARNINGS = 10


def _error(command: str, exc: BaseException) -> int:
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in str(exc):
        msg = f"{exc.filename}: {exc.strerror or exc}"
    else:
        msg = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
    print(f"cpm dataset {command}: error: {msg.splitlines()[0] if msg else type(exc).__name__}", file=sys.stderr)
    return 2


def _warn_issues(command: str, ds: Dataset) -> None:
    if not ds.issues:
        return
    print(f"cpm dataset {command}: warning: skipped {len(ds.issues)} malformed record(s):", file=sys.stderr)
    for issue in ds.issues[:MAX_WARNINGS]:
        print(f"  {issue}", file=sys.stderr)
    if len(ds.issues) > MAX_WARNINGS:
        print(f"  ... and {len(ds.issues) - MAX_WARNINGS} more", file=sys.stderr)


def _read(args: argparse.Namespace) -> Dataset:
    skeleton = get_skeleton(args.skeleton) if args.skeleton else None
    order = "xy" if getattr(args, "xy", False) else "yx"
    return read_dataset(args.input, fmt=args.from_fmt, strict=args.strict, skeleton=skeleton, order=order)


def _convert(args: argparse.Namespace) -> int:
    try:
        ds = _read(args)
        ds.allow_outside_root = args.allow_outside_root
        _warn_issues("convert", ds)
        options: dict = {}
        if args.to == "labels":
            options["order"] = "xy" if args.xy else "yx"
        elif args.to == "port-tfrecord":
            options["size"] = args.size
        write_dataset(ds, args.output, args.to, **options)
    except (DatasetFormatError, OSError, ValueError, KeyError) as exc:
        return _error("convert", exc)
    print(f"wrote {ds.num_images} images, {ds.num_instances} instances to {args.output} ({args.to})")
    return 0


def _stats(args: argparse.Namespace) -> int:
    try:
        ds = _read(args)
    except (DatasetFormatError, OSError, ValueError, KeyError) as exc:
        return _error("stats", exc)
    _warn_issues("stats", ds)
    stats = dataset_stats(ds)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _extract(args: argparse.Namespace) -> int:
    try:
        saved = extract_frames(args.video, args.output, args.count, method=args.method, seed=args.seed)
    except (OSError, ValueError) as exc:
        return _error("extract-frames", exc)
    print(f"saved {len(saved)} frames to {args.output}")
    return 0


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_fmt", choices=readable_formats(), default=None,
                   help="input format (default: guessed from the path)")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed record instead of skipping")
    p.add_argument("--xy", action="store_true", help="labels.txt lists x before y (the port's README says y first)")
    p.add_argument("--skeleton", default=None,
                   help="built-in skeleton for formats that do not name one (hand21, body14, coco17)")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `dataset convert|stats|extract-frames` to the `cpm` command's subparsers; returns the parser."""
    parser = subparsers.add_parser("dataset", help="convert datasets, show statistics, extract video frames",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True)

    conv = sub.add_parser("convert", help="convert a dataset to another format")
    conv.add_argument("input", help="COCO .json, labels folder, .tfrecord or CMU hand folder")
    conv.add_argument("output", help="output file (coco, tfrecord) or folder (labels, cmu-hand)")
    conv.add_argument("--to", required=True, choices=writable_formats(), help="output format")
    conv.add_argument("--size", type=int, default=64, help="crop size of the port's TFRecord (default 64)")
    conv.add_argument("--allow-outside-root", action="store_true",
                      help="copy or embed images whose paths leave the dataset's folder (../, absolute paths, "
                      "symlinks out); refused by default, so a downloaded dataset cannot pull in your files")
    _add_read_options(conv)
    conv.set_defaults(func=_convert)

    st = sub.add_parser("stats", help="print counts, per-joint visibility and box sizes")
    st.add_argument("input")
    st.add_argument("--json", action="store_true", help="print the statistics as JSON")
    _add_read_options(st)
    st.set_defaults(func=_stats)

    ex = sub.add_parser("extract-frames", help="save frames of a video as JPEGs for labelling")
    ex.add_argument("video")
    ex.add_argument("output", help="folder for the JPEGs")
    ex.add_argument("--count", type=int, default=20, help="number of frames (default 20)")
    ex.add_argument("--method", choices=METHODS, default="uniform",
                    help="uniform spacing, or k-means on thumbnails for varied frames")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=_extract)
    register_check(sub, _add_read_options)
    return parser
