"""Runtime files that travel inside a model folder: a checked int8 TFLite graph beside the float weights.

Why: int8 (TFLite with XNNPACK) runs the plain-convolution models 2-4x faster than TensorFlow on the CPUs we
ship to (bench/runtimes.py), but quantising needs a calibration set and a PCK check on real crops, which the
app cannot do at load time. So the check is done once, when the model is made (`cpm quantise`), and its
result travels with the model: the file, its sha256, the sha256 of the float weights it was made from, and the
check's numbers, in the card's `packaged_runtimes` section. At load the file is used only if both hashes still
match; a file that was edited, or weights retrained after quantising, fall back to the float model with one
warning. A TFLite flatbuffer holds no code, only graph and numbers, so this adds no way to run a user's file.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

INT8_FILE = "int8.tflite"
PACKAGED_FILES = {"tflite-int8": INT8_FILE}  # runtime -> the one file name it may have in a model folder
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PackagedRuntimeWarning(UserWarning):
    """A packaged runtime file that is present but not used (hash mismatch, unreadable): the float model runs."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def validate_packaged(section: object) -> dict:
    """The card's `packaged_runtimes` section, checked: {runtime: {"file", "sha256", "weights_sha256", ...}}.
    ValueError naming the part for anything else: a hostile card cannot point outside its folder (the file
    name is fixed per runtime) nor carry a hash that is not one."""
    if not isinstance(section, dict):
        raise ValueError(f"model card: 'packaged_runtimes' must be an object, got {type(section).__name__}")
    for runtime, entry in section.items():
        if runtime not in PACKAGED_FILES:
            raise ValueError(f"model card: packaged_runtimes: unknown runtime {runtime!r:.40} "
                             f"(known: {', '.join(PACKAGED_FILES)})")
        if not isinstance(entry, dict):
            raise ValueError(f"model card: packaged_runtimes.{runtime} must be an object")
        if entry.get("file") != PACKAGED_FILES[runtime]:
            raise ValueError(f"model card: packaged_runtimes.{runtime}.file must be {PACKAGED_FILES[runtime]!r}, "
                             f"got {entry.get('file')!r:.60}")
        for key in ("sha256", "weights_sha256"):
            if not isinstance(entry.get(key), str) or not _SHA256.fullmatch(entry[key]):
                raise ValueError(f"model card: packaged_runtimes.{runtime}.{key} must be a sha256 in hex")
    return section


def read_packaged(folder: str | Path, card, weights_file: str) -> dict[str, bytes]:
    """{runtime: file bytes} for each runtime in `card.packaged_runtimes` whose file is in `folder` with the
    card's sha256 and whose weights hash matches `weights_file`; each one that does not is skipped with one
    `PackagedRuntimeWarning` saying why."""
    folder = Path(folder)
    out: dict[str, bytes] = {}
    for runtime, entry in (getattr(card, "packaged_runtimes", None) or {}).items():
        path = folder / entry["file"]
        try:
            data = path.read_bytes()
            weights_hash = file_sha256(folder / weights_file)
        except OSError as exc:
            warnings.warn(f"{path}: packaged {runtime} runtime not used ({exc.strerror or exc}); running the float "
                          "model", PackagedRuntimeWarning, stacklevel=3)
            continue
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            warnings.warn(f"{path}: not the file the card describes (sha256 differs: edited or damaged); running "
                          "the float model", PackagedRuntimeWarning, stacklevel=3)
            continue
        if weights_hash != entry["weights_sha256"]:
            warnings.warn(f"{path}: made from other weights than {weights_file} (retrained after quantising?); "
                          f"running the float model; make a new one with `cpm quantise {folder}`",
                          PackagedRuntimeWarning, stacklevel=3)
            continue
        out[runtime] = data
    return out
