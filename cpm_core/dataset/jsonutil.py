"""JSON helpers shared by the formats that embed JSON (COCO files, TFRecord extras, CMU files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def json_default(obj: object) -> object:
    """Extras may hold numpy values (a model's score) or paths; JSON gets plain numbers, lists and strings."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
