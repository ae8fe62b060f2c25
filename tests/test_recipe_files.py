"""The shipped recipes as files: each parses, each writes to its own run folder, and the weights each starts from
or distils from are in the clone. Two recipes sharing an output folder once let one run's `--resume` or a read of
its `model/` pick up the other's checkpoints and weights (hand_negatives.toml and hand_v4.toml, both
`runs/hand_v4`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "training" / "recipes"
FILES = sorted(RECIPES.glob("*.toml"))


def _read(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_there_are_recipes_to_check():
    assert len(FILES) >= 5


def test_every_recipe_writes_to_its_own_run_folder():
    folders: dict[Path, str] = {}
    for path in FILES:
        raw = _read(path)
        assert "output" in raw, f"{path.name} has no output folder"
        out = (path.parent / raw["output"]).resolve()
        assert out not in folders, f"{path.name} and {folders[out]} both write to {out}"
        folders[out] = path.name


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_start_and_teacher_weights_are_in_the_clone(path: Path):
    raw = _read(path)
    starts = [raw.get("model", {}).get("init", ""), raw.get("distill", {}).get("teacher", "")]
    for rel in filter(None, starts):
        folder = (path.parent / rel).resolve()
        if folder.suffix == ".tflite":  # a keypoint teacher is one file
            assert folder.is_file(), f"{path.name}: {rel} is missing"
            continue
        assert (folder / "card.json").is_file(), f"{path.name}: {rel} has no card.json"
        assert any(folder.glob("*.weights.h5")), f"{path.name}: {rel} has no weights"
