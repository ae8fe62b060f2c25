"""Examples that run from a clone (issue #19): the bundled quick-start hand set and recipe are complete and
self-contained, and a recipe whose data is absent (the default recipes need ../shared/data, which a clone lacks)
fails with one `error` event and one stderr line, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli import main as cpm_main
from training.config import load_config
from training.train import missing_data

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "resources" / "data" / "hand_quickstart"
RECIPE = ROOT / "training" / "recipes" / "quickstart_hand.toml"


def test_bundled_hand_set_is_small_self_contained_and_licensed() -> None:
    """Relative image paths that all exist inside the folder, 21-joint hands in both splits, a few MB at most,
    and the licence text of every source the README's table names."""
    from cpm_core.dataset.formats import read_dataset

    for split, images, hands in (("train", 32, 40), ("val", 12, 12)):
        raw = json.loads((QUICKSTART / f"{split}.json").read_text())
        assert (len(raw["images"]), len(raw["annotations"])) == (images, hands)
        for image in raw["images"]:
            assert not Path(image["file_name"]).is_absolute() and ".." not in Path(image["file_name"]).parts
            assert (QUICKSTART / image["file_name"]).is_file()
        dataset = read_dataset(QUICKSTART / f"{split}.json")
        assert dataset.skeleton.num_joints == 21 and len(dataset.samples) == images
    size = sum(f.stat().st_size for f in QUICKSTART.rglob("*") if f.is_file())
    assert size < 5_000_000
    readme = (QUICKSTART / "README.md").read_text()
    for licence in (QUICKSTART / "LICENSES").iterdir():
        assert licence.name in readme
    assert len(list((QUICKSTART / "LICENSES").iterdir())) == 3


def test_quickstart_recipe_finds_its_data_and_is_short() -> None:
    """The recipe's paths resolve from the recipe's folder to the bundled set, so it runs from any clone."""
    cfg = load_config(RECIPE)
    assert missing_data(cfg) == []
    assert all(str(QUICKSTART) in cfg.resolve(p) for p in (*cfg.data.train, *cfg.data.val))
    assert cfg.train.steps <= 200


def test_a_recipe_whose_data_is_absent_fails_with_one_line_and_one_error_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recipe written for the shared data, run where that data is absent: exit status 1, exactly one JSON
    `error` event on stdout naming the path, exactly one line on stderr, and no traceback."""
    recipe = tmp_path / "recipes" / "needs_shared.toml"
    recipe.parent.mkdir()
    recipe.write_text('output = "../runs/x"\n[data]\ntrain = ["../../shared/data/hand_pseudo/train.json"]\n'
                      'val = ["../../shared/data/hand_pseudo/val.json"]\n[train]\nsteps = 1\n')
    assert cpm_main(["train", str(recipe)]) == 1
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["error"]
    assert "hand_pseudo/train.json" in events[0]["message"] and "(and 1 more)" in events[0]["message"]
    assert len(err.splitlines()) == 1 and err.startswith("cpm train: data not found")
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_a_missing_config_file_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped recipe path gets one line and one `error` event too."""
    assert cpm_main(["train", str(tmp_path / "nope.toml")]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["error"]
    assert len(err.splitlines()) == 1 and "config not found" in err and "nope.toml" in err


def test_quickstart_distillation_runs_from_the_clone(tmp_path: Path) -> None:
    """The README's `cpm distill` example needs nothing outside the clone: the bundled set, the embedded teacher.
    A few steps here (the recipe has 60): the run must end with `done`, a teacher PCK and an exported model."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, "-m", "training.cli", "distill", "training/recipes/quickstart_distill.toml",
                          "--set", "train.steps=4", "--set", "train.eval_every=0", "--output", str(tmp_path / "qd")],
                         cwd=root, env=env, text=True, capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    done = json.loads(res.stdout.strip().splitlines()[-1])
    assert done["event"] == "done" and done["metrics"]["teacher_kind"] == "cpm"
    assert 0 <= done["metrics"]["teacher_pck"] <= 1 and (Path(done["model"]) / "card.json").exists()
