"""Drag and drop onto the window: a dropped model loads, anything else opens as a source."""

from __future__ import annotations

from pathlib import Path

MODEL_SUFFIXES = (".pkl", ".pickle", ".index", ".weights.h5")


def looks_like_model(path: str | Path) -> bool:
    """Whether a dropped path is weights rather than media (model folders, .pkl, checkpoints, card.json)."""
    p = Path(path)
    if p.is_dir():
        return (p / "card.json").exists() or (p / "checkpoint").exists() or any(p.glob("*.index"))
    return p.name == "card.json" or p.name.endswith(MODEL_SUFFIXES) or ".data-" in p.name


def dropped_path(event) -> str | None:
    """The first local file of a drop event (accepting the drop), or None when it carries none."""
    urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
    if not urls:
        return None
    event.acceptProposedAction()
    return urls[0]
