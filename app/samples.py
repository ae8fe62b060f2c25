"""The bundled sample media a first launch opens, so a pose shows at once (kept free of heavy imports)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAMES = ("hand_desk.mp4", "hand_thumb_up.jpg")


def samples_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "resources" / "samples"


def default_sample() -> Path | None:
    d = samples_dir()
    for name in SAMPLE_NAMES:
        if (d / name).is_file():
            return d / name
    return None
