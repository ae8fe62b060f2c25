"""The shipped recipes as files: each loads as `cpm train` loads it (`training.config.load_config`), each writes
to its own run folder, and the weights each starts from or distils from are in the clone. Two recipes sharing an
output folder once let one run's `--resume` or a read of its `model/` pick up the other's checkpoints and weights
(hand_negatives.toml and hand_v4.toml, both `runs/hand_v4`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpm_core.weights.own_format import CARD_FILE, WEIGHTS_FILE
from training.config import load_config

RECIPES = Path(__file__).resolve().parents[1] / "training" / "recipes"
FILES = sorted(RECIPES.glob("*.toml"))


def test_there_are_recipes_to_check():
    assert len(FILES) >= 5


def test_every_recipe_writes_to_its_own_run_folder():
    folders: dict[Path, str] = {}
    for path in FILES:
        out = load_config(path).output_dir
        assert out not in folders, f"{path.name} and {folders[out]} both write to {out}"
        folders[out] = path.name


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_start_and_teacher_weights_are_in_the_clone(path: Path):
    cfg = load_config(path)
    for rel in filter(None, [cfg.model.init, cfg.distill.teacher]):
        folder = Path(cfg.resolve(rel))
        if folder.suffix == ".tflite":  # a keypoint teacher is one file
            assert folder.is_file(), f"{path.name}: {rel} is missing"
            continue
        assert (folder / CARD_FILE).is_file(), f"{path.name}: {rel} has no card.json"
        assert (folder / WEIGHTS_FILE).is_file(), f"{path.name}: {rel} has no weights"
