"""`cpm infer`'s keypoints JSON as a CSV table, streamed: one row per frame (per subject with `--detect`).

Why a separate step: spreadsheet and R/pandas users want a flat table, and `cpm infer` writes only the JSON. It runs
as its own small process (`python -m app.analyse.keypoints_csv IN.json OUT.csv`, no Qt, no TensorFlow), so the
GUI never parses a ten-minute video's keypoints itself. The JSON's `results` array is decoded one item at a time,
so memory holds the file's text and one frame, never every frame's objects; the CSV is written atomically.

Columns: source, frame, subject (the tracked id with --detect, empty otherwise), score (presence), then
`<joint>_x`, `<joint>_y`, `<joint>_confidence` for each joint of the model, in the JSON's joint order.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpm_core.atomic_io import atomic_output

_DECODER = json.JSONDecoder()


def _skip(text: str, i: int, chars: str = " \t\r\n") -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def read_results(text: str) -> tuple[dict[str, Any], Iterator[dict]]:
    """The document's fields before `results` and an iterator over its results, decoded one at a time.
    ValueError names what is malformed (not a JSON object, no `results` list)."""
    i = _skip(text, 0)
    if not text.startswith("{", i):
        raise ValueError("not a keypoints JSON document (it does not start with '{')")
    i += 1
    head: dict[str, Any] = {}
    while True:
        i = _skip(text, i)
        if text.startswith("}", i):
            raise ValueError("the document has no 'results' list")
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if not text.startswith(":", i):
            raise ValueError(f"malformed JSON after key {key!r}")
        i = _skip(text, i + 1)
        if key == "results":
            if not text.startswith("[", i):
                raise ValueError("'results' is not a list")
            return head, _items(text, i + 1)
        head[key], i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text.startswith(",", i):
            i += 1


def _items(text: str, i: int) -> Iterator[dict]:
    i = _skip(text, i)
    if text.startswith("]", i):
        return
    while True:
        item, i = _DECODER.raw_decode(text, i)
        yield item
        i = _skip(text, i)
        if text.startswith("]", i):
            return
        if not text.startswith(",", i):
            raise ValueError(f"malformed 'results' list at character {i}")
        i = _skip(text, i + 1)


def _joint_cells(keypoints: list, joints: int) -> list:
    cells: list = []
    for j in range(joints):
        kp = keypoints[j] if j < len(keypoints) else [None, None, None]
        cells += [("" if v is None else v) for v in (list(kp) + [None, None, None])[:3]]
    return cells


def write_csv(json_path: str | Path, csv_path: str | Path) -> int:
    """Write `json_path`'s keypoints as the CSV `csv_path` (atomically); the number of rows written."""
    text = Path(json_path).read_text(encoding="utf-8")
    head, results = read_results(text)
    joints = [str(j) for j in head.get("joints") or []]
    rows = 0
    with atomic_output(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["source", "frame", "subject", "score"]
                     + [f"{j}_{c}" for j in joints for c in ("x", "y", "confidence")])
        for r in results:
            subjects = r.get("subjects")
            if subjects:  # --detect: a row per subject, its own presence as the score
                for s in subjects:
                    out.writerow([r.get("source"), r.get("frame"), s.get("id"), s.get("presence", s.get("score"))]
                                 + _joint_cells(s.get("keypoints") or [], len(joints)))
                    rows += 1
            else:
                out.writerow([r.get("source"), r.get("frame"), "", r.get("score")]
                             + _joint_cells(r.get("keypoints") or [], len(joints)))
                rows += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m app.analyse.keypoints_csv IN.json OUT.csv`: exit 0, or 1 with one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m app.analyse.keypoints_csv KEYPOINTS.json OUT.csv", file=sys.stderr)
        return 2
    try:
        rows = write_csv(args[0], args[1])
    except (OSError, ValueError) as exc:
        print(f"keypoints CSV: {args[0]}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"event": "done", "rows": rows, "csv": args[1]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
