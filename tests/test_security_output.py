"""Writing a model never deletes a user's files (issue #22, item 5 of the issue's list).

`cpm convert-weights IN OUT` and `cpm export ... --format savedmodel` replaced an existing OUT folder wholesale:
a user's `notes.txt` and `sub/data.csv` vanished with exit status 0. A folder that is not empty and is not a model
of ours (only the entries we write) is now refused with one line unless `--force`; our own earlier output is still
replaced, atomically.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.weights import save_model


@pytest.fixture
def tiny_model(tmp_path: Path, tiny_spec) -> Path:
    return save_model(build_cpm(tiny_spec), ModelCard.for_spec(tiny_spec, name="tiny"), tmp_path / "src_model")


def _user_folder(path: Path) -> dict[str, bytes]:
    (path / "sub").mkdir(parents=True)
    files = {"notes.txt": b"my notes\n", "sub/data.csv": b"a,b\n1,2\n"}
    for name, data in files.items():
        (path / name).write_bytes(data)
    return files


def _intact(path: Path, files: dict[str, bytes]) -> bool:
    return all((path / n).is_file() and (path / n).read_bytes() == d for n, d in files.items())


def test_convert_weights_refuses_a_users_folder_unless_force(tmp_path: Path, tiny_model: Path, capsys) -> None:
    from training.cli import main

    out = tmp_path / "out"
    files = _user_folder(out)
    assert main(["convert-weights", str(tiny_model), str(out)]) != 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and str(out) in err[0] and "--force" in err[0] and "notes.txt" in err[0], err
    assert _intact(out, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src_model"]  # no temporary folder left

    # A model of ours, also with a user's file inside, is refused too: replacing it would lose that file.
    ours = save_model(build_cpm_from(tiny_model), ModelCard.read(tiny_model / "card.json"), tmp_path / "ours")
    (ours / "readme.txt").write_text("mine")
    assert main(["convert-weights", str(tiny_model), str(ours)]) != 0
    assert (ours / "readme.txt").read_text() == "mine"

    assert main(["convert-weights", str(tiny_model), str(out), "--force"]) == 0
    assert (out / "card.json").is_file() and not (out / "notes.txt").exists()


def build_cpm_from(model_dir: Path):
    return build_cpm(ModelCard.read(model_dir / "card.json").spec)


def test_convert_weights_replaces_its_own_model_and_fills_an_empty_folder(tmp_path: Path, tiny_model: Path) -> None:
    from training.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["convert-weights", str(tiny_model), str(empty)]) == 0
    assert sorted(p.name for p in empty.iterdir()) == ["card.json", "weights.weights.h5"]
    assert main(["convert-weights", str(tiny_model), str(empty), "--name", "again"]) == 0  # ours: replaced
    assert ModelCard.read(empty / "card.json").name == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "src_model"]


def test_convert_weights_refuses_a_file_as_output(tmp_path: Path, tiny_model: Path) -> None:
    from training.cli import main

    target = tmp_path / "file.txt"
    target.write_text("keep")
    assert main(["convert-weights", str(tiny_model), str(target)]) != 0
    assert target.read_text() == "keep"


def test_export_savedmodel_refuses_a_users_folder(tmp_path: Path, tiny_model: Path, capsys) -> None:
    from training.cli import main
    from training.export import export_model

    out = tmp_path / "sm"
    files = _user_folder(out)
    assert main(["export", str(tiny_model), str(out), "--format", "savedmodel"]) != 0
    err = capsys.readouterr().err
    assert "--force" in err and "notes.txt" in err
    assert _intact(out, files)

    fresh = tmp_path / "sm2"
    export_model(tiny_model, fresh, "savedmodel")
    export_model(tiny_model, fresh, "savedmodel")  # a SavedModel export of ours: replaced
    assert (fresh / "saved_model.pb").is_file() and (fresh / "card.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left

    assert main(["export", str(tiny_model), str(out), "--format", "savedmodel", "--force"]) == 0
    assert (out / "saved_model.pb").is_file() and not (out / "notes.txt").exists()
